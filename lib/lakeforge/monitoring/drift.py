"""Drift between a reference (the training snapshot) and a current batch.

Computed in Spark, never on pandas rows: numeric columns are cut at quantiles
of the reference (`approxQuantile`) and both sides counted per bin in one
aggregation each; categorical columns are counted per category (the
reference's most frequent ones, the rest pooled). PSI compares the bin shares;
KS is the largest gap between the two empirical CDFs, read at a grid of
quantiles of both sides (accurate to the quantiles' resolution).
Missing values count as a bin of their own, so a column going null drifts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

_EPSILON = 1e-4  # share given to an empty bin, so PSI stays finite
_COLUMNS_PER_PASS = 24
_KS_STEPS = 50


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


def numeric(
    reference: DataFrame, current: DataFrame, columns: Sequence[str], bins: int
) -> list[Drift]:
    """PSI and KS of each numeric column: one aggregation per side for each
    group of `_COLUMNS_PER_PASS` columns."""
    probabilities = [i / bins for i in range(1, bins)]
    fine = [i / _KS_STEPS for i in range(1, _KS_STEPS)]
    ref_cuts = reference.approxQuantile(list(columns), probabilities + fine, 0.001)
    cur_cuts = current.approxQuantile(list(columns), fine, 0.001)
    plans = []
    for column, ref_q, cur_q in zip(columns, ref_cuts, cur_cuts, strict=True):
        edges = sorted(set(ref_q[: len(probabilities)]))
        grid = sorted(set(ref_q[len(probabilities) :]) | set(cur_q))
        plans.append((column, edges, grid))

    def counts(df: DataFrame) -> dict[str, float]:
        out: dict[str, float] = {}
        # a hundred-odd aggregates per column: a wide table is counted a group
        # of columns at a time, so no single plan grows past what Spark's
        # optimiser handles quickly
        for start in range(0, len(plans), _COLUMNS_PER_PASS):
            out.update(chunk(df, start))
        return out

    def chunk(df: DataFrame, start: int) -> dict[str, float]:
        aggregates: list[Column] = [F.count(F.lit(1)).alias("__n")]
        for i, (column, edges, grid) in enumerate(plans):
            if not start <= i < start + _COLUMNS_PER_PASS:
                continue
            value = F.col(column).cast("double")
            bucket = sum((F.when(value > e, 1).otherwise(0) for e in edges), F.lit(0))
            aggregates.append(F.count(F.when(value.isNull(), 1)).alias(f"m{i}"))
            aggregates.append(F.count(value).alias(f"v{i}"))  # non-null values
            for b in range(len(edges) + 1):
                aggregates.append(
                    F.count(F.when(value.isNotNull() & (bucket == b), 1)).alias(f"b{i}_{b}")
                )
            for g, point in enumerate(grid):
                aggregates.append(F.count(F.when(value <= point, 1)).alias(f"c{i}_{g}"))
        row = df.agg(*aggregates).first()
        assert row is not None
        return {k: float(v) for k, v in row.asDict().items()}

    ref, cur = counts(reference), counts(current)
    found = []
    for i, (column, edges, grid) in enumerate(plans):
        bins_of = [f"m{i}", *(f"b{i}_{b}" for b in range(len(edges) + 1))]
        value_psi = psi([ref[k] for k in bins_of], [cur[k] for k in bins_of])
        ks = 0.0
        for g in range(len(grid)):
            ref_cdf = ref[f"c{i}_{g}"] / (ref[f"v{i}"] or 1.0)
            cur_cdf = cur[f"c{i}_{g}"] / (cur[f"v{i}"] or 1.0)
            ks = max(ks, abs(ref_cdf - cur_cdf))
        found.append(Drift(column, "numeric", value_psi, ks))
    return found


def categorical(
    reference: DataFrame, current: DataFrame, columns: Sequence[str], top: int
) -> list[Drift]:
    """PSI of each categorical column over the reference's `top` categories,
    plus "other" and missing."""
    found = []
    for column in columns:
        value = F.col(column).cast("string")
        frequent = [
            r[0]
            for r in reference.where(value.isNotNull())
            .groupBy(value.alias("v"))
            .count()
            .orderBy(F.desc("count"), "v")
            .limit(top)
            .collect()
        ]
        label = (
            F.when(value.isNull(), F.lit("(missing)"))
            .when(value.isin(frequent), value)
            .otherwise(F.lit("(other)"))
        )
        bins = [*frequent, "(other)", "(missing)"]

        def counts(df: DataFrame, label: Column = label) -> dict[str, float]:
            rows = df.groupBy(label.alias("v")).count().collect()
            return {str(r["v"]): float(r["count"]) for r in rows}

        ref, cur = counts(reference), counts(current)
        found.append(
            Drift(
                column,
                "categorical",
                psi([ref.get(b, 0.0) for b in bins], [cur.get(b, 0.0) for b in bins]),
                None,
            )
        )
    return found
