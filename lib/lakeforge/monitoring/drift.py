"""Drift between a reference (the training snapshot) and a current batch.

Computed in Spark, never on pandas rows. The columns are unpivoted to
(column, value) rows so that any number of them is measured in a few grouped
aggregations: numeric columns are cut at approximate quantiles of the
reference and both sides counted per bin; categorical columns are counted per
category (the reference's most frequent ones, the rest pooled). PSI compares the bin shares;
KS is the largest gap between the two empirical CDFs, read at a grid of
quantiles of both sides (accurate to the quantiles' resolution).
Missing values count as a bin of their own, so a column going null drifts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

_EPSILON = 1e-4  # share given to an empty bin, so PSI stays finite
_KS_STEPS = 50
_ACCURACY = 1000  # percentile_approx's: a relative error of 1/1000
_OTHER, _MISSING = "(other)", "(missing)"


@dataclass(frozen=True)
class Drift:
    subject: str  # a feature, or "prediction"
    kind: str  # numeric | categorical
    psi: float
    ks: float | None  # numeric only


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """Population stability index of two histograms over the same bins (counts)."""
    ref_total, cur_total = sum(reference) or 1.0, sum(current) or 1.0
    value = 0.0
    for r, c in zip(reference, current, strict=True):
        r_share = max(r / ref_total, _EPSILON)
        c_share = max(c / cur_total, _EPSILON)
        value += (c_share - r_share) * math.log(c_share / r_share)
    return value


def _long(df: DataFrame, columns: Sequence[str], cast: str) -> DataFrame:
    """`df` as (`i`, `v`) rows: column number and value. However wide the
    table, every measure is then one grouped aggregation with a plan the size
    of one column's (a wide aggregation per column took Spark's optimiser
    minutes on a few hundred columns)."""
    pairs = [
        F.struct(F.lit(i).alias("i"), F.col(c).cast(cast).alias("v")) for i, c in enumerate(columns)
    ]
    return df.select(F.explode(F.array(*pairs)).alias("p")).select("p.i", "p.v")


def _quantiles(long: DataFrame, probabilities: Sequence[float]) -> dict[int, list[float]]:
    """Approximate quantiles of each column's non-null, non-NaN values (as
    `approxQuantile` gives them); a column with none has no entry."""
    rows = (
        long.where(F.col("v").isNotNull() & ~F.isnan("v"))
        .groupBy("i")
        .agg(F.percentile_approx("v", list(probabilities), _ACCURACY).alias("q"))
        .collect()
    )
    return {int(r["i"]): [float(q) for q in r["q"]] for r in rows}


def numeric(
    reference: DataFrame, current: DataFrame, columns: Sequence[str], bins: int
) -> list[Drift]:
    """PSI and KS of each numeric column. Each side is counted in one grouped
    aggregation over all columns: per column, the rows in each PSI bin (cut at
    the reference's quantiles) and below each KS grid point."""
    if not columns:
        return []
    spark = reference.sparkSession
    probabilities = [i / bins for i in range(1, bins)]
    fine = [i / _KS_STEPS for i in range(1, _KS_STEPS)]
    ref_long, cur_long = _long(reference, columns, "double"), _long(current, columns, "double")
    ref_q = _quantiles(ref_long, probabilities + fine)
    cur_q = _quantiles(cur_long, fine)
    plans = []
    for i in range(len(columns)):
        ref_cuts = ref_q.get(i, [])
        edges = sorted(set(ref_cuts[: len(probabilities)]))
        grid = sorted(set(ref_cuts[len(probabilities) :]) | set(cur_q.get(i, [])))
        plans.append((i, edges, grid))
    cuts = spark.createDataFrame(plans, "i int, edges array<double>, grid array<double>")

    def counts(long: DataFrame) -> dict[int, list[tuple[int | None, int | None, float]]]:
        """Per column: rows per (PSI bin, grid position); both are None for a
        missing value. A value's bin is the number of edges below it; its
        grid position is the number of grid points below it, so it is <= grid
        point g exactly when its position is <= g."""
        value = F.col("v")
        placed = long.join(F.broadcast(cuts), "i").select(
            "i",
            F.when(value.isNotNull(), F.size(F.filter("edges", lambda e: value > e))).alias("b"),
            F.when(value.isNotNull(), F.size(F.filter("grid", lambda g: value > g))).alias("g"),
        )
        out: dict[int, list[tuple[int | None, int | None, float]]] = {}
        for r in placed.groupBy("i", "b", "g").count().collect():
            out.setdefault(int(r["i"]), []).append((r["b"], r["g"], float(r["count"])))
        return out

    ref, cur = counts(ref_long), counts(cur_long)
    found = []
    for i, edges, grid in plans:
        ref_bins, ref_below = _histogram(ref.get(i, []), len(edges), len(grid))
        cur_bins, cur_below = _histogram(cur.get(i, []), len(edges), len(grid))
        ref_n, cur_n = sum(ref_bins[1:]) or 1.0, sum(cur_bins[1:]) or 1.0
        ks = max(
            (abs(r / ref_n - c / cur_n) for r, c in zip(ref_below, cur_below, strict=True)),
            default=0.0,
        )
        found.append(Drift(columns[i], "numeric", psi(ref_bins, cur_bins), ks))
    return found


def _histogram(
    counts: list[tuple[int | None, int | None, float]], edges: int, grid: int
) -> tuple[list[float], list[float]]:
    """One column's bins (missing first, then the `edges` + 1 value bins)
    and, for each grid point, the non-null values at or below it."""
    bins = [0.0] * (edges + 2)
    at = [0.0] * (grid + 1)
    for b, g, n in counts:
        if b is None or g is None:
            bins[0] += n
            continue
        bins[1 + b] += n
        at[g] += n
    below, running = [], 0.0
    for g in range(grid):
        running += at[g]
        below.append(running)
    return bins, below


def categorical(
    reference: DataFrame, current: DataFrame, columns: Sequence[str], top: int
) -> list[Drift]:
    """PSI of each categorical column over the reference's `top` categories,
    plus "other" and missing: one grouped aggregation per side for all
    columns, and one to find the reference's top categories."""
    if not columns:
        return []
    ref_long, cur_long = _long(reference, columns, "string"), _long(current, columns, "string")
    ranked = Window.partitionBy("i").orderBy(F.desc("count"), "v")
    frequent = (
        ref_long.where(F.col("v").isNotNull())
        .groupBy("i", "v")
        .count()
        .withColumn("rank", F.row_number().over(ranked))
        .where(F.col("rank") <= top)
        .select("i", "v", F.lit(True).alias("top"))
    )
    tops: dict[int, list[str]] = {}
    for r in frequent.collect():
        tops.setdefault(int(r["i"]), []).append(str(r["v"]))

    def counts(long: DataFrame) -> dict[tuple[int, str], float]:
        value = F.col("v")
        label = (
            F.when(value.isNull(), F.lit(_MISSING))
            .when(F.col("top").isNotNull(), value)
            .otherwise(F.lit(_OTHER))
        )
        labelled = long.join(F.broadcast(frequent), ["i", "v"], "left")
        rows = labelled.groupBy("i", label.alias("label")).count().collect()
        return {(int(r["i"]), str(r["label"])): float(r["count"]) for r in rows}

    ref, cur = counts(ref_long), counts(cur_long)
    found = []
    for i, column in enumerate(columns):
        bins = [*tops.get(i, []), _OTHER, _MISSING]
        found.append(
            Drift(
                column,
                "categorical",
                psi([ref.get((i, b), 0.0) for b in bins], [cur.get((i, b), 0.0) for b in bins]),
                None,
            )
        )
    return found
