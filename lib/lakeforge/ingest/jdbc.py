"""Reading a database table or query over JDBC: parallel, incremental, secret-free.

Credentials come from the environment variables the config names, are handed
to Spark's JDBC reader only, and are scrubbed from any error message. An
incremental read is a window on the watermark column, `(low, high]`: `high`
is the largest value present when the batch is planned, so rows written while
the batch reads wait for the next one, and a resumed batch reads exactly the
same window again. Each read is wrapped in a subquery aliased
`lakeforge_src` (data) or `lakeforge_hw` (the planning query), so a DBA can
tell them apart in the database's activity view.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from lakeforge import secrets
from lakeforge.config.models import Column, JdbcSource
from lakeforge.errors import SPARK_ERRORS, ConfigError, UnreadableInput
from lakeforge.spark import scrub_jvm_log

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def label(src: JdbcSource) -> str:
    """What bronze's `_source_file` records: the URL (no query string) and the table."""
    return f"{src.url.split('?')[0]}#{src.table or 'query'}"


def credentials(src: JdbcSource) -> dict[str, str]:
    """user/password from the named environment variables; ConfigError names a missing one."""
    missing = [name for name in (src.user_env, src.password_env) if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            f"source.jdbc: environment variable(s) {', '.join(missing)} not set "
            "(the database credentials are read from there only)"
        )
    secrets.register(os.environ[src.password_env])  # never echoed, wherever it might show
    return {"user": os.environ[src.user_env], "password": os.environ[src.password_env]}


def _base(src: JdbcSource) -> str:
    return src.table if src.table is not None else f"({src.query}) AS lakeforge_query"


def literal(value: str, column: Column) -> str:
    """A stored watermark as a SQL literal of the column's type.

    Watermarks come from the database itself (a max), never from users; the
    checks make sure that stays true of whatever the log holds."""
    if column.type in ("timestamp", "date"):
        datetime.fromisoformat(value)  # raises on anything but a date/time
        return f"{column.type.upper()} '{value}'"
    if not _NUMBER.match(value):
        raise ValueError(f"watermark {value!r} of {column.name} is not a number")
    return value


def window(src: JdbcSource, low: str | None, high: str | None, column: Column | None) -> str:
    """The WHERE condition of the rows a batch reads (`true` for a full load)."""
    if src.watermark is None or column is None:
        return "1 = 1"
    parts = []
    if low is not None:
        parts.append(f"{src.watermark} > {literal(low, column)}")
    if high is not None:
        parts.append(f"{src.watermark} <= {literal(high, column)}")
    return " AND ".join(parts) or "1 = 1"


def text_of(value: Any) -> str | None:
    """A watermark value read back from the database, as stored in the log."""
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal | int):
        return str(value)
    raise ValueError(f"watermark value {value!r} is neither a number nor a date/time")


def root_cause(exc: BaseException) -> str:
    """The message of the innermost Java exception behind a Spark error."""
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    message = ""
    while java is not None:
        message = str(java.getMessage() or message)
        java = java.getCause()
    if not message:
        lines = str(exc).strip().splitlines()
        message = lines[0] if lines else repr(exc)
    return message.splitlines()[0] if message.strip() else repr(exc)


class Reader:
    """One configured database source; every call goes through `_load`, which
    turns driver errors into UnreadableInput without the password in it."""

    def __init__(self, spark: SparkSession, src: JdbcSource) -> None:
        self.spark = spark
        self.src = src
        self.secret = credentials(src)
        scrub_jvm_log(spark)  # the password is known only now: Spark's log hides it too

    def _options(self, dbtable: str) -> dict[str, str]:
        return {
            "url": self.src.url,
            "dbtable": dbtable,
            "driver": self.src.driver,
            "fetchsize": str(self.src.fetch_size),
            **self.secret,
        }

    def _load(self, dbtable: str, **extra: str) -> DataFrame:
        return self.spark.read.format("jdbc").options(**self._options(dbtable), **extra).load()

    def _collect(self, dbtable: str) -> list[Any]:
        try:
            row = self._load(dbtable).first()
        except SPARK_ERRORS as exc:
            raise self.error(exc) from None
        return list(row) if row is not None else []

    def plan(self, where: str) -> tuple[Any, int]:
        """(largest watermark, row count) of the rows past `where`: one small query."""
        column = self.src.watermark or "1"
        high, rows = self._collect(
            f"(SELECT max({column}) AS high, count(*) AS n FROM {_base(self.src)} "
            f"WHERE {where}) AS lakeforge_hw"
        )
        return high, int(rows)

    def uncovered(self, where: str) -> int:
        """Rows of the window that match none, or more than one, of the
        configured predicates: one query, so no row arriving in between can
        make a gap look covered."""
        hits = " + ".join(f"(CASE WHEN {p} THEN 1 ELSE 0 END)" for p in self.src.predicates)
        (rows,) = self._collect(
            f"(SELECT count(*) AS n FROM {_base(self.src)} WHERE ({where}) AND ({hits}) <> 1) "
            "AS lakeforge_cover"
        )
        return int(rows)

    def read(self, where: str) -> DataFrame:
        """The rows of the window, split across tasks as the config says (lazy)."""
        dbtable = f"(SELECT * FROM {_base(self.src)} WHERE {where}) AS lakeforge_src"
        part = self.src.partition
        try:
            if self.src.predicates:
                return self.spark.read.jdbc(
                    self.src.url,
                    dbtable,
                    predicates=self.src.predicates,
                    properties={
                        "driver": self.src.driver,
                        "fetchsize": str(self.src.fetch_size),
                        **self.secret,
                    },
                )
            if part is None:
                return self._load(dbtable)
            lower, upper = part.lower, part.upper
            if lower is None or upper is None:
                low, high = self._collect(
                    f"(SELECT min({part.column}) AS lo, max({part.column}) AS hi "
                    f"FROM {_base(self.src)} WHERE {where}) AS lakeforge_bounds"
                )
                lower = low if lower is None else lower
                upper = high if upper is None else upper
            if lower is None or upper is None:  # no rows: nothing to split
                return self._load(dbtable)
            return self._load(
                dbtable,
                partitionColumn=part.column,
                lowerBound=str(lower),
                upperBound=str(upper),
                numPartitions=str(part.num_partitions),
            )
        except SPARK_ERRORS as exc:
            raise self.error(exc) from None

    def error(self, exc: BaseException) -> UnreadableInput:
        """The database's own words (the root cause: "password authentication
        failed for user ...", "terminating connection ..."), credentials
        scrubbed, naming the source and where the credentials came from."""
        cause = root_cause(exc).replace(self.secret["password"], "***")
        return UnreadableInput(
            f"{label(self.src)}: {cause.strip()[:300]} "
            f"(credentials from ${self.src.user_env} / ${self.src.password_env})"
        )
