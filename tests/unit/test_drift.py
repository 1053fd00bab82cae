"""PSI and KS: near zero for a sample of the same population, large for a
shifted one; missing values and new categories count as drift."""

from __future__ import annotations

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.monitoring import drift


def _normal(spark: SparkSession, seed: int, shift: float = 0.0, n: int = 20_000) -> DataFrame:
    return spark.range(n).select(
        (F.randn(seed) + shift).alias("x"),
        F.when(F.rand(seed + 1) < 0.5, "a").otherwise("b").alias("c"),
    )


def test_psi_of_identical_histograms_is_zero() -> None:
    assert drift.psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    assert drift.psi([50, 50], [90, 10]) > 0.5


def test_same_population_does_not_drift(spark: SparkSession) -> None:
    found = drift.numeric(_normal(spark, 1), _normal(spark, 2), ["x"], bins=10)[0]
    assert found.psi < 0.02
    assert found.ks is not None and found.ks < 0.03
    same = drift.categorical(_normal(spark, 1), _normal(spark, 2), ["c"], top=10)[0]
    assert same.psi < 0.01


def test_shifted_population_drifts(spark: SparkSession) -> None:
    found = drift.numeric(_normal(spark, 1), _normal(spark, 2, shift=1.0), ["x"], bins=10)[0]
    assert found.psi > 0.5
    assert found.ks is not None and 0.3 < found.ks < 0.45  # N(0,1) vs N(1,1): 0.383


def test_a_column_going_missing_drifts(spark: SparkSession) -> None:
    current = _normal(spark, 2).withColumn("x", F.when(F.rand(3) < 0.5, F.col("x")))
    assert drift.numeric(_normal(spark, 1), current, ["x"], bins=10)[0].psi > 0.5


def test_new_categories_drift(spark: SparkSession) -> None:
    current = _normal(spark, 2).withColumn("c", F.when(F.rand(4) < 0.6, "z").otherwise("a"))
    assert drift.categorical(_normal(spark, 1), current, ["c"], top=10)[0].psi > 1.0
