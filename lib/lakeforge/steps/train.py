"""Train: silver → split → cross-validated search → refit → test evaluation
(and fairness per group) → MLflow run → registry gate.

Everything runs in Spark (the data never goes to pandas). The silver version
read is pinned and recorded, so the training rows can be rebuilt by time
travel; the split and folds come from the keys and a seed, so the same config
and data give the same model.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge import fairness, secrets, sqlguard
from lakeforge.config import DatasetConfig, JobConfig
from lakeforge.config.training import TrainConfig
from lakeforge.errors import ConfigError, InputNotFound, SchemaMismatch
from lakeforge.evaluation import plots
from lakeforge.evaluation.importance import by_column, feature_names, importances
from lakeforge.evaluation.metrics import evaluate, metric
from lakeforge.evaluation.threshold import ThresholdChoice, choose_threshold, score_column
from lakeforge.fairness.plots import figures as fairness_figures
from lakeforge.features.stages import build_stages
from lakeforge.ingest import batches
from lakeforge.logs import timed
from lakeforge.models.threshold import DecisionThreshold
from lakeforge.models.weights import WEIGHT, balanced_weights, class_counts, with_weights
from lakeforge.monitoring import profile
from lakeforge.quality import learnable
from lakeforge.serving import export
from lakeforge.spark import cores
from lakeforge.split.assign import FOLD, SPLIT, TEST, TRAIN, VALIDATION, assign
from lakeforge.storage import delta
from lakeforge.storage.paths import Tables, tables_for
from lakeforge.tracking import registry, runs
from lakeforge.tuning.refit import refit
from lakeforge.tuning.search import SearchResult, Wiring, candidates, cross_validate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_uri: str
    model_name: str
    model_version: str
    silver_version: int
    split_counts: dict[str, int]
    best: str
    test_metrics: dict[str, float]
    validation_metrics: dict[str, float]
    search: SearchResult
    decision: registry.GateDecision
    # the tuned decision threshold (train.threshold), None when not tuned
    threshold: ThresholdChoice | None = None
    class_weights: dict[float, float] | None = None
    # importance summed per silver column, largest first
    column_importance: tuple[tuple[str, float], ...] = ()
    # per-group metrics and gaps on the test split (train.fairness), None when not asked
    fairness: fairness.Audit | None = None


def run(spark: SparkSession, cfg: JobConfig) -> TrainResult | None:
    """Train, evaluate, log and register a model for the dataset; None when a
    model was already trained on this silver version with this config.

    Raises ConfigError (no `train` section, a bad `where` or derived
    expression), InputNotFound (no silver table or no rows to train on),
    SchemaMismatch (a label that is not numeric or not 0..k-1 for
    classification).
    """
    sqlguard.check(spark, cfg)  # config SQL calls only what it may
    ds = cfg.dataset
    if ds.train is None:
        raise ConfigError(f"{ds.name}: no `train` section in the dataset config")
    spec = ds.train
    tables = tables_for(cfg.settings, ds.name)
    version = delta.version(spark, tables.silver)
    if version is None:
        raise InputNotFound(f"silver table {tables.silver} does not exist: run clean first")
    done = runs.find_trained(cfg.settings.mlflow.tracking_uri, ds.name, version, config_sha256(cfg))
    if done is not None:
        log.info(
            "train: nothing new: silver v%d with this config is run %s (model version %s)",
            version,
            *done,
        )
        return None
    silver = delta.read(spark, tables.silver, as_of=version)
    rows = _labelled_rows(silver, spec, ds.identity, ds.name)
    # The columns training reads, cached: every fold and candidate scans them;
    # fairness groups travel with the rows even when they are not features.
    wanted = [
        *ds.identity,
        spec.label,
        *spec.features.input_columns(),
        *_group_columns(spec),
        SPLIT,
        FOLD,
    ]
    data = rows.select(*dict.fromkeys(wanted)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        # The champion is scored on the same test rows with every silver column:
        # it may read columns this config does not.
        return _train(spark, cfg, spec, data, rows.where(F.col(SPLIT) == TEST), tables, version)
    finally:
        data.unpersist()


def config_sha256(cfg: JobConfig) -> str:
    """Hash of what decides the model: the keys (they place rows in splits) and
    the validated `train` section (defaults filled in, formatting ignored).
    Changing predict or monitor settings does not call for a new model."""
    ds = cfg.dataset
    train = ds.train.model_dump() if ds.train else None
    if train is not None and train.get("fairness") is None:
        del train["fairness"]  # configs without it keep the hash they had before it existed
    decisive = {"keys": ds.keys, "train": train}
    return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()


def _labelled_rows(silver: DataFrame, spec: TrainConfig, keys: list[str], name: str) -> DataFrame:
    label_type = silver.schema[spec.label].dataType
    if not isinstance(label_type, T.NumericType | T.BooleanType):
        raise SchemaMismatch(
            f"{name}: train.label {spec.label!r} is {label_type.simpleString()}; "
            "it must be numeric (classes 0..k-1 for classification)"
        )
    rows = silver
    if spec.where:
        try:
            rows = rows.where(spec.where)
            rows.schema  # noqa: B018 - analyse now: a bad predicate is a config error
        except AnalysisException as exc:
            raise ConfigError(f"{name}: train.where: {exc}".splitlines()[0]) from None
    rows = rows.withColumn(spec.label, F.col(spec.label).cast("double"))
    # Rows without a label stay in silver; they cannot be learnt from.
    return assign(rows.where(F.col(spec.label).isNotNull()), keys, spec.split, spec.label)


def _train(
    spark: SparkSession,
    cfg: JobConfig,
    spec: TrainConfig,
    data: DataFrame,
    full_test_rows: DataFrame,
    tables: Tables,
    version: int,
) -> TrainResult:
    ds = cfg.dataset
    counts = {r[SPLIT]: int(r["count"]) for r in data.groupBy(SPLIT).count().collect()}
    split_counts = {s: counts.get(s, 0) for s in (TRAIN, VALIDATION, TEST)}
    log.info(
        "train: silver v%d, %s rows: train %d, validation %d, test %d",
        version,
        spec.where or "all",
        *split_counts.values(),
    )
    if split_counts[TRAIN] == 0 or split_counts[TEST] == 0:
        raise InputNotFound(f"{ds.name}: no rows to train or test on ({split_counts})")
    if spec.fairness is not None:
        fairness.check_group_counts(data, spec.fairness)
    train = data.where(F.col(SPLIT) == TRAIN)
    counts_by_class = class_counts(train, spec.label) if spec.task != "regression" else {}
    # what these rows cannot teach is said now, before any fit
    learnable.check_label(counts_by_class, spec, ds.name)
    learnable.check_features(train, spec, ds.name)
    n_classes = _classes(counts_by_class, spec, ds.name)
    class_weights: dict[float, float] | None = None
    if spec.class_weight == "balanced":
        class_weights = balanced_weights(counts_by_class)
        train = with_weights(train, spec.label, class_weights)
        log.info(
            "train: class weights (balanced on the train split): %s",
            ", ".join(f"{c:g}: {w:.3f}" for c, w in class_weights.items()),
        )
    weight_col = WEIGHT if class_weights else None
    specs = candidates(spec.models, spec.search)
    stages = build_stages(spec.features, spec.task, spec.label)
    workers = cores(spark)  # also xgboost's training tasks, unless num_workers is set
    parallelism = spec.search.parallelism or workers
    model_name = spec.registry.model_name or ds.name
    config_json = ds.model_dump_json()
    tags = {
        "lakeforge.dataset": ds.name,
        "lakeforge.config_sha256": config_sha256(cfg),
        "lakeforge.env": cfg.env,
    }
    with runs.start(
        cfg.settings.mlflow.tracking_uri, ds.name, f"train-{ds.name}-silver-v{version}"
    ) as parent:
        runs.log_inputs(train, tables.silver, version, f"{ds.name}-silver", tags)
        split_version = _write_splits(
            data, ds.identity, tables.splits, version, str(parent.info.run_id)
        )
        params: dict[str, object] = {
            "task": spec.task,
            "label": spec.label,
            "where": spec.where or "",
            "split": spec.split.model_dump_json(),
            "search": spec.search.model_dump_json(),
            "metric": spec.metric,
            "candidates": len(specs),
            "rows_train": split_counts[TRAIN],
            "rows_validation": split_counts[VALIDATION],
            "rows_test": split_counts[TEST],
            "class_weight": spec.class_weight,
            "split_table": tables.splits,
            "split_table_version": split_version,
        }
        if class_weights:
            params.update({f"class_weight_{c:g}": round(w, 6) for c, w in class_weights.items()})
        # config values may hold a ${SECRET} reference resolved at load time
        runs.log_params(params)
        runs.log_json(json.loads(config_json), "config/dataset.json")
        with timed(log, "train: cross-validated search") as stats:
            result = cross_validate(
                train,
                stages,
                specs,
                task=spec.task,
                label=spec.label,
                metric_name=spec.metric,
                smaller_is_better=spec.smaller_is_better,
                folds=spec.split.folds,
                parallelism=min(parallelism, len(specs)),
                seed=spec.split.seed,
                n_classes=n_classes,
                halving=spec.search.halving,
                solver=spec.search.solver,
                weight_col=weight_col,
                workers=workers,
            )
            assert result.best is not None
            stats.update(best=result.best.spec.label, cv=round(result.best.mean, 4))
        runs.log_candidates(result.scores, spec.metric)
        best = result.best
        runs.log_params({"best": best.spec.label, "best_estimator": best.spec.estimator})
        mlflow.log_metrics({f"cv_{spec.metric}_mean": best.mean, f"cv_{spec.metric}_std": best.std})
        with timed(log, f"train: refit {best.spec.label} on the train split"):
            wiring = Wiring(spec.task, spec.label, n_classes, spec.split.seed, weight_col, workers)
            model, feature_std = refit(stages, best.spec, train, wiring)
        # The validation rows are scored once: the threshold is tuned on those
        # scores, and the validation metrics are measured with it.
        threshold: ThresholdChoice | None = None
        validation_metrics: dict[str, float] = {}
        if split_counts[VALIDATION]:
            held = model.transform(data.where(F.col(SPLIT) == VALIDATION))
            held = held.persist(StorageLevel.MEMORY_AND_DISK)  # each metric is a pass
            try:
                judged = held
                if spec.threshold is not None:
                    model, threshold, judged = _tune_threshold(model, held, spec, ds.name)
                validation_metrics = evaluate(judged, spec.task, spec.label)
            finally:
                held.unpersist()
        elif spec.threshold is not None:
            raise InputNotFound(f"{ds.name}: train.threshold: the validation split has no rows")
        test_rows = data.where(F.col(SPLIT) == TEST)
        # each group's test rows before scoring: handle_invalid skip may drop some
        expected = (
            fairness.expected_rows(test_rows, spec.fairness, spec.label)
            if spec.fairness is not None
            else {}
        )
        with timed(log, "train: evaluate on the test split") as stats:
            scored = model.transform(test_rows).persist(StorageLevel.MEMORY_AND_DISK)
            try:
                test_metrics = evaluate(scored, spec.task, spec.label)
                names = feature_names(scored.schema, _numeric_columns(spec))
                weights = importances(model, names, feature_std)
                columns = by_column(weights, spec.features)
                figures = plots.figures(scored, spec.task, spec.label, weights, columns)
                audit = _fairness(scored, spec, expected, split_counts[TEST])
                online = _export_online(model, scored, spec, n_classes, split_counts[TEST])
                online = _with_privacy(spark, online, ds, tables)
            finally:
                scored.unpersist()
            stats.update(**{k: round(v, 4) for k, v in test_metrics.items()})
        mlflow.log_metrics({f"test_{k}": v for k, v in test_metrics.items()})
        mlflow.log_metrics({f"validation_{k}": v for k, v in validation_metrics.items()})
        held_back: list[str] = []
        if audit is not None:
            assert spec.fairness is not None
            runs.log_fairness(audit)
            figures.update(fairness_figures(audit))
            held_back = [str(b) for b in fairness.breaches(audit, spec.fairness)]
            for reason in held_back:
                log.warning("train: fairness: %s", reason)
            runs.set_tags({"lakeforge.fairness_gate": "held back" if held_back else "passed"})
        runs.log_figures(figures)
        runs.log_online(online)
        runs.log_importances(weights, columns, best.spec.estimator)
        with timed(log, "train: reference profile of the train split (for monitor)") as stats:
            reference = profile.build(
                model.transform(data.where(F.col(SPLIT) == TRAIN)),
                spec,
                version,
                ds.monitor.bins,
                ds.monitor.top_categories,
            )
            runs.log_json(reference.to_dict(), profile.ARTIFACT)
            stats.update(rows=reference.rows)
        with timed(log, "train: log and register the model"):
            # group columns that are not model inputs are not in its signature
            example = test_rows.drop(SPLIT, FOLD, spec.label, *_group_only(spec, ds.identity))
            example = example.limit(20)
            model_uri = runs.log_model(
                model, example, model.transform(example).select("prediction")
            )
            runs.add_online_flavour(model_uri, online)
            registered = mlflow.register_model(model_uri, model_name)
            registry.mark_servable(
                MlflowClient(),
                model_name,
                str(registered.version),
                online.servable,
                secrets.scrub(online.reason) if online.reason else None,
            )
        decision = registry.gate(
            MlflowClient(),
            model_name,
            str(registered.version),
            metric=spec.metric,
            value=test_metrics[spec.metric],
            smaller_is_better=spec.smaller_is_better,
            margin=spec.registry.margin,
            score_champion=lambda v: _score_version(model_name, v, full_test_rows, spec),
            held_back=held_back,
            audit_champion=(
                (lambda v: _champion_breaches(model_name, v, full_test_rows, spec, expected))
                if spec.fairness is not None
                and (spec.fairness.max_gap or spec.fairness.min_ratio is not None)
                else None
            ),
        )
        runs.set_tags(
            {"lakeforge.model_version": decision.version, "lakeforge.promoted": decision.promoted}
        )
        run_id = str(parent.info.run_id)
    log.info(
        "train: %s v%s, test %s %.4f, run %s",
        model_name,
        decision.version,
        spec.metric,
        test_metrics[spec.metric],
        run_id,
    )
    return TrainResult(
        run_id=run_id,
        model_uri=model_uri,
        model_name=model_name,
        model_version=decision.version,
        silver_version=version,
        split_counts=split_counts,
        best=best.spec.label,
        test_metrics=test_metrics,
        validation_metrics=validation_metrics,
        search=result,
        decision=decision,
        threshold=threshold,
        class_weights=class_weights,
        column_importance=tuple(columns),
        fairness=audit,
    )


def _group_columns(spec: TrainConfig) -> list[str]:
    """Fairness group columns read from silver (derived features come from the model)."""
    groups = spec.fairness.groups if spec.fairness else []
    return [g for g in groups if g not in spec.features.derive]


def _group_only(spec: TrainConfig, identity: list[str]) -> list[str]:
    """Group columns read from silver that the model does not read."""
    inputs = {*spec.features.input_columns(), *identity}
    return [g for g in _group_columns(spec) if g not in inputs]


def _fairness(
    scored: DataFrame,
    spec: TrainConfig,
    expected: Mapping[tuple[str, str], int],
    test_rows: int,
) -> fairness.Audit | None:
    """Per-group metrics of the scored test rows (train.fairness), or None;
    `expected`: each group's test rows before scoring, so a group whose rows
    the model did not all score says so."""
    if spec.fairness is None:
        return None
    what = f"train: fairness per group of {', '.join(spec.fairness.groups)} on the test split"
    with timed(log, what) as stats:
        audit = fairness.measure(scored, spec.fairness, spec.task, spec.label, expected)
        small = audit.too_small()
        first = audit.cells[0].grouping if audit.cells else None
        stats.update(
            test_rows=test_rows,
            scored_rows=scored.count(),
            rows_in_groups=sum(c.rows for c in audit.cells if c.grouping == first),
            groups=len(audit.cells),
            too_small=len(small),
        )
    for cell in audit.unscored():
        log.warning(
            "train: fairness: %d test rows of %s=%s were not scored by the model "
            "(handle_invalid skip); its metrics leave them out",
            cell.unscored,
            cell.grouping,
            cell.group,
        )
    if small:
        log.info(
            "train: fairness: groups under %d test rows, reported but not measured: %s",
            spec.fairness.min_rows,
            ", ".join(f"{c.grouping}={c.group} ({c.rows})" for c in small),
        )
    for gap in audit.gaps:
        if gap.name in ("demographic_parity_difference", "equalized_odds_difference"):
            log.info(
                "train: fairness: %s on %s %.4f (%s)",
                gap.name,
                gap.grouping,
                gap.value,
                gap.between(),
            )
    return audit


def _with_privacy(
    spark: SparkSession, online: export.Export, ds: DatasetConfig, tables: Tables
) -> export.Export:
    """`online` with how its personal inputs were protected, as the ingest log
    records it for bronze's latest batch (not the config of today, nor the
    key in this environment: train reads no personal value and needs no
    key); a model that then cannot be served says why."""
    log_path = tables.jdbc_log if ds.source.jdbc is not None else tables.ingest_log
    logged: list[str | None] = []
    if delta.is_table(spark, log_path):
        logged = batches.recorded_protection(
            [r.asDict() for r in delta.read(spark, log_path).collect()]
        )
    known = [f for f in logged if f is not None]
    bronze = known[-1] if known else None  # as ingest holds batches to it
    if bronze is not None:
        configured = {c: p.model_dump(exclude_none=True) for c, p in ds.privacy.columns.items()}
        columns = json.loads(bronze).get("columns") or {}
        if {c: e["protection"] for c, e in columns.items()} != configured:
            log.warning(
                "train: the privacy block differs from the one bronze was protected with; "
                "the online model protects requests as bronze was protected"
            )
    servable = online.servable
    online = export.with_privacy(
        online, ds.privacy, {c.name: c.type for c in ds.source.columns}, bronze, ds.clean
    )
    if servable and online.reason is not None:
        log.warning("online: %s; the model is registered for batch scoring only", online.reason)
    return online


def _export_online(
    model: PipelineModel, scored: DataFrame, spec: TrainConfig, classes: int, test_rows: int
) -> export.Export:
    """The model as ONNX, checked against Spark's scores of every test row it
    scored; a model that cannot be served is said so by name, and stays a
    batch model."""
    with timed(log, "train: online export (ONNX), parity on the test split") as stats:
        online = export.export(model, scored, spec.features.input_columns(), spec.task, classes)
        if online.parity is not None:
            # counted where Spark scored them, and where the ONNX model did
            spark_rows = scored.count()
            if online.parity.rows != spark_rows:
                raise AssertionError(
                    f"online parity checked {online.parity.rows} of {spark_rows} scored rows"
                )
            if spark_rows != test_rows:  # handle_invalid: skip drops rows
                log.info(
                    "train: the model scores %d of %d test rows (handle_invalid skip)",
                    spark_rows,
                    test_rows,
                )
            stats.update(rows=online.parity.rows, largest=f"{online.parity.largest:.2e}")
        stats.update(servable=online.servable)
    if online.reason is not None:
        log.warning("online: %s; the model is registered for batch scoring only", online.reason)
    return online


def _write_splits(
    data: DataFrame, identity: list[str], path: str, silver_version: int, run_id: str
) -> int:
    """Write which split (and, for train rows, which fold) each labelled row
    was in, so anyone can rebuild exactly this run's train and test rows (an
    independent reference model, an audit) without re-deriving the split.
    The table holds the latest run; each run logs the version it wrote, and
    time travel gives an earlier run's rows back. Returns that version."""
    spark = data.sparkSession
    rows = data.select(
        *identity,
        SPLIT,
        F.when(F.col(SPLIT) == TRAIN, F.col(FOLD)).alias(FOLD),
        F.lit(silver_version).alias("silver_version"),
        F.lit(run_id).alias("run_id"),
    )

    def attempt() -> None:
        writer = rows.write.format("delta").mode("overwrite")
        # the keys (and so the identity columns) may differ from the last run's
        writer.option("overwriteSchema", "true").save(path)

    with timed(log, "train: write the split assignment") as stats:
        delta.with_retry(attempt, what=f"overwrite {path}")
        written = delta.version(spark, path)
        assert written is not None
        stats.update(table=path, version=written)
    return written


