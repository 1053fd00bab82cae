"""A value that occurs exactly once: a category one fold's training rows never
saw (so the folds' one-hot vectors differ in width), a class one fold lacks,
a category first seen at scoring. Every path trains, scores and monitors
without a crash or a misaligned slot, and the shared passes still agree with
Spark's own fits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyspark.ml import Pipeline
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config import JobConfig
from lakeforge.config.training import Member, TrainConfig
from lakeforge.errors import DriftDetected
from lakeforge.features.stages import FEATURES, build_stages
from lakeforge.models.catalogue import build
from lakeforge.models.labels import with_classes
from lakeforge.split.assign import FOLD, SPLIT, TRAIN, assign
from lakeforge.steps import monitor, predict, train
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from lakeforge.tuning.search import candidates, cross_validate
from tests.helpers import job_config, scores_frame, train_section, write_scores_dataset

pytestmark = pytest.mark.integration

RARE = "atlantis"


def _config(**changes: Any) -> TrainConfig:
    return TrainConfig.model_validate(train_section(**changes))


def _with_rare_category(spark: SparkSession, spec: TrainConfig, n: int = 1500) -> DataFrame:
    """Train rows (folds assigned) in which exactly one row has segment RARE."""
    rows = assign(scores_frame(spark, n), ["id"], spec.split, spec.label)
    train_rows = rows.where(F.col(SPLIT) == TRAIN)
    first = train_rows.orderBy("id").first()
    assert first is not None
    rare = F.when(F.col("id") == first["id"], F.lit(RARE)).otherwise(F.col("segment"))
    out = train_rows.withColumn("segment", rare).cache()
    assert out.where(F.col("segment") == RARE).count() == 1
    return out


def _widths(spec: TrainConfig, rows: DataFrame) -> set[int]:
    """The feature-vector width of each fold's featurisation."""
    stages = build_stages(spec.features, spec.task, spec.label)
    out = set()
    for fold in range(spec.split.folds):
        fitted = Pipeline(stages=stages).fit(rows.where(F.col(FOLD) != fold))
        first = fitted.transform(rows.limit(1)).select(FEATURES).first()
        assert first is not None
        out.add(first[0].size)
    return out


def _search(spec: TrainConfig, rows: DataFrame, solver: str) -> Any:
    return cross_validate(
        rows,
        build_stages(spec.features, spec.task, spec.label),
        candidates(spec.models, spec.search),
        task=spec.task,
        label=spec.label,
        metric_name=spec.metric,
        smaller_is_better=spec.smaller_is_better,
        folds=spec.split.folds,
        parallelism=2,
        seed=spec.split.seed,
        n_classes=2,
        solver=solver,
    )


def test_a_category_seen_once_gives_folds_of_two_widths_and_shared_passes_agree_with_spark(
    spark: SparkSession,
) -> None:
    spec = _config()
    rows = _with_rare_category(spark, spec)
    # the premise: the fold holding the rare row trains on one slot fewer
    assert len(_widths(spec, rows)) == 2
    shared = _search(spec, rows, "auto")
    own = _search(spec, rows, "spark")
    for ours, theirs in zip(shared.scores, own.scores, strict=True):
        assert ours.fold_metrics == pytest.approx(theirs.fold_metrics, abs=2e-4)
    assert shared.best.spec.index == own.best.spec.index


def test_a_fold_whose_training_rows_lack_a_class_is_still_scored_on_every_class(
    spark: SparkSession,
) -> None:
    spec = _config(task="multiclass", search={"metric": "log_loss"})
    rows = assign(scores_frame(spark, 900), ["id"], spec.split, spec.label)
    # class 2 only in fold 0: the fits for fold 0 never see it, yet its held-out
    # rows hold it, and log loss reads the probability of every row's class
    only_fold_0 = (F.col(FOLD) == 0) & (F.col("id") % 7 == 0)
    rows = rows.withColumn("y", F.when(only_fold_0, F.lit(2)).otherwise(F.col("y")))
    rows = rows.withColumn("y", F.col("y").cast("double")).cache()
    result = cross_validate(
        rows,
        build_stages(spec.features, spec.task, spec.label),
        candidates(spec.models, spec.search),
        task="multiclass",
        label="y",
        metric_name="log_loss",
        smaller_is_better=True,
        folds=3,
        parallelism=2,
        seed=1,
        n_classes=3,
    )
    for score in result.scores:
        assert all(0.0 < m < 20.0 for m in score.fold_metrics), score.fold_metrics


def test_an_mlp_takes_each_folds_own_width(spark: SparkSession) -> None:
    spec = _config(
        models=[{"estimator": "mlp", "params": {"hidden_layers": [3], "maxIter": 20}}],
    )
    rows = _with_rare_category(spark, spec, n=600)
    result = _search(spec, rows, "spark")
    assert len(result.best.fold_metrics) == 3
    assert all(0.5 < m <= 1.0 for m in result.best.fold_metrics)


