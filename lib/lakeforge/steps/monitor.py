"""Monitor: drift of every model input and of the prediction between the
training snapshot and a scored batch, and the batch's performance once its
labels exist.

The reference is the silver version the model's training run recorded,
filtered as training filtered it (time travel, so it is exactly what the model
saw); the current side is the silver version the batch was scored from. One
row per measure goes to the monitoring table (re-running a batch replaces its
rows) and to an MLflow run. PSI past `monitor.psi_threshold` is the retrain
signal: a log line and exit code 5.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import mlflow
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge import sqlguard
from lakeforge.config import JobConfig
from lakeforge.config.training import TrainConfig
from lakeforge.errors import ConfigError, DriftDetected, InputNotFound
from lakeforge.evaluation.metrics import evaluate
from lakeforge.features.dateparts import DateParts
from lakeforge.logs import timed
from lakeforge.monitoring import drift
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from lakeforge.tracking import runs
from lakeforge.tracking.models import ServingModel, serving_model

log = logging.getLogger(__name__)

PREDICTION = "prediction"
SETTINGS = "settings"  # the row recording which settings a measurement used
SCHEMA = T.StructType(
    [
        T.StructField("batch_id", T.StringType(), False),
        T.StructField("model_name", T.StringType(), False),
        T.StructField("model_version", T.StringType(), False),
        T.StructField("reference_version", T.LongType(), False),
        T.StructField("source_version", T.LongType(), False),
        T.StructField("subject", T.StringType(), False),
        T.StructField("kind", T.StringType(), False),
        T.StructField("measure", T.StringType(), False),
        T.StructField("value", T.DoubleType(), True),
        T.StructField("threshold", T.DoubleType(), True),
        T.StructField("drifted", T.BooleanType(), False),
        T.StructField("computed_at", T.TimestampType(), False),
    ]
)


@dataclass(frozen=True)
class MonitorResult:
    batch_id: str
    model_version: str
    drifts: list[drift.Drift] = field(default_factory=list)
    performance: dict[str, float] = field(default_factory=dict)
    drifted: list[str] = field(default_factory=list)
    skipped: bool = False


def run(
    spark: SparkSession, cfg: JobConfig, batch_id: str | None = None, *, signal: bool = True
) -> MonitorResult:
    """Measure drift for `batch_id` (default: the latest scored batch).

    Raises InputNotFound (nothing scored yet), DriftDetected (exit 5) when a
    PSI passes the threshold and `signal` is true (the pipeline passes False
    when it acts on the signal itself).
    """
    sqlguard.check(spark, cfg)  # config SQL calls only what it may
    ds = cfg.dataset
    if ds.train is None:
        raise ConfigError(f"{ds.name}: monitor needs the `train` section (the model's inputs)")
    tables = tables_for(cfg.settings, ds.name)
    if not delta.is_table(spark, tables.predictions):
        raise InputNotFound(f"no predictions table {tables.predictions}: run predict first")
    gold = delta.read(spark, tables.predictions)
    batch = batch_id or _latest_batch(gold)
    scored = gold.where(F.col("_batch_id") == batch)
    first = scored.select("_model_name", "_model_version", "_source_version").first()
    if first is None:
        raise InputNotFound(f"batch {batch!r} is not in {tables.predictions}")
    name, version, source_version = first[0], first[1], int(first[2])
    settings = _settings_sha256(cfg)
    result = _already_measured(spark, tables.monitoring, batch, version, settings, source_version)
    if result is None:
        model = serving_model(cfg.settings.mlflow.tracking_uri, name, int(version))
        with timed(log, f"monitor: batch {batch} vs training snapshot of {name} v{version}") as s:
            result = _measure(spark, cfg, model, batch, scored, source_version, settings)
            s.update(subjects=len(result.drifts), drifted=len(result.drifted))
    else:
        log.info("monitor: batch %s with %s v%s already measured", batch, name, version)
    threshold = ds.monitor.psi_threshold
    for item in sorted(result.drifts, key=lambda d: -d.psi):
        ks = "" if item.ks is None else f" ks={item.ks:.3f}"
        log.info("monitor: %-24s psi=%.3f%s", item.subject, item.psi, ks)
    if result.drifted and signal:
        raise DriftDetected(
            f"monitor: RETRAIN: batch {batch}: PSI above {threshold} for "
            f"{', '.join(result.drifted)}"
        )
    return result


def _measure(
    spark: SparkSession,
    cfg: JobConfig,
    model: ServingModel,
    batch: str,
    scored: DataFrame,
    source_version: int,
    settings: str,
) -> MonitorResult:
    ds = cfg.dataset
    spec = ds.train
    assert spec is not None
    tables = tables_for(cfg.settings, ds.name)
    reference = delta.read(spark, tables.silver, as_of=model.silver_version)
    if model.train_where:
        reference = reference.where(model.train_where)
    current = delta.read(spark, tables.silver, as_of=source_version)
    if ds.predict.where:
        current = current.where(ds.predict.where)
    numeric, categorical, with_parts = _inputs(spec)
    columns = [*numeric, *categorical]
    # Narrow and cached: every measure scans these frames again.
    reference = _narrow(model.load().transform(with_parts(reference)), columns, spec)
    observed = _narrow(with_parts(current), columns, None)
    batch_output = _narrow(scored, [], spec)
    monitor = ds.monitor
    try:
        drifts = [
            *drift.numeric(reference, observed, numeric, monitor.bins),
            *drift.categorical(reference, observed, categorical, monitor.top_categories),
        ]
        if spec.task == "multiclass":
            drifts += drift.categorical(
                reference, batch_output, [PREDICTION], monitor.top_categories
            )
        else:
            drifts += drift.numeric(reference, batch_output, [PREDICTION], monitor.bins)
    finally:
        for frame in (reference, observed, batch_output):
            frame.unpersist()
    performance = _performance(scored, current, ds.identity, spec)
    drifted = [d.subject for d in drifts if d.psi > monitor.psi_threshold]
    now = datetime.now(UTC).replace(tzinfo=None)
    rows: list[tuple[object, ...]] = []
    for item in drifts:
        base = (batch, model.name, model.version, model.silver_version, source_version)
        over = item.psi > monitor.psi_threshold
        rows.append(
            (*base, item.subject, item.kind, "psi", item.psi, monitor.psi_threshold, over, now)
        )
        if item.ks is not None:
            rows.append((*base, item.subject, item.kind, "ks", item.ks, None, False, now))
    for metric_name, value in performance.items():
        base = (batch, model.name, model.version, model.silver_version, source_version)
        rows.append((*base, "performance", "metric", metric_name, value, None, False, now))
    # what shaped these figures: a re-run with other settings measures again
    base = (batch, model.name, model.version, model.silver_version, source_version)
    rows.append((*base, SETTINGS, SETTINGS, settings, None, None, False, now))
    predicate = f"batch_id = '{batch}' AND model_version = '{model.version}'"
    delta.replace_where(spark.createDataFrame(rows, SCHEMA), tables.monitoring, predicate)
    mlflow.set_tracking_uri(cfg.settings.mlflow.tracking_uri)
    mlflow.set_experiment(ds.name)
    with mlflow.start_run(run_name=f"monitor-{batch}"):
        runs.set_tags(
            {
                "lakeforge.step": "monitor",
                "lakeforge.batch_id": batch,
                "lakeforge.model_version": model.version,
                "lakeforge.drifted": ",".join(drifted),
            }
        )
        mlflow.log_metrics({f"psi_{_metric_key(d.subject)}": d.psi for d in drifts})
        mlflow.log_metrics(
            {f"ks_{_metric_key(d.subject)}": d.ks for d in drifts if d.ks is not None}
        )
        mlflow.log_metrics({f"batch_{k}": v for k, v in performance.items()})
    return MonitorResult(batch, model.version, drifts, performance, drifted)


def _inputs(spec: TrainConfig):  # type: ignore[no-untyped-def]
    """Numeric and categorical model inputs, and a function adding date parts."""
    features = spec.features
    numeric = [*(features.numeric.columns if features.numeric else [])]
    numeric += [b.column for b in features.buckets if b.column not in numeric]
    categorical = [*(features.categorical.columns if features.categorical else [])]
    stages = [DateParts(inputCol=d.column, parts=list(d.parts)) for d in features.dates]
    for stage in stages:
        categorical += stage.outputCols()
    derived = set(features.derive)
    numeric = [c for c in numeric if c not in derived]
    categorical = [c for c in categorical if c not in derived]

    def with_parts(df: DataFrame) -> DataFrame:
        for stage in stages:
            df = stage.transform(df)
        return df

    return numeric, categorical, with_parts


def _narrow(df: DataFrame, columns: list[str], spec: TrainConfig | None) -> DataFrame:
    """`columns` (and the model output that drifts, given `spec`), cached."""
    selected = [F.col(c) for c in columns]
    if spec is not None:
        selected.append(_prediction(df, spec).alias(PREDICTION))
    narrow = df.select(*selected).persist()
    narrow.count()
    return narrow


def _prediction(df: DataFrame, spec: TrainConfig) -> Column:
    """The model output that drifts: P(positive) for binary, the class for
    multiclass, the value for regression."""
    if spec.task == "binary" and "probability" in df.columns:
        probability = F.col("probability")
        if isinstance(df.schema["probability"].dataType, T.ArrayType):
            return probability[1]
        return vector_to_array(probability)[1]
    return F.col("prediction")


def _performance(
    scored: DataFrame, current: DataFrame, keys: list[str], spec: TrainConfig
) -> dict[str, float]:
    """The batch's metrics where its labels are known (none yet: empty)."""
    labelled = scored.join(
        current.select(*keys, F.col(spec.label).cast("double").alias(spec.label)), keys
    ).where(F.col(spec.label).isNotNull())
    if labelled.isEmpty():
        return {}
    if "probability" in labelled.columns:
        labelled = labelled.withColumn(
            "probability", array_to_vector(F.col("probability"))
        ).withColumn("rawPrediction", F.col("probability"))
    labelled = labelled.persist()  # one join, then a pass per metric
    try:
        return evaluate(labelled, spec.task, spec.label)
    finally:
        labelled.unpersist()


