"""Drift between a reference (the model's training rows) and a current batch.

Computed in Spark, never on pandas rows. The reference is summarised once,
at training time, into a profile per column (`NumericProfile`,
`CategoricalProfile`): bin edges and counts, a grid of quantiles with the
rows at or below each, the most frequent categories and their counts. A batch
is then counted against the stored profile, so monitor measures drift from
exactly the rows the model learnt from without reading them again.

The columns are unpivoted to (column, value) rows so that any number of them
is measured in a few grouped aggregations: numeric columns are cut at the
reference's approximate quantiles; categorical columns are counted per
category (the reference's most frequent ones, the rest pooled). PSI compares
the bin shares; KS is the largest gap between the two empirical CDFs, read at
a grid of `_KS_STEPS` reference quantiles: both CDFs are monotone, so the
largest gap is missed by at most one grid step (1/_KS_STEPS) plus the
quantiles' own error. Missing values count as a bin of their own, so a column
going null drifts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

_EPSILON = 1e-4  # share given to an empty bin, so PSI stays finite
_KS_STEPS = 100
_ACCURACY = 1000  # percentile_approx's: a relative error of 1/1000
_OTHER_BIN, _MISSING_BIN = -2, -1  # the pooled bins' positions when counting a batch


@dataclass(frozen=True)
class Drift:
    subject: str  # a feature, or "prediction"
    kind: str  # numeric | categorical
    psi: float
    ks: float | None  # numeric only


@dataclass(frozen=True)
class NumericProfile:
    """One numeric column of the reference: the PSI bin edges and the rows in
    each bin (missing first, then len(edges) + 1 value bins), the KS grid and
    the non-null rows at or below each grid point."""

    column: str
    edges: list[float]
    bins: list[float]
    grid: list[float]
    below: list[float]


@dataclass(frozen=True)
class CategoricalProfile:
    """One categorical column of the reference: its most frequent categories
    and the rows of each, then of all other values, then missing."""

    column: str
    categories: list[str]
    counts: list[float]


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


def profile_numeric(
    reference: DataFrame, columns: Sequence[str], bins: int
) -> list[NumericProfile]:
    """The profile of each numeric column of `reference`: cut at its own
    quantiles, then counted in one grouped aggregation over all columns."""
    if not columns:
        return []
    probabilities = [i / bins for i in range(1, bins)]
    fine = [i / _KS_STEPS for i in range(1, _KS_STEPS)]
    cuts = _quantiles(_long(reference, columns, "double"), probabilities + fine)
    plans = []
    for i in range(len(columns)):
        found = cuts.get(i, [])
        edges = sorted(set(found[: len(probabilities)]))
        grid = sorted(set(found[len(probabilities) :]))
        plans.append((i, edges, grid))
    counted = _numeric_counts(reference, columns, plans)
    profiles = []
    for i, edges, grid in plans:
        in_bins, below = _histogram(counted.get(i, []), len(edges), len(grid))
        profiles.append(NumericProfile(columns[i], edges, in_bins, grid, below))
    return profiles


def compare_numeric(profiles: Sequence[NumericProfile], current: DataFrame) -> list[Drift]:
    """PSI and KS of each profiled column of `current` against its profile."""
    return compare([(current, profiles, [])])


def compare(
    batches: Sequence[tuple[DataFrame, Sequence[NumericProfile], Sequence[CategoricalProfile]]],
) -> list[Drift]:
    """The drift of each profiled column of each frame (its numeric, then
    its categorical profiles, frame by frame): PSI and KS of numeric columns
    (`compare_numeric`), PSI of categorical ones (`compare_categorical`),
    all counted in one grouped aggregation over every frame and column."""
    slots: list[NumericProfile | CategoricalProfile] = []
    placed = []
    for frame, numeric_profiles, categorical_profiles in batches:
        pairs = []
        for n in numeric_profiles:
            pairs.append(_numeric_slot(len(slots), n.column, n.edges, n.grid))
            slots.append(n)
        for c in categorical_profiles:
            pairs.append(_categorical_slot(len(slots), c.column, c.categories))
            slots.append(c)
        if pairs:
            placed.append(frame.select(F.explode(F.array(*pairs)).alias("p")).select("p.*"))
    if not placed:
        return []
    rows = reduce(DataFrame.unionAll, placed).groupBy("i", "b", "g").count().collect()
    counted: dict[int, list[tuple[int | None, int | None, float]]] = {}
    for r in rows:
        counted.setdefault(int(r["i"]), []).append((r["b"], r["g"], float(r["count"])))
    found = []
    for i, p in enumerate(slots):
        if isinstance(p, NumericProfile):
            cur_bins, cur_below = _histogram(counted.get(i, []), len(p.edges), len(p.grid))
            ref_n, cur_n = sum(p.bins[1:]) or 1.0, sum(cur_bins[1:]) or 1.0
            ks = max(
                (abs(r / ref_n - c / cur_n) for r, c in zip(p.below, cur_below, strict=True)),
                default=0.0,
            )
            found.append(Drift(p.column, "numeric", psi(p.bins, cur_bins), ks))
            continue
        at = {b: n for b, _, n in counted.get(i, []) if b is not None}
        observed = [at.get(k, 0.0) for k in range(len(p.categories))]
        observed += [at.get(_OTHER_BIN, 0.0), at.get(_MISSING_BIN, 0.0)]
        found.append(Drift(p.column, "categorical", psi(p.counts, observed), None))
    return found


def numeric(
    reference: DataFrame, current: DataFrame, columns: Sequence[str], bins: int
) -> list[Drift]:
    """PSI and KS of each numeric column of `current` against `reference`."""
    return compare_numeric(profile_numeric(reference, columns, bins), current)


def _numeric_counts(
    df: DataFrame, columns: Sequence[str], plans: Sequence[tuple[int, list[float], list[float]]]
) -> dict[int, list[tuple[int | None, int | None, float]]]:
    """Per column: rows per (PSI bin, grid position); both are None for a
    missing value. A value's bin is the number of edges below it; its grid
    position is the number of grid points below it, so it is <= grid point g
    exactly when its position is <= g. Both are found by a binary search
    written out as nested comparisons with the column's own points (compiled
    by Spark; a lambda over the points array is interpreted row by row), then
    counted in one grouped aggregation over all columns."""
    placed = [_numeric_slot(i, columns[i], edges, grid) for i, edges, grid in plans]
    rows = (
        df.select(F.explode(F.array(*placed)).alias("p"))
        .select("p.i", "p.b", "p.g")
        .groupBy("i", "b", "g")
        .count()
        .collect()
    )
    out: dict[int, list[tuple[int | None, int | None, float]]] = {}
    for r in rows:
        out.setdefault(int(r["i"]), []).append((r["b"], r["g"], float(r["count"])))
    return out


def _numeric_slot(i: int, column: str, edges: Sequence[float], grid: Sequence[float]) -> Column:
    """Column `i`'s (`i`, PSI bin `b`, grid position `g`) of a row: both
    null for a missing value."""
    value = F.col(column).cast("double")
    present = value.isNotNull()
    return F.struct(
        F.lit(i).alias("i"),
        F.when(present, _below(value, edges)).alias("b"),
        F.when(present, _below(value, grid)).alias("g"),
    )


def _categorical_slot(i: int, column: str, categories: Sequence[str]) -> Column:
    """Column `i`'s (`i`, bin `b`, null) of a row: the bin is the position
    of its value among `categories`, else other or missing (by position,
    never by a label a real value could share)."""
    value = F.col(column).cast("string")
    position: Column = F.lit(_OTHER_BIN)
    if categories:
        lookup = F.create_map(*[F.lit(x) for k, c in enumerate(categories) for x in (c, k)])
        position = F.coalesce(F.try_element_at(lookup, value), position)
    return F.struct(
        F.lit(i).alias("i"),
        F.when(value.isNull(), F.lit(_MISSING_BIN)).otherwise(position).alias("b"),
        F.lit(None).cast("int").alias("g"),
    )


def _below(value: Column, points: Sequence[float]) -> Column:
    """How many of `points` (ascending) are below `value` (`value > point`,
    Spark's comparison: NaN is above every number), by binary search."""

    def within(low: int, high: int) -> Column:  # the answer is in [low, high]
        if low == high:
            return F.lit(low)
        middle = (low + high) // 2
        return F.when(value > F.lit(float(points[middle])), within(middle + 1, high)).otherwise(
            within(low, middle)
        )

    return within(0, len(points))


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


def profile_categorical(
    reference: DataFrame, columns: Sequence[str], top: int
) -> list[CategoricalProfile]:
    """The profile of each categorical column of `reference`: its `top`
    categories (most frequent first, ties by value) and their counts; one
    grouped aggregation for all columns."""
    if not columns:
        return []
    # nulls ranked apart: a frequent missing value takes no category's place
    ranked = Window.partitionBy("i", F.col("v").isNull()).orderBy(F.desc("count"), "v")
    rows = (
        _long(reference, columns, "string")
        .groupBy("i", "v")
        .count()
        .withColumn(
            "rank",
            F.when(F.col("v").isNotNull(), F.row_number().over(ranked)),
        )
        .collect()
    )
    ranked_values: dict[int, list[tuple[int, str, float]]] = {}
    rest: dict[int, float] = {}
    missing: dict[int, float] = {}
    for r in rows:
        i, n = int(r["i"]), float(r["count"])
        if r["v"] is None:
            missing[i] = missing.get(i, 0.0) + n
        elif r["rank"] is not None and int(r["rank"]) <= top:
            ranked_values.setdefault(i, []).append((int(r["rank"]), str(r["v"]), n))
        else:
            rest[i] = rest.get(i, 0.0) + n
    profiles = []
    for i, column in enumerate(columns):
        kept = sorted(ranked_values.get(i, []))
        profiles.append(
            CategoricalProfile(
                column,
                [v for _, v, _ in kept],
                [n for _, _, n in kept] + [rest.get(i, 0.0), missing.get(i, 0.0)],
            )
        )
    return profiles


def compare_categorical(profiles: Sequence[CategoricalProfile], current: DataFrame) -> list[Drift]:
    """PSI of each profiled column of `current` over its profile's categories,
    plus "other" and missing."""
    return compare([(current, [], profiles)])


def categorical(
    reference: DataFrame, current: DataFrame, columns: Sequence[str], top: int
) -> list[Drift]:
    """PSI of each categorical column of `current` against `reference`."""
    return compare_categorical(profile_categorical(reference, columns, top), current)