def _tune_threshold(
    model: PipelineModel, held: DataFrame, spec: TrainConfig, name: str
) -> tuple[PipelineModel, ThresholdChoice, DataFrame]:
    """`model` with a DecisionThreshold stage tuned on `held` (its scored
    validation rows), the choice, and `held` predicted with the threshold."""
    goal = spec.threshold
    assert goal is not None
    with timed(log, "train: tune the decision threshold on the validation split") as stats:
        try:
            choice = choose_threshold(held, spec.label, goal)
        except InputNotFound as exc:
            raise InputNotFound(f"{name}: {exc}") from None
        stage = DecisionThreshold(threshold=choice.threshold, scoreCol=score_column(held))
        stats.update(
            threshold=round(choice.threshold, 6),
            precision=round(choice.precision, 4),
            recall=round(choice.recall, 4),
            f1=round(choice.f1, 4),
        )
    if not choice.target_met:
        log.warning(
            "train: no threshold reaches %s %.3f on the validation split; using the closest "
            "(%s %.4f at threshold %.6f)",
            goal.optimise,
            goal.target,
            goal.optimise,
            getattr(choice, goal.optimise),
            choice.threshold,
        )
    runs.log_threshold(choice, goal.optimise)
    return PipelineModel(stages=[*model.stages, stage]), choice, stage.transform(held)


