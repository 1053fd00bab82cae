"""What the clean step does to bronze rows, and the data-quality rules, as typed config.

Row-level rules (not_null, range, allowed, regex, sql) are checked on every
row in one pass; table-level rules (unique, row_count, null_fraction) are
checked by Great Expectations on the batch. Severity: `drop` sends the row to
the silver quarantine with the rule's name, `warn` logs and reports, `fail`
stops the job before silver changes.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from lakeforge.config.base import Model, SqlExpression

ROW_RULES = ("not_null", "range", "allowed", "regex", "sql")
TABLE_RULES = ("unique", "row_count", "null_fraction")


class ParseSpec(Model):
    """Parse a text column into a type, for values bronze kept as text
    (numbers written `1.234,5`, dates written `24/11/2026`)."""

    type: Literal["int", "long", "double", "date", "timestamp"]
    format: str | None = None
    decimal: str = "."
    group: str = ""

    @model_validator(mode="after")
    def _separators_differ(self) -> ParseSpec:
        if self.decimal == self.group:
            raise ValueError("decimal and group separators must differ")
        return self


class Dedupe(Model):
    # SQL ordering expressions; the first row per key is kept (the latest by default).
    order_by: list[SqlExpression] = Field(default_factory=lambda: ["_ingested_at DESC"])


class CleanSteps(Model):
    trim: bool = True  # trim every string column; an empty string becomes null
    upper: list[str] = Field(default_factory=list)
    lower: list[str] = Field(default_factory=list)
    # column → {spelling: canonical value}
    replace: dict[str, dict[str, str]] = Field(default_factory=dict)
    parse: dict[str, ParseSpec] = Field(default_factory=dict)
    # new column → Spark SQL expression over the columns above (in order)
    derive: dict[str, SqlExpression] = Field(default_factory=dict)
    dedupe: Dedupe = Field(default_factory=Dedupe)


class Rule(Model):
    type: Literal[
        "not_null", "range", "allowed", "regex", "sql", "unique", "row_count", "null_fraction"
    ]
    name: str = ""
    severity: Literal["drop", "warn", "fail"] = "drop"
    column: str | None = None
    columns: list[str] = Field(default_factory=list)
    min: float | None = None
    max: float | None = None
    values: list[str | int | float] = Field(default_factory=list)
    pattern: str | None = None
    expression: SqlExpression | None = None

    @property
    def is_row_level(self) -> bool:
        return self.type in ROW_RULES

    @model_validator(mode="after")
    def _fields_for_type(self) -> Rule:
        needs_column = self.type in ("not_null", "range", "allowed", "regex", "null_fraction")
        if needs_column and not self.column:
            raise ValueError(f"a {self.type} rule needs `column`")
        if self.type in ("range", "row_count", "null_fraction") and (
            self.min is None and self.max is None
        ):
            raise ValueError(f"a {self.type} rule needs `min` and/or `max`")
        if self.type == "allowed" and not self.values:
            raise ValueError("an allowed rule needs `values`")
        if self.type == "regex":
            if not self.pattern:
                raise ValueError("a regex rule needs `pattern`")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} is not a valid regex: {exc}") from exc
        if self.type == "sql" and not self.expression:
            raise ValueError("a sql rule needs `expression` (true for a good row)")
        if self.type in TABLE_RULES and self.severity == "drop":
            raise ValueError(f"a {self.type} rule is about the whole table: severity warn or fail")
        if not self.name:
            target = self.column or ",".join(self.columns) or "table"
            object.__setattr__(self, "name", f"{self.type}:{target}")
        return self
