"""Delta reads and writes: the only module that writes a table.

Appends are idempotent when given a transaction id: Delta records
(`txnAppId`, `txnVersion`) in the commit and skips a later write with a
version it has already seen, so a job re-run after a crash adds nothing twice.
"""

from __future__ import annotations

import logging

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def is_table(spark: SparkSession, path: str) -> bool:
    return bool(DeltaTable.isDeltaTable(spark, path))


def version(spark: SparkSession, path: str) -> int | None:
    """The latest committed version of the table at `path`, None if there is none."""
    if not is_table(spark, path):
        return None
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return None if row is None else int(row["version"])


def read(spark: SparkSession, path: str, as_of: int | None = None) -> DataFrame:
    """The table at `path`, optionally as of an earlier version (time travel)."""
    reader = spark.read.format("delta")
    if as_of is not None:
        reader = reader.option("versionAsOf", as_of)
    return reader.load(path)


def append(
    df: DataFrame, path: str, *, app_id: str | None = None, txn_version: int | None = None
) -> None:
    """Append `df` to the table at `path` (created if absent).

    With `app_id` and `txn_version` the append happens exactly once: Delta skips
    a later write with a (`app_id`, `txn_version`) it has already committed.
    `txn_version` must come from the input (a batch sequence), never the clock.
    Schema changes are rejected by Delta (no silent evolution).
    """
    writer = df.write.format("delta").mode("append")
    if app_id is not None and txn_version is not None:
        writer = writer.option("txnAppId", app_id).option("txnVersion", txn_version)
    writer.save(path)
