"""Clean: bronze batches → silver (MERGE on the dataset keys) + silver quarantine.

The bronze batches not cleaned yet (or the one named by --batch-id) are
normalised, checked by the row-level rules in one pass, deduplicated on the
keys (latest first) and validated as a table by Great Expectations. A rule of
severity `fail` stops the job before anything is written. A `unique` rule
over the keys cannot fail on a batch deduplicated on them: it is checked on
silver after the MERGE instead, on the keys the batch merged, and when it
fails the MERGE is undone before the batch counts as cleaned. The counts must
satisfy: bronze rows = inserted + updated + unchanged + quarantined +
duplicates removed, or the job fails.
"""

from __future__ import annotations

import hashlib
import logging
import operator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import reduce

from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge import sqlguard
from lakeforge.clean.transform import (
    REPEATS,
    deduplicate,
    normalise,
    repeated_keys,
    with_row_ids,
)
from lakeforge.config import JobConfig
from lakeforge.config.cleaning import Rule
from lakeforge.config.models import ROW_ID
from lakeforge.errors import ConfigError, DataQualityFailure, InputNotFound, ReconciliationError
from lakeforge.logs import timed
from lakeforge.quality import gate
from lakeforge.quality import rules as row_rules
from lakeforge.quality.expectations import TableValidation, validate_table
from lakeforge.storage import delta
from lakeforge.storage.paths import Tables, is_uri, tables_for

log = logging.getLogger(__name__)

APP_ID = "lakeforge.clean"
# the check that quarantines a keyless row silver already holds (see _redelivered)
REDELIVERED = "already_in_silver"
LINEAGE = ("_batch_id", "_source_file", "_ingested_at")
CLEAN_LOG_SCHEMA = T.StructType(
    [
        T.StructField("batch_id", T.StringType(), False),
        T.StructField("bronze_version", T.LongType(), False),
        T.StructField("bronze_rows", T.LongType(), False),
        T.StructField("inserted", T.LongType(), False),
        T.StructField("updated", T.LongType(), False),
        T.StructField("unchanged", T.LongType(), False),
        T.StructField("quarantined", T.LongType(), False),
        T.StructField("duplicates", T.LongType(), False),
        T.StructField("cleaned_at", T.TimestampType(), False),
    ]
)


@dataclass(frozen=True)
class CleanResult:
    """What one clean run did; `batches` is empty when there was nothing new."""

    batches: tuple[str, ...]
    bronze_rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    duplicates: int = 0
    rule_counts: dict[str, int] | None = None
    table_validation: TableValidation | None = None  # the deduplicated batch's
    # the `unique` rule over the keys, on silver's rows of the merged keys
    silver_validation: TableValidation | None = None
    silver_version: int | None = None

    @property
    def terms(self) -> tuple[int, int, int, int, int]:
        """inserted, updated, unchanged, quarantined, duplicates: they sum to bronze_rows."""
        return (self.inserted, self.updated, self.unchanged, self.quarantined, self.duplicates)


