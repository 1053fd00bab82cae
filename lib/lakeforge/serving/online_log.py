"""The inference log: every answered record, appended to the Delta table
`NAME/online_predictions` in batches by a thread of its own, so that monitor
can measure online traffic as it measures a batch.

Written with delta-rs (the `deltalake` package): the server runs no JVM. The
request path only puts a reference on a bounded queue; a write that fails
(disk full, a conflicting writer, a table it cannot open) or a full queue
loses log rows, never an answer: they are counted and shown on /health.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from lakeforge.serving.signature import Signature

log = logging.getLogger(__name__)

SOURCE = "online"


def batch_id(day: date) -> str:
    """Online traffic is monitored per UTC day: `online-2026-12-04`."""
    return f"{SOURCE}-{day.isoformat()}"


@dataclass(frozen=True)
class Entry:
    name: str
    version: str
    run_id: str
    signature: Signature
    records: Sequence[Mapping[str, Any]]
    answers: Sequence[Mapping[str, Any]]
    received_at: datetime
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class Counts:
    rows_written: int = 0
    rows_lost: int = 0  # in a failed write or over the queue's capacity
    failed_writes: int = 0
    last_error: str | None = None


class OnlineLog:
    """Appends answered records to the Delta table at `path`."""

    def __init__(
        self,
        path: str,
        *,
        flush_seconds: float = 5.0,
        flush_rows: int = 20_000,  # requests (of one or more records) per commit
        capacity: int = 100_000,
    ) -> None:
        self.path = path
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self.counts = Counts()
        self._queue: queue.Queue[Entry] = queue.Queue(maxsize=capacity)
        self._stop = threading.Event()
        self._writing = threading.Lock()  # one writer: the thread, or close()
        self._counting = threading.Lock()  # never held while writing
        # pyarrow's first timestamp array loads the time zone database (~0.25 s
        # holding the GIL): paid here, before the server takes a request
        pa.array([datetime(2000, 1, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))
        self._thread = threading.Thread(target=self._run, name="online-log", daemon=True)
        self._thread.start()

    def append(self, entry: Entry) -> None:
        """Never blocks and never raises: a full queue counts the rows as lost."""
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            with self._counting:
                self.counts.rows_lost += len(entry.records)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.flush_seconds)
            # drain: traffic above flush_rows a tick must not fill the queue
            while self.flush() >= self.flush_rows:
                pass

    def flush(self) -> int:
        """Write up to `flush_rows` queued requests, one Delta commit per model
        version among them; how many requests it took off the queue."""
        with self._writing:
            entries: list[Entry] = []
            while len(entries) < self.flush_rows:
                try:
                    entries.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            by_version: dict[str, list[Entry]] = {}
            for entry in entries:
                by_version.setdefault(entry.run_id, []).append(entry)
            for group in by_version.values():
                self._write(group)
            return len(entries)

    def _write(self, entries: list[Entry]) -> None:
        rows = sum(len(e.records) for e in entries)
        try:
            from deltalake import write_deltalake

            # merge: a new model version may read other columns than the last
            write_deltalake(
                self.path,
                to_arrow(entries),
                mode="append",
                partition_by=["_batch_date"],
                schema_mode="merge",
            )
        except Exception as exc:  # the log must never take the server down
            message = str(exc).splitlines()[0][:300] if str(exc) else repr(exc)
            with self._counting:
                self.counts.rows_lost += rows
                self.counts.failed_writes += 1
                self.counts.last_error = message
            log.error("serve: inference log: %d row(s) not written: %s", rows, message)
            return
        with self._counting:
            self.counts.rows_written += rows
        log.info("serve: inference log: %d row(s) appended to %s", rows, self.path)

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        self._thread.join(timeout=self.flush_seconds + 30)
        while not self._queue.empty():
            before = self._queue.qsize()
            self.flush()
            if self._queue.qsize() >= before:
                break


def to_arrow(entries: Sequence[Entry]) -> pa.Table:
    """The log rows: the model's inputs (typed as silver holds them), the
    answer, and gold's lineage columns (the source is `online`, no version)."""
    signature = entries[0].signature
    columns: dict[str, list[Any]] = {name: [] for name in signature.names()}
    lineage: dict[str, list[Any]] = {
        k: []
        for k in (
            "prediction",
            "probability",
            "_model_name",
            "_model_version",
            "_run_id",
            "_source_table",
            "_source_version",
            "_batch_id",
            "_request_id",
            "_scored_at",
            "_batch_date",
        )
    }
    for entry in entries:
        day = entry.received_at.date()
        for record, answer in zip(entry.records, entry.answers, strict=True):
            for spec in signature.inputs:
                columns[spec.name].append(_stored(spec.kind, record.get(spec.name)))
            lineage["prediction"].append(answer["prediction"])
            lineage["probability"].append(answer.get("probability"))
            lineage["_model_name"].append(entry.name)
            lineage["_model_version"].append(entry.version)
            lineage["_run_id"].append(entry.run_id)
            lineage["_source_table"].append(SOURCE)
            lineage["_source_version"].append(None)
            lineage["_batch_id"].append(batch_id(day))
            lineage["_request_id"].append(entry.request_id)
            lineage["_scored_at"].append(entry.received_at)
            lineage["_batch_date"].append(day)
    types = {"number": pa.float64(), "int": pa.int64(), "string": pa.string(), "date": pa.date32()}
    arrays = {
        name: pa.array(values, types[spec.kind])
        for spec, (name, values) in zip(signature.inputs, columns.items(), strict=True)
    }
    arrays.update(
        {
            "prediction": pa.array(lineage["prediction"], pa.float64()),
            "probability": pa.array(lineage["probability"], pa.list_(pa.float64())),
            "_model_name": pa.array(lineage["_model_name"], pa.string()),
            "_model_version": pa.array(lineage["_model_version"], pa.string()),
            "_run_id": pa.array(lineage["_run_id"], pa.string()),
            "_source_table": pa.array(lineage["_source_table"], pa.string()),
            "_source_version": pa.array(lineage["_source_version"], pa.int64()),
            "_batch_id": pa.array(lineage["_batch_id"], pa.string()),
            "_request_id": pa.array(lineage["_request_id"], pa.string()),
            "_scored_at": pa.array(lineage["_scored_at"], pa.timestamp("us", tz="UTC")),
            "_batch_date": pa.array(lineage["_batch_date"], pa.date32()),
        }
    )
    return pa.table(arrays)


def _stored(kind: str, value: Any) -> Any:
    """A validated record value as the log stores it (the request passed
    signature.feeds, so the type is right or the value missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "int":
        return int(value)
    if kind == "number":
        return float(value)
    if kind == "date":
        return value if isinstance(value, date) else date.fromisoformat(value)
    return value
