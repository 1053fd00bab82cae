"""The record of an erasure (`lakeforge forget`): what was done to each table,
and the rows of the audit table `NAME/_forget_audit` that say so, one per
table per run. Who and when, the counts and versions, whether forced and
which pinned table versions it cost; of the request only a keyed reference
(`privacy.forget.request_reference`), never a value or its pseudonym.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from datetime import datetime

from pyspark.sql import types as T

AUDIT_SCHEMA = T.StructType(
    [
        T.StructField("forget_id", T.StringType(), False),
        T.StructField("requested_at", T.TimestampType(), False),
        T.StructField("requested_by", T.StringType(), False),
        T.StructField("dataset", T.StringType(), False),
        T.StructField("request_kind", T.StringType(), False),
        T.StructField("request_ref", T.StringType(), True),
        T.StructField("subjects", T.LongType(), False),
        T.StructField("table_name", T.StringType(), False),
        T.StructField("matched_on", T.StringType(), True),
        T.StructField("skipped", T.StringType(), True),
        T.StructField("rows_before", T.LongType(), True),
        T.StructField("rows_deleted", T.LongType(), True),
        T.StructField("rows_after", T.LongType(), True),
        T.StructField("version_before", T.LongType(), True),
        T.StructField("version_after", T.LongType(), True),
        T.StructField("history_purged", T.BooleanType(), False),
        T.StructField("files_deleted", T.LongType(), True),
        T.StructField("log_files_deleted", T.LongType(), True),
        T.StructField("forced", T.BooleanType(), False),
        T.StructField("pins_broken", T.ArrayType(T.StringType(), False), False),
    ]
)


@dataclass(frozen=True)
class TableForget:
    """What forget did to one table (`skipped` says why it did nothing)."""

    table: str
    name: str  # e.g. silver
    matched_on: tuple[str, ...] = ()
    skipped: str | None = None
    rows_before: int | None = None
    rows_deleted: int = 0
    rows_after: int | None = None
    version_before: int | None = None
    version_after: int | None = None
    history_purged: bool = False
    files_deleted: int = 0
    log_files_deleted: int = 0
    pins_broken: tuple[str, ...] = ()  # "silver version 3 (model people v2)"
    # why the table's erasure stopped after a commit (recorded in `skipped`)
    failed: str | None = None


@dataclass(frozen=True)
class ForgetResult:
    forget_id: str
    requested_at: datetime  # UTC
    request_kind: str  # where | keys
    request_ref: str | None
    subjects: int
    forced: bool
    tables: tuple[TableForget, ...] = field(default_factory=tuple)

    @property
    def rows_deleted(self) -> int:
        return sum(t.rows_deleted for t in self.tables)


def audit_rows(result: ForgetResult, dataset: str, user: str) -> list[tuple[object, ...]]:
    """The audit table's rows (AUDIT_SCHEMA) for `result`."""
    return [
        (
            result.forget_id,
            result.requested_at,
            user,
            dataset,
            result.request_kind,
            result.request_ref,
            result.subjects,
            t.name,
            ", ".join(t.matched_on) or None,
            t.skipped or t.failed,
            t.rows_before,
            None if t.skipped else t.rows_deleted,
            t.rows_after,
            t.version_before,
            t.version_after,
            t.history_purged,
            None if t.skipped else t.files_deleted,
            None if t.skipped else t.log_files_deleted,
            result.forced,
            list(t.pins_broken),
        )
        for t in result.tables
    ]


def requested_by() -> str:
    """The login name (`getpass.getuser()`: LOGNAME, USER, … or the account)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no such variable and no account entry
        return "unknown"
