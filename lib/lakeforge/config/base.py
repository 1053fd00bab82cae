"""The base of every config model (unknown keys fail, values are frozen), and
the type of a SQL expression taken from config."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Text inside quotes or backticks: a literal or an identifier, never a keyword.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`]|``)*`")
_STATEMENT = re.compile(
    r"\b(SELECT|FROM|JOIN|UNION|INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|TRUNCATE|MERGE|GRANT"
    r"|REVOKE)\b",
    re.I,
)


def _single_expression(text: str) -> str:
    """Config SQL (rules, derived columns, `where`, ordering) is handed to Spark
    through expression APIs (`F.expr`, `DataFrame.where`); the one statement
    built from it is the training pipeline's `SQLTransformer` (`SELECT *, EXPR
    AS name FROM __THIS__`, saved inside the model). This check refuses, before
    Spark starts, text that tries to be more than one expression over the row:
    a `;`, a comment, unbalanced parentheses or a statement keyword (a
    subquery could read another table). A column named like a keyword can be
    written in backticks."""
    bare = _QUOTED.sub("''", text)
    for token, why in (
        (";", "ends a statement"),
        ("--", "starts a comment"),
        ("/*", "starts a comment"),
    ):
        if token in bare:
            raise ValueError(f"{text!r} is not a single SQL expression: {token!r} {why}")
    depth = 0
    for char in bare:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        raise ValueError(f"{text!r} is not a single SQL expression: unbalanced parentheses")
    found = _STATEMENT.search(bare)
    if found:
        raise ValueError(
            f"{text!r} is not a single SQL expression: {found.group(1).upper()} starts a "
            "statement or subquery (quote a column of that name in backticks)"
        )
    return text


SqlExpression = Annotated[str, AfterValidator(_single_expression)]
