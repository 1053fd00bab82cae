"""Forget: erase a subject's rows from every Delta table of a dataset that
holds rows about people, with the history that still holds them, and record
the erasure in an audit table without the subject's values.

1. The request (`--where` or `--keys`, `lakeforge.privacy.request`) is
   checked and turned into the forms its values are stored in, pseudonyms
   too (`lakeforge.privacy.forget`).
2. Every Delta table under the dataset's folder is planned, nothing changed
   yet: its rows about the subject now, and whether its history (files only
   an older version reads, its log: commits, checksums, checkpoints) still
   holds one of the values. A table with nothing to match on is skipped.
3. A table to purge loses every version before the erasure. If a registered
   model version (not archived) pinned one of those that can still be read,
   forget refuses (exit 2) naming them, unless `force`: then it goes on,
   says so, tags those model versions `lakeforge.forget` and records them.
4. Per table, the tables found only through the identities bronze and
   silver give first, those two last (so that a run stopped half way finds
   the rest again): MERGE ... WHEN MATCHED THEN DELETE against a small DataFrame
   of the values (the commit logs the condition, which names columns only),
   counts reconciled (rows before - deleted = rows after, the deletions from
   the commit's metrics), then VACUUM with 0 hours and the log before the
   latest version deleted (`maintenance.purge_history`).
5. One row per table to `NAME/_forget_audit` (`lakeforge.privacy.audit`),
   written as soon as the table is done, or failed (`skipped` says so).

Run it when nothing else writes the dataset's tables (as `maintain` with a
retention below Delta's check): VACUUM with 0 hours would delete files a
writer has not committed yet.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from lakeforge.config import JobConfig
from lakeforge.errors import SPARK_ERRORS, ConfigError, ReconciliationError
from lakeforge.logs import timed
from lakeforge.privacy import forget as matching
from lakeforge.privacy.audit import (
    AUDIT_SCHEMA,
    ForgetResult,
    TableForget,
    audit_rows,
    requested_by,
)
from lakeforge.privacy.keys import privacy_key
from lakeforge.privacy.request import (
    Request,
    check_columns,
    check_purpose,
    parse_keys,
    parse_where,
)
from lakeforge.steps.maintain import same_table
from lakeforge.storage import delta, maintenance
from lakeforge.storage.paths import tables_for
from lakeforge.tracking.pins import Pin, mark_unreproducible, registered_pins

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TablePlan:
    table: str
    name: str  # e.g. silver
    match: matching.Match | None  # None: nothing to match the subject on
    rows: int = 0  # rows about the subject in the latest version
    history: bool = False  # an older version or the log still holds a value
    # erased in this order: 0 found only through identities (splits,
    # predictions), 1 found by the request (quarantines), 2 found by the
    # request and giving the identities (bronze, silver): erasing those last
    # lets a run that stopped half way find the others again
    rank: int = 0

    @property
    def purge(self) -> bool:
        return self.rows > 0 or self.history


def run(
    spark: SparkSession,
    cfg: JobConfig,
    *,
    where: str | None = None,
    keys_file: str | None = None,
    force: bool = False,
    any_column: bool = False,
) -> ForgetResult:
    """Erase the subject(s) of `where` (or of the CSV file `keys_file`) from
    every table of the dataset, with their history, and record it.

    Raises ConfigError (exit 2), before any table changes, for a bad request
    (`lakeforge.privacy.request`), a column the dataset does not hold, a
    masked or generalised column, a column neither a key nor declared under
    privacy (unless `any_column`), a value not of its column's type, a
    missing privacy key, a table with deletion vectors, or pinned table
    versions the erasure would make unreadable (unless `force`);
    ReconciliationError when a table's counts do not add up.
    """
    ds = cfg.dataset
    if (where is None) == (keys_file is None):
        raise ConfigError("forget: give either --where or --keys")
    request = _request(spark, where, keys_file)
    types = {c.name: c.type for c in ds.source.columns if c.name not in ds.privacy.dropped}
    check_columns(request, types, ds.name)
    actions = {c: p.action for c, p in ds.privacy.columns.items()}
    check_purpose(request, ds.keys, actions, any_column)
    key = privacy_key(ds.privacy, ds.name) if ds.privacy.key_env else None
    hidden = [c for c, p in ds.privacy.columns.items() if p.action == "pseudonymise"]
    canonical = matching.canonical_values(spark, request, types)
    subjects = matching.request_forms(request, canonical, hidden, key)
    reference = matching.request_reference(key, request, canonical) if key else None
    tables = tables_for(cfg.settings, ds.name)
    found = [
        t
        for t in maintenance.tables_in(spark, f"{tables.root}/{tables.dataset}")
        if not same_table(t, tables.forget_audit)
    ]
    sets = [subjects]
    if set(ds.identity) != set(request.columns):
        frames = [delta.read(spark, t) for t in found]
        ids = matching.identities(frames, subjects, ds.identity)
        if ids.forms:
            sets.append(ids)
        if len(ids.forms) > len(request.subjects):
            log.warning(
                "forget: %s: %d subject(s) by %s match %d identities (%s): several people "
                "may share a value; the rows of every one of them are erased",
                ds.name,
                len(request.subjects),
                ", ".join(request.columns),
                len(ids.forms),
                ", ".join(ds.identity),
            )
    short = {t for s in sets for t in s.texts()} - matching.history_values(
        t for s in sets for t in s.texts()
    )
    if short:
        log.info(
            "forget: %d value form(s) shorter than %d characters: history check skipped for "
            "them (a table is purged when its current rows hold them)",
            len(short),
            matching.TEXT_MIN,
        )
    log.info(
        "forget: %s: %d subject(s) by %s (--%s), request %s; %d table(s)",
        ds.name,
        len(request.subjects),
        ", ".join(request.columns),
        request.kind,
        reference[:12] if reference else "without a reference (no privacy.key_env)",
        len(found),
    )
    plans = sorted((_plan(spark, table, sets) for table in found), key=lambda p: p.rank)
    uri = cfg.settings.mlflow.tracking_uri
    lost = _pins_lost(spark, uri, [p for p in plans if p.purge])
    if lost and not force:
        raise ConfigError(_refusal(ds.name, lost))
    if lost:
        log.warning(
            "forget: --force: %s can no longer be read back after this erasure",
            "; ".join(f"{ds.name}/{_pinned(name, pin)}" for name, pin in lost),
        )
    now = datetime.now(UTC).replace(tzinfo=None)
    forget_id = uuid.uuid4().hex
    done: list[TableForget] = []
    user = requested_by()

    def record(entry: TableForget) -> None:
        """The table's audit row, written as soon as it is done (or failed)."""
        done.append(entry)
        one = ForgetResult(
            forget_id, now, request.kind, reference, len(request.subjects), force, (entry,)
        )
        rows = audit_rows(one, ds.name, user)
        delta.append(spark.createDataFrame(rows, AUDIT_SCHEMA), tables.forget_audit)

    try:
        for p in plans:
            broken = tuple(_pinned(n, pin) for n, pin in lost if n == p.name)
            _erase(spark, ds.name, p, broken, record)
    finally:  # a table whose history may be gone costs its pins, even on a failure
        purged = {t.name for t in done if t.history_purged or t.failed}
        _mark(uri, ds.name, [(n, pin) for n, pin in lost if n in purged], forget_id, now)
    result = ForgetResult(
        forget_id, now, request.kind, reference, len(request.subjects), force, tuple(done)
    )
    log.info(
        "forget: %s: %d row(s) deleted from %d table(s), history purged in %d; audit %s",
        ds.name,
        result.rows_deleted,
        sum(1 for t in result.tables if t.rows_deleted),
        len(purged),
        forget_id,
    )
    return result


