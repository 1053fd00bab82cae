"""Our search against pyspark.ml's CrossValidator on the same folds: the same
candidate wins with the same fold metrics; nothing stays cached afterwards;
successive halving keeps the true best on a case where it is clear."""

from __future__ import annotations

from typing import Any

import pytest
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.functions import vector_to_array
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder
from pyspark.sql import DataFrame, SparkSession

from lakeforge.config.training import Candidate, Halving, Search, TrainConfig
from lakeforge.evaluation.metrics import metric
from lakeforge.features.stages import build_stages
from lakeforge.split.assign import FOLD, assign
from lakeforge.tuning.search import candidates, cross_validate, rounds
from lakeforge.tuning.shared import binary_metric
from tests.helpers import scores_frame, train_section

pytestmark = pytest.mark.integration

REG = [0.0, 0.05, 0.2, 0.5, 1.0, 3.0]


def _config(**changes: Any) -> TrainConfig:
    return TrainConfig.model_validate(train_section(**changes))


def _folded(spark: SparkSession, spec: TrainConfig, n: int = 3000) -> DataFrame:
    rows = assign(scores_frame(spark, n), ["id"], spec.split, spec.label).cache()
    rows.count()  # cached now, so the search's own caches are all that can change
    return rows


def _search(
    spec: TrainConfig, train: DataFrame, halving: Halving | None = None, solver: str = "auto"
) -> Any:
    return cross_validate(
        train,
        build_stages(spec.features, spec.task, spec.label),
        candidates(spec.models, spec.search),
        task=spec.task,
        label=spec.label,
        metric_name="roc_auc",
        smaller_is_better=False,
        folds=spec.split.folds,
        parallelism=2,
        seed=spec.split.seed,
        n_classes=2,
        halving=halving,
        solver=solver,
    )


def _jobs_of(spark: SparkSession, run: Any) -> tuple[Any, int]:
    """`run()` and how many Spark jobs it launched, from any thread (job ids
    are sequential: a marker job before and after brackets them)."""
    sc = spark.sparkContext

    def marker() -> int:
        sc.setJobGroup("lakeforge-test-marker", "marker")
        sc.parallelize([0], 1).count()
        ids = sc.statusTracker().getJobIdsForGroup("lakeforge-test-marker")
        sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
        return max(ids)

    before = marker()
    result = run()
    return result, marker() - before - 1


def _persistent(spark: SparkSession) -> set[int]:
    jsc = spark.sparkContext._jsc
    assert jsc is not None
    return {int(k) for k in jsc.getPersistentRDDs().keySet().toArray()}


def test_same_choice_as_crossvalidator_and_halving_keeps_the_clear_best(
    spark: SparkSession,
) -> None:
    # L1 penalties: the larger ones zero out real signal, so the metrics differ
    spec = _config(
        models=[
            {
                "estimator": "logistic_regression",
                "params": {"elasticNetParam": 1.0},
                "grid": {"regParam": REG},
            }
        ]
    )
    train = _folded(spark, spec)
    cached = _persistent(spark)
    own, own_jobs = _jobs_of(spark, lambda: _search(spec, train, solver="spark"))
    assert _persistent(spark) == cached  # every fold cache released
    ours, shared_jobs = _jobs_of(spark, lambda: _search(spec, train))
    assert _persistent(spark) == cached  # the shared-pass blocks too
    # the point of the shared passes: a fraction of the Spark jobs
    assert shared_jobs * 3 < own_jobs, (shared_jobs, own_jobs)

    lr = LogisticRegression(featuresCol="features", labelCol="y", elasticNetParam=1.0)
    stock = CrossValidator(
        estimator=Pipeline(stages=[*build_stages(spec.features, "binary", "y"), lr]),
        estimatorParamMaps=ParamGridBuilder().addGrid(lr.regParam, REG).build(),
        evaluator=BinaryClassificationEvaluator(labelCol="y", numBins=0),
        foldCol=FOLD,
        numFolds=spec.split.folds,
        parallelism=2,
    ).fit(train)
    stock_means = list(stock.avgMetrics)
    stock_best = max(range(len(REG)), key=stock_means.__getitem__)
    # Spark's own fits: CrossValidator's numbers exactly
    assert own.best.spec.index == stock_best
    assert [s.mean for s in own.scores] == pytest.approx(stock_means, abs=1e-6)
    # shared passes: the same optimum reached by another optimiser, so the
    # same choice and the metrics within the optimisers' tolerance
    ours_means = [s.mean for s in ours.scores]
    assert ours.best.spec.index == stock_best
    assert ours_means == pytest.approx(stock_means, abs=2e-4)
    assert len({round(m, 4) for m in ours_means}) > 2  # the grid really differs

    # Halving: 6 candidates on a third of each fold's rows, the best 2 on all.
    halving = Halving(factor=3, min_rows=200)
    # what CrossValidator's own fits left cached (Spark ML persists inside
    # fit) is not ours to release: compare with the set from just before
    cached = _persistent(spark)
    halved = _search(spec, train, halving)
    assert _persistent(spark) == cached
    assert [(r.candidates, r.fraction) for r in rounds(6, halving, 2000)] == [
        (6, pytest.approx(1 / 3)),
        (2, 1.0),
    ]
    assert halved.best.spec.index == ours.best.spec.index
    assert halved.best.mean == pytest.approx(ours.best.mean, abs=1e-9)
    assert len([s for s in halved.scores if s.fraction < 1.0]) == 4
    train.unpersist()


def test_shared_metrics_equal_sparks_evaluators(spark: SparkSession) -> None:
    """The shared-pass search scores on the driver: its ROC/PR areas and log
    loss must be Spark's own, ties included (4 distinct scores here)."""
    rows = scores_frame(spark, 2000)
    features = build_stages(_config().features.model_copy(update={"numeric": None}), "binary", "y")
    scored = (
        Pipeline(stages=[*features, LogisticRegression(featuresCol="features", labelCol="y")])
        .fit(rows)
        .transform(rows)
        .cache()
    )
    got = scored.select("y", vector_to_array("rawPrediction")[1].alias("m")).toPandas()
    assert got["m"].round(9).nunique() <= 4
    for name in ("roc_auc", "pr_auc", "log_loss"):
        expected = metric(scored, "binary", "y", name)
        assert binary_metric(name, got["y"].to_numpy(float), got["m"].to_numpy()) == (
            pytest.approx(expected, abs=1e-9)
        ), name
    scored.unpersist()


def test_round_plan() -> None:
    assert [(r.candidates, r.fraction) for r in rounds(48, Halving(), 1_000_000)] == [
        (48, pytest.approx(1 / 27)),
        (16, pytest.approx(1 / 9)),
        (6, pytest.approx(1 / 3)),
        (2, 1.0),
    ]
    # never fewer rows than min_rows per fold in the first round
    assert rounds(48, Halving(min_rows=50_000), 100_000)[0].fraction == 0.5
    assert [r.candidates for r in rounds(5, None, 10)] == [5]
    assert Search.model_validate({"halving": {"factor": 2}}).halving == Halving(factor=2)
    assert candidates([Candidate(estimator="logistic_regression")], Search())[0].index == 0
