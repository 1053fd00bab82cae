"""Monitor's batch performance from gold rows as predict writes them, for a
champion with probabilities and one without (`linear_svc`: no score, so no
ROC/PR area, but its class metrics), each against scikit-learn, and only on
rows the model did not train on (its run's train split is left out)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from lakeforge.errors import InputNotFound
from lakeforge.split.assign import FOLD, SPLIT
from lakeforge.steps.monitor import MEASURED_ROWS, TRAINED_ROWS, _performance
from lakeforge.storage import delta
from lakeforge.tracking.models import ServingModel
from tests.helpers import job_config, write_scores_dataset

ROWS = [(i, float(i % 3 == 0), float(i % 4 == 0), (i % 7) / 7.0) for i in range(60)]


def _spec(tmp_path: Path, estimator: str):  # type: ignore[no-untyped-def]
    cfg = job_config(write_scores_dataset(tmp_path, models=[{"estimator": estimator}]))
    assert cfg.dataset.train is not None
    return cfg.dataset.train


def _model(spark: SparkSession, tmp_path: Path, trained_on: range) -> ServingModel:
    """A model whose run's split table puts `trained_on` ids in the train
    split and a few others (not in the batch) in test."""
    splits = str(tmp_path / "splits")
    rows = [(i, "train", i % 3) for i in trained_on] + [(i, "test", None) for i in (500, 501)]
    delta.append(spark.createDataFrame(rows, f"id long, {SPLIT} string, {FOLD} int"), splits)
    return ServingModel("scores", "1", "run", "silver", 0, "", splits, 0)


def test_a_champion_without_probabilities_is_measured(spark: SparkSession, tmp_path: Path) -> None:
    gold = spark.createDataFrame([(i, p) for i, _, p, _ in ROWS], "id long, prediction double")
    current = spark.createDataFrame([(i, y) for i, y, _, _ in ROWS], "id long, y double")
    model = _model(spark, tmp_path, range(100, 120))  # none of the batch's rows
    found = _performance(spark, gold, current, ["id"], _spec(tmp_path, "linear_svc"), model)
    y = [r[1] for r in ROWS]
    p = [r[2] for r in ROWS]
    assert (found[MEASURED_ROWS], found[TRAINED_ROWS]) == (60, 0)
    assert found["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert found["f1"] == pytest.approx(f1_score(y, p))
    assert math.isnan(found["roc_auc"]) and math.isnan(found["log_loss"])


def test_rows_the_model_trained_on_are_left_out(spark: SparkSession, tmp_path: Path) -> None:
    gold = spark.createDataFrame(
        [(i, p, [1 - s, s]) for i, _, p, s in ROWS],
        "id long, prediction double, probability array<double>",
    )
    current = spark.createDataFrame([(i, y) for i, y, _, _ in ROWS], "id long, y double")
    model = _model(spark, tmp_path, range(0, 25))  # a retrained model saw ids 0..24
    spec = _spec(tmp_path, "logistic_regression")
    found = _performance(spark, gold, current, ["id"], spec, model)
    unseen = [r for r in ROWS if r[0] >= 25]
    assert (found[MEASURED_ROWS], found[TRAINED_ROWS]) == (35, 25)
    expected = roc_auc_score([r[1] for r in unseen], [r[3] for r in unseen])
    assert found["roc_auc"] == pytest.approx(expected, abs=1e-12)
    in_sample = roc_auc_score([r[1] for r in ROWS], [r[3] for r in ROWS])
    assert abs(expected - in_sample) > 1e-3  # the test tells the two apart


def test_a_model_without_a_recorded_split_is_not_measured_in_sample(
    spark: SparkSession, tmp_path: Path
) -> None:
    gold = spark.createDataFrame([(i, p) for i, _, p, _ in ROWS], "id long, prediction double")
    current = spark.createDataFrame([(i, y) for i, y, _, _ in ROWS], "id long, y double")
    model = ServingModel("scores", "3", "run-x", "silver", None, "")
    with pytest.raises(InputNotFound, match="scores v3: its run records no split table"):
        _performance(spark, gold, current, ["id"], _spec(tmp_path, "linear_svc"), model)
