"""Predict: the serving model scores a batch of silver rows into the gold
predictions table.

A batch is written with `replaceWhere` on its batch id, so re-running it
replaces its rows instead of adding them twice; when gold's batch already
holds exactly the rows `predict.where` selects, scored by the same model
version from the same silver version, the job does nothing at all (no new
table version). The scored rows are counted before the commit: a batch the
model scores short is refused, and gold keeps what it had.
"""

from __future__ import annotations

import logging
import operator
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce

from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge import sqlguard
from lakeforge.config import JobConfig
from lakeforge.errors import ConfigError, InputNotFound, ReconciliationError
from lakeforge.logs import timed
from lakeforge.scoring.batch import PARTITION, Lineage, score
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from lakeforge.tracking.models import serving_model

log = logging.getLogger(__name__)

_BATCH_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class PredictResult:
    batch_id: str
    rows: int
    model_name: str
    model_version: str
    source_version: int
    table_version: int | None
    skipped: bool = False


def run(spark: SparkSession, cfg: JobConfig, batch_id: str | None = None) -> PredictResult:
    """Score the silver rows of `predict.where` with the serving model.

    Raises ConfigError (no train section, a bad batch id or `where`),
    InputNotFound (no silver table, no champion), ReconciliationError.
    """
    sqlguard.check(spark, cfg)  # config SQL calls only what it may
    ds = cfg.dataset
    if ds.train is None:
        raise ConfigError(f"{ds.name}: predict needs the `train` section (the model's name)")
    tables = tables_for(cfg.settings, ds.name)
    version = delta.version(spark, tables.silver)
    if version is None:
        raise InputNotFound(f"silver table {tables.silver} does not exist: run clean first")
    batch = batch_id or f"silver-v{version}"
    if not _BATCH_ID.match(batch):
        raise ConfigError(f"--batch-id {batch!r}: use letters, digits and _ . : - only")
    name = ds.train.registry.model_name or ds.name
    model = serving_model(cfg.settings.mlflow.tracking_uri, name, ds.predict.model_version)
    rows = delta.read(spark, tables.silver, as_of=version)
    if ds.predict.where:
        try:
            rows = rows.where(ds.predict.where)
        except AnalysisException as exc:
            raise ConfigError(f"{ds.name}: predict.where: {exc}".splitlines()[0]) from None
    # nothing to do when gold already holds exactly these rows as this batch,
    # or every one of them as another batch (a quiet day): named in the result
    scoring = (spark, tables.predictions, batch, model.version, version, rows, ds.identity)
    holder = batch if _already_scored(*scoring) else _scored_elsewhere(*scoring)
    if holder is not None:
        log.info(
            "predict: nothing new: every row of silver v%d (predict.where) is in gold as "
            "batch %s, scored by %s v%s",
            version,
            holder,
            name,
            model.version,
        )
        return PredictResult(
            holder, 0, name, model.version, version, delta.version(spark, tables.predictions), True
        )
    lineage = Lineage(
        model_name=name,
        model_version=model.version,
        run_id=model.run_id,
        source_table=tables.silver,
        source_version=version,
        batch_id=batch,
        scored_at=datetime.now(UTC).replace(tzinfo=None),
    )
    with timed(log, f"predict: batch {batch} with {name} v{model.version}") as stats:
        expected = rows.count()
        # counted before the commit: a short batch never lands in gold
        scored = score(model.load(), rows, ds.identity, lineage).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        try:
            produced = scored.count()
            if produced != expected:
                raise ReconciliationError(
                    f"predict: batch {batch}: the model scored {produced} of {expected} silver "
                    f"rows; {expected - produced} were dropped at scoring (a categorical value "
                    "it cannot encode under train.features.categorical.handle_invalid: skip; "
                    "`keep` scores them); nothing was written"
                )
            delta.replace_where(scored, tables.predictions, f"_batch_id = '{batch}'", [PARTITION])
        finally:
            scored.unpersist()
        written = delta.read(spark, tables.predictions).where(F.col("_batch_id") == batch).count()
        stats.update(rows=written, silver_version=version)
    if written != expected:
        raise ReconciliationError(
            f"predict: batch {batch}: {expected} silver rows but {written} predictions"
        )
    return PredictResult(
        batch, written, name, model.version, version, delta.version(spark, tables.predictions)
    )


def _scored_elsewhere(
    spark: SparkSession,
    table: str,
    batch: str,
    model_version: str,
    source_version: int,
    rows: DataFrame,
    identity: list[str],
) -> str | None:
    """Gold never holds a row twice for one model and silver version. When
    another batch holds every one of `rows`, scored by this model version
    from this silver version, that batch's id (nothing to do: a scheduled
    run on a day with nothing new). When other batches hold some of them,
    ConfigError naming those batches (re-running one replaces its rows).
    Identities match null-safe, as clean's keys do."""
    if not delta.is_table(spark, table):
        return None
    elsewhere = (
        delta.read(spark, table)
        .where(
            (F.col("_batch_id") != batch)
            & (F.col("_model_version") == model_version)
            & (F.col("_source_version") == source_version)
        )
        .select(*[F.col(k).alias(f"__held_{k}") for k in identity], "_batch_id")
    )
    wanted = rows.select(*identity)
    same = [wanted[k].eqNullSafe(elsewhere[f"__held_{k}"]) for k in identity]
    overlap = elsewhere.join(wanted, reduce(operator.and_, same), "left_semi")
    found = overlap.groupBy("_batch_id").count().orderBy(F.desc("count"), "_batch_id").collect()
    if not found:
        return None
    if len(found) == 1 and int(found[0]["count"]) == wanted.count():
        return str(found[0]["_batch_id"])
    where = ", ".join(f"{r['_batch_id']} ({r['count']} rows)" for r in found[:3])
    raise ConfigError(
        f"predict: batch {batch}: some of these rows are already in gold, scored by model "
        f"v{model_version} from silver v{source_version}, as batch {where}; run predict "
        f"with --batch-id {found[0]['_batch_id']} to score them again, or select other "
        "rows with predict.where"
    )


def _already_scored(
    spark: SparkSession,
    table: str,
    batch: str,
    model_version: str,
    source_version: int,
    rows: DataFrame,
    identity: list[str],
) -> bool:
    """Gold's batch holds exactly `rows` (by identity), all scored by this
    model version from this silver version: a re-run has nothing to do. A
    batch short of rows, or one `predict.where` now selects differently, is
    scored again."""
    if not delta.is_table(spark, table):
        return False
    batch_rows = delta.read(spark, table).where(F.col("_batch_id") == batch)
    same = (F.col("_model_version") == model_version) & (F.col("_source_version") == source_version)
    if batch_rows.isEmpty() or not batch_rows.where(~same).isEmpty():
        return False
    held = batch_rows.select(*identity)
    wanted = rows.select(*identity)
    if held.count() != wanted.count():
        return False
    return held.exceptAll(wanted).isEmpty() and wanted.exceptAll(held).isEmpty()