def _three_classes_one_rare(spark: SparkSession) -> DataFrame:
    """Classes 0 and 1 from the scores data, and one row of class 2."""
    rows = scores_frame(spark, 900)
    label = F.when(F.col("id") == 5, F.lit(2)).otherwise(F.col("y"))
    return rows.withColumn("y", label.cast("double"))


def _featurised(spark: SparkSession, rows: DataFrame) -> DataFrame:
    spec = _config(task="multiclass")
    stages = build_stages(spec.features, spec.task, spec.label)
    return Pipeline(stages=stages).fit(rows).transform(rows).select(FEATURES, "y").cache()


def test_a_stack_whose_inner_fold_lacks_a_class_still_scores_every_class(
    spark: SparkSession,
) -> None:
    data = _featurised(spark, _three_classes_one_rare(spark))
    stack = build(
        "stacking",
        "multiclass",
        {"numFolds": 3},
        label="y",
        n_features=data.first()[FEATURES].size,  # type: ignore[index]
        n_classes=3,
        seed=1,
        base=_members(),
    )
    scored = stack.fit(data).transform(data)  # type: ignore[attr-defined]
    widths = {r[0] for r in scored.select(F.size(vector_to_array("probability"))).collect()}
    assert widths == {3}
    total = scored.select(
        F.aggregate(vector_to_array("probability"), F.lit(0.0), lambda a, b: a + b)
    )
    assert all(abs(r[0] - 1.0) < 1e-9 for r in total.collect())


def _members() -> tuple[Member, ...]:
    return (
        Member(estimator="logistic_regression", params={"regParam": 0.01}),
        Member(estimator="random_forest", params={"numTrees": 10, "maxDepth": 3}),
    )


@pytest.mark.parametrize("estimator", ["logistic_regression", "random_forest", "xgboost"])
def test_a_fit_on_rows_lacking_a_class_still_gives_every_class_a_slot(
    spark: SparkSession, estimator: str
) -> None:
    data = _featurised(spark, _three_classes_one_rare(spark))
    lacking = with_classes(data.where("y < 2"), "y", 3)  # the class-2 row is elsewhere
    params: dict[str, Any] = {"n_estimators": 5} if estimator == "xgboost" else {}
    model = build(
        estimator,
        "multiclass",
        params,
        label="y",
        n_features=data.first()[FEATURES].size,  # type: ignore[index]
        n_classes=3,
        seed=1,
    ).fit(lacking)
    scored = model.transform(data)
    widths = {r[0] for r in scored.select(F.size(vector_to_array("probability"))).collect()}
    assert widths == {3}


def test_train_predict_and_monitor_with_categories_seen_once_or_first_at_scoring(
    spark: SparkSession, tmp_path: Path, lakehouse: Path
) -> None:
    cfg = job_config(
        write_scores_dataset(
            tmp_path / "conf",
            where="id < 1500",
            split={"validation": 0.2, "test": 0.25, "folds": 3, "seed": 1},
            threshold={"optimise": "f1"},
            models=[
                {"estimator": "logistic_regression", "grid": {"regParam": [0.0, 0.1]}},
                {"estimator": "random_forest", "params": {"numTrees": 10, "maxDepth": 3}},
            ],
        )
    )
    tables = tables_for(cfg.settings, "scores")
    rows = scores_frame(spark, 2000)
    # one training row of a category no other row has; the scored batch brings a new one
    segment = (
        F.when(F.col("id") == 3, F.lit(RARE))
        .when(F.col("id") >= 1900, F.lit("unheard-of"))
        .otherwise(F.col("segment"))
    )
    delta.append(rows.withColumn("segment", segment), tables.silver)
    trained = train.run(spark, cfg)
    assert trained is not None and trained.threshold is not None
    assert dict(trained.column_importance).keys() == {"x1", "x2", "noise", "segment"}

    batch = cfg.dataset.model_copy(
        update={"predict": cfg.dataset.predict.model_copy(update={"where": "id >= 1500"})}
    )
    scoring = JobConfig(cfg.settings, batch, cfg.env, cfg.files)
    done = predict.run(spark, scoring, batch_id="later")
    assert done.rows == 500
    gold = delta.read(spark, tables.predictions)
    assert gold.count() == 500
    assert gold.where(F.col("prediction").isNull()).isEmpty()
    # 100 of the 500 rows bring the new category: drift is expected, not a crash
    with pytest.raises(DriftDetected, match="segment"):
        monitor.run(spark, scoring, "later")
    stored = delta.read(spark, tables.monitoring).where("batch_id = 'later' AND measure = 'psi'")
    psi = {r["subject"]: r["value"] for r in stored.collect()}
    assert psi["segment"] > 0.2
    assert psi["x1"] < 0.2
