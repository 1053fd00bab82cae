"""Each task gets its plots, drawn from Spark aggregates of the scored rows."""

from __future__ import annotations

import pytest
from pyspark.ml.linalg import Vectors
from pyspark.sql import SparkSession

from lakeforge.evaluation.plots import figures


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (
            "binary",
            {"roc_curve.png", "pr_curve.png", "calibration.png", "confusion_matrix.png"},
        ),
        ("multiclass", {"confusion_matrix.png"}),
        ("regression", {"residuals.png"}),
    ],
)
def test_figures_for_each_task(spark: SparkSession, task: str, expected: set[str]) -> None:
    rows = []
    for i in range(60):
        y = float(i % (3 if task == "multiclass" else 2)) if task != "regression" else i / 7
        p = min(0.95, max(0.05, (i % 10) / 10))
        pred = float(p > 0.5) if task == "binary" else (y if task == "multiclass" else y + 0.3)
        rows.append((y, pred, Vectors.dense([1 - p, p]), Vectors.dense([-p, p])))
    scored = spark.createDataFrame(rows, ["y", "prediction", "probability", "rawPrediction"])
    if task == "regression":
        scored = scored.drop("probability", "rawPrediction")
    drawn = figures(scored, task, "y", [("a", 0.5), ("b", -0.2)])
    assert set(drawn) == expected | {"feature_importance.png"}
