"""Row-level rules as Spark column expressions, evaluated in one pass.

Each row gets `_failed_rules` (names of `drop` and `fail` rules it broke,
parse failures included) and `_warned_rules`; a rule whose column is null is
only broken by `not_null` (the usual SQL reading of a check constraint).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeforge.clean.transform import PARSE_FAILURES
from lakeforge.config.cleaning import Rule

FAILED = "_failed_rules"
WARNED = "_warned_rules"


@dataclass(frozen=True)
class RuleSummary:
    rows: int
    failed: int  # rows breaking at least one drop/fail rule or parse
    counts: dict[str, int]  # rule name → rows breaking it


def violation(rule: Rule) -> Column:
    """True where the row breaks `rule` (a row-level rule)."""
    if rule.type == "not_null":
        return F.col(str(rule.column)).isNull()
    if rule.type == "sql":
        return F.coalesce(~F.expr(str(rule.expression)), F.lit(True))
    value = F.col(str(rule.column))
    broken: Column
    if rule.type == "range":
        low = value < F.lit(rule.min) if rule.min is not None else F.lit(False)
        high = value > F.lit(rule.max) if rule.max is not None else F.lit(False)
        broken = low | high
    elif rule.type == "allowed":
        broken = ~value.isin(list(rule.values))
    elif rule.type == "regex":
        broken = ~value.cast("string").rlike(str(rule.pattern))
    else:
        raise ValueError(f"{rule.name}: {rule.type} is not a row-level rule")
    return value.isNotNull() & broken


def _names(rules: Sequence[Rule]) -> Column:
    flags = [F.when(violation(r), F.lit(r.name)) for r in rules]
    if not flags:
        return F.array().cast("array<string>")
    return F.filter(F.array(*flags), lambda x: x.isNotNull())


def tag(df: DataFrame, rules: Sequence[Rule]) -> DataFrame:
    """Add `_failed_rules` and `_warned_rules` to every row (one projection)."""
    row_rules = [r for r in rules if r.is_row_level]
    failing = [r for r in row_rules if r.severity in ("drop", "fail")]
    warning = [r for r in row_rules if r.severity == "warn"]
    failed = F.concat(F.col(PARSE_FAILURES), _names(failing))
    return df.withColumn(FAILED, failed).withColumn(WARNED, _names(warning)).drop(PARSE_FAILURES)


def summarise(
    tagged: DataFrame,
    rules: Sequence[Rule],
    parse_columns: Sequence[str],
    checks: Sequence[str] = (),
) -> RuleSummary:
    """Rows, failing rows and rows breaking each rule (and each of lakeforge's
    own `checks` that put a name in `_failed_rules`), in one Spark job."""
    names = [
        *(r.name for r in rules if r.is_row_level),
        *(f"parse:{c}" for c in parse_columns),
        *checks,
    ]
    hits = F.concat(F.col(FAILED), F.col(WARNED))
    aggregates = [
        F.count(F.lit(1)).alias("__rows"),
        F.count(F.when(F.size(FAILED) > 0, 1)).alias("__failed"),
        *[
            F.count(F.when(F.array_contains(hits, n), 1)).alias(f"__r{i}")
            for i, n in enumerate(names)
        ],
    ]
    row = tagged.agg(*aggregates).first()
    assert row is not None
    return RuleSummary(
        rows=int(row["__rows"]),
        failed=int(row["__failed"]),
        counts={n: int(row[f"__r{i}"]) for i, n in enumerate(names)},
    )
