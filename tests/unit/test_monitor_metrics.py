"""Monitor's binary metrics from one grouped aggregation equal Spark's own
evaluators (`evaluate`, a few jobs per metric) and scikit-learn on the same
rows: tied scores, a perfect and a constant score, one class only, gold's
probability array, and a champion with no score at all."""

from __future__ import annotations

import math
import random

import pytest
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from lakeforge.evaluation.metrics import binary_in_one_pass, evaluate


def _scored(spark: SparkSession, rows: list[tuple[float, float]]) -> DataFrame:
    """(label, P(1)) rows as monitor measures them: prediction at 0.5, the
    probability as a vector and the same vector as the score."""
    frame = spark.createDataFrame(
        [(y, 1.0 if s > 0.5 else 0.0, [1.0 - s, s]) for y, s in rows],
        "y double, prediction double, probability array<double>",
    )
    vector = frame.withColumn("probability", array_to_vector(F.col("probability")))
    return vector.withColumn("rawPrediction", F.col("probability"))


def _random(n: int, seed: int, digits: int) -> list[tuple[float, float]]:
    draw = random.Random(seed)
    rows = []
    for _ in range(n):
        y = float(draw.random() < 0.35)
        # rounding makes many tied scores, the case the curves must get right
        s = round(min(max(draw.gauss(0.35 + 0.3 * y, 0.2), 0.0), 1.0), digits)
        rows.append((y, s))
    return rows


CASES = {
    "many distinct scores": _random(3000, 1, 12),
    "tied scores": _random(3000, 2, 2),
    "perfect ranking": [(1.0, 0.9), (1.0, 0.8), (0.0, 0.3), (0.0, 0.1), (0.0, 0.3)],
    "one score for all": [(1.0, 0.4), (0.0, 0.4), (0.0, 0.4), (1.0, 0.4), (0.0, 0.4)],
    "probabilities of 0 and 1": [(1.0, 1.0), (0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 0.7)],
    "no predicted positive": [(1.0, 0.2), (0.0, 0.1), (1.0, 0.3), (0.0, 0.05)],
}


@pytest.mark.parametrize("case", CASES)
def test_one_pass_equals_sparks_evaluators(spark: SparkSession, case: str) -> None:
    scored = _scored(spark, CASES[case]).cache()
    expected = evaluate(scored, "binary", "y")
    found = binary_in_one_pass(scored, "y")
    assert found.keys() == expected.keys()
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, abs=1e-9, rel=1e-9), name


def test_one_pass_equals_scikit_learn(spark: SparkSession) -> None:
    # scores inside (0, 1): scikit-learn and Spark clip 0 and 1 differently
    rows = [(y, min(max(s, 0.01), 0.99)) for y, s in CASES["tied scores"]]
    found = binary_in_one_pass(_scored(spark, rows), "y")
    y = [r[0] for r in rows]
    s = [r[1] for r in rows]
    p = [1.0 if v > 0.5 else 0.0 for v in s]
    assert found["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert found["accuracy"] == pytest.approx(accuracy_score(y, p), abs=1e-12)
    assert found["f1"] == pytest.approx(f1_score(y, p), abs=1e-12)
    assert found["log_loss"] == pytest.approx(log_loss(y, s), abs=1e-9)


def test_one_class_only_has_no_positive_class_metrics(spark: SparkSession) -> None:
    """Spark's evaluator raises on precision of a label no row has; the one
    pass says NaN, and measures what is defined."""
    scored = _scored(spark, [(0.0, 0.2), (0.0, 0.7), (0.0, 0.4)])
    found = binary_in_one_pass(scored, "y")
    assert all(math.isnan(found[k]) for k in ("precision", "recall", "f1"))
    assert found["accuracy"] == pytest.approx(2 / 3)
    defined = ("roc_auc", "pr_auc", "accuracy", "log_loss")
    expected = evaluate(scored, "binary", "y", defined)
    for name in defined:
        assert found[name] == pytest.approx(expected[name], abs=1e-12), name


def test_a_champion_without_a_score_gives_its_class_metrics(spark: SparkSession) -> None:
    rows = [(float(i % 3 == 0), float(i % 4 == 0)) for i in range(60)]
    scored = spark.createDataFrame(rows, "y double, prediction double")
    found = binary_in_one_pass(scored, "y")
    expected = evaluate(scored, "binary", "y")
    assert math.isnan(found["roc_auc"]) and math.isnan(found["pr_auc"])
    assert math.isnan(found["log_loss"])
    for name in ("accuracy", "precision", "recall", "f1"):
        assert found[name] == pytest.approx(expected[name], abs=1e-12), name


def test_a_nan_probability_makes_the_log_loss_nan(spark: SparkSession) -> None:
    """Spark's clip of NaN is NaN: a broken row must not pass as a perfect one."""
    found = binary_in_one_pass(_scored(spark, [(1.0, 0.8), (0.0, math.nan), (0.0, 0.1)]), "y")
    assert math.isnan(found["log_loss"])


def test_gold_probability_arrays_give_what_vectors_give(spark: SparkSession) -> None:
    rows = CASES["tied scores"][:500]
    vectors = _scored(spark, rows)
    arrays = spark.createDataFrame(
        [(y, 1.0 if s > 0.5 else 0.0, [1.0 - s, s]) for y, s in rows],
        "y double, prediction double, probability array<double>",
    ).withColumn("rawPrediction", F.col("probability"))
    expected = binary_in_one_pass(vectors, "y")
    found = binary_in_one_pass(arrays, "y")
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, abs=1e-12), name
