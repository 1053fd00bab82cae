"""The decision threshold: the one chosen on scored rows is the point
scikit-learn's precision-recall curve gives for the same goal, and the stage
that applies it keeps it through save and load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.linalg import Vectors
from pyspark.sql import DataFrame, SparkSession
from sklearn.metrics import precision_recall_curve

from lakeforge.config.training import Threshold
from lakeforge.evaluation.threshold import choose_threshold
from lakeforge.models.threshold import DecisionThreshold


@pytest.fixture(scope="module")
def scores() -> tuple[np.ndarray, np.ndarray]:
    """400 rows, 30% positive, scores rounded to 2 decimals (many ties)."""
    rng = np.random.default_rng(11)
    y = (rng.random(400) < 0.3).astype(int)
    s = np.clip(np.round(0.25 * y + rng.normal(0.4, 0.15, 400), 2), 0.0, 1.0)
    return s, y


def _frame(spark: SparkSession, s: np.ndarray, y: np.ndarray) -> DataFrame:
    pairs = zip(s, y, strict=True)
    rows = [(Vectors.dense([1.0 - float(v), float(v)]), float(t)) for v, t in pairs]
    return spark.createDataFrame(rows, ["probability", "y"])


def _curve(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's curve: precision, recall and F1 per distinct score."""
    precision, recall, thresholds = precision_recall_curve(y, s)
    precision, recall = precision[:-1], recall[:-1]
    with np.errstate(invalid="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return precision, recall, f1, thresholds


def test_the_f1_threshold_is_the_best_point_of_the_precision_recall_curve(
    spark: SparkSession, scores: tuple[np.ndarray, np.ndarray]
) -> None:
    s, y = scores
    choice = choose_threshold(_frame(spark, s, y), "y", Threshold(optimise="f1"))
    _, _, f1, thresholds = _curve(s, y)
    assert choice.f1 == pytest.approx(f1.max(), abs=1e-12)
    assert choice.threshold == pytest.approx(thresholds[f1 == f1.max()].max())
    assert choice.target_met
    predicted = s >= choice.threshold
    assert choice.recall == pytest.approx(predicted[y == 1].mean())


def test_a_precision_target_takes_the_highest_recall_that_reaches_it(
    spark: SparkSession, scores: tuple[np.ndarray, np.ndarray]
) -> None:
    s, y = scores
    choice = choose_threshold(_frame(spark, s, y), "y", Threshold(optimise="precision", target=0.7))
    precision, recall, _, thresholds = _curve(s, y)
    reaching = precision >= 0.7
    assert choice.target_met and choice.precision >= 0.7
    assert choice.recall == pytest.approx(recall[reaching].max())
    best = reaching & (recall == recall[reaching].max())
    assert choice.threshold == pytest.approx(thresholds[best].max())


def test_an_unreachable_target_falls_back_to_the_closest_threshold_and_says_so(
    spark: SparkSession,
) -> None:
    # the highest score is a negative: precision 1.0 is out of reach
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    y = np.array([0, 1, 1, 0, 1, 0])
    choice = choose_threshold(_frame(spark, s, y), "y", Threshold(optimise="precision", target=1.0))
    assert not choice.target_met
    assert choice.precision == pytest.approx(2 / 3)  # the best any threshold reaches
    assert choice.threshold == pytest.approx(0.7)


def test_the_threshold_stage_predicts_with_its_threshold_after_save_and_load(
    spark: SparkSession, tmp_path: Path
) -> None:
    s = np.array([0.1, 0.35, 0.36, 0.8])
    frame = _frame(spark, s, np.zeros(4, dtype=int))
    PipelineModel(stages=[DecisionThreshold(threshold=0.36)]).save(str(tmp_path / "m"))
    loaded = PipelineModel.load(str(tmp_path / "m"))
    assert isinstance(loaded.stages[0], DecisionThreshold)
    assert loaded.stages[0].getThreshold() == pytest.approx(0.36)
    got = [r["prediction"] for r in loaded.transform(frame).collect()]
    assert got == [0.0, 0.0, 1.0, 1.0]
