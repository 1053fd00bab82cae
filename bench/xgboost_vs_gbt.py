"""Benchmark: distributed XGBoost (xgboost.spark, the `xgboost` catalogue
entry) vs. Spark ML's GBTClassifier on the demo's flights, side by side in
one process: fit seconds and test ROC AUC of each, and the ratio.

Both fit the same cached, featurised training rows (the flights config's
feature stages, January-September, the train split) with the same depth and
number of trees, and are scored on the same test split with the exact ROC
area. Needs the demo's silver table: run scripts/demo.sh (or `lakeforge
ingest` and `lakeforge clean` on conf/datasets/flights.yaml) first.

    .venv/bin/python bench/xgboost_vs_gbt.py [--trees 50] [--depth 5] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(REPO / "conf/datasets/flights.yaml"))
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--fraction", type=float, default=1.0, help="share of the train rows")
    args = parser.parse_args()

    from pyspark import StorageLevel
    from pyspark.ml import Pipeline
    from pyspark.sql import functions as F

    from lakeforge.config import load_job_config
    from lakeforge.evaluation.metrics import metric
    from lakeforge.features.stages import FEATURES, build_stages
    from lakeforge.logs import configure
    from lakeforge.models.catalogue import build
    from lakeforge.spark import build_session, cores
    from lakeforge.split.assign import SPLIT, TEST, TRAIN, assign
    from lakeforge.storage import delta
    from lakeforge.storage.paths import tables_for

    configure(os.environ.get("BENCH_LOG", "WARNING"))
    cfg = load_job_config(args.dataset)
    spec = cfg.dataset.train
    assert spec is not None and spec.task == "binary"
    spark = build_session(cfg.settings, app_name="lakeforge-bench-xgboost")
    silver = tables_for(cfg.settings, cfg.dataset.name).silver
    if delta.version(spark, silver) is None:
        raise SystemExit(f"no silver table at {silver}: run scripts/demo.sh first")
    rows = delta.read(spark, silver).where(spec.where or "true")
    rows = rows.withColumn(spec.label, F.col(spec.label).cast("double"))
    rows = assign(rows.where(F.col(spec.label).isNotNull()), cfg.dataset.keys, spec.split)
    train = rows.where(F.col(SPLIT) == TRAIN)
    if args.fraction < 1.0:
        train = train.sample(False, args.fraction, 1)
    featurizer = Pipeline(stages=build_stages(spec.features, spec.task, spec.label)).fit(train)
    fit_rows = featurizer.transform(train).select(FEATURES, spec.label)
    fit_rows = fit_rows.persist(StorageLevel.MEMORY_AND_DISK)
    test_rows = featurizer.transform(rows.where(F.col(SPLIT) == TEST)).select(FEATURES, spec.label)
    test_rows = test_rows.persist(StorageLevel.MEMORY_AND_DISK)
    n_train, n_test = fit_rows.count(), test_rows.count()
    slots = cores(spark)
    candidates = {
        "Spark GBTClassifier": ("gbt", {"maxIter": args.trees, "maxDepth": args.depth}),
        f"xgboost.spark ({slots} workers)": (
            "xgboost",
            {"n_estimators": args.trees, "max_depth": args.depth, "learning_rate": 0.1},
        ),
    }
    print(
        f"flights train {n_train:,} rows, test {n_test:,} rows; {args.trees} trees of depth "
        f"{args.depth}; {slots} cores; best of {args.repeat}"
    )
    results: dict[str, tuple[float, float]] = {}
    for label, (name, params) in candidates.items():
        seconds = []
        auc = float("nan")
        for _ in range(args.repeat):
            estimator = build(
                name,
                "binary",
                params,  # type: ignore[arg-type]
                label=spec.label,
                n_features=0,
                n_classes=2,
                seed=spec.split.seed,
                workers=slots,
            )
            start = time.perf_counter()
            model = estimator.fit(fit_rows)
            seconds.append(time.perf_counter() - start)
            auc = metric(model.transform(test_rows), "binary", spec.label, "roc_auc")
        results[label] = (min(seconds), auc)
        print(f"  {label:<28} fit {min(seconds):7.1f} s   test ROC AUC {auc:.4f}")
    (gbt_s, gbt_auc), (xgb_s, xgb_auc) = results.values()
    print(f"xgboost vs GBT: {gbt_s / xgb_s:.2f}x the speed, ROC AUC {xgb_auc - gbt_auc:+.4f}")
    fit_rows.unpersist()
    test_rows.unpersist()
    spark.stop()


if __name__ == "__main__":
    main()
