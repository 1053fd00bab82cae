"""Which files a run ingests, as one numbered batch, and how a crashed batch resumes.

The ingest log is an append-only Delta table: a batch is `planned` (its files
listed) before bronze is written and `done` (with counts) after. A file whose
(path, size, checksum) is in a done batch is never read again. A batch left
planned by a crash is resumed with exactly the same files and sequence
number; since bronze appends carry that number as Delta's transaction
version, whatever the crashed run had committed is not written twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import types as T

from lakeforge.errors import ConfigError, InputNotFound
from lakeforge.ingest.files import InputFile

PLANNED, DONE, FAILED = "planned", "done", "failed"
# a batch id goes into the predicates clean and predict select rows by, and
# into the gold batch a pipeline writes: the characters predict accepts
BATCH_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

LOG_SCHEMA = T.StructType(
    [
        T.StructField("batch_seq", T.LongType(), False),
        T.StructField("batch_id", T.StringType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("file", T.StringType(), False),
        T.StructField("size", T.LongType(), False),
        T.StructField("checksum", T.StringType(), False),
        T.StructField("bronze_rows", T.LongType(), True),
        T.StructField("quarantined_rows", T.LongType(), True),
        T.StructField("recorded_at", T.TimestampType(), False),
        # how the batch's rows were protected (Protector.fingerprint); null
        # in a log written before lakeforge recorded it
        T.StructField("privacy", T.StringType(), True),
    ]
)


@dataclass(frozen=True)
class Batch:
    seq: int
    batch_id: str
    files: tuple[InputFile, ...]
    resumed: bool = False


def _identity(path: str, size: int, checksum: str) -> tuple[str, int, str]:
    return (path, int(size), checksum)


def plan_batch(
    log_rows: Iterable[Mapping[str, object]],
    found: Sequence[InputFile],
    batch_id: str | None,
    now: datetime,
) -> Batch | None:
    """The batch this run should ingest, or None when every found file is done.

    A pending (planned, never finished) batch comes first and keeps its id and
    files. Otherwise the new files form batch max(seq)+1, with `batch_id` or,
    without one, the UTC time of planning. Raises InputNotFound when a pending
    batch's file has vanished or changed.
    """
    rows = list(log_rows)
    finished = {int(r["batch_seq"]) for r in rows if r["status"] in (DONE, FAILED)}  # type: ignore[call-overload]
    pending = sorted(
        {int(r["batch_seq"]) for r in rows if r["status"] == PLANNED} - finished  # type: ignore[call-overload]
    )
    by_identity = {_identity(f.path, f.size, f.checksum): f for f in found}
    if pending:
        seq = pending[0]
        planned = [r for r in rows if r["status"] == PLANNED and r["batch_seq"] == seq]
        files = []
        for r in planned:
            key = _identity(str(r["file"]), int(r["size"]), str(r["checksum"]))  # type: ignore[call-overload]
            if key not in by_identity:
                raise InputNotFound(
                    f"batch {r['batch_id']} (#{seq}) did not finish and its file {r['file']} "
                    "is gone or changed; restore it so the batch can complete"
                )
            files.append(by_identity[key])
        return Batch(seq, str(planned[0]["batch_id"]), tuple(files), resumed=True)
    done = {
        _identity(str(r["file"]), int(r["size"]), str(r["checksum"]))  # type: ignore[call-overload]
        for r in rows
        if r["status"] == DONE
    }
    new = [f for f in found if _identity(f.path, f.size, f.checksum) not in done]
    if not new:
        return None
    seq = max((int(r["batch_seq"]) for r in rows), default=0) + 1  # type: ignore[call-overload]
    return Batch(seq, new_batch_id(rows, batch_id, now, seq), tuple(new))


def new_batch_id(
    log_rows: Iterable[Mapping[str, object]], batch_id: str | None, now: datetime, seq: int
) -> str:
    """The id of a new batch: `batch_id`, refused when an earlier batch has it
    (clean and predict select rows by it, so a second batch under the same id
    would be taken as already cleaned and its rows stranded in bronze); by
    default the UTC time of planning, with `-<seq>` added when a batch of the
    same second has it already. A failed batch's id is free again: it wrote
    nothing to bronze."""
    rows = list(log_rows)
    failed = {r["batch_seq"] for r in rows if r["status"] == FAILED}
    used = {str(r["batch_id"]) for r in rows if r["batch_seq"] not in failed}
    if batch_id is not None and not BATCH_ID.match(batch_id):
        raise ConfigError(f"--batch-id {batch_id!r}: use letters, digits and _ . : - only")
    if batch_id is not None:
        if batch_id in used:
            raise ConfigError(
                f"--batch-id {batch_id!r} names an earlier batch; each batch needs a new id "
                "(leave --batch-id out for a time-based one)"
            )
        return batch_id
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    return stamp if stamp not in used else f"{stamp}-{seq}"


def log_rows_for(
    batch: Batch,
    status: str,
    now: datetime,
    counts: Mapping[str, tuple[int, int]] | None = None,
    privacy: str | None = None,
) -> list[tuple[object, ...]]:
    """Rows of LOG_SCHEMA recording `batch` in `status`; counts per file when
    done; `privacy`: the protector's fingerprint."""
    counts = counts or {}
    out: list[tuple[object, ...]] = []
    for f in batch.files:
        bronze, quarantined = counts.get(f.path, (0, 0)) if status == DONE else (None, None)
        out.append(
            (
                batch.seq,
                batch.batch_id,
                status,
                f.path,
                f.size,
                f.checksum,
                bronze,
                quarantined,
                now,
                privacy,
            )
        )
    return out


