"""What a `lakeforge forget` request says: columns, and per subject one value
for each, given in clear. Parsed without the values ever entering an error
message (they identify a person).

- `--where` accepts equalities of a column and a literal, joined by AND (one
  subject, several columns) and OR (several subjects, the same columns);
  `col IN (...)` stands for an OR of equalities (one IN of several values
  per AND: two would pair every value of one with every value of the
  other). Nothing else: no function, no other comparison, no NULL, no empty
  value, no `${` (Spark substitutes variables). Erasure is of identified people, and a
  literal per column is what lets the values travel as data (a small
  DataFrame) instead of SQL text, which Delta would write into its log. The
  text passes the config's SQL guard (`config.base.SqlExpression`), then
  Spark's own parser; its tree may hold nothing but those nodes.
- `--keys FILE` is a CSV file whose header names the columns, one subject
  per row.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pyspark.sql import SparkSession

from lakeforge.config.base import SqlExpression
from lakeforge.errors import ConfigError

_GUARD: TypeAdapter[str] = TypeAdapter(SqlExpression)
_NOT_SINGLE = "is not a single SQL expression: "


@dataclass(frozen=True)
class Request:
    """Who to forget: `columns`, and one value (as text, in clear) per
    column for each subject. `kind` is how it was given: `where` or `keys`."""

    columns: tuple[str, ...]
    subjects: tuple[tuple[str, ...], ...]
    kind: str


def parse_where(spark: SparkSession, text: str) -> Request:
    """The request of `--where TEXT`. Raises ConfigError saying what is
    wrong, never quoting the text (it holds the subject's values)."""
    if "${" in text:
        raise ConfigError(
            "--where: `${` is not accepted (Spark would substitute a variable there); "
            "give such a value in a --keys file"
        )
    try:
        _GUARD.validate_python(text)
    except ValidationError as exc:
        message = str(exc.errors()[0].get("msg", ""))
        reason = message.split(_NOT_SINGLE, 1)[-1] if _NOT_SINGLE in message else "refused"
        raise ConfigError(f"--where is not a single SQL expression: {reason}") from None
    parser: Any = spark._jsparkSession.sessionState().sqlParser()
    try:
        tree = parser.parseExpression(text)
    except Exception:  # Spark's message quotes the text
        raise ConfigError("--where is not a valid SQL expression") from None
    conjunctions = [_conjunction(node) for node in _split(tree, "Or")]
    columns = tuple(conjunctions[0])
    subjects: list[tuple[str, ...]] = []
    for bound in conjunctions:
        if set(bound) != set(columns):
            raise ConfigError(
                "--where: each part joined by OR must name the same columns "
                f"({', '.join(columns)} against {', '.join(bound)}); give subjects with "
                "other columns in another run, or in a --keys file"
            )
        for values in itertools.product(*[bound[c] for c in columns]):
            subjects.append(tuple(values))
    return Request(columns, tuple(dict.fromkeys(subjects)), "where")


def parse_keys(text: str, source: str) -> Request:
    """The request of a `--keys` CSV file: the header names the columns, each
    row is one subject, its values taken exactly as written. Raises
    ConfigError naming the file and the line (never a value) when the header
    repeats or lacks a name, a line has another number of fields or an empty
    value, or there is no subject."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    names = tuple(h.strip() for h in header or [])
    if not names or any(not n for n in names) or len(set(names)) != len(names):
        raise ConfigError(f"--keys {source}: the first line must name the key columns, once each")
    subjects: list[tuple[str, ...]] = []
    for number, row in enumerate(reader, start=2):
        if not row or all(not field.strip() for field in row):
            continue
        if len(row) != len(names):
            raise ConfigError(
                f"--keys {source}: line {number} has {len(row)} field(s), the header {len(names)}"
            )
        if any(field == "" for field in row):
            raise ConfigError(f"--keys {source}: line {number} has an empty value")
        subjects.append(tuple(row))
    if not subjects:
        raise ConfigError(f"--keys {source}: no subject (the file has a header only)")
    return Request(names, tuple(dict.fromkeys(subjects)), "keys")


def check_columns(request: Request, known: Iterable[str], dataset: str) -> None:
    """ConfigError naming the request's columns that `known` (the columns
    bronze holds) lacks."""
    have = set(known)
    unknown = [c for c in request.columns if c not in have]
    if unknown:
        raise ConfigError(
            f"{dataset}: forget names column(s) the dataset does not hold: {', '.join(unknown)}"
        )


def check_purpose(
    request: Request, keys: Iterable[str], protected: Mapping[str, str], any_column: bool
) -> None:
    """ConfigError when a request's column cannot identify a person as
    asked: a masked or generalised column (its stored value is never the one
    given), or, unless `any_column`, a column that is neither one of `keys`
    nor declared in `protected` (column → privacy action): a value such a
    column holds is likely shared by many people."""
    for column in request.columns:
        action = protected.get(column)
        if action in ("mask", "generalise"):
            done = {"mask": "masked", "generalise": "generalised"}[action]
            raise ConfigError(
                f"forget: {column} is {done} at ingest: the stored value never equals the one "
                "given; name the subject by a key or a pseudonymised column"
            )
    if any_column:
        return
    loose = [c for c in request.columns if c not in set(keys) and c not in protected]
    if loose:
        raise ConfigError(
            f"forget: {', '.join(loose)} is neither a key nor a column declared under "
            "privacy.columns: a value of it may be shared by many people; give --any-column "
            "to erase every row holding it"
        )


def _split(node: Any, kind: str) -> list[Any]:
    if _kind(node) != kind:
        return [node]
    children = node.children()
    return [part for i in range(children.size()) for part in _split(children.apply(i), kind)]


def _conjunction(node: Any) -> dict[str, list[str]]:
    """{column: values} of `a = 1 AND b IN (2, 3)`; ConfigError for anything else."""
    bound: dict[str, list[str]] = {}
    lists = 0
    for part in _split(node, "And"):
        kind = _kind(part)
        if kind in ("EqualTo", "EqualNullSafe"):
            left, right = part.left(), part.right()
            if _kind(left) == "Literal":
                left, right = right, left
            column, values = _column(left), [_literal(right)]
        elif kind == "In":
            items = part.list()
            column = _column(part.value())
            values = [_literal(items.apply(i)) for i in range(items.size())]
            lists += len(set(values)) > 1
            if lists > 1:
                raise ConfigError(
                    "--where: more than one IN list in one AND would pair each value of one "
                    "with each of the other (people who may not exist); write "
                    "(a = 'x' AND b = 'y') OR ..., or give the subjects in a --keys file"
                )
        else:
            raise ConfigError(
                f"--where: {_describe(kind)} is not accepted; write `column = 'value'` joined "
                "by AND / OR, or `column IN ('a', 'b')`"
            )
        if column in bound:
            raise ConfigError(f"--where: {column} is named twice in one AND")
        bound[column] = values
    return bound


def _column(node: Any) -> str:
    if _kind(node) != "UnresolvedAttribute":
        raise ConfigError(
            f"--where: {_describe(_kind(node))} is not accepted where a column name goes "
            "(no function, no arithmetic: the column itself)"
        )
    parts = node.nameParts()
    if parts.size() != 1:
        raise ConfigError("--where: name a column by itself, not qualified (a.b)")
    return str(parts.apply(0))


def _literal(node: Any) -> str:
    if _kind(node) != "Literal":
        raise ConfigError(
            f"--where: {_describe(_kind(node))} is not accepted where a value goes: write a "
            "literal ('text', 42, DATE '2024-01-31')"
        )
    if node.value() is None:
        raise ConfigError("--where: a null value identifies no one; name a value")
    # Spark's text of the literal: a string as written, a date as yyyy-MM-dd
    text = str(node.toString())
    if not text.strip():
        raise ConfigError("--where: an empty value identifies no one; name a value")
    return text


def _kind(node: Any) -> str:
    return str(node.getClass().getSimpleName())


def _describe(kind: str) -> str:
    """Spark's name of an expression node, for a person (never its text)."""
    known = {
        "UnresolvedFunction": "a function call",
        "Like": "LIKE",
        "ILike": "ILIKE",
        "RLike": "RLIKE",
        "Not": "NOT",
        "GreaterThan": ">",
        "LessThan": "<",
        "GreaterThanOrEqual": ">=",
        "LessThanOrEqual": "<=",
        "IsNull": "IS NULL",
        "IsNotNull": "IS NOT NULL",
        "Alias": "a name after the expression (an alias)",
    }
    return known.get(kind, f"an expression of kind {kind}")
