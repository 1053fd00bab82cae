"""The whole pipeline in one job: ingest, clean, train, predict, monitor.

With `retrain_on_drift`, a drift signal from monitor is acted on: the model is
retrained on its training rows plus the drifted batch (`train.where OR
predict.where`), goes through the same champion gate, and the batch is
rescored if the new model won; the job then ends with exit 0. The rescored
batch's performance leaves out the rows the new model trained on (monitor
reads its run's split table), so it is never measured in sample.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import mlflow
from pyspark.sql import SparkSession

from lakeforge.config import JobConfig
from lakeforge.report import PipelineRun, render
from lakeforge.steps import clean, ingest, monitor, predict, train
from lakeforge.storage.paths import Tables, is_uri, tables_for

log = logging.getLogger(__name__)


def run(
    spark: SparkSession,
    cfg: JobConfig,
    input_path: str | None = None,
    batch_id: str | None = None,
    *,
    retrain_on_drift: bool = False,
) -> None:
    """Run every step in order on the dataset; raises what the first failing step
    raises (DriftDetected, exit 5, when monitor signals drift and
    `retrain_on_drift` is off)."""
    tables = tables_for(cfg.settings, cfg.dataset.name)
    report = PipelineRun(
        cfg.dataset.name,
        datetime.now(UTC).replace(tzinfo=None),
        psi_threshold=cfg.dataset.monitor.psi_threshold,
        trained=[],
        monitored=[],
    )
    try:
        _steps(spark, cfg, tables, report, input_path, batch_id, retrain_on_drift)
    finally:
        where = _write_report(cfg, tables, report)
        log.info(
            "pipeline: tables under %s/%s; report %s; MLflow: mlflow ui --backend-store-uri %s",
            tables.root,
            cfg.dataset.name,
            where,
            cfg.settings.mlflow.tracking_uri,
        )


def _steps(
    spark: SparkSession,
    cfg: JobConfig,
    tables: Tables,
    report: PipelineRun,
    input_path: str | None,
    batch_id: str | None,
    retrain_on_drift: bool,
) -> None:
    ingested = report.ingested = ingest.run(spark, cfg, input_path=input_path, batch_id=batch_id)
    log.info(
        "pipeline: bronze %s (version %s, +%d rows; +%d quarantined in %s)",
        tables.bronze,
        ingested.bronze_version,
        ingested.bronze_rows,
        ingested.quarantined_rows,
        tables.bronze_quarantine,
    )
    cleaned = report.cleaned = clean.run(spark, cfg)
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
    spec = cfg.dataset.train
    if spec is None:
        return
    trained = train.run(spark, cfg)
    if trained is not None:
        assert report.trained is not None
        report.trained.append(trained)
        log.info(
            "pipeline: model %s version %s (%s, test %s %.4f, %s); MLflow run %s",
            trained.model_name,
            trained.model_version,
            trained.best,
            spec.metric,
            trained.decision.value,
            "champion" if trained.decision.promoted else "challenger",
            trained.run_id,
        )
    # one --batch-id for the whole run: the gold batch is named like the ingest one
    predicted = report.predicted = predict.run(spark, cfg, batch_id=batch_id)
    log.info(
        "pipeline: predictions %s (batch %s, %d rows, model v%s)",
        tables.predictions,
        predicted.batch_id,
        predicted.rows,
        predicted.model_version,
    )
    measured = monitor.run(spark, cfg, predicted.batch_id, signal=not retrain_on_drift)
    assert report.monitored is not None
    report.monitored.append(measured)
    if measured.drifted:
        _retrain(spark, cfg, measured.drifted, report, predicted.batch_id)


def _retrain(
    spark: SparkSession,
    cfg: JobConfig,
    drifted: list[str],
    report: PipelineRun,
    batch_id: str | None = None,
) -> None:
    ds = cfg.dataset
    assert ds.train is not None
    learn_from = " OR ".join(f"({w})" for w in (ds.train.where, ds.predict.where) if w) or None
    log.warning(
        "pipeline: drift on %s: retrain on %s", ", ".join(drifted), learn_from or "all rows"
    )
    wider = ds.model_copy(update={"train": ds.train.model_copy(update={"where": learn_from})})
    retrained = train.run(spark, JobConfig(cfg.settings, wider, cfg.env, cfg.files))
    if retrained is None:
        log.info("pipeline: a model trained on those rows exists already: nothing to retrain")
    else:
        assert report.trained is not None
        report.trained.append(retrained)
        if retrained.decision.promoted:
            report.predicted = rescored = predict.run(spark, cfg, batch_id=batch_id)
            assert report.monitored is not None
            report.monitored.append(monitor.run(spark, cfg, rescored.batch_id, signal=False))


def _write_report(cfg: JobConfig, tables: Tables, report: PipelineRun) -> str:
    """Write the markdown report (and the newest model's plots) beside the tables,
    or under ./lakeforge-reports when the lakehouse is an object store."""
    base = (
        Path("lakeforge-reports") / cfg.dataset.name
        if is_uri(tables.reports)
        else Path(tables.reports)
    )
    folder = base / f"pipeline-{report.started:%Y%m%dT%H%M%S}"
    folder.mkdir(parents=True, exist_ok=True)
    if report.trained:
        try:
            mlflow.artifacts.download_artifacts(
                run_id=report.trained[-1].run_id, artifact_path="plots", dst_path=str(folder)
            )
            report.plots = tuple(
                f"plots/{p.name}" for p in sorted((folder / "plots").glob("*.png"))
            )
        except Exception as exc:  # the report must not hide the pipeline's own outcome
            log.warning("pipeline: plots not copied into the report: %s", exc)
    path = folder / "report.md"
    path.write_text(render(report))
    return str(path)
