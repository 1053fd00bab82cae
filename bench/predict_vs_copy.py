"""Benchmark: scoring a batch (read silver -> PipelineModel.transform -> write
gold with lineage) vs. a plain read-and-write of the same rows and columns.

Both run in one process, side by side, on the demo batch and on a 10x larger
synthetic batch (the demo batch repeated), each into a fresh Delta table.
Needs the demo's tables and champion model: run scripts/demo.sh first.

    .venv/bin/python bench/predict_vs_copy.py [--repeat 2] [--scale 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(REPO / "conf/datasets/flights.yaml"))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--scale", type=int, default=10)
    args = parser.parse_args()

    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from lakeforge.config import load_job_config
    from lakeforge.logs import configure
    from lakeforge.scoring.batch import PARTITION, Lineage, score
    from lakeforge.spark import build_session
    from lakeforge.storage import delta
    from lakeforge.storage.paths import tables_for
    from lakeforge.tracking.models import serving_model

    configure(os.environ.get("BENCH_LOG", "WARNING"))
    cfg = load_job_config(args.dataset)
    ds = cfg.dataset
    assert ds.train is not None
    spark = build_session(cfg.settings, app_name="lakeforge-bench-predict")
    tables = tables_for(cfg.settings, ds.name)
    version = delta.version(spark, tables.silver)
    if version is None:
        raise SystemExit(f"no silver table at {tables.silver}: run scripts/demo.sh first")
    name = ds.train.registry.model_name or ds.name
    model_info = serving_model(cfg.settings.mlflow.tracking_uri, name, None)
    model = model_info.load()
    inputs = list(dict.fromkeys([*ds.keys, *ds.train.features.input_columns()]))
    batch = delta.read(spark, tables.silver, as_of=version).where(ds.predict.where or "true")
    scratch = Path(tempfile.mkdtemp(prefix="lakeforge-bench-"))
    try:
        # the larger batch is materialised first, so both sides read the same files
        big_path = str(scratch / "big_batch")
        copies = [
            batch.withColumn("flight", F.col("flight") + i * 100_000) for i in range(args.scale)
        ]
        reduce(DataFrame.unionByName, copies).write.format("delta").save(big_path)
        sources = {
            "demo batch": lambda: batch,
            f"{args.scale}x batch": lambda: delta.read(spark, big_path),
        }
        print(f"model {name} v{model_info.version}; silver v{version}; best of {args.repeat}")
        for label, source in sources.items():
            rows = source().count()
            plain, ours = [], []
            for i in range(args.repeat):
                start = time.perf_counter()
                source().select(*inputs).write.format("delta").save(
                    str(scratch / f"{label}-copy{i}")
                )
                plain.append(time.perf_counter() - start)
                lineage = Lineage(
                    name,
                    model_info.version,
                    model_info.run_id,
                    tables.silver,
                    version,
                    f"bench-{i}",
                    datetime.now(UTC).replace(tzinfo=None),
                )
                start = time.perf_counter()
                delta.replace_where(
                    score(model, source(), ds.keys, lineage),
                    str(scratch / f"{label}-gold{i}"),
                    f"_batch_id = 'bench-{i}'",
                    [PARTITION],
                )
                ours.append(time.perf_counter() - start)
            copy, scored = min(plain), min(ours)
            print(f"{label}: {rows:,} rows")
            print(f"  plain read + write Delta (keys + model inputs): {copy:7.2f} s")
            print(f"  lakeforge scoring (transform + lineage + gold):  {scored:7.2f} s")
            ratio = scored / copy
            print(
                f"  ratio scoring / plain copy:                      {ratio:7.2f}x  (target 1.5x)"
            )
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
