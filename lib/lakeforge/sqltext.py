"""SQL text lakeforge writes itself (ingest's casts, privacy's protections,
the PII scan): names and literals quoted so that no header, null marker,
format or option can be read as SQL, each piece parsed as one expression.

Spark substitutes `${...}` in SQL text before parsing it (`${env:X}` reads an
environment variable), whatever the quoting: a name or literal holding one is
refused, not read.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.errors import SchemaMismatch


def safe(value: str) -> str:
    """`value`, refused (SchemaMismatch) when it holds `${`."""
    if "${" in value:
        raise SchemaMismatch(
            f"{value!r}: a name, null marker or format holding '${{' cannot be read safely "
            "(Spark would substitute a variable there); rename it in the file or the config"
        )
    return value


def name(column: str) -> str:
    """A column name quoted for Spark SQL (a header may hold dots, spaces, `)."""
    return "`" + safe(column).replace("`", "``") + "`"


def text(value: str) -> str:
    """A Spark SQL string literal (backslash escapes are Spark's default)."""
    return "'" + safe(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def select(df: DataFrame, *expressions: str) -> DataFrame:
    """`df` projected to SQL expressions we wrote (names and literals quoted
    by `name` / `text`), each parsed as one expression by `F.expr`."""
    return df.select(*[F.expr(e) for e in expressions])
