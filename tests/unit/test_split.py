"""Splits and folds come from the keys: the same row lands in the same place
on every run, in any row order, and (method hash) as the data grows."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config.training import Split
from lakeforge.split.assign import FOLD, SPLIT, assign

SPEC = Split(validation=0.1, test=0.2, folds=3, seed=5)


def _rows(spark: SparkSession, n: int) -> DataFrame:
    return spark.range(n).select(
        F.col("id").cast("int").alias("id"),
        (F.col("id") % 10 == 0).cast("int").alias("y"),
        F.date_add(F.lit("2024-01-01").cast("date"), (F.col("id") % 100).cast("int")).alias("d"),
    )


def _placement(df: DataFrame) -> dict[int, tuple[str, int]]:
    return {r["id"]: (r[SPLIT], r[FOLD]) for r in df.select("id", SPLIT, FOLD).collect()}


def test_same_rows_land_in_the_same_split_and_fold_in_any_order(spark: SparkSession) -> None:
    rows = _rows(spark, 2000)
    first = _placement(assign(rows, ["id"], SPEC, "y"))
    shuffled = rows.repartition(7).orderBy(F.rand(seed=3))
    assert _placement(assign(shuffled, ["id"], SPEC, "y")) == first


def test_hash_split_keeps_old_rows_in_place_as_data_grows(spark: SparkSession) -> None:
    before = _placement(assign(_rows(spark, 2000), ["id"], SPEC, "y"))
    after = _placement(assign(_rows(spark, 5000), ["id"], SPEC, "y"))
    assert {k: after[k] for k in before} == before


def test_hash_split_shares_are_close_to_the_config(spark: SparkSession) -> None:
    placed = assign(_rows(spark, 20_000), ["id"], SPEC, "y")
    shares = {r[SPLIT]: r["count"] / 20_000 for r in placed.groupBy(SPLIT).count().collect()}
    assert abs(shares["train"] - 0.7) < 0.02
    assert abs(shares["validation"] - 0.1) < 0.02
    assert abs(shares["test"] - 0.2) < 0.02
    folds = [r["count"] for r in placed.where("_split = 'train'").groupBy(FOLD).count().collect()]
    assert len(folds) == 3 and max(folds) - min(folds) < 0.05 * sum(folds)


def test_stratified_split_gives_each_class_the_configured_shares(spark: SparkSession) -> None:
    spec = SPEC.model_copy(update={"method": "stratified"})
    placed = assign(_rows(spark, 3000), ["id"], spec, "y")  # 300 positives
    positives = {
        r[SPLIT]: r["count"] for r in placed.where("y = 1").groupBy(SPLIT).count().collect()
    }
    assert positives == {"train": 210, "validation": 30, "test": 60}


def test_time_split_cuts_on_the_column(spark: SparkSession) -> None:
    spec = Split(
        method="time", column="d", validation_from="2024-03-01", test_from="2024-03-21", folds=2
    )
    placed = assign(_rows(spark, 1000), ["id"], spec)
    ranges = {
        r[SPLIT]: (str(r["lo"]), str(r["hi"]))
        for r in placed.groupBy(SPLIT).agg(F.min("d").alias("lo"), F.max("d").alias("hi")).collect()
    }
    assert ranges == {
        "train": ("2024-01-01", "2024-02-29"),
        "validation": ("2024-03-01", "2024-03-20"),
        "test": ("2024-03-21", "2024-04-09"),
    }
