"""Personal data protected before bronze is written: the `privacy:` block's
actions as Spark SQL expressions, applied to the rows of a batch.

- `pseudonymise`: the hex HMAC-SHA256, under the dataset's key, of the value
  as text (`keys.pseudonym`, the one definition). A value of another type is
  first rendered by Spark's `CAST(value AS STRING)` in the session time zone
  (lakeforge sets UTC): an int `42` → `"42"`, a double `1.5` → `"1.5"` and
  `1e20` → `"1.0E20"`, a decimal(10,2) `3.5` → `"3.50"`, a date → `"2024-01-31"`,
  a timestamp → `"2024-01-31 10:00:00"`, a boolean → `"true"`. `pseudonym_sql`
  gives `forget` the same rendering. The column becomes text.
- `mask`: the value as text with every character but the last `keep_last`
  (or first `keep_first`) replaced by `mask_char`; all of them when neither
  is set, or when the value is no longer than what is kept. The column
  becomes text.
- `generalise`: keeps the column's type. A number becomes the lower bound of
  its `band` (37 → 30 with band 10; -3 → -10); an integer column with a
  fractional band gets that bound rounded down to a whole number; NaN and
  infinities stay as they are; a bound the type cannot hold (the smallest int
  with a band of 10) becomes null. A date or timestamp becomes the first day
  (midnight) of its month or year; a text its first `prefix` characters.
- `drop`: the column is removed.

Before `pseudonymise` and `mask`, the text is normalised as
`keys.normalised` does: trimmed of spaces, tabs and line breaks at both ends,
a blank text becoming null, so " C-1" and "C-1" give one pseudonym (and
`forget`, calling `keys.normalised`, finds both). Null stays null under
every action. A timestamp is pseudonymised or generalised only when the
session time zone is UTC (its text, or its month, depends on the zone).

The HMAC is written with `sha2`, `unhex` and `concat` over the key's inner
and outer padded blocks (RFC 2104), so it runs in Spark's own code, no Python
UDF. Those blocks are equivalent to the key: they are literals inside the
Spark plan (visible in the Spark UI's SQL tab and an event log when those are
on), never in lakeforge's logs: `Protector.load` registers the key and both
blocks (hex, either case, and `0x` + upper case as the plan prints them) with
the log scrubber, and the caller makes the JVM's log scrub them too; it also
adds the blocks' pattern to the session's `spark.sql.redaction.string.regex`,
which Spark applies to `explain()` and the plan's text.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge import secrets
from lakeforge.config.privacy import Privacy, Protection
from lakeforge.errors import ConfigError
from lakeforge.privacy.keys import BLANKS, key_check, privacy_key
from lakeforge.sqltext import name, text

log = logging.getLogger(__name__)

# what a quarantine's raw text shows for a generalised field whose text does
# not cast (the band or month of "thirty-seven" cannot be told)
WITHHELD = "[withheld]"
_BLOCK = 64  # SHA-256's block size in bytes
_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_FLOATING = (T.FloatType, T.DoubleType)
# the padded blocks as the plan prints them (hex, with or without 0x)
_BLOCK_PATTERN = "(?i)(0x)?[0-9a-f]{128}"
_REDACTION = "spark.sql.redaction.string.regex"
_TIME_ZONE = "spark.sql.session.timeZone"


def _redact_blocks(spark: SparkSession | None) -> None:
    """Add the padded blocks' pattern to the session's plan redaction,
    keeping a pattern already set."""
    if spark is None:
        return
    current = spark.conf.get(_REDACTION, None) or ""
    if _BLOCK_PATTERN in current:
        return
    spark.conf.set(_REDACTION, f"{current}|{_BLOCK_PATTERN}" if current else _BLOCK_PATTERN)


def normalised_sql(text_sql: str) -> str:
    """SQL for `keys.normalised` of the string expression `text_sql`."""
    return f"nullif(trim(BOTH {text(BLANKS)} FROM {text_sql}), '')"


def _padded_blocks(key: bytes) -> tuple[str, str]:
    """(key ⊕ ipad, key ⊕ opad) as hex: HMAC's inner and outer key blocks."""
    block = (hashlib.sha256(key).digest() if len(key) > _BLOCK else key).ljust(_BLOCK, b"\0")
    inner = bytes(b ^ 0x36 for b in block).hex()
    outer = bytes(b ^ 0x5C for b in block).hex()
    return inner, outer


