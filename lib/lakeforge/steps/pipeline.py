"""The whole pipeline in one job; for now ingest (clean, train, predict and
monitor join as they land)."""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession

from lakeforge.config import JobConfig
from lakeforge.steps import ingest
from lakeforge.storage.paths import tables_for

log = logging.getLogger(__name__)


def run(
    spark: SparkSession, cfg: JobConfig, input_path: str | None = None, batch_id: str | None = None
) -> None:
    """Run every step in order on the dataset; raises what the first failing step raises."""
    result = ingest.run(spark, cfg, input_path=input_path, batch_id=batch_id)
    tables = tables_for(cfg.settings, cfg.dataset.name)
    log.info(
        "pipeline: done; bronze %s (version %s, +%d rows), quarantine %s (+%d rows)",
        tables.bronze,
        result.bronze_version,
        result.bronze_rows,
        tables.bronze_quarantine,
        result.quarantined_rows,
    )
