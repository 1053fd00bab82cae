"""Metrics of scored rows, computed by Spark on every row (no sampling: the
ROC and PR areas use `numBins=0`, the exact curves)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pyspark.ml.evaluation import (
    BinaryClassificationEvaluator,
    MulticlassClassificationEvaluator,
    RegressionEvaluator,
)
from pyspark.sql import DataFrame

from lakeforge.config.training import METRICS

_BINARY_CURVES = {"roc_auc": "areaUnderROC", "pr_auc": "areaUnderPR"}
_MULTICLASS = {
    "accuracy": "accuracy",
    "precision": "weightedPrecision",
    "recall": "weightedRecall",
    "f1": "f1",
    "log_loss": "logLoss",
}
# binary precision, recall and F1 are those of the positive class (label 1)
_POSITIVE = {"precision": "precisionByLabel", "recall": "recallByLabel", "f1": "fMeasureByLabel"}
_REGRESSION = {"rmse": "rmse", "mae": "mae", "r2": "r2"}


def metric(scored: DataFrame, task: str, label: str, name: str) -> float:
    """One metric of `scored` (a model's output with `label`); NaN when the rows
    do not hold what the metric needs: log loss without probabilities, ROC
    and PR areas without a score (gold keeps `probability` only, so a
    `linear_svc` champion's batch has no score to rank by)."""
    columns = set(scored.columns)
    if task == "regression":
        return float(
            RegressionEvaluator(labelCol=label, metricName=_REGRESSION[name]).evaluate(scored)  # type: ignore[arg-type]
        )
    if name in _BINARY_CURVES:
        if "rawPrediction" not in columns:
            return math.nan
        return float(
            BinaryClassificationEvaluator(
                labelCol=label,
                metricName=_BINARY_CURVES[name],  # type: ignore[arg-type]
                numBins=0,
            ).evaluate(scored)
        )
    if name == "log_loss" and "probability" not in columns:
        return math.nan
    evaluator = MulticlassClassificationEvaluator(labelCol=label)
    if task == "binary" and name in _POSITIVE:
        evaluator.setMetricName(_POSITIVE[name]).setMetricLabel(1.0)  # type: ignore[arg-type]
    else:
        evaluator.setMetricName(_MULTICLASS[name])  # type: ignore[arg-type]
    return float(evaluator.evaluate(scored))


def evaluate(
    scored: DataFrame, task: str, label: str, names: Sequence[str] | None = None
) -> dict[str, float]:
    """Every metric of the task (or `names`) on `scored`; cache `scored` first."""
    return {n: metric(scored, task, label, n) for n in (names or METRICS[task])}


def better(value: float, than: float, smaller_is_better: bool) -> bool:
    """Is `value` strictly better than `than`? NaN is never better."""
    if math.isnan(value):
        return False
    if math.isnan(than):
        return True
    return value < than if smaller_is_better else value > than
