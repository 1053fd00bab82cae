"""The whole pipeline in one job; for now ingest and clean (train, predict and
monitor join as they land)."""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession

from lakeforge.config import JobConfig
from lakeforge.steps import clean, ingest
from lakeforge.storage.paths import tables_for

log = logging.getLogger(__name__)


def run(
    spark: SparkSession, cfg: JobConfig, input_path: str | None = None, batch_id: str | None = None
) -> None:
    """Run every step in order on the dataset; raises what the first failing step raises."""
    ingested = ingest.run(spark, cfg, input_path=input_path, batch_id=batch_id)
    cleaned = clean.run(spark, cfg)
    tables = tables_for(cfg.settings, cfg.dataset.name)
    log.info(
        "pipeline: bronze %s (version %s, +%d rows; +%d quarantined in %s)",
        tables.bronze,
        ingested.bronze_version,
        ingested.bronze_rows,
        ingested.quarantined_rows,
        tables.bronze_quarantine,
    )
    log.info(
        "pipeline: silver %s (version %s, +%d inserted, %d updated; +%d quarantined in %s)",
        tables.silver,
        cleaned.silver_version,
        cleaned.inserted,
        cleaned.updated,
        cleaned.quarantined,
        tables.silver_quarantine,
    )
    validation = cleaned.table_validation
    if validation is not None and validation.data_docs:
        log.info("pipeline: data quality report %s", validation.data_docs)