def pseudonym_sql(text_sql: str, key: bytes) -> str:
    """SQL giving `keys.pseudonym(key, t)` for each value `t` of the string
    expression `text_sql` (null for null)."""
    inner, outer = _padded_blocks(key)
    digest = f"sha2(concat(unhex('{inner}'), CAST({text_sql} AS BINARY)), 256)"
    return f"sha2(concat(unhex('{outer}'), unhex({digest})), 256)"


def pseudonym_column(column: str, key: bytes) -> SparkColumn:
    """The pseudonym of column `column` of any type, rendered as text the way
    a pseudonymised column is (Spark's CAST AS STRING): what `forget` compares
    a subject's id with."""
    return F.expr(pseudonym_sql(normalised_sql(f"CAST({name(column)} AS STRING)"), key))


def _as_text(value_sql: str, data_type: T.DataType) -> str:
    """The value as the text pseudonymise and mask work on (normalised)."""
    if isinstance(data_type, T.StringType):
        return normalised_sql(value_sql)
    return normalised_sql(f"CAST({value_sql} AS STRING)")


def _mask(text_sql: str, p: Protection) -> str:
    char = text(p.mask_char)
    kept = p.keep_last or p.keep_first or 0
    # repeat() of a count below 1 is empty; of a null count, null
    hidden = f"repeat({char}, char_length({text_sql}) - {kept})"
    whole = f"repeat({char}, char_length({text_sql}))"
    if p.keep_last:
        shown = f"concat({hidden}, right({text_sql}, {kept}))"
    elif p.keep_first:
        shown = f"concat(left({text_sql}, {kept}), {hidden})"
    else:
        return whole
    # a value no longer than what is kept would be kept whole: mask it all
    return f"CASE WHEN char_length({text_sql}) <= {kept} THEN {whole} ELSE {shown} END"


def _decimal_literal(value: float) -> str:
    """`value` as an exact Spark decimal literal (2.5 → 2.5BD, 1e-05 → 0.00001BD)."""
    return f"{Decimal(repr(value)):f}BD"


def _generalise(value_sql: str, p: Protection, data_type: T.DataType) -> str:
    if p.band is not None:
        kind = data_type.simpleString()
        if isinstance(data_type, _FLOATING):
            band = f"CAST({p.band!r} AS DOUBLE)"
            ratio = f"(CAST({value_sql} AS DOUBLE) / {band})"
            # floor() of a double is a BIGINT: past 2^53 the ratio is whole anyway
            return (
                f"CASE WHEN isnan({value_sql}) OR abs({ratio}) >= 9.0E15 THEN {value_sql} "
                f"ELSE CAST(CAST(floor({ratio}) AS DOUBLE) * {band} AS {kind}) END"
            )
        band = _decimal_literal(p.band)
        # not pmod: its result type holds no more digits than the value's, so
        # a band wider than the column overflowed (an error under ANSI); the
        # remainder `%` is never larger than the value, and the one step down
        # for a negative value may overflow only into null (try_subtract)
        rest = f"({value_sql} % {band})"
        toward_zero = f"({value_sql} - {rest})"
        lower = (
            f"(CASE WHEN {rest} < 0 THEN try_subtract({toward_zero}, {band}) "
            f"ELSE {toward_zero} END)"
        )
        if isinstance(data_type, _INTEGRAL):
            lower = f"floor({lower})"
        return f"try_cast({lower} AS {kind})"
    if p.to is not None:
        unit = "MM" if p.to == "month" else "YEAR"
        if isinstance(data_type, T.DateType):
            return f"trunc({value_sql}, '{unit}')"
        return f"date_trunc('{unit}', {value_sql})"
    assert p.prefix is not None  # the config allows exactly one of band, to, prefix
    return f"left({value_sql}, {p.prefix})"


