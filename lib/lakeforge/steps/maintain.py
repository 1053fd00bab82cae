"""Maintain: OPTIMIZE and VACUUM every Delta table of a dataset, keeping
readable every table version a registered model pinned (what it was trained
on), so that its run can be reproduced by time travel.

For each table, each pin of a registered (not archived) model version
(`lakeforge.tracking.pins`) reaches back to the older of its version's commit
and the oldest file that version reads and the current one no longer does
(VACUUM keeps every file younger than its retention, whatever Delta's
tombstones still say). The retention covers the oldest pin plus `GRACE_HOURS`
and is written to the table: `delta.deletedFileRetentionDuration` (the
retention of every VACUUM, since Delta 4.4 ignores one passed to VACUUM
unless it is 0, and how far back Delta allows time travel) and
`delta.logRetentionDuration` (how long Delta's log cleanup keeps commits), so
the pins stay readable until the next run. A `--retain-hours` that would make
a pinned version unreadable is refused before any table changes.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import SparkSession

from lakeforge.config import JobConfig
from lakeforge.errors import SPARK_ERRORS, ConfigError
from lakeforge.logs import timed
from lakeforge.storage import maintenance
from lakeforge.storage.maintenance import (
    DEFAULT_FILE_RETENTION_HOURS,
    DEFAULT_LOG_RETENTION_HOURS,
    RETENTION_CHECK,
)
from lakeforge.storage.paths import tables_for
from lakeforge.tracking.pins import Pin, registered_pins

log = logging.getLogger(__name__)

# How long a pin stays protected after maintain ran: schedule maintain more
# often than this (weekly or daily), or a pin older than the retention it set
# loses its files to the next VACUUM and its log to Delta's log cleanup.
GRACE_HOURS = 168
# Clock differences, and files removed by writers (or by the OPTIMIZE that
# runs next) while maintain runs
MARGIN_HOURS = 1
_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class PinAge:
    """How far back one pin reaches into a table, in hours before now: its
    version's commit, or the oldest file it reads that the current version
    does not, whichever is older."""

    pin: Pin
    hours: float


@dataclass(frozen=True)
class Retention:
    vacuum_hours: int  # VACUUM's retention, and the table's delta.deletedFileRetentionDuration
    log_hours: int  # the table's delta.logRetentionDuration
    minimum_hours: int  # the least VACUUM retention that keeps every pin (0: no pin)
    oldest: PinAge | None  # the pin that sets the minimum


@dataclass(frozen=True)
class TableUpkeep:
    table: str
    retention: Retention
    pins: tuple[Pin, ...]
    compacted: tuple[int, int]  # files OPTIMIZE removed, added
    deleted: int  # files VACUUM deleted


def run(spark: SparkSession, cfg: JobConfig, retain_hours: int | None = None) -> list[TableUpkeep]:
    """OPTIMIZE then VACUUM every Delta table of the dataset, with a retention
    that keeps every version a registered, not archived, model version pinned
    (`retain_hours`, when given, must keep them too).

    Raises ConfigError (exit 2), before any table changes, when `retain_hours`
    would make a pinned version unreadable, or is below Delta's 168 h safety
    check while that check is on.
    """
    ds = cfg.dataset
    tables = tables_for(cfg.settings, ds.name)
    folder = f"{tables.root}/{tables.dataset}"
    found = maintenance.tables_in(spark, folder)
    if not found:
        log.info("maintain: %s: no Delta table under %s, nothing to do", ds.name, folder)
        return []
    registry = registered_pins(cfg.settings.mlflow.tracking_uri)
    check = maintenance.retention_check_enabled(spark)
    plans = []
    for table in found:
        pins = tuple(p for p in registry.pins if same_table(p.table, table))
        ages = pin_ages(spark, table, pins)
        plans.append(
            (table, pins, choose_retention(_name(ds.name, table), ages, retain_hours, check))
        )
    mine = sorted({p.owner for _, pins, _ in plans for p in pins})
    log.info(
        "maintain: %s: %d table(s); pinned by %s; archived (pin nothing): %s",
        ds.name,
        len(found),
        ", ".join(mine) or "no registered model version",
        ", ".join(registry.archived) or "none",
    )
    return [_upkeep(spark, _name(ds.name, t), t, pins, r) for t, pins, r in plans]


def pin_ages(spark: SparkSession, table: str, pins: Sequence[Pin]) -> list[PinAge]:
    """How far back each pin reaches into `table`. A pinned version that
    cannot be read back any more (its log or files were deleted before
    maintain protected it) is logged and needs nothing."""
    if not pins:
        return []
    now = time.time() * 1000
    commits = maintenance.commit_times(spark, table)
    on_disk = maintenance.data_files(spark, table)
    current = maintenance.files_read(spark, table)
    ages = []
    for pin in pins:
        where = f"{table} version {pin.version} ({pin.owner})"
        if pin.version not in commits:
            latest = max(commits)
            why = "the table has no such version" if pin.version > latest else "its log is gone"
            log.warning("maintain: %s cannot be read back: %s", where, why)
            continue
        try:
            files = maintenance.files_read(spark, table, pin.version)
        except SPARK_ERRORS as exc:
            log.warning("maintain: %s cannot be read back: %s", where, str(exc).splitlines()[0])
            continue
        removed = files - current
        lost = removed - on_disk.keys()
        if lost:
            log.warning(
                "maintain: %s cannot be read back: %d of its files are gone", where, len(lost)
            )
        oldest = min([on_disk[f] for f in removed if f in on_disk], default=now)
        ages.append(PinAge(pin, (now - min(oldest, commits[pin.version])) / _HOUR_MS))
    return ages


def choose_retention(
    table: str, ages: Sequence[PinAge], retain_hours: int | None, check_enabled: bool
) -> Retention:
    """The VACUUM and log retentions of one table (`table` names it in messages).

    Without `retain_hours`: Delta's defaults (168 h, 720 h), raised to cover
    the oldest pin plus GRACE_HOURS, in whole days. With it: `retain_hours`,
    refused (ConfigError) when below what a pin needs, or below Delta's
    168 h safety check while that check is on. The log retention is never
    below the VACUUM retention (Delta may refuse that).
    """
    oldest = max(ages, key=lambda a: a.hours, default=None)
    minimum = math.ceil(oldest.hours + MARGIN_HOURS) if oldest else 0
    safe = DEFAULT_FILE_RETENTION_HOURS
    if oldest:
        safe = max(safe, _whole_days(minimum + GRACE_HOURS))
    if retain_hours is None:
        vacuum = safe
    elif oldest and retain_hours < minimum:
        raise ConfigError(
            f"--retain-hours {retain_hours} would make {table} version {oldest.pin.version}, "
            f"which {oldest.pin.owner} pins, unreadable (it reaches back "
            f"{math.ceil(oldest.hours)} h): keep at least {minimum} h, or leave --retain-hours "
            "out and maintain keeps every pinned version"
        )
    elif retain_hours < DEFAULT_FILE_RETENTION_HOURS and check_enabled:
        # Delta's own check compares with the table's property, which maintain
        # is about to set to `retain_hours`: it would never fire
        raise ConfigError(
            f"--retain-hours {retain_hours} is below Delta's safety check of "
            f"{DEFAULT_FILE_RETENTION_HOURS} h (a job writing {table} while VACUUM runs could "
            f"lose files it has not committed yet): to go lower, set {RETENTION_CHECK}: false "
            "under spark.conf of the environment, and run maintain when nothing else writes"
        )
    else:
        vacuum = retain_hours
    log_hours = max(DEFAULT_LOG_RETENTION_HOURS, vacuum, safe)
    return Retention(vacuum, log_hours, minimum, oldest)


def same_table(recorded: str, table: str) -> bool:
    """Whether a path a run recorded names `table` (`file:` or not, trailing /)."""
    return _plain(recorded) == _plain(table)


def _upkeep(
    spark: SparkSession, name: str, table: str, pins: tuple[Pin, ...], retention: Retention
) -> TableUpkeep:
    with timed(log, f"maintain: {name}") as stats:
        maintenance.set_retention(
            spark, table, file_hours=retention.vacuum_hours, log_hours=retention.log_hours
        )
        removed, added = maintenance.optimize(spark, table)
        before = len(maintenance.data_files(spark, table))
        maintenance.vacuum(spark, table, retention.vacuum_hours)
        deleted = before - len(maintenance.data_files(spark, table))
        stats.update(
            optimize_removed=removed,
            optimize_added=added,
            vacuum_deleted=deleted,
            retain_hours=retention.vacuum_hours,
            log_retention_hours=retention.log_hours,
        )
        if retention.oldest is not None:
            pin = retention.oldest.pin
            stats["keeps"] = f"v{pin.version} of {pin.model} v{pin.model_version}"
    return TableUpkeep(table, retention, pins, (removed, added), deleted)


def _whole_days(hours: float) -> int:
    return math.ceil(hours / 24) * 24


def _plain(path: str) -> str:
    return re.sub(r"^file:(//)?", "", path).rstrip("/")


def _name(dataset: str, table: str) -> str:
    return f"{dataset}/{table.rstrip('/').rsplit('/', 1)[-1]}"
