"""The class count of a label, carried by the label column itself.

Spark's classifiers take their number of classes from the label column's ML
metadata when it has any, and otherwise from the largest label they see. A
fit on rows that lack a class (a cross-validation fold, a stack's inner fold,
a class that occurs once) would otherwise give a narrower probability vector
than the fits beside it, and everything that lines those vectors up (a stack's
meta features, a fold's metrics) would misalign or fail. Marking the label as
a nominal attribute with all k classes gives every fit k slots.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def nominal(n_classes: int) -> dict[str, Any]:
    """Spark ML's metadata for a label of classes 0..n_classes-1."""
    return {"ml_attr": {"type": "nominal", "num_vals": int(n_classes)}}


def with_classes(df: DataFrame, label: str, n_classes: int) -> DataFrame:
    """`df` whose `label` column says it has `n_classes` classes (a no-op for
    regression, `n_classes` 0)."""
    if n_classes < 2:
        return df
    return df.withColumn(label, F.col(label).alias(label, metadata=nominal(n_classes)))


def classes_of(df: DataFrame, label: str) -> int | None:
    """The class count `label`'s metadata declares, None when it declares none."""
    meta = df.schema[label].metadata.get("ml_attr", {})
    if meta.get("type") == "nominal" and "num_vals" in meta:
        return int(meta["num_vals"])
    return None