def _latest_batch(gold: DataFrame) -> str:
    row = gold.orderBy(F.desc("_scored_at")).select("_batch_id").first()
    if row is None:
        raise InputNotFound("the predictions table is empty: run predict first")
    return str(row[0])


def _settings_sha256(cfg: JobConfig) -> str:
    """Hash of the settings that shape monitor's figures: its own section,
    the rows predict scored (`predict.where`) and the model inputs."""
    ds = cfg.dataset
    shaping = {
        "monitor": ds.monitor.model_dump(),
        "predict_where": ds.predict.where,
        "features": ds.train.features.model_dump() if ds.train else None,
    }
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def _already_measured(
    spark: SparkSession, table: str, batch: str, version: str, settings: str, source_version: int
) -> MonitorResult | None:
    """The stored result when this batch, as scored from this silver version,
    and model version were measured before with the same settings (None:
    measure, replacing any older one)."""
    if not delta.is_table(spark, table):
        return None
    rows = (
        delta.read(spark, table)
        .where((F.col("batch_id") == batch) & (F.col("model_version") == version))
        .collect()
    )
    if not any(
        r["kind"] == SETTINGS and r["measure"] == settings and r["source_version"] == source_version
        for r in rows
    ):
        return None
    by_subject: dict[str, dict[str, float]] = {}
    kinds: dict[str, str] = {}
    performance: dict[str, float] = {}
    drifted = []
    for r in rows:
        if r["kind"] == SETTINGS:
            continue
        if r["kind"] == "metric":
            performance[r["measure"]] = float(r["value"])
            continue
        by_subject.setdefault(r["subject"], {})[r["measure"]] = float(r["value"])
        kinds[r["subject"]] = r["kind"]
        if r["drifted"]:
            drifted.append(r["subject"])
    drifts = [
        drift.Drift(s, kinds[s], v["psi"], v.get("ks")) for s, v in sorted(by_subject.items())
    ]
    return MonitorResult(batch, version, drifts, performance, sorted(drifted), skipped=True)


def _metric_key(subject: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in subject)