def run(spark: SparkSession, cfg: JobConfig, batch_id: str | None = None) -> CleanResult:
    """Clean the pending bronze batches (or `batch_id`) into silver.

    Raises ConfigError (no keys, bad SQL in a rule or derived column),
    InputNotFound (no bronze table, unknown batch), DataQualityFailure (a
    `fail` rule fired; silver untouched, or restored to its version before
    the MERGE when the rule over the keys fails on silver), ReconciliationError.
    """
    sqlguard.check(spark, cfg)  # config SQL calls only what it may
    ds = cfg.dataset
    tables = tables_for(cfg.settings, ds.name)
    bronze_version = delta.version(spark, tables.bronze)
    if bronze_version is None:
        raise InputNotFound(f"bronze table {tables.bronze} does not exist: run ingest first")
    bronze = delta.read(spark, tables.bronze, as_of=bronze_version)
    todo = _batches_to_clean(spark, tables, bronze, batch_id)
    if not todo:
        log.info("clean: nothing new (every bronze batch is in silver)")
        return CleanResult(batches=(), silver_version=delta.version(spark, tables.silver))
    run_ = _Run(
        spark=spark,
        cfg=cfg,
        tables=tables,
        rules=_resolve_rules(ds.rules, ds.keys),
        batches=tuple(todo),
        bronze_version=bronze_version,
        now=datetime.now(UTC).replace(tzinfo=None),
    )
    # The declared columns only: a column bronze gained by schema evolution
    # reaches silver once the dataset config declares it.
    declared = [c.name for c in ds.source.columns if c.name not in ds.privacy.dropped]
    rows = bronze.where(F.col("_batch_id").isin(todo)).select(*declared, *LINEAGE)
    # counted straight from bronze, before any transformation: the total
    # every other term is reconciled against
    run_ = replace(run_, bronze_rows=rows.count())
    if not ds.keys:  # every row a distinct observation, identified by its lineage
        rows = with_row_ids(rows, _file_checksums(spark, tables), declared, ROW_ID)
    try:
        tagged = row_rules.tag(normalise(rows, ds.clean), run_.rules)
    except AnalysisException as exc:
        raise ConfigError(f"{ds.name}: clean.derive or a sql rule: {exc}".splitlines()[0]) from None
    if not ds.keys:
        tagged = _redelivered(spark, tables, tagged, todo, ds.name)
    tagged = tagged.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        return _clean(run_, tagged)
    finally:
        tagged.unpersist()


@dataclass(frozen=True)
class _Run:
    """What one clean run works on."""

    spark: SparkSession
    cfg: JobConfig
    tables: Tables
    rules: list[Rule]
    batches: tuple[str, ...]
    bronze_version: int
    now: datetime
    bronze_rows: int = 0  # the batches' rows, counted in bronze

    @property
    def label(self) -> str:
        return ",".join(self.batches)

    @property
    def quality_project(self) -> str | None:
        """The local folder of the Great Expectations project (None on a URI)."""
        return None if is_uri(self.tables.quality) else self.tables.quality


def _clean(run_: _Run, tagged: DataFrame) -> CleanResult:
    ds = run_.cfg.dataset
    with timed(log, f"clean: rules on batch(es) {run_.label}") as stats:
        checks = [] if ds.keys else [REDELIVERED]
        summary = row_rules.summarise(tagged, run_.rules, list(ds.clean.parse), checks)
        failed = tagged.where(F.size(row_rules.FAILED) > 0)
        good = tagged.where(F.size(row_rules.FAILED) == 0).drop(row_rules.FAILED, row_rules.WARNED)
        # one aggregation over the batch finds the repeated keys, for the
        # count of duplicates and for dedupe alike
        repeated = (
            repeated_keys(good, ds.keys).persist(StorageLevel.MEMORY_AND_DISK) if ds.keys else None
        )
        duplicates = 0 if repeated is None else _extra_rows(repeated)
        # persisted: Great Expectations and the MERGE both read it
        deduped = deduplicate(good, ds.keys, ds.clean.dedupe.order_by, repeated).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        n_deduped = deduped.count()
        if repeated is not None:
            repeated.unpersist()
        stats.update(
            rows=summary.rows, quarantine=summary.failed, duplicates=duplicates, kept=n_deduped
        )
    try:
        with timed(log, "clean: table validation (Great Expectations)") as stats:
            # the rule over the keys waits for silver (see _check_merged_keys)
            on_batch = [r for r in run_.rules if not _on_keys(r, ds.keys)]
            validation = validate_table(
                deduped, on_batch, ds.name, _slug(run_.label), run_.quality_project
            )
            stats.update(rules=len(validation.results), passed=sum(validation.results.values()))
        gate.enforce(run_.rules, summary.counts, validation, f"{ds.name} batch(es) {run_.label}")
        result = _write(run_, failed, deduped, n_deduped, duplicates, summary)
    finally:
        deduped.unpersist()
    return replace(result, table_validation=validation)


