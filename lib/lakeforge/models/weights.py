"""Class weights for imbalanced labels, as a row-weight column every weighted
estimator reads through its `weightCol`."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

WEIGHT = "_weight"


def class_counts(train: DataFrame, label: str) -> dict[float, int]:
    """Rows per label value of `train` (one small aggregation)."""
    return {float(r[0]): int(r[1]) for r in train.groupBy(label).count().collect()}


def balanced_weights(counts: dict[float, int]) -> dict[float, float]:
    """Weight per class from its row count: rows / (classes x rows of the
    class), so every class carries the same total weight (scikit-learn's
    `class_weight="balanced"`)."""
    total = sum(counts.values())
    return {c: total / (len(counts) * n) for c, n in sorted(counts.items())}


def with_weights(df: DataFrame, label: str, weights: dict[float, float]) -> DataFrame:
    """`df` with `_weight` from its label (1.0 for a class `weights` lacks)."""
    weight = F.lit(1.0)
    for value, w in weights.items():
        weight = F.when(F.col(label) == F.lit(value), F.lit(w)).otherwise(weight)
    return df.withColumn(WEIGHT, weight.cast("double"))
