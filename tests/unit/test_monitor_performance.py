"""Monitor's batch performance from gold rows as predict writes them, for a
champion with probabilities and one without (`linear_svc`: no score, so no
ROC/PR area, but its class metrics), each against scikit-learn."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from lakeforge.steps.monitor import _performance
from tests.helpers import job_config, write_scores_dataset

ROWS = [(i, float(i % 3 == 0), float(i % 4 == 0), (i % 7) / 7.0) for i in range(60)]


def _spec(tmp_path: Path, estimator: str):  # type: ignore[no-untyped-def]
    cfg = job_config(write_scores_dataset(tmp_path, models=[{"estimator": estimator}]))
    assert cfg.dataset.train is not None
    return cfg.dataset.train


def test_a_champion_without_probabilities_is_measured(spark: SparkSession, tmp_path: Path) -> None:
    gold = spark.createDataFrame([(i, p) for i, _, p, _ in ROWS], "id long, prediction double")
    current = spark.createDataFrame([(i, y) for i, y, _, _ in ROWS], "id long, y double")
    found = _performance(gold, current, ["id"], _spec(tmp_path, "linear_svc"))
    y = [r[1] for r in ROWS]
    p = [r[2] for r in ROWS]
    assert found["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert found["f1"] == pytest.approx(f1_score(y, p))
    assert math.isnan(found["roc_auc"]) and math.isnan(found["log_loss"])


def test_a_champion_with_probabilities_is_ranked(spark: SparkSession, tmp_path: Path) -> None:
    gold = spark.createDataFrame(
        [(i, p, [1 - s, s]) for i, _, p, s in ROWS],
        "id long, prediction double, probability array<double>",
    )
    current = spark.createDataFrame([(i, y) for i, y, _, _ in ROWS], "id long, y double")
    found = _performance(gold, current, ["id"], _spec(tmp_path, "logistic_regression"))
    y = [r[1] for r in ROWS]
    assert found["roc_auc"] == pytest.approx(roc_auc_score(y, [r[3] for r in ROWS]))
