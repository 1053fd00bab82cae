"""The whole pipeline in one job: ingest, clean, train (predict and monitor
join as they land)."""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession

from lakeforge.config import JobConfig
from lakeforge.steps import clean, ingest, train
from lakeforge.storage.paths import tables_for

log = logging.getLogger(__name__)


def run(
    spark: SparkSession, cfg: JobConfig, input_path: str | None = None, batch_id: str | None = None
) -> None:
    """Run every step in order on the dataset; raises what the first failing step raises."""
    ingested = ingest.run(spark, cfg, input_path=input_path, batch_id=batch_id)
    cleaned = clean.run(spark, cfg)
    trained = train.run(spark, cfg) if cfg.dataset.train is not None else None
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
    if trained is not None:
        log.info(
            "pipeline: model %s version %s (%s, test %s %.4f, %s); MLflow run %s",
            trained.model_name,
            trained.model_version,
            trained.best,
            cfg.dataset.train.metric if cfg.dataset.train else "",
            trained.decision.value,
            "champion" if trained.decision.promoted else "challenger",
            trained.run_id,
        )
    log.info(
        "pipeline: see the runs with: mlflow ui --backend-store-uri %s",
        cfg.settings.mlflow.tracking_uri,
    )
