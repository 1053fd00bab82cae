"""Monitor: drift of every model input and of the prediction between the
model's training rows and a scored batch, and the batch's performance (and
fairness per group, with `train.fairness`) once its labels exist.

The reference is the profile train stored with the model (bins, quantiles and
category counts of the train split's inputs and of the model's output on
them; see `monitoring.profile`), so drift is measured from exactly the rows
the model learnt from, derived inputs included. The current side is the
silver version the batch was scored from, derived by the model's own stages.
Performance leaves out rows the model trained on. One row per measure goes to
the monitoring table (re-running a batch replaces its rows) and to an MLflow
run. PSI past `monitor.psi_threshold` is the retrain signal: a log line and
exit code 5.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from pyspark.ml import PipelineModel
from pyspark.ml.functions import array_to_vector
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge import fairness, sqlguard
from lakeforge.config import JobConfig
from lakeforge.config.training import TrainConfig
from lakeforge.errors import ConfigError, DriftDetected, InputNotFound
from lakeforge.evaluation.metrics import binary_in_one_pass, evaluate
from lakeforge.fairness import records
from lakeforge.logs import timed
from lakeforge.monitoring import drift, profile
from lakeforge.split.assign import SPLIT, TRAIN
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from lakeforge.tracking import runs
from lakeforge.tracking.models import ServingModel, serving_model

log = logging.getLogger(__name__)

PREDICTION = profile.PREDICTION
_OUTPUT = "__output"  # the model output next to gold's own prediction column
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
    # per-group metrics of the labelled rows (train.fairness), None when not measured
    fairness: fairness.Audit | None = None


def run(
    spark: SparkSession,
    cfg: JobConfig,
    batch_id: str | None = None,
    *,
    signal: bool = True,
    source: str = "batch",
) -> MonitorResult:
    """Measure drift for `batch_id` (default: the latest scored batch) of gold
    predictions, or with `source="online"` of what `lakeforge serve` answered
    (a batch is a UTC day there, e.g. `online-2026-12-04`).

    Raises InputNotFound (nothing scored yet), DriftDetected (exit 5) when a
    PSI passes the threshold and `signal` is true (the pipeline passes False
    when it acts on the signal itself).
    """
    sqlguard.check(spark, cfg)  # config SQL calls only what it may
    ds = cfg.dataset
    if ds.train is None:
        raise ConfigError(f"{ds.name}: monitor needs the `train` section (the model's inputs)")
    tables = tables_for(cfg.settings, ds.name)
    online = source == "online"
    table = tables.online_predictions if online else tables.predictions
    if not delta.is_table(spark, table):
        step = "serve (with its inference log)" if online else "predict"
        raise InputNotFound(f"no {source} predictions table {table}: run {step} first")
    # the online log grows all day: measured at one version of it
    table_version = delta.version(spark, table) if online else None
    gold = delta.read(spark, table, as_of=table_version)
    batch = batch_id or _latest_batch(gold)
    scored = gold.where(F.col("_batch_id") == batch)
    # the batch's latest scored row says which model and silver version
    latest = scored.agg(
        F.max_by(F.struct("_model_name", "_model_version", "_source_version"), "_scored_at")
    ).first()
    if latest is None or latest[0] is None:
        raise InputNotFound(f"batch {batch!r} is not in {table}")
    first = latest[0]
    name, version = first[0], first[1]
    if online:
        # a day the alias moved holds two versions: the latest one is measured,
        # and the other's rows are counted and said
        by_version = {r[0]: int(r[1]) for r in scored.groupBy("_model_version").count().collect()}
        others = {v: n for v, n in by_version.items() if v != version}
        if others:
            log.warning(
                "monitor: batch %s: measuring %s v%s (%d rows); not measured: %s",
                batch,
                name,
                version,
                by_version[version],
                ", ".join(f"v{v} ({n} rows)" for v, n in sorted(others.items())),
            )
        scored = scored.where(F.col("_model_version") == version)
        assert table_version is not None
        source_version = table_version
    else:
        source_version = int(first[2])
    settings = _settings_sha256(cfg)
    result = _already_measured(
        spark, tables.monitoring, batch, version, settings, source_version, ds.train
    )
    if result is None:
        model = serving_model(cfg.settings.mlflow.tracking_uri, name, int(version))
        what = f"monitor: batch {batch} vs the training profile of {name} v{version}"
        with timed(log, what) as s:
            result = _measure(
                spark, cfg, model, batch, scored, source_version, settings, online=online
            )
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
    *,
    online: bool = False,
) -> MonitorResult:
    ds = cfg.dataset
    spec = ds.train
    assert spec is not None
    tables = tables_for(cfg.settings, ds.name)
    reference = _reference_profile(model)
    monitor = ds.monitor
    if (reference.bins, reference.top_categories) != (monitor.bins, monitor.top_categories):
        log.info(
            "monitor: the reference profile of %s v%s has %d bins and %d categories "
            "(monitor.bins / top_categories take effect from the next training)",
            model.name,
            model.version,
            reference.bins,
            reference.top_categories,
        )
    if online:  # the inference log holds the inputs it was asked with
        current = scored
    else:
        current = delta.read(spark, tables.silver, as_of=source_version)
        if ds.predict.where:
            current = current.where(ds.predict.where)
    numeric, categorical = reference.inputs()
    columns = [p.column for p in numeric] + [p.column for p in categorical]
    # the inputs as the model's own stages derive them (derived columns, date
    # parts); keys, label and group columns too when performance is measured
    # from the same cached rows
    derived = _derivation(model).transform(current)
    labelled = not online
    extra = [*ds.identity, spec.label] if labelled else []
    if labelled and spec.fairness is not None:
        extra += [g for g in spec.fairness.groups if g in derived.columns]
    observed = _narrow(derived, [F.col(c) for c in dict.fromkeys([*columns, *extra])])
    output = profile.model_output(scored, spec).alias(PREDICTION)
    if labelled:  # what performance reads of the gold rows, cached with the output
        gold_columns = [*ds.identity, "prediction"]
        if "probability" in scored.columns:
            gold_columns.append("probability")
        gold_rows = _narrow(
            scored, [*[F.col(c) for c in dict.fromkeys(gold_columns)], output.alias(_OUTPUT)]
        )
        batch_output = gold_rows.select(F.col(_OUTPUT).alias(PREDICTION))
    else:
        gold_rows = batch_output = _narrow(scored, [output])
    out_numeric, out_categorical = reference.output()
    try:
        drifts = drift.compare(
            [(observed, numeric, categorical), (batch_output, out_numeric, out_categorical)]
        )
        # online answers carry no label (yet): no performance to measure
        performance: dict[str, float] = {}
        audit: fairness.Audit | None = None
        if labelled:
            performance, audit = _labelled(
                spark, gold_rows.drop(_OUTPUT), observed, ds.identity, spec, model
            )
    finally:
        for frame in (observed, gold_rows):
            frame.unpersist()
    drifted = [d.subject for d in drifts if d.psi > monitor.psi_threshold]
    now = datetime.now(UTC).replace(tzinfo=None)
    base = (batch, model.name, model.version, reference.silver_version, source_version)
    rows: list[tuple[object, ...]] = []
    for item in drifts:
        over = item.psi > monitor.psi_threshold
        rows.append(
            (*base, item.subject, item.kind, "psi", item.psi, monitor.psi_threshold, over, now)
        )
        if item.ks is not None:
            rows.append((*base, item.subject, item.kind, "ks", item.ks, None, False, now))
    for metric_name, value in performance.items():
        rows.append((*base, "performance", "metric", metric_name, value, None, False, now))
    if audit is not None:
        assert spec.fairness is not None
        for record in records.to_records(audit, spec.fairness):
            rows.append((*base, *record, False, now))
        for breach in fairness.breaches(audit, spec.fairness):
            log.warning("monitor: batch %s: fairness: %s", batch, breach)
    # what shaped these figures: a re-run with other settings measures again
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
        if audit is not None:
            runs.log_fairness(audit, "batch_fairness")
    return MonitorResult(batch, model.version, drifts, performance, drifted, fairness=audit)


def _reference_profile(model: ServingModel) -> profile.ReferenceProfile:
    """The profile stored with the model's training run; InputNotFound when
    there is none (a model trained before lakeforge stored one, or elsewhere)."""
    uri = f"runs:/{model.run_id}/{profile.ARTIFACT}"
    try:
        return profile.ReferenceProfile.from_dict(mlflow.artifacts.load_dict(uri))
    except (MlflowException, OSError, ValueError, KeyError, TypeError) as exc:
        raise InputNotFound(
            f"model {model.name} v{model.version} has no usable reference profile "
            f"({profile.ARTIFACT} in run {model.run_id}: {str(exc).splitlines()[0][:160]}); "
            "train stores one with every model: retrain to monitor it"
        ) from None


def _derivation(model: ServingModel) -> PipelineModel:
    """The model's derivation stages (`profile.derivation`), read from its
    saved stages' params: loading the whole model costs some twenty Spark
    jobs, and only these stages are needed."""
    with tempfile.TemporaryDirectory(prefix="lakeforge-monitor-") as scratch:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model.uri, dst_path=scratch)
        data = Model.load(local).flavors["spark"]["model_data"]
        return profile.saved_derivation(os.path.join(local, data))


def _narrow(df: DataFrame, columns: list[Column]) -> DataFrame:
    """`columns` of `df`, cached and counted: every measure scans them again."""
    narrow = df.select(*columns).persist()
    narrow.count()
    return narrow


# the measures that say which labelled rows the performance is measured on
MEASURED_ROWS = "rows_measured"
TRAINED_ROWS = "rows_trained_on_left_out"


def _performance(
    spark: SparkSession,
    scored: DataFrame,
    current: DataFrame,
    keys: list[str],
    spec: TrainConfig,
    model: ServingModel,
) -> dict[str, float]:
    """The batch's metrics where its labels are known (none yet: empty), on
    the rows the model did not train on: rows in its run's train split (a
    model retrained on this batch, `--retrain-on-drift`) are left out and
    counted, so the figure is never in-sample."""
    return _labelled(spark, scored, current, keys, spec, model)[0]


def _labelled(
    spark: SparkSession,
    scored: DataFrame,
    current: DataFrame,
    keys: list[str],
    spec: TrainConfig,
    model: ServingModel,
) -> tuple[dict[str, float], fairness.Audit | None]:
    """The performance (see `_performance`) and, with `train.fairness`, the
    per-group metrics of the same rows: group columns come from `current`;
    a group column it lacks (a model trained without the derived column)
    is said and fairness left out."""
    groups = [g for g in spec.fairness.groups if g not in keys] if spec.fairness else []
    missing = [g for g in groups if g not in current.columns]
    if missing:
        log.warning(
            "monitor: fairness not measured: the batch's rows have no column %s",
            ", ".join(missing),
        )
        groups = []
    labelled = scored.join(
        current.select(*keys, F.col(spec.label).cast("double").alias(spec.label), *groups), keys
    ).where(F.col(spec.label).isNotNull())
    if labelled.isEmpty():
        return {}, None
    if not model.split_table or model.split_version is None:
        raise InputNotFound(
            f"model {model.name} v{model.version}: its run records no split table, so the "
            "rows it trained on cannot be left out of the batch's performance: retrain it"
        )
    trained_on = (
        delta.read(spark, model.split_table, as_of=model.split_version)
        .where(F.col(SPLIT) == TRAIN)
        .select(*[F.col(k).alias(f"__t_{k}") for k in keys], F.lit(True).alias("__in_train"))
        .distinct()  # a key the split table holds twice must not double a batch row
    )
    same = [F.col(k).eqNullSafe(F.col(f"__t_{k}")) for k in keys]
    # matched by a marker, not by a key column: a key part may itself be null
    flagged = labelled.join(trained_on, reduce(operator.and_, same), "left").select(
        *labelled.columns, F.col("__in_train").isNotNull().alias("__trained")
    )
    if "probability" in labelled.columns:
        flagged = flagged.withColumn(
            "probability", array_to_vector(F.col("probability"))
        ).withColumn("rawPrediction", F.col("probability"))
    flagged = flagged.persist()  # one join, then the counts and the metrics
    try:
        counts = {bool(r[0]): int(r[1]) for r in flagged.groupBy("__trained").count().collect()}
        measured, left_out = counts.get(False, 0), counts.get(True, 0)
        if left_out:
            log.info(
                "monitor: %d labelled row(s) of the batch are in the model's train split "
                "(run %s): performance is measured on the other %d",
                left_out,
                model.run_id,
                measured,
            )
        found = {MEASURED_ROWS: float(measured), TRAINED_ROWS: float(left_out)}
        audit = None
        if measured:
            unseen = flagged.where(~F.col("__trained"))
            if spec.task == "binary":  # one aggregation instead of a pass per metric
                found.update(binary_in_one_pass(unseen, spec.label))
            else:
                found.update(evaluate(unseen, spec.task, spec.label))
            if spec.fairness is not None and not missing:
                audit = fairness.measure(unseen, spec.fairness, spec.task, spec.label)
        return found, audit
    finally:
        flagged.unpersist()


def _latest_batch(gold: DataFrame) -> str:
    """The batch of the latest scored row (one aggregation, no sort)."""
    row = gold.agg(F.max_by("_batch_id", "_scored_at")).first()
    if row is None or row[0] is None:
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
    if ds.train is not None and ds.train.fairness is not None:
        shaping["fairness"] = ds.train.fairness.model_dump()
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def _already_measured(
    spark: SparkSession,
    table: str,
    batch: str,
    version: str,
    settings: str,
    source_version: int,
    spec: TrainConfig,
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
        if r["kind"] == SETTINGS or r["kind"] in records.KINDS:
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
    audit = (
        records.from_records([r.asDict() for r in rows], spec.fairness, spec.task)
        if spec.fairness is not None
        else None
    )
    return MonitorResult(
        batch, version, drifts, performance, sorted(drifted), skipped=True, fairness=audit
    )


def _metric_key(subject: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in subject)