def _write(
    run_: _Run,
    failed: DataFrame,
    deduped: DataFrame,
    n_deduped: int,
    duplicates: int,
    summary: row_rules.RuleSummary,
) -> CleanResult:
    """Quarantine first (replacing these batches' rows), then MERGE (and check the
    rule over the keys on silver) or append, reconcile, log."""
    spark, tables, ds = run_.spark, run_.tables, run_.cfg.dataset
    hidden = (*LINEAGE, row_rules.FAILED, row_rules.WARNED)
    quarantine = failed.select(
        F.to_json(F.struct(*[c for c in failed.columns if c not in hidden])).alias("_row"),
        F.col(row_rules.FAILED).alias("_failed_rules"),
        *LINEAGE,
        F.lit(run_.now).alias("_cleaned_at"),
    )
    # The quarantine and log rows of these batches replace whatever an earlier
    # run left for them (a run that crashed after writing them, then met new
    # batches; `clean --batch-id A` again): each batch's rows are there once.
    these = _batch_predicate("_batch_id", run_.batches)
    silver_validation = None
    with timed(log, "clean: write silver") as stats:
        delta.replace_where(quarantine, tables.silver_quarantine, these)
        if not ds.keys:
            result, distinct = _append_batches(run_, deduped, summary)
            stats.update(appended=result.inserted)
        else:
            before_version = delta.version(spark, tables.silver)
            before = delta.count(spark, tables.silver)
            data_columns = [c for c in deduped.columns if c not in LINEAGE]
            merged = delta.upsert(deduped, tables.silver, ds.keys, data_columns)
            after_version = delta.version(spark, tables.silver)
            after = delta.count(spark, tables.silver)
            stats.update(inserted=merged.inserted, updated=merged.updated)
    if ds.keys:
        ours = 0 if before_version is None else before_version + 1
        # the version our MERGE committed, when no other writer committed beside it
        commit = ours if (merged.inserted or merged.updated) and after_version == ours else None
        # before the reconciliation: a key silver holds twice also breaks the
        # counts (MERGE updates both rows), and the rule names the cause
        silver_validation = _check_merged_keys(run_, deduped, before_version, commit)
        # each term measured: inserted, updated and the rows MERGE read from
        # its own commit metrics; duplicates by their own count; the
        # quarantine counted in its table by the reconciliation
        source = n_deduped if merged.source is None else merged.source
        result = CleanResult(
            batches=run_.batches,
            bronze_rows=run_.bronze_rows,
            inserted=merged.inserted,
            updated=merged.updated,
            unchanged=source - merged.inserted - merged.updated,
            quarantined=summary.failed,
            duplicates=duplicates,
            rule_counts=summary.counts,
        )
        if source != n_deduped:
            raise ReconciliationError(
                f"clean: MERGE read {source} source rows, {n_deduped} were sent to it"
            )
        growth = (before, after) if after_version in (before_version, ours) else None
        _reconcile(spark, tables, result, growth, deduped, ds.keys, summary.rows)
    else:
        _reconcile_appended(spark, tables, result, distinct, summary.rows)
    delta.replace_where(
        spark.createDataFrame(
            _log_rows(result, run_.bronze_version, run_.now), schema=CLEAN_LOG_SCHEMA
        ),
        tables.clean_log,
        _batch_predicate("batch_id", run_.batches),
    )
    return replace(
        result,
        silver_version=delta.version(spark, tables.silver),
        silver_validation=silver_validation,
    )


def _on_keys(rule: Rule, keys: list[str]) -> bool:
    """A `unique` rule over exactly the dataset keys (its columns resolved)."""
    columns = rule.columns or ([rule.column] if rule.column else [])
    return rule.type == "unique" and bool(keys) and sorted(columns) == sorted(keys)


