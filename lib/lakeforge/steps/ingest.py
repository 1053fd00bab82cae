"""Ingest: raw files → bronze Delta table, unparseable rows → bronze quarantine.

Bronze keeps the declared source columns plus lineage (`_batch_id`,
`_source_file`, `_ingested_at`); the quarantine keeps the dataset's keys (null
where a row did not split into fields), the raw text, the reason and the same
lineage. Counts are reconciled on what was committed: rows read = bronze rows
+ quarantined rows of the batch, or the job fails.

Personal data: the dataset's `privacy:` block is applied to the rows of every
kind of source (files and databases) before anything is written, so bronze's
schema is the protected one (lakeforge.privacy.protect), and the quarantine's
raw text follows the same rule (lakeforge.ingest.parse.type_rows). The PII
scan (lakeforge.privacy.scan) runs on the protected rows before the first
write; under `privacy.undeclared: fail` a finding stops the batch there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config import JobConfig
from lakeforge.config.models import JdbcSource
from lakeforge.errors import (
    SPARK_ERRORS,
    ConfigError,
    LakeforgeError,
    ReconciliationError,
    SchemaMismatch,
    UndeclaredPersonalData,
    UnreadableInput,
)
from lakeforge.ingest import batches, files, jdbc, parse
from lakeforge.logs import timed
from lakeforge.privacy import scan
from lakeforge.privacy.protect import Protector
from lakeforge.spark import scrub_jvm_log
from lakeforge.storage import delta
from lakeforge.storage.paths import Tables, tables_for

log = logging.getLogger(__name__)

APP_ID = "lakeforge.ingest"
BATCH_ID, INGESTED_AT = "_batch_id", "_ingested_at"
_UNREADABLE = (
    "EOFException",
    "Unexpected end of input stream",
    "not in the GZIP format",
    "ZipException",
    "BZip2",
    "MalformedInputException",
    "CompressorException",
)


@dataclass(frozen=True)
class IngestResult:
    """What one ingest run did; `batch_id` is None when there was nothing new."""

    batch_id: str | None
    files: int
    skipped_files: int
    rows_read: int
    bronze_rows: int
    quarantined_rows: int
    bronze_version: int | None


@dataclass(frozen=True)
class _Counts:
    rows_read: int
    bronze_rows: int
    quarantined_rows: int
    per_file: dict[str, tuple[int, int]]


def run(
    spark: SparkSession, cfg: JobConfig, input_path: str | None = None, batch_id: str | None = None
) -> IngestResult:
    """Ingest the new files at `input_path` (default: the dataset's source path).

    Raises InputNotFound (no such path, empty folder), SchemaMismatch (header
    or Parquet schema differs), UnreadableInput (bad compression),
    ReconciliationError (counts do not add up), ConfigError (the privacy
    key's variable is unset or short), UndeclaredPersonalData (the PII scan
    found an undeclared personal column under `privacy.undeclared: fail`).
    No file is planned, and nothing written, before the batch has passed the
    header and schema checks; nothing reaches bronze before the PII scan.
    """
    dataset = cfg.dataset
    tables = tables_for(cfg.settings, dataset.name)
    now = datetime.now(UTC).replace(tzinfo=None)
    types = {c.name: c.type for c in dataset.source.columns}
    protector = Protector.load(dataset.privacy, dataset.name, types)  # before any write
    if protector.key is not None:
        scrub_jvm_log(spark)  # the key is known only now: Spark's log hides it too
    if dataset.source.jdbc is not None:
        if input_path is not None:
            raise ConfigError("--input is for file sources; this dataset reads a database")
        return _run_jdbc(spark, cfg, tables, dataset.source.jdbc, batch_id, now, protector)
    assert dataset.source.path is not None  # checked by the config model
    location = files.resolve_source_path(input_path or dataset.source.path)

    log_rows = _read_log(spark, tables)
    # rows protected otherwise than bronze's earlier ones are refused first,
    # before a zip is extracted (a clear copy) or anything is logged
    protector.check_same_as(batches.recorded_protection(log_rows), dataset.name)
    with timed(log, "ingest: list") as stats:
        found = files.identify(files.list_files(spark, location), tables.staging)
        stats.update(input=location, files=len(found))
    batch = batches.plan_batch(log_rows, found, batch_id, now)
    if batch is None:
        log.info("ingest: nothing new (%d file(s) already ingested)", len(found))
        files.remove_extracts(found, tables.staging)
        return IngestResult(None, 0, len(found), 0, 0, 0, delta.version(spark, tables.bronze))
    if batch.resumed:
        log.warning("ingest: resuming unfinished batch %s (#%d)", batch.batch_id, batch.seq)
    headers = _precheck(spark, cfg, batch)
    if not batch.resumed:
        _append_log(
            spark,
            tables,
            batches.log_rows_for(batch, batches.PLANNED, now, privacy=protector.fingerprint),
        )

    with timed(log, f"ingest: batch {batch.batch_id}") as stats:
        counts = _write_batch(spark, cfg, tables, batch, now, headers, protector)
        stats.update(
            files=len(batch.files),
            read=counts.rows_read,
            bronze=counts.bronze_rows,
            quarantined=counts.quarantined_rows,
        )
    _append_log(
        spark,
        tables,
        batches.log_rows_for(
            batch, batches.DONE, now, counts.per_file, privacy=protector.fingerprint
        ),
    )
    files.remove_extracts(found, tables.staging)  # committed: no clear copy stays
    return IngestResult(
        batch_id=batch.batch_id,
        files=len(batch.files),
        skipped_files=len(found) - len(batch.files),
        rows_read=counts.rows_read,
        bronze_rows=counts.bronze_rows,
        quarantined_rows=counts.quarantined_rows,
        bronze_version=delta.version(spark, tables.bronze),
    )


def _run_jdbc(
    spark: SparkSession,
    cfg: JobConfig,
    tables: Tables,
    src: JdbcSource,
    batch_id: str | None,
    now: datetime,
    protector: Protector,
) -> IngestResult:
    """One batch from a database: the pending window again after a crash, else
    the rows past the last stored watermark up to the current maximum."""
    log_rows = _read_jdbc_log(spark, tables)
    reader = jdbc.Reader(spark, src)
    columns = {c.name: c for c in cfg.dataset.source.columns}
    mark = columns.get(src.watermark) if src.watermark else None
    # rows protected otherwise than bronze's earlier ones are refused first
    protector.check_same_as(batches.recorded_protection(log_rows), cfg.dataset.name)
    window = batches.pending_window(log_rows)
    if window is not None:
        log.warning("ingest: resuming unfinished batch %s (#%d)", window.batch_id, window.seq)
    else:
        low = batches.last_high(log_rows)
        with timed(log, "ingest: plan") as stats:
            high, pending = reader.plan(jdbc.window(src, low, None, mark))
            stats.update(source=jdbc.label(src), after=low, up_to=jdbc.text_of(high), rows=pending)
        if pending == 0:
            log.info("ingest: nothing new in %s after %s", jdbc.label(src), low)
            return IngestResult(None, 0, 0, 0, 0, 0, delta.version(spark, tables.bronze))
        seq = batches.next_seq(log_rows)
        window = batches.Window(
            seq,
            batches.new_batch_id(log_rows, batch_id, now, seq),
            low,
            jdbc.text_of(high) if mark is not None else None,
        )
        _append_jdbc_log(spark, tables, src, window, batches.PLANNED, now, protector)

    def failed() -> None:
        _append_jdbc_log(spark, tables, src, window, batches.FAILED, now, protector)

    with timed(log, f"ingest: batch {window.batch_id}") as stats:
        where = jdbc.window(src, window.low, window.high, mark)
        try:
            # Resolving the schema is a query too: a connection dropped there
            # (or a type mismatch) fails the batch as much as one mid-read.
            raw = reader.read(where)
            parse.check_types(jdbc.label(src), raw.schema, cfg.dataset.source.columns)
            # predicates may leave rows out (a NULL region matches neither
            # `region = 'EU'` nor `region <> 'EU'`) or read one twice: the
            # database counts the window's rows they do not cover exactly once
            uncovered = reader.uncovered(where) if src.predicates else 0
        except LakeforgeError:
            failed()
            raise

        def check_read(read: int) -> None:
            if not uncovered:
                return
            failed()
            raise ReconciliationError(
                f"ingest: {jdbc.label(src)}: {uncovered} row(s) of the window match none, or "
                f"more than one, of source.jdbc.predicates ({read} rows read); make them cover "
                "every row exactly once (e.g. add `region IS NULL`); nothing was written"
            )

        typed = raw.select(
            *[F.col(c) for c in columns],
            F.lit(jdbc.label(src)).alias(parse.SOURCE_FILE),
            F.lit(None).cast("string").alias(parse.RAW),
            F.lit(None).cast("string").alias(parse.REASON),
        )
        counts = _write_rows(
            spark,
            cfg,
            tables,
            protector.apply(typed),
            (window.seq, window.batch_id, now),
            [jdbc.label(src)],
            failed,
            reader.error,
            check_read,
        )
        stats.update(
            window=f"({window.low}, {window.high}]",
            read=counts.rows_read,
            bronze=counts.bronze_rows,
            quarantined=counts.quarantined_rows,
        )
    done = (counts.bronze_rows, counts.quarantined_rows)
    _append_jdbc_log(spark, tables, src, window, batches.DONE, now, protector, done)
    return IngestResult(
        batch_id=window.batch_id,
        files=0,
        skipped_files=0,
        rows_read=counts.rows_read,
        bronze_rows=counts.bronze_rows,
        quarantined_rows=counts.quarantined_rows,
        bronze_version=delta.version(spark, tables.bronze),
    )


def _read_jdbc_log(spark: SparkSession, tables: Tables) -> list[dict[str, object]]:
    if not delta.is_table(spark, tables.jdbc_log):
        return []
    return [r.asDict() for r in delta.read(spark, tables.jdbc_log).collect()]


def _append_jdbc_log(
    spark: SparkSession,
    tables: Tables,
    src: JdbcSource,
    window: batches.Window,
    status: str,
    now: datetime,
    protector: Protector,
    counts: tuple[int, int] | None = None,
) -> None:
    bronze, quarantined = counts or (None, None)
    row = (
        window.seq,
        window.batch_id,
        status,
        jdbc.label(src),
        window.low,
        window.high,
        bronze,
        quarantined,
        now,
        protector.fingerprint,
    )
    frame = spark.createDataFrame([row], schema=batches.JDBC_LOG_SCHEMA)
    delta.append(frame, tables.jdbc_log, merge_schema=True)  # an older log gains `privacy`


def _precheck(
    spark: SparkSession, cfg: JobConfig, batch: batches.Batch
) -> dict[str, list[str]] | None:
    """Check every CSV header against the schema before anything is planned or
    written; under `schema_drift: evolve`, return each file's header (the
    reader then reads a file by its own columns). Raises SchemaMismatch."""
    source = cfg.dataset.source
    if source.format != "csv":
        return None
    files.check_encoding(source.csv.encoding)
    if not source.csv.header:
        return None
    evolve = source.schema_drift == "evolve"
    expected = [c.in_file for c in source.columns]
    headers: dict[str, list[str]] = {}
    for f in batch.files:
        # A remote file's header is read through Spark only when it decides how
        # the file is read (evolve); otherwise Spark's own check covers it.
        first = _first_line(spark, f.readable) if evolve and not f.is_local else None
        header = files.check_csv_header(
            f,
            expected,
            source.csv.delimiter,
            source.csv.quote,
            source.csv.encoding,
            evolve=evolve,
            first_line=first,
            private=bool(cfg.dataset.privacy.columns),
        )
        if header is not None:
            headers[f.path] = header
            extra = [c for c in header if c not in expected]
            if extra:
                log.warning(
                    "ingest: %s: new column(s) %s kept in bronze as text (schema_drift)",
                    f.path,
                    ", ".join(extra),
                )
    return headers if evolve else None


def _first_line(spark: SparkSession, readable: str) -> str | None:
    row = spark.read.text(readable).first()
    return None if row is None else str(row[0])


def _write_batch(
    spark: SparkSession,
    cfg: JobConfig,
    tables: Tables,
    batch: batches.Batch,
    now: datetime,
    headers: dict[str, list[str]] | None,
    protector: Protector,
) -> _Counts:
    def failed() -> None:
        _append_log(
            spark,
            tables,
            batches.log_rows_for(batch, batches.FAILED, now, privacy=protector.fingerprint),
        )

    rows = parse.read_rows(spark, cfg.dataset.source, batch.files, headers, protector)
    return _write_rows(
        spark,
        cfg,
        tables,
        protector.apply(rows),
        (batch.seq, batch.batch_id, now),
        [f.path for f in batch.files],
        failed,
        lambda exc: _input_error(exc, batch),
    )


def _write_rows(
    spark: SparkSession,
    cfg: JobConfig,
    tables: Tables,
    parsed: DataFrame,
    batch: tuple[int, str, datetime],
    sources: list[str],
    failed: Callable[[], None],
    input_error: Callable[[BaseException], LakeforgeError | None],
    check_read: Callable[[int], None] | None = None,
) -> _Counts:
    """Append the good rows of `parsed` (protected already) to bronze and the
    bad ones to the quarantine, both with the batch's Delta transaction
    version (`seq`), then reconcile. The PII scan runs on the good rows first.
    Before bronze commits, a failure records the batch as failed."""
    seq, batch_id, now = batch
    dataset = cfg.dataset
    dropped = set(dataset.privacy.dropped)
    declared = [c.name for c in dataset.source.columns if c.name not in dropped]
    internal = (parse.SOURCE_FILE, parse.RAW, parse.REASON)
    # declared columns, then any new ones kept under schema_drift: evolve
    columns = [*declared, *[c for c in parsed.columns if c not in declared and c not in internal]]
    evolve = len(columns) > len(declared)
    committed = False
    rows = (
        parsed.withColumn(BATCH_ID, F.lit(batch_id))
        .withColumn(INGESTED_AT, F.lit(now))
        # one read feeds the counts and both writes
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        per_file = _count_per_file(rows)
        if check_read is not None:  # before anything commits
            check_read(sum(good + bad for good, bad in per_file.values()))
        good = rows.where(F.col(parse.REASON).isNull())
        bad = rows.where(F.col(parse.REASON).isNotNull())
        try:
            scan.check(good, dataset.privacy, dataset.name, columns)
        except UndeclaredPersonalData:
            failed()
            raise
        lineage = [BATCH_ID, parse.SOURCE_FILE, INGESTED_AT]
        delta.append(
            good.select(*columns, *lineage),
            tables.bronze,
            app_id=APP_ID,
            txn_version=seq,
            merge_schema=evolve,
        )
        committed = True
        # the keys (protected like bronze's) let `forget` find a subject's
        # quarantined rows; a quarantine written before they were kept gains them
        delta.append(
            bad.select(*dataset.keys, parse.RAW, parse.REASON, *lineage),
            tables.bronze_quarantine,
            app_id=APP_ID,
            txn_version=seq,
            merge_schema=bool(dataset.keys),
        )
    except SPARK_ERRORS as exc:
        error = input_error(exc)
        if not committed:
            failed()
        if error is None:
            raise
        raise error from None
    finally:
        rows.unpersist()
    return _reconcile(spark, tables, batch_id, sources, per_file)


def _count_per_file(rows: DataFrame) -> dict[str, tuple[int, int]]:
    """(good, bad) rows per source file, in one Spark job."""
    agg = rows.groupBy(parse.SOURCE_FILE).agg(
        F.count(F.when(F.col(parse.REASON).isNull(), 1)).alias("good"),
        F.count(F.when(F.col(parse.REASON).isNotNull(), 1)).alias("bad"),
    )
    return {r[parse.SOURCE_FILE]: (int(r["good"]), int(r["bad"])) for r in agg.collect()}


def _reconcile(
    spark: SparkSession,
    tables: Tables,
    batch_id: str,
    paths: list[str],
    per_file: dict[str, tuple[int, int]],
) -> _Counts:
    """Count what the tables now hold for this batch's sources and compare with what was read."""

    def committed(path: str) -> int:
        return (
            delta.read(spark, path)
            .where((F.col(BATCH_ID) == batch_id) & F.col(parse.SOURCE_FILE).isin(paths))
            .count()
        )

    read_good = sum(g for g, _ in per_file.values())
    read_bad = sum(b for _, b in per_file.values())
    in_bronze, in_quarantine = committed(tables.bronze), committed(tables.bronze_quarantine)
    log.info(
        "ingest: reconcile batch %s: read %d = bronze %d + quarantined %d",
        batch_id,
        read_good + read_bad,
        in_bronze,
        in_quarantine,
    )
    if (in_bronze, in_quarantine) != (read_good, read_bad):
        raise ReconciliationError(
            f"batch {batch_id}: read {read_good} good + {read_bad} bad rows but the "
            f"tables hold {in_bronze} in bronze + {in_quarantine} in quarantine"
        )
    return _Counts(read_good + read_bad, in_bronze, in_quarantine, per_file)


def _input_error(exc: BaseException, batch: batches.Batch) -> LakeforgeError | None:
    """Turn a Spark read failure caused by the input into a typed error naming the file."""
    text = str(exc)
    match = re.search(r"reading file (\S+?)\.?\s", text)
    where = match.group(1) if match else ", ".join(f.path for f in batch.files)
    if "CSV header does not conform" in text:
        return SchemaMismatch(f"{where}: header does not match the schema")
    if any(marker in text for marker in _UNREADABLE):
        cause = next((ln.strip() for ln in text.splitlines() if "Exception:" in ln), "")
        return UnreadableInput(f"{where}: cannot be decompressed or decoded ({cause[:200]})")
    return None


def _read_log(spark: SparkSession, tables: Tables) -> list[dict[str, object]]:
    if not delta.is_table(spark, tables.ingest_log):
        return []
    return [r.asDict() for r in delta.read(spark, tables.ingest_log).collect()]


def _append_log(spark: SparkSession, tables: Tables, rows: list[tuple[object, ...]]) -> None:
    # a log written before the `privacy` column gains it
    frame = spark.createDataFrame(rows, schema=batches.LOG_SCHEMA)
    delta.append(frame, tables.ingest_log, merge_schema=True)
