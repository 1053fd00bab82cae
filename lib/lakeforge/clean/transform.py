"""Pure transformations of the clean step: DataFrame in, DataFrame out.

Parsing failures are not dropped here: each parsed column that fails adds the
rule name `parse:COLUMN` to the row's `_parse_failures`, and the quality
rules send such rows to the quarantine.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakeforge.config.cleaning import CleanSteps, ParseSpec

PARSE_FAILURES = "_parse_failures"


def _parse(value: Column, spec: ParseSpec) -> Column:
    text = F.trim(value.cast("string"))
    if spec.type in ("date", "timestamp"):
        if spec.format is None:
            return text.try_cast(spec.type)
        if spec.type == "date":
            return F.try_to_date(text, spec.format)
        return F.try_to_timestamp(text, F.lit(spec.format))
    if spec.group:
        text = F.replace(text, F.lit(spec.group), F.lit(""))
    if spec.decimal != ".":
        text = F.replace(text, F.lit(spec.decimal), F.lit("."))
    return text.try_cast(spec.type)


def normalise(df: DataFrame, steps: CleanSteps) -> DataFrame:
    """Trim strings, fix case and spellings, parse text columns, derive columns.

    Adds `_parse_failures` (array of `parse:COLUMN`, empty when all parsed).
    Derived expressions see the columns after the earlier steps.
    """
    out = df
    if steps.trim:
        for name, dtype in df.dtypes:
            if dtype == "string" and not name.startswith("_"):
                out = out.withColumn(name, F.nullif(F.trim(F.col(name)), F.lit("")))
    for name in steps.upper:
        out = out.withColumn(name, F.upper(name))
    for name in steps.lower:
        out = out.withColumn(name, F.lower(name))
    for name, spellings in steps.replace.items():
        mapping = F.create_map(*[F.lit(x) for pair in spellings.items() for x in pair])
        out = out.withColumn(name, F.coalesce(mapping[F.col(name)], F.col(name)))
    failures: list[Column] = []
    for name, spec in steps.parse.items():
        parsed = _parse(F.col(name), spec)
        failures.append(F.when(F.col(name).isNotNull() & parsed.isNull(), F.lit(f"parse:{name}")))
        out = out.withColumn(f"__parsed_{name}", parsed)
    out = out.withColumn(
        PARSE_FAILURES,
        F.filter(F.array(*failures), lambda x: x.isNotNull())
        if failures
        else F.array().cast("array<string>"),
    )
    for name in steps.parse:
        out = out.withColumn(name, F.col(f"__parsed_{name}")).drop(f"__parsed_{name}")
    for name, expression in steps.derive.items():
        out = out.withColumn(name, F.expr(expression))
    return out


_ORDER = re.compile(
    r"^(?P<expr>.+?)(?:\s+(?P<dir>asc|desc))?(?:\s+nulls\s+(?P<nulls>first|last))?\s*$", re.I
)


def ordering_expression(text: str) -> str:
    """The expression of an ordering (`"_ingested_at DESC NULLS LAST"` →
    `"_ingested_at"`)."""
    match = _ORDER.match(text.strip())
    if match is None:
        raise ValueError(f"not an ordering expression: {text!r}")
    return match.group("expr")


def ordering(text: str) -> Column:
    """`"_ingested_at DESC NULLS LAST"` → a sort Column (F.expr would read DESC as an alias)."""
    match = _ORDER.match(text.strip())
    if match is None:
        raise ValueError(f"not an ordering expression: {text!r}")
    col = F.expr(match.group("expr"))
    descending = (match.group("dir") or "asc").lower() == "desc"
    nulls = (match.group("nulls") or ("last" if descending else "first")).lower()
    if descending:
        return col.desc_nulls_last() if nulls == "last" else col.desc_nulls_first()
    return col.asc_nulls_last() if nulls == "last" else col.asc_nulls_first()


REPEATS = "__rows"


def repeated_keys(df: DataFrame, keys: Sequence[str]) -> DataFrame:
    """The keys more than one row of `df` holds (grouped null-safe, as MERGE
    matches), with their row count in `REPEATS`."""
    return df.groupBy(*keys).agg(F.count(F.lit(1)).alias(REPEATS)).where(F.col(REPEATS) > 1)


def deduplicate(
    df: DataFrame,
    keys: Sequence[str],
    order_by: Sequence[str],
    repeated: DataFrame | None = None,
) -> DataFrame:
    """One row per key: the first by `order_by` (SQL ordering expressions).

    Ties are broken by a hash of the row's values, so the same input always
    keeps the same row. Without keys the rows are returned as they are.
    `repeated` is `repeated_keys(df, keys)` when the caller has it already
    (clean counts the duplicates from it: one aggregation over the batch, not
    two).
    """
    if not keys:
        return df
    # Most batches hold few duplicates: find the duplicated keys with a cheap
    # aggregation and rank only their rows, instead of sorting every row.
    if repeated is None:
        repeated = repeated_keys(df, keys)
    if repeated.isEmpty():
        return df
    # null-safe, as MERGE matches keys: rows whose keys are both null in the
    # same place are one key, deduplicated like any other
    marks = repeated.select(
        *[F.col(k).alias(f"__key_{i}") for i, k in enumerate(keys)], F.lit(True).alias("__dup")
    )
    same = [df[k].eqNullSafe(marks[f"__key_{i}"]) for i, k in enumerate(keys)]
    flagged = df.join(F.broadcast(marks), reduce(operator.and_, same), "left").drop(
        *[f"__key_{i}" for i in range(len(keys))]
    )
    content = F.xxhash64(*[F.col(c) for c in df.columns if not c.startswith("_")])
    order = [*(ordering(o) for o in order_by), content.desc()]
    window = Window.partitionBy(*keys).orderBy(*order)
    unique = flagged.where(F.col("__dup").isNull())
    ranked = flagged.where(F.col("__dup")).withColumn("__rank", F.row_number().over(window))
    kept = ranked.where("__rank = 1").drop("__rank")
    return unique.unionByName(kept).drop("__dup").select(*df.columns)


def with_row_ids(
    rows: DataFrame, origins: DataFrame, columns: Sequence[str], name: str = "_row_id"
) -> DataFrame:
    """`rows` (bronze rows with `_batch_id` and `_source_file`) with a stable
    identity in column `name`, for datasets without keys, and `__repeat`:
    true for a row whose identity an earlier file of the same rows already
    gave (the same content delivered twice in the rows at hand).

    A row's id is a hash of where it came from (its file's checksum from
    `origins`: `_batch_id`, `_source_file`, `origin`; on an object store,
    where the checksum is a modification time, the path too; the source and
    batch for a database read), its values in `columns` (as JSON with
    microsecond timestamps in UTC, whatever the session's settings), and its
    occurrence among the identical rows of that one file. Identical rows are
    distinct observations and get distinct ids; the ids depend on no
    partitioning, row order or other file, so the same file gives the same ids
    on every run, and rows arriving later never change them.
    """
    located = rows.join(F.broadcast(origins), ["_batch_id", "_source_file"], "left")
    source, batch = F.col("_source_file"), F.col("_batch_id")
    origin = (
        F.when(F.col("origin").startswith("mtime:"), F.concat_ws("|", source, F.col("origin")))
        .when(F.col("origin").isNotNull(), F.col("origin"))
        .otherwise(F.concat_ws("|", source, batch))
    )
    content = F.to_json(
        F.struct(*[F.col(f"`{c}`") for c in columns]),
        {
            "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSS",
            "timeZone": "UTC",
            "ignoreNullFields": "false",
        },
    )
    # rows of equal content in one file sit in one window partition (a hash of
    # the values spreads the work; the JSON text orders colliding contents)
    value_hash = F.xxhash64(*[F.col(f"`{c}`") for c in columns])
    window = Window.partitionBy(batch, source, value_hash).orderBy(content)
    occurrence = F.row_number().over(window)
    identity = F.sha2(F.concat_ws("\u001f", origin, content, occurrence.cast("string")), 256)
    with_ids = located.withColumn(name, F.substring(identity, 1, 32)).drop("origin")
    # the same id from two files (a copy delivered twice): the first file by
    # (batch, path) keeps it, the others repeat it
    first = Window.partitionBy(name).orderBy(batch, source)
    return with_ids.withColumn("__repeat", F.row_number().over(first) > 1)
