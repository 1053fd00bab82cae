"""Choosing a binary model's decision threshold from scored validation rows.

Every distinct score is a candidate threshold (a row is positive when its
score is at least the threshold), as in scikit-learn's
`precision_recall_curve`: the counts per score are aggregated and summed from
the highest score down in Spark, and only the chosen point comes back to the
driver.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakeforge.config.training import Threshold
from lakeforge.errors import InputNotFound


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    precision: float
    recall: float
    f1: float
    # False when no threshold reaches the target: the closest one is used
    target_met: bool = True


def score_column(scored: DataFrame) -> str:
    """The vector whose element 1 scores the positive class."""
    return "probability" if "probability" in scored.columns else "rawPrediction"


def choose_threshold(scored: DataFrame, label: str, spec: Threshold) -> ThresholdChoice:
    """The threshold `spec` asks for on `scored` (a binary model's output with
    `label`): highest F1; or, for a precision (recall) target, the highest
    recall (precision) among thresholds that reach it, or the threshold that
    comes closest when none does. Ties go to the higher threshold.

    Raises InputNotFound when `scored` has no positive row (nothing to tune on).
    """
    score = vector_to_array(F.col(score_column(scored)))[1]
    per_score = scored.groupBy(score.alias("t")).agg(
        F.sum(F.col(label).cast("long")).alias("pos"), F.count(F.lit(1)).alias("n")
    )
    down = Window.orderBy(F.desc("t")).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    total_pos = F.sum("pos").over(Window.partitionBy())
    curve = (
        per_score.select(
            "t",
            F.sum("pos").over(down).alias("tp"),
            (F.sum("n").over(down) - F.sum("pos").over(down)).alias("fp"),
            total_pos.alias("positives"),
        )
        .withColumn("precision", F.col("tp") / (F.col("tp") + F.col("fp")))
        .withColumn("recall", F.col("tp") / F.col("positives"))
        .withColumn(
            "f1",
            F.when(
                F.col("tp") > 0,
                2 * F.col("precision") * F.col("recall") / (F.col("precision") + F.col("recall")),
            ).otherwise(F.lit(0.0)),
        )
    )
    if spec.optimise == "f1":
        order, reached = [F.desc("f1")], F.lit(True)
    else:
        level, other = spec.optimise, "recall" if spec.optimise == "precision" else "precision"
        reached = F.col(level) >= F.lit(spec.target)
        # reaching the target first, then the best of the other measure; if no
        # threshold reaches it, the one closest to it
        order = [F.desc("reached"), F.when(F.col("reached"), F.col(other)).desc(), F.desc(level)]
    best = curve.withColumn("reached", reached).orderBy(*order, F.desc("t")).first()
    if best is None or not best["positives"]:
        raise InputNotFound("threshold: the validation split has no positive row to tune on")
    return ThresholdChoice(
        threshold=float(best["t"]),
        precision=float(best["precision"]),
        recall=float(best["recall"]),
        f1=float(best["f1"]),
        target_met=bool(best["reached"]),
    )