def _check_merged_keys(
    run_: _Run, deduped: DataFrame, before: int | None, commit: int | None
) -> TableValidation | None:
    """The `unique` rule over the keys, validated by Great Expectations on
    silver after the MERGE: its rows with the keys this run merged (matched
    null-safe, as MERGE matches), so the check grows with the batch, not the
    table. The batch itself is deduplicated on the keys and cannot break the
    rule; silver can (a key another writer put in twice, silver built with
    other keys). A `warn` rule is logged. A `fail` rule undoes our MERGE
    (`commit`: its version, None when it made none or another writer
    committed beside it) before the batch is logged as cleaned, and raises
    DataQualityFailure naming the rule, the extra rows and what became of
    silver."""
    ds = run_.cfg.dataset
    rules = [r for r in run_.rules if _on_keys(r, ds.keys)]
    if not rules:
        return None
    spark, path = run_.spark, run_.tables.silver
    mine = deduped.select(*ds.keys).alias("m")
    silver = delta.read(spark, path, as_of=commit).alias("s")
    same = [F.col(f"s.`{k}`").eqNullSafe(F.col(f"m.`{k}`")) for k in ds.keys]
    merged_keys = silver.join(mine, reduce(operator.and_, same), "left_semi").select(*ds.keys)
    merged_keys = merged_keys.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with timed(log, "clean: keys on silver after MERGE (Great Expectations)") as stats:
            validation = validate_table(
                merged_keys, rules, ds.name, _slug(run_.label), run_.quality_project, scope="silver"
            )
            stats.update(rules=len(validation.results), passed=sum(validation.results.values()))
        where = f"{ds.name} batch(es) {run_.label}: silver after MERGE"
        stops = gate.fired(rules, {}, validation, where)
        if not stops:
            return validation
        extra = _duplicates(merged_keys, ds.keys)
    finally:
        merged_keys.unpersist()
    if commit is None:
        outcome = (
            "silver not restored: this run's MERGE changed nothing, or another writer "
            "committed beside it"
        )
    elif before is None:
        outcome = f"silver was created by this run (v{commit}) and is left as it is"
    elif delta.undo(spark, path, commit):
        outcome = f"silver restored to v{before} (this run's MERGE, v{commit}, undone)"
    else:
        outcome = f"silver not restored: another writer committed after this run's MERGE v{commit}"
    raise DataQualityFailure(
        f"{where}: rule(s) of severity fail fired: {'; '.join(stops)}; silver holds {extra} "
        f"extra row(s) for keys of this batch; {outcome}"
    )


def _batch_predicate(column: str, batches: tuple[str, ...]) -> str:
    """`column IN ('a', 'b')`, each id a quoted SQL literal."""
    quoted = ", ".join("'" + b.replace("\\", "\\\\").replace("'", "\\'") + "'" for b in batches)
    return f"{column} IN ({quoted})"


def _reconcile(
    spark: SparkSession,
    tables: Tables,
    result: CleanResult,
    growth: tuple[int, int] | None,
    deduped: DataFrame,
    keys: list[str],
    rules_saw: int,
) -> None:
    """Every bronze row accounted for once. `growth` is silver's row count before
    and after our MERGE when no other writer committed in between; with a
    concurrent writer the growth is not ours alone, so every key we merged
    must be in silver instead."""
    quarantined = (
        delta.read(spark, tables.silver_quarantine)
        .where(F.col("_batch_id").isin(list(result.batches)))
        .count()
    )
    accounted = sum(result.terms)
    log.info(
        "clean: reconcile: bronze %d = inserted %d + updated %d + unchanged %d + "
        "quarantined %d + duplicates %d",
        result.bronze_rows,
        *result.terms,
    )
    problems = _rules_saw_bronze(result, rules_saw)
    if accounted != result.bronze_rows or result.unchanged < 0:
        problems.append(f"the terms add up to {accounted}, not {result.bronze_rows}")
    if growth is not None:
        before, after = growth
        if after - before != result.inserted:
            problems.append(
                f"silver grew by {after - before} rows, MERGE reported {result.inserted}"
            )
    else:
        mine = deduped.select(*keys).alias("m")
        silver = delta.read(spark, tables.silver).select(*keys).alias("s")
        same = [F.col(f"m.`{k}`").eqNullSafe(F.col(f"s.`{k}`")) for k in keys]
        missing = mine.join(silver, reduce(operator.and_, same), "left_anti").count()
        log.info("clean: silver changed concurrently; checked that all merged keys are in it")
        if missing:
            problems.append(f"{missing} merged key(s) are not in silver")
    if quarantined != result.quarantined:
        problems.append(
            f"silver quarantine holds {quarantined} rows, expected {result.quarantined}"
        )
    if problems:
        raise ReconciliationError("clean: counts do not reconcile: " + "; ".join(problems))


