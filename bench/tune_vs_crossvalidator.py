"""Benchmark: lakeforge's cross-validated search vs. pyspark.ml's CrossValidator
(and scikit-learn's GridSearchCV, the single-machine peer), side by side in one
run on the same rows, folds and grid.

Data: synthetic, ROWS rows of 8 numeric and 3 categorical columns with a
binary label from a known logistic model. Pipeline: median imputation,
standard scaling, one-hot encoding, logistic regression. Grid: regParam x
elasticNetParam (24 points by default), 3 folds.

    .venv/bin/python bench/tune_vs_crossvalidator.py [--rows 200000] [--grid 24]
        [--skip-stock-serial] [--skip-sklearn]

Prints, per variant: seconds, ratio to the best stock setting, the Spark jobs
it launched, and the best candidate with its mean CV ROC AUC.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

REG = [0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
ENET = [0.0, 0.5, 1.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--grid", type=int, default=24, help="candidates (<= 24)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--skip-stock-serial", action="store_true")
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()

    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.tuning import CrossValidator
    from pyspark.sql import functions as F

    from lakeforge.config import Settings, SparkSettings
    from lakeforge.config.training import Halving, TrainConfig
    from lakeforge.features.stages import build_stages
    from lakeforge.logs import configure
    from lakeforge.spark import build_session, cores
    from lakeforge.split.assign import FOLD, assign
    from lakeforge.tuning.search import candidates, cross_validate

    configure(os.environ.get("BENCH_LOG", "WARNING"))
    spark = build_session(
        Settings(spark=SparkSettings(master="local[*]", conf={"spark.driver.memory": "6g"})),
        app_name="lakeforge-bench-tune",
    )
    n_cores = cores(spark)
    grid = [(r, e) for e in ENET for r in REG][: args.grid]
    spec = TrainConfig.model_validate(
        {
            "task": "binary",
            "label": "y",
            "features": {
                "numeric": {
                    "columns": [f"x{i}" for i in range(8)],
                    "impute": "median",
                    "scale": "standard",
                },
                "categorical": {"columns": ["c0", "c1", "c2"]},
            },
            "split": {"validation": 0.0, "test": 0.0001, "folds": args.folds, "seed": 3},
            "models": [
                {
                    "estimator": "logistic_regression",
                    "params": {"maxIter": 50},
                    "grid": {
                        "regParam": sorted({r for r, _ in grid}),
                        "elasticNetParam": sorted({e for _, e in grid}),
                    },
                }
            ],
        }
    )
    specs = [
        s
        for s in candidates(spec.models, spec.search)
        if (s.params["regParam"], s.params["elasticNetParam"]) in grid
    ]
    ids = spark.range(args.rows).withColumnRenamed("id", "key")
    cols = [(F.hash("key", F.lit(i)) % 10_000 / 2_500.0 - 2.0).alias(f"x{i}") for i in range(8)]
    cats = [
        F.concat(
            F.lit(f"c{j}_"), (F.abs(F.hash("key", F.lit(100 + j))) % (5 + 10 * j)).cast("string")
        ).alias(f"c{j}")
        for j in range(3)
    ]
    data = ids.select("key", *cols, *cats)
    logit = (
        F.col("x0") * 1.5
        - F.col("x1")
        + F.col("x2") * 0.5
        + F.when(F.col("c0") == "c0_1", 1.0).otherwise(0.0)
        - F.when(F.col("c1").isin("c1_3", "c1_7"), 0.8).otherwise(0.0)
    )
    noise = F.abs(F.hash("key", F.lit(999))) % 1_000_000 / 1_000_000.0
    data = data.withColumn("y", (noise < 1 / (1 + F.exp(-logit))).cast("int"))
    train = assign(data, ["key"], spec.split, "y").cache()
    rows = train.count()
    sc = spark.sparkContext

    def job_mark() -> int:
        sc.setJobGroup("bench-mark", "mark")
        sc.parallelize([0], 1).count()
        ids_ = sc.statusTracker().getJobIdsForGroup("bench-mark")
        sc.setJobGroup("bench", "bench")
        return max(ids_)

    results: list[tuple[str, float, int, str, float]] = []

    def timed(name: str, run: Callable[[], tuple[str, float]]) -> None:
        start_job = job_mark()
        start = time.perf_counter()
        best, auc = run()
        seconds = time.perf_counter() - start
        jobs = job_mark() - start_job - 1
        results.append((name, seconds, jobs, best, auc))
        print(f"{name:<40} {seconds:8.1f}s {jobs:6d} jobs  best {best} auc {auc:.4f}", flush=True)

    def ours(halving: Any = None) -> tuple[str, float]:
        result = cross_validate(
            train,
            build_stages(spec.features, "binary", "y"),
            specs,
            task="binary",
            label="y",
            metric_name="roc_auc",
            smaller_is_better=False,
            folds=args.folds,
            parallelism=n_cores,
            seed=3,
            n_classes=2,
            halving=halving,
        )
        assert result.best is not None
        return result.best.spec.label, result.best.mean

    def stock(parallelism: int) -> tuple[str, float]:
        lr = LogisticRegression(featuresCol="features", labelCol="y", maxIter=50)
        maps = [
            {lr.regParam: r, lr.elasticNetParam: e}
            for r, e in [(s.params["regParam"], s.params["elasticNetParam"]) for s in specs]
        ]
        model = CrossValidator(
            estimator=Pipeline(stages=[*build_stages(spec.features, "binary", "y"), lr]),
            estimatorParamMaps=maps,
            evaluator=BinaryClassificationEvaluator(labelCol="y", numBins=0),
            foldCol=FOLD,
            numFolds=args.folds,
            parallelism=parallelism,
        ).fit(train)
        best = max(range(len(specs)), key=list(model.avgMetrics).__getitem__)
        return specs[best].label, float(model.avgMetrics[best])

    def sklearn() -> tuple[str, float]:
        import numpy as np
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression as SkLR
        from sklearn.model_selection import GridSearchCV, PredefinedSplit
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        frame = train.where("_split = 'train'").toPandas()
        numeric = [f"x{i}" for i in range(8)]
        prep = ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["c0", "c1", "c2"]),
            ]
        )
        pipe = make_pipeline(prep, SkLR(max_iter=200))
        n = len(frame)
        search = GridSearchCV(
            pipe,
            {"logisticregression__C": [1.0 / (r * n) if r > 0 else 1e6 for r in REG]},
            scoring="roc_auc",
            cv=PredefinedSplit(frame[FOLD].to_numpy()),
            n_jobs=2,
        ).fit(frame[[*numeric, "c0", "c1", "c2"]], np.asarray(frame["y"]))
        return f"C={search.best_params_['logisticregression__C']:.3g}", float(search.best_score_)

    print(f"rows={rows} candidates={len(specs)} folds={args.folds} cores={n_cores}", flush=True)
    timed("lakeforge exhaustive", ours)
    timed("lakeforge halving (factor 3)", lambda: ours(Halving(factor=3)))
    timed(f"CrossValidator(parallelism={n_cores})", lambda: stock(n_cores))
    if not args.skip_stock_serial:
        timed("CrossValidator(parallelism=1)", lambda: stock(1))
    if not args.skip_sklearn:
        timed("scikit-learn GridSearchCV(n_jobs=2), l2 only", sklearn)
    stock_best = min(s for name, s, *_ in results if name.startswith("CrossValidator"))
    print("\nvariant                                   seconds  vs best stock  jobs  best auc")
    for name, seconds, jobs, _, auc in results:
        print(f"{name:<40} {seconds:8.1f} {stock_best / seconds:10.2f}x {jobs:7d}  {auc:.4f}")
    train.unpersist()
    spark.stop()


if __name__ == "__main__":
    main()
