"""Metrics of scored rows, computed by Spark on every row (no sampling: the
ROC and PR areas use `numBins=0`, the exact curves).

`evaluate` runs Spark's evaluators, a few jobs per metric; `binary_in_one_pass`
gives the same binary figures (to rounding) from one grouped aggregation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pyspark.ml.evaluation import (
    BinaryClassificationEvaluator,
    MulticlassClassificationEvaluator,
    RegressionEvaluator,
)
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

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


# MulticlassMetrics.logLoss's default clipping of probabilities
_LOG_LOSS_EPS = 1e-15


def binary_in_one_pass(scored: DataFrame, label: str) -> dict[str, float]:
    """Every binary metric (`METRICS["binary"]`) of `scored`, as `evaluate`
    gives them, from one grouped aggregation instead of a few Spark jobs per
    metric: rows are counted per distinct score, and the exact ROC and PR
    curves (every distinct score a threshold, as `numBins=0`) are accumulated
    over those counts in score order, with Spark's own conventions (a label
    above 0.5 is positive for the areas; precision 1 at no predicted
    positives on the PR curve; log loss clipped at 1e-15). The score is
    `rawPrediction` (its element 1 when a vector), log loss reads
    `probability`; without them those metrics are NaN, as in `metric`.
    Precision, recall and F1 (of label 1) are NaN when no row has label 1,
    where Spark's evaluator raises."""
    columns = set(scored.columns)
    y = F.col(label).cast("double")
    prediction = F.col("prediction").cast("double")
    score = _element(scored, "rawPrediction", F.lit(1)) if "rawPrediction" in columns else None
    loss: Column = F.lit(None).cast("double")
    if "probability" in columns:
        p = _element(scored, "probability", y.cast("int"))
        loss = (
            # a NaN probability makes the log loss NaN, as in Spark (Spark SQL
            # orders NaN above every number, so the clip would hide it)
            F.when(F.isnan(p), F.lit(math.nan))
            .when(p < _LOG_LOSS_EPS, -math.log(_LOG_LOSS_EPS))
            .when(p > 1 - _LOG_LOSS_EPS, -math.log1p(-_LOG_LOSS_EPS))
            .otherwise(-F.log(p))
        )

    def rows(condition: Column) -> Column:
        return F.sum(F.when(condition, 1).otherwise(0)).cast("double")

    per_score = (
        scored.select(
            (score if score is not None else F.lit(0.0)).alias("s"),
            y.alias("y"),
            prediction.alias("p"),
            loss.alias("l"),
        )
        .groupBy("s")
        .agg(
            rows(F.col("y") > 0.5).alias("pos"),
            rows(~(F.col("y") > 0.5)).alias("neg"),
            rows(F.col("y") == F.col("p")).alias("correct"),
            rows(F.col("y") == 1.0).alias("ones"),
            rows((F.col("p") == 1.0) & (F.col("y") == 1.0)).alias("tp"),
            rows((F.col("p") == 1.0) & (F.col("y") != 1.0)).alias("fp"),
            F.sum("l").alias("loss"),
            # one partition for the curve below: a column, since Spark drops a
            # literal partition and then warns on every plan of the window
            F.min(F.lit(0)).alias("curve"),
        )
    )
    # the curves: thresholds from the highest score down, counts cumulated
    # (in one task: one row per distinct score), the rates as
    # BinaryClassificationMetrics computes them
    whole = Window.partitionBy("curve")
    down = whole.orderBy(F.desc("s"))
    upto = down.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    everything = whole
    cum_tp, cum_fp = F.sum("pos").over(upto), F.sum("neg").over(upto)
    total_p, total_n = F.sum("pos").over(everything), F.sum("neg").over(everything)
    points = per_score.select(
        "*",
        F.when(total_n == 0, 0.0).otherwise(cum_fp / total_n).alias("fpr"),
        F.when(total_p == 0, 0.0).otherwise(cum_tp / total_p).alias("tpr"),
        F.when(cum_tp + cum_fp == 0, 1.0).otherwise(cum_tp / (cum_tp + cum_fp)).alias("prec"),
    )
    fpr, tpr, prec = F.col("fpr"), F.col("tpr"), F.col("prec")
    last_fpr = F.coalesce(F.lag("fpr").over(down), F.lit(0.0))
    last_tpr = F.coalesce(F.lag("tpr").over(down), F.lit(0.0))
    # the PR curve starts at recall 0 with the first threshold's precision
    last_prec = F.coalesce(F.lag("prec").over(down), prec)
    pieces = points.select(
        "*",
        ((fpr - last_fpr) * (tpr + last_tpr) / 2.0).alias("roc"),
        ((tpr - last_tpr) * (prec + last_prec) / 2.0).alias("pr"),
    )
    row = pieces.agg(
        *[F.sum(c).alias(c) for c in ("pos", "neg", "correct", "ones", "tp", "fp", "loss")],
        F.sum("roc").alias("roc"),
        F.sum("pr").alias("pr"),
        F.count(F.lit(1)).alias("scores"),
    ).first()
    assert row is not None
    n = (row["pos"] or 0.0) + (row["neg"] or 0.0)
    found: dict[str, float] = {}
    if score is None or not n:
        found["roc_auc"] = found["pr_auc"] = math.nan
    else:
        # the ROC curve ends at (1, 1), from (1, 1) when both classes occur
        end_fpr = 1.0 if row["neg"] else 0.0
        end_tpr = 1.0 if row["pos"] else 0.0
        found["roc_auc"] = float(row["roc"]) + (1.0 - end_fpr) * (1.0 + end_tpr) / 2.0
        found["pr_auc"] = float(row["pr"])
    found["accuracy"] = row["correct"] / n if n else math.nan
    tp, fp, ones = row["tp"] or 0.0, row["fp"] or 0.0, row["ones"] or 0.0
    if ones:
        precision = 0.0 if tp + fp == 0 else tp / (tp + fp)
        recall = tp / ones
        found["precision"], found["recall"] = precision, recall
        found["f1"] = (
            0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)
        )
    else:
        found["precision"] = found["recall"] = found["f1"] = math.nan
    has_loss = "probability" in columns and n
    found["log_loss"] = float(row["loss"]) / n if has_loss else math.nan
    return {k: float(found[k]) for k in METRICS["binary"]}


def _element(df: DataFrame, column: str, index: Column) -> Column:
    """Element `index` of `column`: a Spark ML vector or an array; a plain
    number is itself (Spark's evaluators read a double score as is)."""
    kind = df.schema[column].dataType
    if isinstance(kind, VectorUDT):
        return vector_to_array(F.col(column))[index]
    if hasattr(kind, "elementType"):
        return F.col(column)[index].cast("double")
    return F.col(column).cast("double")


def better(value: float, than: float, smaller_is_better: bool) -> bool:
    """Is `value` strictly better than `than`? NaN is never better."""
    if math.isnan(value):
        return False
    if math.isnan(than):
        return True
    return value < than if smaller_is_better else value > than