def _append_batches(
    run_: _Run, good: DataFrame, summary: row_rules.RuleSummary
) -> tuple[CleanResult, int]:
    """A dataset without keys: each batch's good rows appended to silver, once.

    Each batch is its own append with its own Delta transaction id, so a
    re-run after a crash (or a racing clean) that meets a batch already in
    silver adds nothing, whatever other batches it cleans with it. The
    appended rows are then counted in silver, not taken from what was sent."""
    spark, tables = run_.spark, run_.tables
    for batch in run_.batches:
        delta.append(
            good.where(F.col("_batch_id") == batch),
            tables.silver,
            app_id=f"{APP_ID}.silver.{hashlib.sha256(batch.encode()).hexdigest()[:16]}",
            txn_version=0,
        )
    # rows and distinct ids of these batches in silver, counted in one pass
    found = (
        delta.read(spark, tables.silver)
        .where(F.col("_batch_id").isin(list(run_.batches)))
        .agg(F.count(F.lit(1)).alias("rows"), F.countDistinct(ROW_ID).alias("ids"))
        .first()
    )
    appended = int(found["rows"]) if found is not None else 0
    distinct = int(found["ids"]) if found is not None else 0
    result = CleanResult(
        batches=run_.batches,
        bronze_rows=run_.bronze_rows,
        inserted=appended,
        quarantined=summary.failed,
        rule_counts=summary.counts,
    )
    return result, distinct


def _reconcile_appended(
    spark: SparkSession, tables: Tables, result: CleanResult, distinct: int, rules_saw: int
) -> None:
    """Without keys: bronze rows = rows of these batches in silver + in its
    quarantine, each counted in its table, and no row id twice in silver
    (`distinct`: the batches' distinct ids in silver)."""
    batches = list(result.batches)
    quarantined = (
        delta.read(spark, tables.silver_quarantine).where(F.col("_batch_id").isin(batches)).count()
    )
    log.info(
        "clean: reconcile: bronze %d = appended %d + quarantined %d (%d distinct row ids)",
        result.bronze_rows,
        result.inserted,
        quarantined,
        distinct,
    )
    problems = _rules_saw_bronze(result, rules_saw)
    if result.inserted + quarantined != result.bronze_rows:
        problems.append(
            f"silver holds {result.inserted} and the quarantine {quarantined} of these "
            f"batches' rows, not the {result.bronze_rows} bronze rows"
        )
    if quarantined != result.quarantined:
        problems.append(
            f"silver quarantine holds {quarantined} rows, expected {result.quarantined}"
        )
    if distinct != result.inserted:
        problems.append(f"{result.inserted - distinct} row id(s) are in silver more than once")
    if problems:
        raise ReconciliationError("clean: counts do not reconcile: " + "; ".join(problems))


def _rules_saw_bronze(result: CleanResult, rules_saw: int) -> list[str]:
    """The rows the rules judged are the bronze rows, no more, no fewer (a
    join on the way, with the ingest log say, could lose or repeat some)."""
    if rules_saw == result.bronze_rows:
        return []
    return [
        f"the rules judged {rules_saw} rows, bronze holds {result.bronze_rows} of these batches"
    ]


