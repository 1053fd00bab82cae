"""Delta table upkeep: compaction (OPTIMIZE), VACUUM, and the table properties
that decide what VACUUM, Delta's log cleanup and time travel allow.

VACUUM with a retention of H hours deletes every file under the table that
the current version does not read, that was written more than H hours ago and
whose removal (tombstone) is older than H hours or no longer in the table's
state: a checkpoint drops tombstones older than the table's
`delta.deletedFileRetentionDuration`, so for an old enough removal the file's
own age is all that keeps it. H is that same property: Delta 4.4 ignores a
retention given to VACUUM itself unless it is 0
(`spark.databricks.delta.vacuum.retentionWindowIgnore.enabled`). Delta's
log cleanup deletes commits older than `delta.logRetentionDuration` (at a
checkpoint), and Delta refuses time travel to a version older than
`delta.deletedFileRetentionDuration`: reading an old version back needs its
files, its log and both properties.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.storage import delta

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(//[^/]*)?")

FILE_RETENTION = "delta.deletedFileRetentionDuration"
LOG_RETENTION = "delta.logRetentionDuration"
# Delta's defaults when a table does not set them
DEFAULT_FILE_RETENTION_HOURS = 168
DEFAULT_LOG_RETENTION_HOURS = 720
# VACUUM refuses a retention below the table's file retention while this is on
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
# time travel past the table's file retention is refused while this is on
TIME_TRAVEL_CHECK = (
    "spark.databricks.delta.vacuum.enforceTimeTravelWithinDeletedFileRetentionDuration"
)


def tables_in(spark: SparkSession, folder: str) -> list[str]:
    """The Delta tables directly under `folder` (a dataset's folder of the
    lakehouse), as `folder/name`, sorted; none when the folder does not exist."""
    fs, root = _fs(spark, folder)
    if not fs.exists(root):
        return []
    found = []
    for status in fs.listStatus(root):
        path = f"{folder.rstrip('/')}/{status.getPath().getName()}"
        if status.isDirectory() and delta.is_table(spark, path):
            found.append(path)
    return sorted(found)


def data_files(spark: SparkSession, table: str) -> dict[str, int]:
    """Every file under the table except its log, by path relative to the
    table, with its modification time (ms): what VACUUM lists and judges."""
    fs, root = _fs(spark, table)
    base = _relative_base(root.toUri().getPath())
    files: dict[str, int] = {}
    listing = fs.listFiles(root, True)
    while listing.hasNext():
        status = listing.next()
        relative = str(status.getPath().toUri().getPath())[len(base) :]
        if not relative.startswith("_delta_log/"):
            files[relative] = int(status.getModificationTime())
    return files


def files_read(spark: SparkSession, table: str, version: int | None = None) -> set[str]:
    """The data files (relative to the table) that `version` of the table
    reads (the latest when None), from the log alone, however old the version
    is. Raises Spark's error when that version is not in the log any more."""
    base = _relative_base(_fs(spark, table)[1].toUri().getPath())
    # Delta refuses time travel past the file retention; such a version may
    # still have every file, and maintain must know which
    with _session_conf(spark, TIME_TRAVEL_CHECK, "false"):
        uris = delta.read(spark, table, as_of=version).inputFiles()
    # Spark gives paths with their scheme, not URIs: "d=a b%3Ac" is the folder's name
    return {_SCHEME.sub("", path)[len(base) :] for path in uris}


def commit_times(spark: SparkSession, table: str) -> dict[int, int]:
    """Commit time (epoch ms) of every version still in the table's log."""
    rows = (
        DeltaTable.forPath(spark, table)
        .history()
        .select("version", F.unix_millis("timestamp").alias("ms"))
        .collect()
    )
    return {int(r["version"]): int(r["ms"]) for r in rows}


def properties(spark: SparkSession, table: str) -> dict[str, str]:
    row = DeltaTable.forPath(spark, table).detail().select("properties").first()
    return dict(row["properties"] or {}) if row else {}


def set_retention(spark: SparkSession, table: str, *, file_hours: int, log_hours: int) -> bool:
    """Set the table's file and log retention properties to these hours (one
    commit), unless it holds them already. Returns True when it committed."""
    wanted = {
        FILE_RETENTION: f"interval {file_hours} hours",
        LOG_RETENTION: f"interval {log_hours} hours",
    }
    current = properties(spark, table)
    defaults = {
        FILE_RETENTION: f"interval {DEFAULT_FILE_RETENTION_HOURS} hours",
        LOG_RETENTION: f"interval {DEFAULT_LOG_RETENTION_HOURS} hours",
    }
    if all(current.get(k, defaults[k]) == v for k, v in wanted.items()):
        return False
    _alter_properties(spark, table, wanted)
    return True


def optimize(spark: SparkSession, table: str) -> tuple[int, int]:
    """Compact the table's small files (OPTIMIZE); (files removed, files added).
    Earlier versions keep their files until VACUUM."""
    row = DeltaTable.forPath(spark, table).optimize().executeCompaction().first()
    if row is None or row["metrics"] is None:
        return 0, 0
    return int(row["metrics"]["numFilesRemoved"]), int(row["metrics"]["numFilesAdded"])


def vacuum(spark: SparkSession, table: str, hours: int) -> None:
    """VACUUM the table with a retention of `hours`, which must be the table's
    `delta.deletedFileRetentionDuration` (`set_retention`): Delta 4.4 uses the
    property and ignores the argument unless it is 0, or unless the session
    turned `retentionWindowIgnore` off (then it refuses less than the property
    while its retention check is on)."""
    # VACUUM lists the table in as many tasks as partition discovery may use
    # (10,000 by default): a minute of empty tasks for a small table on 2 cores
    cores = spark.sparkContext.defaultParallelism
    listing = min(int(spark.conf.get(LISTING_PARALLELISM, "10000") or 10000), cores)
    with _session_conf(spark, LISTING_PARALLELISM, str(listing)):
        DeltaTable.forPath(spark, table).vacuum(float(hours))


def retention_check_enabled(spark: SparkSession) -> bool:
    return str(spark.conf.get(RETENTION_CHECK, "true")).strip().lower() != "false"


@contextmanager
def _session_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """`key` = `value` in the session for the block, then as it was."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def _alter_properties(spark: SparkSession, table: str, values: dict[str, str]) -> None:
    """`ALTER TABLE ... SET TBLPROPERTIES`, run as the Delta command itself:
    delta-spark's Python API has no call for it, and lakeforge builds no SQL
    statements (see lakeforge.sqlguard)."""
    jvm: Any = spark._jvm
    session: Any = spark._jsparkSession
    to_map = jvm.org.apache.spark.api.python.PythonUtils.toScalaMap
    target = jvm.org.apache.spark.sql.delta.catalog.DeltaTableV2.apply(
        session, jvm.org.apache.hadoop.fs.Path(table), to_map({}), "maintain"
    )
    command = jvm.org.apache.spark.sql.delta.commands.AlterTableSetPropertiesDeltaCommand(
        target, to_map(values)
    )
    command.run(session)


def _fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    jvm: Any = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark._jsc.hadoopConfiguration()), hpath


def _relative_base(path: str) -> str:
    return path.rstrip("/") + "/"
