"""The model-search benchmarks' shared pieces: synthetic rows, the training
spec and grid, and a Spark job counter. Imported by the bench scripts (run as
`python bench/NAME.py`, so this folder is on sys.path)."""

from __future__ import annotations

import os
from typing import Any

REG = [0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
ENET = [0.0, 0.5, 1.0]


def session(app_name: str) -> Any:
    from lakeforge.config import Settings, SparkSettings
    from lakeforge.logs import configure
    from lakeforge.spark import build_session

    configure(os.environ.get("BENCH_LOG", "WARNING"))
    return build_session(
        Settings(spark=SparkSettings(master="local[*]", conf={"spark.driver.memory": "6g"})),
        app_name=app_name,
    )


def grid_points(n: int) -> list[tuple[float, float]]:
    """The first n (regParam, elasticNetParam) points: 8 x 3 from REG x ENET,
    then 24 more regParam values in between (48 in all)."""
    points = [(r, e) for e in ENET for r in REG]
    extra = [0.0005, 0.002, 0.005, 0.02, 0.05, 0.2, 0.5, 2.0]
    points += [(r, e) for e in ENET for r in extra]
    if n > len(points):
        raise SystemExit(f"--grid {n}: at most {len(points)} candidates")
    return points[:n]


def train_spec(points: list[tuple[float, float]], folds: int) -> Any:
    """Median imputation, standard scaling, one-hot, logistic regression."""
    from lakeforge.config.training import TrainConfig

    return TrainConfig.model_validate(
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
            "split": {"validation": 0.0, "test": 0.0001, "folds": folds, "seed": 3},
            "models": [
                {
                    "estimator": "logistic_regression",
                    "params": {"maxIter": 50},
                    "grid": {
                        "regParam": sorted({r for r, _ in points}),
                        "elasticNetParam": sorted({e for _, e in points}),
                    },
                }
            ],
        }
    )


def grid_specs(spec: Any, points: list[tuple[float, float]]) -> list[Any]:
    """The spec's candidates that are grid points (its grid is their product)."""
    from lakeforge.tuning.search import candidates

    wanted = set(points)
    return [
        s
        for s in candidates(spec.models, spec.search)
        if (s.params["regParam"], s.params["elasticNetParam"]) in wanted
    ]


def synthetic(spark: Any, rows: int, spec: Any) -> Any:
    """ROWS rows of 8 numeric and 3 categorical columns (5, 15 and 25 levels),
    a binary label from a known logistic model, split and folds assigned; cached."""
    from pyspark.sql import functions as F

    from lakeforge.split.assign import assign

    ids = spark.range(rows).withColumnRenamed("id", "key")
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
    train.count()
    return train


class JobCounter:
    """Spark job ids are sequential: a marker job before and after a run
    brackets every job it launched, from any driver thread."""

    def __init__(self, spark: Any):
        self.sc = spark.sparkContext

    def mark(self) -> int:
        self.sc.setJobGroup("bench-mark", "mark")
        self.sc.parallelize([0], 1).count()
        ids = self.sc.statusTracker().getJobIdsForGroup("bench-mark")
        self.sc.setJobGroup("bench", "bench")
        return max(ids)


def ours(
    train: Any, spec: Any, specs: list[Any], parallelism: int, **options: Any
) -> tuple[str, float]:
    """lakeforge's search (options: halving, solver): best label, mean CV AUC."""
    from lakeforge.features.stages import build_stages
    from lakeforge.tuning.search import cross_validate

    result = cross_validate(
        train,
        build_stages(spec.features, "binary", "y"),
        specs,
        task="binary",
        label="y",
        metric_name="roc_auc",
        smaller_is_better=False,
        folds=spec.split.folds,
        parallelism=parallelism,
        seed=3,
        n_classes=2,
        **options,
    )
    assert result.best is not None
    return result.best.spec.label, result.best.mean


def stock(train: Any, spec: Any, specs: list[Any], parallelism: int) -> tuple[str, float]:
    """pyspark.ml's CrossValidator around the whole pipeline, same folds and grid."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.tuning import CrossValidator

    from lakeforge.features.stages import build_stages
    from lakeforge.split.assign import FOLD

    lr = LogisticRegression(featuresCol="features", labelCol="y", maxIter=50)
    maps = [
        {lr.regParam: s.params["regParam"], lr.elasticNetParam: s.params["elasticNetParam"]}
        for s in specs
    ]
    model = CrossValidator(
        estimator=Pipeline(stages=[*build_stages(spec.features, "binary", "y"), lr]),
        estimatorParamMaps=maps,
        evaluator=BinaryClassificationEvaluator(labelCol="y", numBins=0),
        foldCol=FOLD,
        numFolds=spec.split.folds,
        parallelism=parallelism,
    ).fit(train)
    best = max(range(len(specs)), key=list(model.avgMetrics).__getitem__)
    return specs[best].label, float(model.avgMetrics[best])


def warm_up(spark: Any, parallelism: int) -> None:
    """One small search of each kind before anything is timed: the first run
    in a JVM pays for class loading, JIT compilation and Python worker start
    (15-20 s here), which would otherwise land on whichever variant runs first."""
    points = grid_points(2)
    spec = train_spec(points, 3)
    specs = grid_specs(spec, points)
    train = synthetic(spark, 20_000, spec)
    ours(train, spec, specs, parallelism)
    ours(train, spec, specs, parallelism, solver="spark")
    stock(train, spec, specs, parallelism)
    train.unpersist()
