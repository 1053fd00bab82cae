"""Which split and fold each row belongs to, as columns derived from the row.

Nothing here is random per run: a row's place comes from a hash of its keys
and a seed, so it lands in the same split on every run, in any row order, on
any cluster (Spark's `randomSplit` depends on partitioning). `hash` also keeps
a row's split as the data grows. `stratified` ranks the hash within each class
for exact class proportions (a row may move when new rows arrive). `time`
cuts on a column at configured points.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakeforge.config.training import Split

SPLIT = "_split"
FOLD = "_fold"
TRAIN, VALIDATION, TEST = "train", "validation", "test"
_BUCKETS = 1_000_000


def unit_hash(keys: Sequence[str], salt: str) -> Column:
    """A number in [0, 1) that depends only on the key values and `salt`."""
    hashed = F.xxhash64(F.lit(salt), *[F.col(k) for k in keys])
    return F.pmod(hashed, F.lit(_BUCKETS)) / F.lit(float(_BUCKETS))


def assign(df: DataFrame, keys: Sequence[str], spec: Split, label: str | None = None) -> DataFrame:
    """`df` with `_split` (train / validation / test) and `_fold` (0..folds-1,
    the cross-validation fold of a train row; computed for every row)."""
    train_share = 1.0 - spec.validation - spec.test
    if spec.method == "time":
        assert spec.column and spec.validation_from and spec.test_from
        at = F.col(spec.column)
        split = (
            F.when(at < F.lit(spec.validation_from).cast(_type_of(df, spec.column)), TRAIN)
            .when(at < F.lit(spec.test_from).cast(_type_of(df, spec.column)), VALIDATION)
            .otherwise(TEST)
        )
    else:
        position = unit_hash(keys, f"split:{spec.seed}")
        if spec.method == "stratified":
            assert label is not None
            tie_break = [F.col(k) for k in keys]
            by_class = Window.partitionBy(label).orderBy(position, *tie_break)
            position = F.percent_rank().over(by_class)
        split = (
            F.when(position < train_share, TRAIN)
            .when(position < train_share + spec.validation, VALIDATION)
            .otherwise(TEST)
        )
    fold_keys = keys if keys else [spec.column or df.columns[0]]
    fold = F.pmod(
        F.xxhash64(F.lit(f"fold:{spec.seed}"), *[F.col(k) for k in fold_keys]), spec.folds
    )
    return df.withColumn(SPLIT, split).withColumn(FOLD, fold.cast("int"))


def _type_of(df: DataFrame, column: str) -> str:
    return df.schema[column].dataType.simpleString()
