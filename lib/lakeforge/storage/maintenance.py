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
from functools import reduce
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.errors import SPARK_ERRORS
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


def history_text(spark: SparkSession, table: str) -> DataFrame | None:
    """Everything the table keeps besides its latest version's rows, as text
    (one column, `text`): each row of every data file under the table that
    the latest version does not read (as JSON), each line of its log's
    commits and checksums, each row of its checkpoints (as JSON). None when
    there is none of it. What `lakeforge forget` searches for a subject's
    values, to know whether the table's history must go too."""
    current = files_read(spark, table)
    old = sorted(f for f in data_files(spark, table) if f.endswith(".parquet") and f not in current)
    log = _log_files(spark, table)
    frames = []
    if old:
        frames.append(_parquet_text(spark, [_join(table, f) for f in old]))
    lines = [p for _, p in log if p.endswith((".json", ".crc"))]
    if lines:
        frames.append(spark.read.text(lines).select(F.col("value").alias("text")))
    checkpoints = [p for _, p in log if p.endswith(".parquet")]
    if checkpoints:
        frames.append(_parquet_text(spark, checkpoints))
    return reduce(DataFrame.unionByName, frames) if frames else None


def purge_history(spark: SparkSession, table: str) -> tuple[int, int]:
    """Keep only the latest version of the table: VACUUM with a retention of
    0 hours (Delta's retention check turned off for the call), then a
    checkpoint of the latest version and every log file (commit, checksum,
    checkpoint) of an earlier version deleted, as Delta's own log cleanup
    does for expired ones (it keeps whatever is younger than the day it
    runs on, whatever the table's `delta.logRetentionDuration`). No earlier
    version can be read back afterwards. Returns (data files deleted, log
    files deleted).

    Run it when nothing else writes the table: a writer's files not yet
    committed are older than 0 hours too.
    """
    before = len(data_files(spark, table))
    with _session_conf(spark, RETENTION_CHECK, "false"):
        vacuum(spark, table, 0)
    deleted = before - len(data_files(spark, table))
    jvm: Any = spark._jvm
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, table)
    none = jvm.scala.Option.empty()
    snapshot = delta_log.update(False, none, none)
    delta_log.checkpoint(snapshot, none)
    latest = int(snapshot.version())
    fs, _ = _fs(spark, table)
    dropped = 0
    for version, path in _log_files(spark, table):
        if version is not None and version < latest:
            dropped += bool(fs.delete(jvm.org.apache.hadoop.fs.Path(path), False))
    jvm.org.apache.spark.sql.delta.DeltaLog.invalidateCache(
        spark._jsparkSession, jvm.org.apache.hadoop.fs.Path(table)
    )
    return deleted, dropped


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


# a log file's version: `N.json`, `N.crc`, `N.checkpoint[.…].parquet`, and the
# end version of a compacted `M.N.compacted.json`
_LOG_VERSION = re.compile(r"^(\d{20})(?:\.(\d{20}))?\.")


def _log_files(spark: SparkSession, table: str) -> list[tuple[int | None, str]]:
    """(version or None, path) of every file of the table's log folder and
    of its staged commits (what coordinated commits write before the log)."""
    fs, root = _fs(spark, table)
    found: list[tuple[int | None, str]] = []
    for folder in ("_delta_log", "_delta_log/_staged_commits"):
        path = root.suffix(f"/{folder}")
        if not fs.exists(path):
            continue
        for status in fs.listStatus(path):
            if status.isDirectory():
                continue
            name = str(status.getPath().getName())
            match = _LOG_VERSION.match(name)
            version = int(match.group(2) or match.group(1)) if match else None
            found.append((version, f"{table.rstrip('/')}/{folder}/{name}"))
    return found


def _parquet_text(spark: SparkSession, paths: list[str]) -> DataFrame:
    """The rows of parquet files as JSON text: read together (schemas
    merged), or one by one when their types disagree."""
    try:
        frame = spark.read.option("mergeSchema", "true").parquet(*paths)
    except SPARK_ERRORS:
        return reduce(DataFrame.unionByName, [_as_text(spark.read.parquet(p)) for p in paths])
    return _as_text(frame)


def _as_text(df: DataFrame) -> DataFrame:
    return df.select(F.to_json(F.struct(F.col("*"))).alias("text"))


def _join(table: str, relative: str) -> str:
    return f"{table.rstrip('/')}/{relative}"


def _fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    jvm: Any = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark._jsc.hadoopConfiguration()), hpath


def _relative_base(path: str) -> str:
    return path.rstrip("/") + "/"
