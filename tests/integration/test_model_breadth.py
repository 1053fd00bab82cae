"""Model breadth: stacking, distributed xgboost, class weights, a tuned
decision threshold and importances, each held against an independent
reference (scikit-learn, the xgboost library) on the same rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import xgboost
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lakeforge.config.training import Member, Split
from lakeforge.evaluation.importance import by_column, feature_names, importances
from lakeforge.features.stages import build_stages
from lakeforge.models.catalogue import build
from lakeforge.models.stacking import StackingModel
from lakeforge.models.threshold import DecisionThreshold
from lakeforge.models.weights import WEIGHT, with_weights
from lakeforge.split.assign import SPLIT, assign
from lakeforge.steps import predict, train
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from tests.helpers import job_config, write_scores_dataset

pytestmark = pytest.mark.integration

COLUMNS = ["x1", "x2", "x3", "x4", "x5", "x6", "x7"]


def _auc(scored: DataFrame, label: str = "y") -> float:
    return BinaryClassificationEvaluator(labelCol=label, numBins=0).evaluate(scored)


@pytest.fixture(scope="module")
def interaction(spark: SparkSession) -> Iterator[tuple[DataFrame, DataFrame]]:
    """Train and test rows whose label has an additive part (x1 + ... + x4)
    and an interaction (x5 and x6 both positive); x7 is noise. Logistic
    regression gets the first right and misses the second, a shallow forest
    finds the second but approximates a sum of four slopes coarsely: a stack
    of the two should beat both."""
    rng = np.random.default_rng(2026)
    n = 5000
    x = rng.normal(0, 1, (n, 7))
    logit = 0.8 * x[:, :4].sum(axis=1) + 3.0 * ((x[:, 4] > 0) & (x[:, 5] > 0)) - 0.75
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    frame = pd.DataFrame(x, columns=COLUMNS).assign(y=y, id=np.arange(n))
    rows = VectorAssembler(inputCols=COLUMNS, outputCol="features").transform(
        spark.createDataFrame(frame)
    )
    test = F.col("id") % 4 == 0
    train_rows, test_rows = rows.where(~test).cache(), rows.where(test).cache()
    yield train_rows, test_rows
    train_rows.unpersist()
    test_rows.unpersist()


def _fit(spark: SparkSession, name: str, train_rows: DataFrame, **kw: object) -> PipelineModel:
    estimator = build(
        name, "binary", kw.pop("params", {}), label="y", n_features=7, n_classes=2, seed=3, **kw
    )
    return PipelineModel(stages=[estimator.fit(train_rows)])


def test_stacking_matches_or_beats_its_best_base_and_saves_as_one_model(
    spark: SparkSession, interaction: tuple[DataFrame, DataFrame], tmp_path: Path
) -> None:
    train_rows, test_rows = interaction
    lr = Member(estimator="logistic_regression")
    rf = Member(estimator="random_forest", params={"numTrees": 30, "maxDepth": 5})
    bases = {
        m.estimator: _auc(
            _fit(spark, m.estimator, train_rows, params=m.params).transform(test_rows)
        )
        for m in (lr, rf)
    }
    stack = _fit(spark, "stacking", train_rows, params={"numFolds": 3}, base=[lr, rf])
    stacked = _auc(stack.transform(test_rows))
    # measured: logistic regression 0.814, forest 0.841, stack 0.854
    assert stacked > max(bases.values()) + 0.005, (stacked, bases)

    # One artefact: saved and loaded as a PipelineModel, it scores the same.
    model = PipelineModel(
        stages=[VectorAssembler(inputCols=COLUMNS, outputCol="features"), *stack.stages]
    )
    model.save(str(tmp_path / "stack"))
    loaded = PipelineModel.load(str(tmp_path / "stack"))
    assert isinstance(loaded.stages[-1], StackingModel)
    assert len(loaded.stages[-1].baseModels) == 2
    raw = test_rows.drop("features")
    before = model.transform(raw).select("id", vector_to_array("probability")[1].alias("p"))
    after = loaded.transform(raw).select("id", vector_to_array("probability")[1].alias("q"))
    joined = before.join(after, "id")
    assert joined.count() == test_rows.count()
    assert joined.where(F.abs(F.col("p") - F.col("q")) > 1e-12).isEmpty()

    # Importances: the stack leans on the six columns that carry signal.
    names = feature_names(model.transform(raw).schema, COLUMNS)
    weights = importances(loaded, names)
    assert weights[-1][0] == "x7"
    assert {n for n, _ in weights[:6]} == set(COLUMNS[:6])


def test_xgboost_trains_on_two_workers_and_scores_like_the_xgboost_library(
    spark: SparkSession, interaction: tuple[DataFrame, DataFrame]
) -> None:
    train_rows, test_rows = interaction
    params = {"n_estimators": 60, "max_depth": 4, "learning_rate": 0.2}
    sc = spark.sparkContext
    sc.setJobGroup("xgboost-fit", "xgboost fit in the test")
    try:
        model = _fit(spark, "xgboost", train_rows, params=params, workers=2)
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    # The booster was trained by a barrier stage of two tasks (one per worker).
    tracker = sc.statusTracker()
    stages = [
        tracker.getStageInfo(s)
        for job in tracker.getJobIdsForGroup("xgboost-fit")
        for s in (tracker.getJobInfo(job).stageIds if tracker.getJobInfo(job) else [])
    ]
    assert any(info is not None and info.numTasks == 2 for info in stages)
    assert model.stages[-1].getOrDefault("num_workers") == 2

    ours = _auc(model.transform(test_rows))
    train_pd, test_pd = train_rows.toPandas(), test_rows.toPandas()
    reference = xgboost.XGBClassifier(**params, tree_method="hist", random_state=3)
    reference.fit(train_pd[COLUMNS], train_pd["y"])
    expected = roc_auc_score(test_pd["y"], reference.predict_proba(test_pd[COLUMNS])[:, 1])
    assert ours == pytest.approx(expected, abs=0.01)
    names = feature_names(test_rows.schema, COLUMNS)
    weights = importances(model, names)
    assert weights[-1][0] == "x7"  # pure noise gains least


def _sklearn_recall(train_pd: pd.DataFrame, test_pd: pd.DataFrame, weight: str | None) -> float:
    numeric = ["x1", "x2", "noise"]
    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["segment"]),
            ]
        ),
        LogisticRegression(C=np.inf, max_iter=5000, class_weight=weight),
    )
    model.fit(train_pd[[*numeric, "segment"]], train_pd["y"])
    predicted = model.predict(test_pd[[*numeric, "segment"]])
    return float(predicted[test_pd["y"] == 1].mean())


def _rare_positives(spark: SparkSession, n: int = 8000) -> DataFrame:
    """About 7% positives, driven mostly by x1."""
    rng = np.random.default_rng(17)
    frame = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int32),
            "x1": rng.normal(0, 1, n),
            "x2": rng.normal(0, 1, n),
            "noise": rng.normal(0, 1, n),
            "segment": rng.choice(["north", "south", "east"], n),
        }
    )
    effect = frame["segment"].map({"north": 0.3, "south": 0.0, "east": -0.3})
    logit = -3.4 + 1.6 * frame["x1"] + 0.4 * frame["x2"] + effect
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int32)
    return spark.createDataFrame(frame)


def test_class_weights_raise_recall_and_predict_applies_the_tuned_threshold(
    spark: SparkSession, tmp_path: Path, lakehouse: Path
) -> None:
    split = {"validation": 0.2, "test": 0.25, "folds": 2, "seed": 1}
    cfg = job_config(
        write_scores_dataset(
            tmp_path / "conf",
            split=split,
            models=[{"estimator": "logistic_regression", "params": {"regParam": 0.0}}],
            class_weight="balanced",
            threshold={"optimise": "f1"},
        )
    )
    silver = tables_for(cfg.settings, "scores").silver
    delta.append(_rare_positives(spark), silver)
    result = train.run(spark, cfg)
    assert result is not None and result.threshold is not None

    # The weights: n / (2 x rows of the class), counted on the train split.
    rows = assign(delta.read(spark, silver), ["id"], Split(**split), "y")
    train_rows = rows.where(F.col(SPLIT) == "train")
    counts = {float(r["y"]): int(r["count"]) for r in train_rows.groupBy("y").count().collect()}
    n = sum(counts.values())
    assert result.class_weights == pytest.approx({c: n / (2 * k) for c, k in counts.items()})
    assert counts[1.0] / n < 0.1  # the positives are rare

    # Weighted, the same logistic regression finds far more of the rare
    # positives at threshold 0.5, as scikit-learn's balanced one does.
    assert cfg.dataset.train is not None
    stages = build_stages(cfg.dataset.train.features, "binary", "y")
    labelled = train_rows.withColumn("y", F.col("y").cast("double"))
    featurizer = Pipeline(stages=stages).fit(labelled)
    weighted_rows = featurizer.transform(
        with_weights(labelled, "y", result.class_weights or {})
    ).cache()
    test_rows = rows.where(F.col(SPLIT) == "test").withColumn("y", F.col("y").cast("double"))

    def recall(weight_col: str | None) -> float:
        lr = build(
            "logistic_regression",
            "binary",
            {"regParam": 0.0},
            label="y",
            n_features=6,
            n_classes=2,
            seed=1,
            weight_col=weight_col,
        )
        scored = lr.fit(weighted_rows).transform(featurizer.transform(test_rows))
        found = scored.where(F.col("y") == 1).agg(F.avg("prediction")).first()
        assert found is not None
        return float(found[0])

    plain, balanced = recall(None), recall(WEIGHT)
    train_pd, test_pd = train_rows.toPandas(), test_rows.toPandas()
    assert balanced > plain + 0.25
    assert balanced == pytest.approx(_sklearn_recall(train_pd, test_pd, "balanced"), abs=0.03)
    assert plain == pytest.approx(_sklearn_recall(train_pd, test_pd, None), abs=0.03)

    # The threshold is scikit-learn's best-F1 point of the validation scores,
    # and it is a stage of the registered model.
    model = mlflow.spark.load_model("models:/scores@champion")
    stage = model.stages[-1]
    assert isinstance(stage, DecisionThreshold)
    assert stage.getThreshold() == pytest.approx(result.threshold.threshold)
    held = model.transform(rows.where(F.col(SPLIT) == "validation"))
    scores = held.select("y", vector_to_array("probability")[1].alias("p")).toPandas()
    precision, recall_curve, thresholds = precision_recall_curve(scores["y"], scores["p"])
    with np.errstate(invalid="ignore"):
        f1 = np.nan_to_num(2 * precision * recall_curve / (precision + recall_curve))[:-1]
    assert result.threshold.f1 == pytest.approx(f1.max(), abs=1e-9)
    assert stage.getThreshold() == pytest.approx(thresholds[f1 == f1.max()].max(), abs=1e-12)

    # Predict scores with it: every gold row is positive exactly when its
    # probability reaches the threshold.
    done = predict.run(spark, cfg)
    gold = delta.read(spark, tables_for(cfg.settings, "scores").predictions)
    assert done.rows == gold.count() == delta.read(spark, silver).count()
    disagree = gold.where(
        (F.col("probability")[1] >= F.lit(stage.getThreshold())).cast("double")
        != F.col("prediction")
    )
    assert disagree.isEmpty()

    # Importances come back per silver column, led by the one driving the label.
    assert {c for c, _ in result.column_importance} == {"x1", "x2", "noise", "segment"}
    assert result.column_importance[0][0] == "x1"
    assert by_column([("segment=north", 0.1)], cfg.dataset.train.features) == [("segment", 0.1)]