def _duplicates(good: DataFrame, keys: list[str]) -> int:
    """Rows dedupe must remove: per key (null-safe, as MERGE matches), all
    but one. Counted here on their own, not as what dedupe happened to leave
    out, so a row lost on the way cannot pass for a duplicate."""
    if not keys:
        return 0
    return _extra_rows(repeated_keys(good, keys))


def _extra_rows(repeated: DataFrame) -> int:
    """All but one row of each repeated key (`repeated_keys`' output)."""
    found = repeated.agg(F.sum(F.col(REPEATS) - 1).alias("extra")).first()
    return int(found["extra"] or 0) if found is not None else 0


def _redelivered(
    spark: SparkSession, tables: Tables, tagged: DataFrame, batches: list[str], name: str
) -> DataFrame:
    """Without keys, a file delivered again (same content, another name) gives
    rows whose `_row_id` silver already holds from another batch, or that an
    earlier file of this run gives too (`__repeat`): they fail the check
    `already_in_silver` and go to the quarantine instead of doubling those
    observations. Rows of the batches being cleaned are not counted against
    themselves (a re-run after a crash that appended them)."""
    repeat = F.col("__repeat")
    if delta.is_table(spark, tables.silver):
        silver = delta.read(spark, tables.silver)
        if ROW_ID not in silver.columns:
            raise ConfigError(
                f"{name}: keys: silver {tables.silver} was built with keys (it has no "
                f"{ROW_ID}); a dataset cannot drop its keys on an existing silver table"
            )
        known = (
            silver.where(~F.col("_batch_id").isin(batches))
            .select(F.col(ROW_ID).alias("__known"))
            .distinct()
        )
        tagged = tagged.join(known, tagged[ROW_ID] == known["__known"], "left")
        repeat = repeat | F.col("__known").isNotNull()
    failed = F.when(
        repeat, F.array_union(F.col(row_rules.FAILED), F.array(F.lit(REDELIVERED)))
    ).otherwise(F.col(row_rules.FAILED))
    out = tagged.withColumn(row_rules.FAILED, failed).drop("__repeat")
    return out.drop("__known") if "__known" in out.columns else out


def _file_checksums(spark: SparkSession, tables: Tables) -> DataFrame:
    """(`_batch_id`, `_source_file`, `origin`): each ingested file's checksum."""
    schema = "_batch_id string, _source_file string, origin string"
    if not delta.is_table(spark, tables.ingest_log):
        return spark.createDataFrame([], schema)
    return (
        delta.read(spark, tables.ingest_log)
        .select(
            F.col("batch_id").alias("_batch_id"),
            F.col("file").alias("_source_file"),
            F.col("checksum").alias("origin"),
        )
        .distinct()
    )


def _batches_to_clean(
    spark: SparkSession, tables: Tables, bronze: DataFrame, batch_id: str | None
) -> list[str]:
    in_bronze = {r[0] for r in bronze.select("_batch_id").distinct().collect()}
    if batch_id is not None:
        if batch_id not in in_bronze:
            raise InputNotFound(f"batch {batch_id!r} is not in {tables.bronze}")
        return [batch_id]
    done: set[str] = set()
    if delta.is_table(spark, tables.clean_log):
        done = {r[0] for r in delta.read(spark, tables.clean_log).select("batch_id").collect()}
    return sorted(in_bronze - done)


def _resolve_rules(rules: list[Rule], keys: list[str]) -> list[Rule]:
    """A `unique` rule with no columns means the dataset keys."""
    return [
        r.model_copy(update={"columns": list(keys)})
        if r.type == "unique" and not (r.columns or r.column)
        else r
        for r in rules
    ]


def _log_rows(result: CleanResult, bronze_version: int, now: datetime) -> list[tuple[object, ...]]:
    # One row per batch; the counts are those of the whole run that cleaned it.
    return [(b, bronze_version, result.bronze_rows, *result.terms, now) for b in result.batches]


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:80]
