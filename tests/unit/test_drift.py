"""PSI and KS: near zero for a sample of the same population, large for a
shifted one; missing values and new categories count as drift."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy.stats import ks_2samp

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


def _wide(spark: SparkSession, seed: int, shift: float) -> DataFrame:
    """Forty columns, each from its own distribution; one all null, one with
    NaN and nulls, a constant one; and three categorical ones."""
    numeric = [
        (F.randn(seed + i) * (1 + i % 3) + shift * (i % 2) + i).alias(f"x{i}") for i in range(36)
    ]
    return spark.range(4000).select(
        *numeric,
        F.lit(None).cast("double").alias("empty"),
        F.when(F.rand(seed) < 0.1, F.lit(float("nan")))
        .when(F.rand(seed + 1) < 0.2, None)
        .otherwise(F.rand(seed + 2))
        .alias("gappy"),
        F.lit(3.0).alias("constant"),
        (F.rand(seed + 3) * 7).cast("int").cast("string").alias("c7"),
        F.when(F.rand(seed + 4) < shift / 2, "new").otherwise("old").alias("c2"),
        F.when(F.rand(seed + 5) < 0.3, None).otherwise("x").alias("cnull"),
    )


def test_a_wide_table_is_measured_as_each_column_alone(spark: SparkSession) -> None:
    """All columns measured together give each column's own figures: KS
    within 0.02 of scipy's on the same values, and categorical PSI equal to
    one computed by pandas from the same rows."""
    ref, cur = _wide(spark, 10, 0.0).cache(), _wide(spark, 20, 0.8).cache()
    numeric = [c for c in ref.columns if not c.startswith("c") or c == "constant"]
    together = drift.numeric(ref, cur, numeric, bins=10)
    assert [d.subject for d in together] == numeric
    ref_pd, cur_pd = ref.toPandas(), cur.toPandas()
    for found in together:
        if found.subject in ("x5", "gappy", "constant"):
            assert found == drift.numeric(ref, cur, [found.subject], bins=10)[0]
        a = ref_pd[found.subject].dropna().to_numpy()
        b = cur_pd[found.subject].dropna().to_numpy()
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        expected = ks_2samp(a, b).statistic if len(a) and len(b) else 0.0
        assert found.ks == pytest.approx(expected, abs=0.02), found.subject
    shifted = {d.subject: d.psi for d in together}
    assert shifted["x1"] > 0.1 and shifted["x0"] < 0.02 and shifted["empty"] == 0.0
    categorical = ["c7", "c2", "cnull"]
    for found in drift.categorical(ref, cur, categorical, top=5):
        r = ref_pd[found.subject].fillna("(missing)")
        top = [v for v in r[r != "(missing)"].value_counts().index[:5]]
        kept = [*top, "(missing)"]
        c = cur_pd[found.subject].fillna("(missing)")
        r_bins = r.where(r.isin(kept), "(other)").value_counts()
        c_bins = c.where(c.isin(kept), "(other)").value_counts()
        labels = [*top, "(other)", "(missing)"]
        expected = drift.psi([r_bins.get(x, 0) for x in labels], [c_bins.get(x, 0) for x in labels])
        assert found.psi == pytest.approx(expected, rel=1e-9, abs=1e-12), found.subject


def test_a_profile_survives_its_json_round_trip(spark: SparkSession) -> None:
    """Monitor reads the profile back from the run's JSON artifact: every
    edge, count and category comes back as stored."""
    import json

    from lakeforge.monitoring.profile import ReferenceProfile

    ref = _normal(spark, 1)
    stored = ReferenceProfile(
        rows=20_000,
        silver_version=3,
        bins=10,
        top_categories=10,
        numeric=drift.profile_numeric(ref, ["x"], 10),
        categorical=drift.profile_categorical(ref, ["c"], 10),
    )
    loaded = ReferenceProfile.from_dict(json.loads(json.dumps(stored.to_dict())))
    assert loaded == stored
    assert sum(loaded.numeric[0].bins) == 20_000 == sum(loaded.categorical[0].counts)


def test_missing_values_take_no_categorys_place_and_labels_never_merge_bins(
    spark: SparkSession,
) -> None:
    """Half the reference is null: the top category is still the most
    frequent value. A value spelled like a pooled bin ("(missing)") is a
    category of its own, never merged with the nulls."""
    values = [None] * 50 + ["a"] * 30 + ["b"] * 20
    ref = spark.createDataFrame([(v,) for v in values], "c string")
    (profiled,) = drift.profile_categorical(ref, ["c"], top=1)
    assert profiled.categories == ["a"]
    assert profiled.counts == [30.0, 20.0, 50.0]  # a, other, missing

    spelled = ["(missing)"] * 40 + ["(other)"] * 30 + [None] * 30
    ref = spark.createDataFrame([(v,) for v in spelled], "c string")
    same = drift.categorical(ref, ref, ["c"], top=5)[0]
    assert same.psi == pytest.approx(0.0, abs=1e-12)
