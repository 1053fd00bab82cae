"""Erasure of a subject (`lakeforge forget`): how a table's rows about the
subject are found, without the subject's values ever entering a SQL text, a
log line or an error message. (What a request says: `privacy.request`.)

A request's values are given in clear. A column the dataset pseudonymises is
stored as the pseudonym of the value's text (`lakeforge.privacy.keys`), so
each value is looked for in every form it may be stored in: as given, as
Spark writes it in the column's type (`042` → `42`) and as its pseudonym
(rows ingested before the column was protected hold it in clear).

A table is matched on the request's columns when it has them all; a
quarantine also on its text (`_raw`: a row that split holds its fields as
JSON, matched per column; a line that did not split, by a whole-token match
of every column's value, for values of TEXT_MIN characters or more and
pseudonyms only; `_row`, the failed row as JSON: per column);
a table with none of these holds no rows about a person (`monitoring`, the
ingest log). Tables that lack the request's columns but hold the dataset's
identity (the keys, or `_row_id`) are matched on the identities of the
subject's rows (`gold` and `splits`, when the request names an e-mail).

Every match is a condition between the table (`t`) and a small DataFrame of
the values (`s`): the condition names columns only, so a MERGE logs no value.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge.errors import ConfigError
from lakeforge.ingest.parse import RAW
from lakeforge.privacy.keys import normalised, pseudonym
from lakeforge.privacy.request import Request

# the failed row, as JSON, in the silver quarantine (lakeforge.steps.clean)
ROW = "_row"
# Delta keeps this many leading characters of a string in its statistics
STATS_PREFIX = 32
# a value shorter than this is looked for in a column, never in a text (a
# line that did not split, a table's history): `7` is in too many texts
TEXT_MIN = 8
# what a token may not be next to: a letter or digit of any script, a
# combining mark, `_`
_WORD = "\\p{L}\\p{N}\\p{M}_"


@dataclass(frozen=True)
class Subjects:
    """Values to find rows by: per subject, per column, every text the value
    may be stored as."""

    columns: tuple[str, ...]
    forms: tuple[tuple[frozenset[str], ...], ...]

    def rows(self) -> list[tuple[str, ...]]:
        """Each combination of forms of each subject (a column match)."""
        found: dict[tuple[str, ...], None] = {}
        for subject in self.forms:
            for combo in itertools.product(*[sorted(f) for f in subject]):
                found[combo] = None
        return list(found)

    def patterns(self) -> list[tuple[str, ...]]:
        """Per subject, per column, a regex finding any of its forms as a
        whole token of a text (a text match): only forms of TEXT_MIN
        characters or more (a pseudonym has 64), as written, CSV-quoted and
        JSON-escaped; a subject with a column without such a form has none
        (a short value would find other people's lines)."""
        found = []
        for subject in self.forms:
            usable = [{q for t in f if len(t) >= TEXT_MIN for q in _quoted(t)} for f in subject]
            if all(usable):
                found.append(tuple(token_pattern(f) for f in usable))
        return found

    def texts(self) -> set[str]:
        return {text for subject in self.forms for forms in subject for text in forms}


@dataclass(frozen=True)
class Match:
    """How to find a table's rows about the subject: a condition over the
    table (`t`) and the values (`s`, rows of `schema`)."""

    condition: str
    schema: T.StructType
    rows: tuple[tuple[Any, ...], ...]
    matched_on: tuple[str, ...]  # e.g. "customer_id", "_raw text"

    def source(self, spark: SparkSession) -> DataFrame:
        """The values, as a DataFrame: data, never SQL text."""
        return spark.createDataFrame(list(self.rows), self.schema)

    def rows_of(self, table: DataFrame) -> DataFrame:
        """The rows of `table` about the subject."""
        values = F.broadcast(self.source(table.sparkSession).alias("s"))
        return table.alias("t").join(values, F.expr(self.condition), "semi")


def canonical_values(
    spark: SparkSession, request: Request, types: dict[str, str]
) -> list[tuple[str, ...]]:
    """Each subject's values as Spark writes them in their columns' types
    (`types`: column → Spark type), what a pseudonym is computed from.
    ConfigError naming the subject's number and the column, not the value,
    when a value is not of its column's type."""
    width = len(request.columns)
    schema = T.StructType(
        [T.StructField("n", T.IntegerType(), False)]
        + [T.StructField(f"v{i}", T.StringType(), False) for i in range(width)]
    )
    given = spark.createDataFrame([(n, *v) for n, v in enumerate(request.subjects)], schema)
    cast = given.select(
        "n",
        *[
            F.col(f"v{i}").try_cast(types[c]).cast("string").alias(f"v{i}")
            for i, c in enumerate(request.columns)
        ],
    )
    out = []
    for row in sorted(cast.collect(), key=lambda r: int(r["n"])):
        for i, column in enumerate(request.columns):
            if row[f"v{i}"] is None:
                raise ConfigError(
                    f"forget: subject {int(row['n']) + 1}: its {column} is not a valid "
                    f"{types[column]}"
                )
        out.append(tuple(str(row[f"v{i}"]) for i in range(width)))
    return out


def request_forms(
    request: Request,
    canonical: Sequence[tuple[str, ...]],
    pseudonymised: Iterable[str],
    key: bytes | None,
) -> Subjects:
    """The forms each value of `request` may be stored in: as given, as
    `canonical` (`canonical_values`) and, for a `pseudonymised` column, the
    pseudonym of the canonical text, normalised as ingest does
    (`keys.normalised`), under `key`."""
    hidden = set(pseudonymised)
    forms = []
    for given, written in zip(request.subjects, canonical, strict=True):
        per_column = []
        for column, value, text in zip(request.columns, given, written, strict=True):
            texts = {value, text}
            stored = normalised(text)  # what ingest computes the pseudonym of
            if column in hidden and key is not None and stored is not None:
                texts.add(pseudonym(key, stored))
            per_column.append(frozenset(texts))
        forms.append(tuple(per_column))
    return Subjects(request.columns, tuple(forms))


def identities(
    tables: Iterable[DataFrame], subjects: Subjects, identity: Sequence[str]
) -> Subjects:
    """The identities (`identity`: the keys, or `_row_id`) of the rows about
    `subjects` in those of `tables` that hold both their columns and the
    identity, as stored (text): what finds the subject in a table without
    the request's columns."""
    match = plan_match(subjects.columns, [subjects])
    found: dict[tuple[str, ...], None] = {}
    for table in tables:
        if match is None or not set(subjects.columns) | set(identity) <= set(table.columns):
            continue
        hits = (
            match.rows_of(table)
            .select(*[F.col(f"`{c}`").cast("string").alias(c) for c in identity])
            .dropna()
            .distinct()
        )
        for row in hits.collect():
            found[tuple(str(row[c]) for c in identity)] = None
    forms = tuple(tuple(frozenset({v}) for v in values) for values in found)
    return Subjects(tuple(identity), forms)


def plan_match(table_columns: Iterable[str], sets: Sequence[Subjects]) -> Match | None:
    """How to find the rows of a table with `table_columns` that any of
    `sets` identifies, or None when the table has nothing to match them on."""
    have = set(table_columns)
    clauses: list[tuple[str, list[tuple[str, ...]], str]] = []
    for subjects in sets:
        if not subjects.forms:
            continue
        names = ", ".join(subjects.columns)
        if set(subjects.columns) <= have:
            condition = " AND ".join(
                f"CAST(t.`{c}` AS STRING) = s.`v{i}`" for i, c in enumerate(subjects.columns)
            )
            clauses.append((condition, subjects.rows(), names))
        if ROW in have:
            condition = " AND ".join(
                f"get_json_object(t.`{ROW}`, '$.{c}') = s.`v{i}`"
                for i, c in enumerate(subjects.columns)
            )
            clauses.append((condition, subjects.rows(), f"{ROW} ({names})"))
        if RAW in have:
            # a row that split: its fields as a JSON object, per column
            condition = f"t.`{RAW}` LIKE '{{%}}' AND " + " AND ".join(
                f"get_json_object(t.`{RAW}`, '$.{c}') = s.`v{i}`"
                for i, c in enumerate(subjects.columns)
            )
            clauses.append((condition, subjects.rows(), f"{RAW} ({names})"))
            # a line that did not split: long values as whole tokens, all of them
            patterns = subjects.patterns()
            if patterns:
                condition = f"NOT t.`{RAW}` LIKE '{{%}}' AND " + " AND ".join(
                    f"t.`{RAW}` RLIKE s.`v{i}`" for i in range(len(subjects.columns))
                )
                clauses.append((condition, patterns, f"{RAW} text ({names})"))
    if not clauses:
        return None
    width = max(len(rows[0]) for _, rows, _ in clauses)
    schema = T.StructType(
        [T.StructField("clause", T.IntegerType(), False)]
        + [T.StructField(f"v{i}", T.StringType(), True) for i in range(width)]
    )
    rows: list[tuple[Any, ...]] = []
    for number, (_, values, _) in enumerate(clauses):
        rows.extend((number, *row, *([None] * (width - len(row)))) for row in values)
    condition = " OR ".join(f"(s.`clause` = {n} AND {c})" for n, (c, _, _) in enumerate(clauses))
    matched_on = tuple(dict.fromkeys(on for _, _, on in clauses))
    return Match(condition, schema, tuple(rows), matched_on)


def history_values(texts: Iterable[str]) -> set[str]:
    """Those of `texts` a table's history is searched for: TEXT_MIN
    characters or more (a pseudonym has 64). A shorter one would be found in
    a commit's metrics (`"numOutputRows":"7"`); the rows holding it now are
    found in the table's columns."""
    return {t for t in texts if len(t) >= TEXT_MIN}


def holds_any(history: DataFrame, texts: Iterable[str]) -> bool:
    """Whether a row of `history` (one column, `text`) holds one of `texts`
    of TEXT_MIN characters or more (`history_pattern`): the pattern travels
    as data, like the values."""
    texts = history_values(texts)
    if not texts:
        return False
    needle = history.sparkSession.createDataFrame([(history_pattern(texts),)], "pattern string")
    found = history.join(F.broadcast(needle), F.expr("text RLIKE pattern"), "semi")
    return not found.limit(1).isEmpty()


def token_pattern(texts: Iterable[str]) -> str:
    """A Java regex matching any of `texts` as a whole token: not next to a
    letter, digit or underscore (so `C-42` does not find `C-421`)."""
    quoted = "|".join(_java_quote(t) for t in sorted(texts))
    return f"(?<![{_WORD}])(?:{quoted})(?![{_WORD}])"


def history_pattern(texts: Iterable[str]) -> str:
    """A Java regex finding any of `texts` in a table's history as text
    (old rows as JSON, log lines): as a whole token, JSON-escaped too, and a
    long one by the prefix Delta keeps of it in its statistics."""
    forms: set[str] = set()
    prefixes: set[str] = set()
    for text in texts:
        escaped = json.dumps(text)[1:-1]
        forms.update({text, escaped})
        if len(text) > STATS_PREFIX:
            prefixes.update({text[:STATS_PREFIX], escaped[:STATS_PREFIX]})
    parts = [token_pattern(forms)]
    if prefixes:
        quoted = "|".join(_java_quote(p) for p in sorted(prefixes))
        parts.append(f"(?<![{_WORD}])(?:{quoted})")
    return "|".join(parts)


def request_reference(key: bytes, request: Request, canonical: Sequence[tuple[str, ...]]) -> str:
    """A reference to the request that only the holder of the dataset's key
    can compute again from the subjects' values: an HMAC under that key of
    the request's columns and canonical values, kept apart from every
    pseudonym by its prefix (so it is none of the stored values)."""
    subjects = sorted(
        json.dumps(dict(zip(request.columns, values, strict=True)), sort_keys=True)
        for values in canonical
    )
    return pseudonym(key, "lakeforge.forget\n" + "\n".join(subjects))


def _quoted(text: str) -> set[str]:
    """`text` and, when it holds a quote, its forms in a CSV field (quotes
    doubled) and in a JSON string (escaped)."""
    if '"' not in text and "\\" not in text:
        return {text}
    return {text, text.replace('"', '""'), json.dumps(text, ensure_ascii=False)[1:-1]}


def _java_quote(text: str) -> str:
    """`text` quoted for a Java regex (java.util.regex.Pattern.quote)."""
    return "\\Q" + text.replace("\\E", "\\E\\\\E\\Q") + "\\E"
