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
    r"\b(SELECT|INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|TRUNCATE|MERGE|GRANT|REVOKE)\b", re.I
)


def _single_expression(text: str) -> str:
    """Config SQL (rules, derived columns, `where`, ordering) is handed to Spark
    only through expression APIs (`F.expr`, `DataFrame.where`), never pasted
    into a statement. This check refuses, before Spark starts, text that tries
    to be more than one expression over the row: a `;` or a statement keyword
    (a subquery could read another table). A column named like a keyword can be
    written in backticks."""
    bare = _QUOTED.sub("''", text)
    if ";" in bare:
        raise ValueError(f"{text!r} is not a single SQL expression: ';' ends a statement")
    found = _STATEMENT.search(bare)
    if found:
        raise ValueError(
            f"{text!r} is not a single SQL expression: {found.group(1).upper()} starts a "
            "statement or subquery (quote a column of that name in backticks)"
        )
    return text


SqlExpression = Annotated[str, AfterValidator(_single_expression)]