def _request(spark: SparkSession, where: str | None, keys_file: str | None) -> Request:
    if where is not None:
        return parse_where(spark, where)
    assert keys_file is not None
    try:
        text = Path(keys_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--keys {keys_file}: cannot be read ({type(exc).__name__})") from None
    return parse_keys(text, keys_file)


def _plan(spark: SparkSession, table: str, sets: list[matching.Subjects]) -> TablePlan:
    """What erasing the subject means for `table`, read only."""
    name = _name(table)
    rows = delta.read(spark, table)
    found = matching.plan_match(rows.columns, sets)
    if found is None:
        return TablePlan(table, name, None)
    if maintenance.properties(spark, table).get("delta.enableDeletionVectors") == "true":
        raise ConfigError(
            f"forget: {name} ({table}) has deletion vectors enabled: a deleted row would stay "
            "in its file; turn them off and purge the table's deletion vectors first"
        )
    direct = matching.plan_match(rows.columns, sets[:1]) is not None
    rank = 0 if not direct else 2 if set(sets[0].columns) <= set(rows.columns) else 1
    current = found.rows_of(rows).count()
    if current:  # purged anyway: no need to search its history
        return TablePlan(table, name, found, current, False, rank)
    history = maintenance.history_text(spark, table)
    texts = set().union(*[s.texts() for s in sets])
    held = history is not None and matching.holds_any(history, texts)
    return TablePlan(table, name, found, current, held, rank)


def _erase(
    spark: SparkSession,
    dataset: str,
    p: TablePlan,
    broken: tuple[str, ...],
    record: Callable[[TableForget], None],
) -> TableForget:
    """Erase `p`'s rows about the subject and its history, and `record` the
    table's audit entry: when done, or when it failed (a MERGE may have
    committed, a purge may have begun), then raise."""
    label = f"{dataset}/{p.name}"
    if p.match is None:
        why = "no column to find a subject by (not rows about people)"
        log.info("forget: %s: skipped: %s", label, why)
        skipped = TableForget(p.table, p.name, skipped=why)
        record(skipped)
        return skipped
    with timed(log, f"forget: {label}") as stats:
        latest = delta.version(spark, p.table)
        assert latest is not None
        entry = TableForget(
            p.table, p.name, p.match.matched_on, version_before=latest, pins_broken=broken
        )
        try:
            deleted, merged = (0, latest) if not p.rows else _delete(spark, p.table, p.match)
            version_before = merged - 1 if p.rows else latest
            entry = replace(
                entry, rows_deleted=deleted, version_before=version_before, version_after=merged
            )
            rows_before = delta.read(spark, p.table, as_of=version_before).count()
            rows_after = delta.read(spark, p.table, as_of=merged).count()
            entry = replace(entry, rows_before=rows_before, rows_after=rows_after)
            if rows_before - deleted != rows_after or deleted != p.rows:
                raise ReconciliationError(
                    f"forget: {label}: {rows_before} rows - {deleted} deleted (commit metrics) "
                    f"!= {rows_after} rows after, or != the {p.rows} rows about the subject "
                    "found before: did another job write the table meanwhile?"
                )
            files = logs = 0
            if p.purge:
                files, logs = maintenance.purge_history(spark, p.table)
            version_after = delta.version(spark, p.table)
        except Exception as exc:
            why = f"failed ({type(exc).__name__}) after version {latest}: run forget again"
            record(replace(entry, version_after=delta.version(spark, p.table), failed=why))
            raise
        stats.update(
            matched_on="+".join(p.match.matched_on),
            rows=f"{rows_before}-{deleted}={rows_after}",
            version=f"{version_before}->{version_after}",
            history_purged=p.purge,
            files_deleted=files,
            log_files_deleted=logs,
        )
        if broken:
            stats["pins_broken"] = len(broken)
    done = replace(
        entry,
        version_after=version_after,
        history_purged=p.purge,
        files_deleted=files,
        log_files_deleted=logs,
    )
    record(done)
    return done


def _delete(spark: SparkSession, table: str, found: matching.Match) -> tuple[int, int]:
    """MERGE ... WHEN MATCHED THEN DELETE; (rows deleted, from the commit's
    metrics; the commit's version)."""
    before = delta.version(spark, table)

    def attempt() -> int:
        out = (
            DeltaTable.forPath(spark, table)
            .alias("t")
            .merge(found.source(spark).alias("s"), found.condition)
            .whenMatchedDelete()
            .execute()
            .first()
        )
        return int(out["num_deleted_rows"]) if out is not None else 0

    reported = delta.with_retry(attempt, what=f"forget: MERGE into {table}")
    for entry in (
        DeltaTable.forPath(spark, table)
        .history()
        .where(f"version > {before} AND operation = 'MERGE'")
        .orderBy("version")
        .collect()
    ):
        metrics = dict(entry["operationMetrics"] or {})
        inserted = int(metrics.get("numTargetRowsInserted", 0))
        if int(metrics.get("numTargetRowsDeleted", -1)) == reported and not inserted:
            return int(metrics["numTargetRowsDeleted"]), int(entry["version"])
    raise ReconciliationError(
        f"forget: {table}: MERGE reported {reported} deleted rows, but no commit after "
        f"version {before} records them"
    )


def _pins_lost(
    spark: SparkSession, tracking_uri: str, purged: Sequence[TablePlan]
) -> list[tuple[str, Pin]]:
    """(table name, pin) of every version of a table to purge that a
    registered, not archived, model version pinned and that can still be
    read back (a purge leaves only the version after the erasure)."""
    if not purged:
        return []
    registry = registered_pins(tracking_uri)
    return [
        (p.name, pin)
        for p in purged
        for pin in registry.pins
        if same_table(pin.table, p.table) and _readable(spark, p.table, pin.version)
    ]


def _readable(spark: SparkSession, table: str, version: int) -> bool:
    try:
        needed = maintenance.files_read(spark, table, version)
    except SPARK_ERRORS:
        return False  # its log is gone (or the table never had it)
    return needed <= maintenance.data_files(spark, table).keys()


def _refusal(dataset: str, lost: list[tuple[str, Pin]]) -> str:
    what = "; ".join(f"{dataset}/{_pinned(name, pin)}" for name, pin in lost)
    return (
        f"forget would make table versions registered models were trained on unreadable "
        f"(an erasure keeps only the version after it): {what}. Retrain without the "
        "subject and archive those model versions (tag archived=true), or run again with "
        "--force (they lose their reproducibility and are tagged lakeforge.forget)"
    )


def _pinned(name: str, pin: Pin) -> str:
    return f"{name} version {pin.version} ({pin.owner})"


def _mark(
    tracking_uri: str, dataset: str, lost: list[tuple[str, Pin]], forget_id: str, now: datetime
) -> None:
    """Tag the model versions whose pinned table versions were erased."""
    if not lost:
        return
    notes: dict[tuple[str, str], list[str]] = {}
    for name, pin in lost:
        notes.setdefault((pin.model, pin.model_version), []).append(
            f"{dataset}/{name} version {pin.version}"
        )
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    mark_unreproducible(
        tracking_uri,
        {
            owner: f"{stamp} forget {forget_id} (--force): {', '.join(versions)} erased, "
            "cannot be read back"
            for owner, versions in notes.items()
        },
    )
    log.warning("forget: tagged %s lakeforge.forget", ", ".join(f"{m} v{v}" for m, v in notes))


def _name(table: str) -> str:
    return table.rstrip("/").rsplit("/", 1)[-1]