# Database sources: one row per batch and status, with the watermark window.
JDBC_LOG_SCHEMA = T.StructType(
    [
        T.StructField("batch_seq", T.LongType(), False),
        T.StructField("batch_id", T.StringType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("source", T.StringType(), False),
        T.StructField("low", T.StringType(), True),
        T.StructField("high", T.StringType(), True),
        T.StructField("bronze_rows", T.LongType(), True),
        T.StructField("quarantined_rows", T.LongType(), True),
        T.StructField("recorded_at", T.TimestampType(), False),
        # how the batch's rows were protected (Protector.fingerprint); null
        # in a log written before lakeforge recorded it
        T.StructField("privacy", T.StringType(), True),
    ]
)


@dataclass(frozen=True)
class Window:
    """A database batch: rows with low < watermark <= high (None: unbounded)."""

    seq: int
    batch_id: str
    low: str | None
    high: str | None
    resumed: bool = False


def pending_window(log_rows: Iterable[Mapping[str, object]]) -> Window | None:
    """The window of a batch planned but never finished (a crashed run), if any."""
    rows = list(log_rows)
    finished = {r["batch_seq"] for r in rows if r["status"] in (DONE, FAILED)}
    for r in sorted(rows, key=lambda r: int(r["batch_seq"])):  # type: ignore[call-overload]
        if r["status"] == PLANNED and r["batch_seq"] not in finished:
            low, high = r["low"], r["high"]
            return Window(
                int(r["batch_seq"]),  # type: ignore[call-overload]
                str(r["batch_id"]),
                None if low is None else str(low),
                None if high is None else str(high),
                resumed=True,
            )
    return None


def last_high(log_rows: Iterable[Mapping[str, object]]) -> str | None:
    """Where the next window starts: the high of the latest finished (done) batch."""
    done = [r for r in log_rows if r["status"] == DONE and r["high"] is not None]
    if not done:
        return None
    latest = max(done, key=lambda r: int(r["batch_seq"]))  # type: ignore[call-overload]
    return str(latest["high"])


def next_seq(log_rows: Iterable[Mapping[str, object]]) -> int:
    return max((int(r["batch_seq"]) for r in log_rows), default=0) + 1  # type: ignore[call-overload]


def recorded_protection(log_rows: Iterable[Mapping[str, object]]) -> list[str | None]:
    """The privacy fingerprints of the batches that may have written bronze
    (all but those recorded as failed, which fail before bronze commits),
    oldest first."""
    rows = list(log_rows)
    failed = {r["batch_seq"] for r in rows if r["status"] == FAILED}
    kept = [r for r in rows if r["batch_seq"] not in failed]
    ordered = sorted(kept, key=lambda r: (int(str(r["batch_seq"])), str(r["recorded_at"])))
    return [None if r.get("privacy") is None else str(r["privacy"]) for r in ordered]