def _classes(counts: dict[float, int], spec: TrainConfig, name: str) -> int:
    """Number of classes (0 for regression) from the train split's rows per
    label; classification labels must be 0..k-1."""
    if spec.task == "regression":
        return 0
    labels = sorted(counts)
    expected = [float(i) for i in range(len(labels))]
    if labels != expected or (spec.task == "binary" and len(labels) != 2):
        shown = ", ".join(f"{v:g}" for v in labels[:10])
        raise SchemaMismatch(
            f"{name}: train.label {spec.label!r} holds {shown}; a {spec.task} label must be "
            f"{'0 and 1' if spec.task == 'binary' else '0..k-1'}"
        )
    return len(labels)


def _numeric_columns(spec: TrainConfig) -> list[str]:
    return list(spec.features.numeric.columns) if spec.features.numeric else []


def _champion_breaches(
    name: str,
    version: str,
    rows: DataFrame,
    spec: TrainConfig,
    expected: Mapping[tuple[str, str], int],
) -> list[str]:
    """The fairness limits registered `version` breaches on the test `rows`
    (measured as the challenger's were); CannotScore when it cannot be
    measured on them (the gate then keeps it, and says so)."""
    assert spec.fairness is not None
    try:
        scored = mlflow.spark.load_model(f"models:/{name}/{version}").transform(rows)
        audit = fairness.measure(scored, spec.fairness, spec.task, spec.label, expected)
    except AnalysisException as exc:  # it reads, or today's groups need, columns it lacks
        raise registry.CannotScore(str(exc).splitlines()[0]) from exc
    return [str(b) for b in fairness.breaches(audit, spec.fairness)]


def _score_version(name: str, version: str, rows: DataFrame, spec: TrainConfig) -> float:
    """The metric of registered `version` on `rows`; CannotScore when the rows
    lack what it reads (Spark's analysis fails), any other failure as is."""
    model = mlflow.spark.load_model(f"models:/{name}/{version}")
    try:
        scored = model.transform(rows)
        scored.schema  # noqa: B018 - analyse now: a missing column is CannotScore
    except AnalysisException as exc:
        raise registry.CannotScore(str(exc).splitlines()[0]) from exc
    return metric(scored, spec.task, spec.label, spec.metric)