@dataclass(frozen=True)
class Protector:
    """The `privacy:` block with its key, writing the SQL of each action.

    `key` is None when the block names no `key_env` (then nothing may be
    pseudonymised)."""

    privacy: Privacy
    key: bytes | None = field(default=None, repr=False)
    # the source column types (config names): a pseudonym or mask is of the
    # value's text, which the type decides ("007" as an int is "7")
    source_types: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls, privacy: Privacy, dataset: str, source_types: Mapping[str, str] | None = None
    ) -> Protector:
        """The block with its key read from `privacy.key_env` (ConfigError
        naming the variable when it is unset or short), the key registered
        with the log scrubber in every form the plan holds it."""
        key = privacy_key(privacy, dataset) if privacy.key_env is not None else None
        if key is not None:
            # even an all-digit key: it is a secret, not a setting
            secrets.register(key.decode("utf-8"), force=True)
            for block in _padded_blocks(key):
                for form in (block, block.upper(), "0x" + block.upper()):
                    secrets.register(form, force=True)
            _redact_blocks(SparkSession.getActiveSession())
        return cls(privacy, key, dict(source_types or {}))

    @property
    def active(self) -> bool:
        """True when the block protects at least one column."""
        return bool(self.privacy.columns)

    @property
    def columns(self) -> Mapping[str, Protection]:
        return self.privacy.columns

    def check_session(self, spark: SparkSession, types: Mapping[str, T.DataType]) -> None:
        """Raise ConfigError when a timestamp column (of `types`) is
        pseudonymised or generalised and the session time zone is not UTC;
        add the key's blocks to the plan redaction when there is a key."""
        if self.key is not None:
            _redact_blocks(spark)
        zone = spark.conf.get(_TIME_ZONE)
        if zone in ("UTC", "Etc/UTC", "GMT", "Z", "+00:00"):
            return
        for column, p in self.columns.items():
            stamp = isinstance(types.get(column), T.TimestampType)
            if stamp and p.action in ("pseudonymise", "generalise"):
                raise ConfigError(
                    f"privacy.columns.{column}: a timestamp is {p.action}d in the session "
                    f"time zone, and {_TIME_ZONE} is {zone}, not UTC: its protected form "
                    "would change with the zone (lakeforge's sessions set UTC)"
                )

    @property
    def fingerprint(self) -> str:
        """How this protector protects rows, as JSON recorded with every
        ingested batch: each protected column's protection and source type,
        and the key's check value (never the key) when a column is
        pseudonymised. Equal fingerprints give equal forms of equal values."""
        pseudonymised = any(p.action == "pseudonymise" for p in self.columns.values())
        return json.dumps(
            {
                "columns": {
                    c: {
                        "protection": p.model_dump(exclude_none=True),
                        "type": self.source_types.get(c),
                    }
                    for c, p in self.columns.items()
                },
                "key_check": (
                    key_check(self.key) if self.key is not None and pseudonymised else None
                ),
            },
            sort_keys=True,
        )

    def check_same_as(self, recorded: Sequence[str | None], dataset: str) -> None:
        """Raise ConfigError when the latest of the fingerprints `recorded`
        with bronze's earlier batches (None: a batch ingested before lakeforge
        recorded them) differs from this one: rows protected another way, or
        not at all, would mix forms in one table (a pseudonym under another
        key joins nothing; a clear value would sit beside protected ones)."""
        known = [r for r in recorded if r is not None]
        if not known and recorded:
            log.warning(
                "ingest: %s: bronze's earlier batches carry no record of how they were "
                "protected (ingested before lakeforge recorded it); this batch's is recorded "
                "and later batches are held to it",
                dataset,
            )
        if not known or known[-1] == self.fingerprint:
            return
        before, now = json.loads(known[-1]), json.loads(self.fingerprint)
        remedy = (
            "keep the block and key bronze was written with, or re-ingest everything into "
            "a new lakehouse under the new ones (README: Personal data, rotation)"
        )
        if before["columns"] != now["columns"]:
            if not before["columns"]:
                raise ConfigError(
                    f"dataset {dataset}: bronze's earlier batches were not protected (no "
                    "privacy block): protecting new rows would leave the old ones in clear "
                    f"beside them; {remedy}"
                )
            was, is_ = before["columns"], now["columns"]
            what = [
                f"{c} ({'added' if c not in was else 'removed' if c not in is_ else 'changed'})"
                for c in sorted(set(was) | set(is_))
                if was.get(c) != is_.get(c)
            ]
            raise ConfigError(
                f"dataset {dataset}: bronze's earlier batches were protected by another "
                f"privacy block (privacy.columns: {', '.join(what)}); rows protected "
                f"differently would mix forms in one table; {remedy}"
            )
        variable = self.privacy.key_env or "privacy.key_env"
        raise ConfigError(
            f"dataset {dataset}: the key in {variable} is not the key bronze's earlier batches "
            "were protected with (its check value differs): new pseudonyms would match none "
            f"of the old; {remedy}"
        )

    def _key(self) -> bytes:
        if self.key is None:
            raise ConfigError("pseudonymise needs privacy.key_env (the HMAC key's variable)")
        return self.key

    def value_sql(self, column: str, value_sql: str, data_type: T.DataType) -> str | None:
        """SQL for the protected form of `value_sql` (a value of `column`, of
        `data_type`); None when the column is dropped or `value_sql` itself
        when the column is not protected."""
        p = self.columns.get(column)
        if p is None:
            return value_sql
        if p.action == "drop":
            return None
        if p.action == "pseudonymise":
            return pseudonym_sql(_as_text(value_sql, data_type), self._key())
        if p.action == "mask":
            return _mask(_as_text(value_sql, data_type), p)
        return _generalise(value_sql, p, data_type)

    def raw_field_sql(
        self, column: str, text_sql: str, typed_sql: str, data_type: T.DataType
    ) -> str | None:
        """SQL for a field of a quarantined row's raw text: `text_sql` (the
        field as read) when `column` is not protected; else the protected
        form of the typed value, as a bronze row would hold it, or, when the
        text does not cast, of the text (pseudonymise and mask), or
        `[withheld]` (generalise). None for a dropped column: the field is
        left out."""
        p = self.columns.get(column)
        if p is None:
            return text_sql
        if p.action == "drop":
            return None
        typed = self.value_sql(column, typed_sql, data_type)
        if p.action == "pseudonymise":
            untyped = pseudonym_sql(normalised_sql(text_sql), self._key())
            return f"coalesce({typed}, {untyped})"
        if p.action == "mask":
            untyped = normalised_sql(text_sql)
            return _mask(f"coalesce({_as_text(typed_sql, data_type)}, {untyped})", p)
        return (
            f"coalesce(CAST({typed} AS STRING), "
            f"CASE WHEN {text_sql} IS NOT NULL THEN {text(WITHHELD)} END)"
        )

    def withheld_sql(self, line_sql: str) -> str:
        """SQL for the raw text of a row that did not split into fields: which
        of its fields hold protected columns cannot be told, so the text is
        withheld; its length and a digest remain, so the row can still be
        identified (HMAC-SHA256 under the key when there is one, else SHA-256,
        which anyone able to guess the whole line can confirm)."""
        if self.key is not None:
            digest = f"'hmac-sha256 ', {pseudonym_sql(line_sql, self.key)}"
        else:
            digest = f"'sha-256 ', sha2(CAST({line_sql} AS BINARY), 256)"
        return (
            f"CASE WHEN {line_sql} IS NOT NULL THEN concat('[withheld: ', "
            f"CAST(char_length({line_sql}) AS STRING), ' characters; ', {digest}, ']') END"
        )

    def apply(self, df: DataFrame) -> DataFrame:
        """`df` with each protected column in its protected form and the
        dropped ones removed; other columns untouched. Columns the block names
        that `df` lacks are ignored."""
        types = {f.name: f.dataType for f in df.schema.fields}
        self.check_session(df.sparkSession, types)
        changed: dict[str, SparkColumn] = {}
        dropped: list[str] = []
        for column in self.columns:
            if column not in types:
                continue
            sql = self.value_sql(column, name(column), types[column])
            if sql is None:
                dropped.append(column)
            else:
                changed[column] = F.expr(sql)
        return df.withColumns(changed).drop(*dropped)


def protect(df: DataFrame, privacy: Privacy, key: bytes | None) -> DataFrame:
    """`df` with the block's actions applied (see the module's docstring):
    pseudonymised and masked columns become text, generalised ones keep their
    type, dropped ones are gone. Raises ConfigError when a column is to be
    pseudonymised and `key` is None."""
    return Protector(privacy, key).apply(df)
