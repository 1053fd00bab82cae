"""Delta reads and writes: the only module that writes a table.

Appends are idempotent when given a transaction id: Delta records
(`txnAppId`, `txnVersion`) in the commit and skips a later write with a
version it has already seen, so a job re-run after a crash adds nothing twice.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import delta.exceptions as delta_errors
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
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


def count(spark: SparkSession, path: str) -> int:
    """Rows in the table at `path` (0 when there is no table); Delta answers from its
    file statistics without scanning the data."""
    return read(spark, path).count() if is_table(spark, path) else 0


def read(spark: SparkSession, path: str, as_of: int | None = None) -> DataFrame:
    """The table at `path`, optionally as of an earlier version (time travel)."""
    reader = spark.read.format("delta")
    if as_of is not None:
        reader = reader.option("versionAsOf", as_of)
    return reader.load(path)


def append(
    df: DataFrame,
    path: str,
    *,
    app_id: str | None = None,
    txn_version: int | None = None,
    merge_schema: bool = False,
) -> None:
    """Append `df` to the table at `path` (created if absent).

    With `app_id` and `txn_version` the append happens exactly once: Delta skips
    a later write with a (`app_id`, `txn_version`) it has already committed.
    `txn_version` must come from the input (a batch sequence), never the clock.
    Two such appends racing with the same transaction id conflict; the loser is
    retried and then finds the version committed, so it adds nothing.
    Schema changes are rejected by Delta unless `merge_schema` (new columns
    only, an explicit configured choice).
    """

    def attempt() -> None:
        writer = df.write.format("delta").mode("append")
        if app_id is not None and txn_version is not None:
            writer = writer.option("txnAppId", app_id).option("txnVersion", txn_version)
        if merge_schema:
            writer = writer.option("mergeSchema", "true")
        writer.save(path)

    if app_id is None:
        attempt()  # blind appends do not conflict with each other
    else:
        with_retry(attempt, what=f"append to {path}")


def replace_where(
    df: DataFrame, path: str, predicate: str, partition_by: Sequence[str] = ()
) -> None:
    """Replace the rows of the table at `path` matching `predicate` with `df`
    (created, partitioned by `partition_by`, if absent) in one atomic commit:
    re-running a batch replaces it instead of adding it twice. Conflicting
    concurrent writers are retried with backoff."""
    spark = df.sparkSession

    def attempt() -> None:
        writer = df.write.format("delta")
        if not is_table(spark, path):
            writer.mode("errorifexists").partitionBy(*partition_by).save(path)
        else:
            writer.mode("overwrite").option("replaceWhere", predicate).save(path)

    with_retry(attempt, what=f"replace {predicate} in {path}")


@dataclass(frozen=True)
class MergeCounts:
    inserted: int
    updated: int
    # the source rows MERGE read, from its commit's metrics (None: the MERGE
    # changed nothing, so Delta committed no version to read them from)
    source: int | None = None


def upsert(df: DataFrame, path: str, keys: Sequence[str], compare: Sequence[str]) -> MergeCounts:
    """MERGE `df` into the table at `path` on `keys` (null-safe), creating it if absent.

    A matched row is updated only when a `compare` column differs, so merging
    the same rows again changes nothing (no new table version). Concurrent
    writers that conflict are retried a few times with backoff.
    """
    spark = df.sparkSession
    on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    differs = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in compare) or "false"

    def attempt() -> MergeCounts:
        if not is_table(spark, path):
            df.write.format("delta").mode("errorifexists").save(path)
            created = commit_metrics(spark, path, 0, "WRITE")
            return MergeCounts(int(created["numOutputRows"]), 0, int(created["numOutputRows"]))
        before = version(spark, path)
        metrics = (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(df.alias("s"), on)
            .whenMatchedUpdateAll(condition=differs)
            .whenNotMatchedInsertAll()
            .execute()
            .first()
        )
        if metrics is None:
            return MergeCounts(0, 0)
        values = metrics.asDict()
        inserted, updated = int(values["num_inserted_rows"]), int(values["num_updated_rows"])
        source = None
        if inserted or updated:
            committed = _merge_commit(spark, path, before, inserted, updated)
            if committed is None:
                log.warning("MERGE into %s: its commit cannot be told from another's", path)
            else:
                source = int(committed["numSourceRows"])
        return MergeCounts(inserted, updated, source)

    return with_retry(attempt, what=f"MERGE into {path}")


def undo(spark: SparkSession, path: str, commit: int) -> bool:
    """Undo `commit` of the table at `path` by restoring the version before it
    (a RESTORE commit; time travel still shows the undone one), only while it
    is the table's latest commit: a later one is another writer's, and is not
    thrown away. True when undone."""
    if commit < 1 or version(spark, path) != commit:
        return False
    DeltaTable.forPath(spark, path).restoreToVersion(commit - 1)
    return True


def commit_metrics(spark: SparkSession, path: str, at: int, operation: str) -> dict[str, str]:
    """The operation metrics Delta recorded for version `at` of the table,
    checked to be an `operation` commit."""
    entry = DeltaTable.forPath(spark, path).history().where(f"version = {at}").first()
    if entry is None or entry["operation"] != operation:
        found = None if entry is None else entry["operation"]
        raise RuntimeError(f"{path}: version {at} is {found}, expected a {operation} commit")
    return dict(entry["operationMetrics"] or {})


def _merge_commit(
    spark: SparkSession, path: str, before: int | None, inserted: int, updated: int
) -> dict[str, str] | None:
    """Our MERGE's commit metrics: the MERGE after `before` whose inserted and
    updated counts are the ones our MERGE returned. Another writer's MERGE may
    have committed in between; when more than one commit could be ours, None
    (the caller then has no independent source count, and says so)."""
    candidates = [
        dict(r["operationMetrics"] or {})
        for r in DeltaTable.forPath(spark, path)
        .history()
        .where(f"version > {-1 if before is None else before} AND operation = 'MERGE'")
        .collect()
    ]
    ours = [
        m
        for m in candidates
        if int(m.get("numTargetRowsInserted", -1)) == inserted
        and int(m.get("numTargetRowsUpdated", -1)) == updated
    ]
    return ours[0] if len(ours) == 1 else None


T = TypeVar("T")
# Delta's commit conflicts, as the typed exceptions delta-spark converts
# them to (importing `delta.exceptions` installs that conversion), plus a
# table created by another writer between our "does it exist" and our create
# (an AnalysisException of condition DELTA_PATH_EXISTS).
_CONFLICTS: tuple[type[BaseException], ...] = (
    delta_errors.DeltaConcurrentModificationException,
    delta_errors.ConcurrentWriteException,
    delta_errors.ConcurrentAppendException,
    delta_errors.ConcurrentDeleteReadException,
    delta_errors.ConcurrentDeleteDeleteException,
    delta_errors.ConcurrentTransactionException,
    delta_errors.MetadataChangedException,
    delta_errors.ProtocolChangedException,
)
_CREATED_MEANWHILE = "DELTA_PATH_EXISTS"


def is_conflict(exc: BaseException) -> bool:
    """A conflict another writer caused, which a retry on the new table
    version resolves; judged by the exception's type or error condition,
    never by its text (a value in a message could say anything)."""
    if isinstance(exc, _CONFLICTS):
        return True
    return isinstance(exc, AnalysisException) and exc.getCondition() == _CREATED_MEANWHILE


def with_retry(action: Callable[[], T], *, what: str, attempts: int = 4) -> T:
    """Run a read-modify-write Delta operation, retrying Delta's concurrent-modification
    conflicts with exponential backoff; other errors and the last conflict propagate."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if attempt == attempts or not is_conflict(exc):
                raise
            # exponential, with jitter so that two losers do not collide again
            delay = 0.5 * 2 ** (attempt - 1) * (1 + random.random())
            log.warning(
                "%s: concurrent write conflict, retry %d/%d in %.1fs",
                what,
                attempt,
                attempts - 1,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")
