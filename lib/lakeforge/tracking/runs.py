"""MLflow runs of a training: the parent run, child runs per candidate, what
they record so that a model can be rebuilt (config and its hash, the Delta
table and version read, seeds, library versions) and the Spark model itself."""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
from matplotlib.figure import Figure
from mlflow.data.spark_dataset import from_spark
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame

from lakeforge import secrets
from lakeforge.errors import ConfigError
from lakeforge.evaluation.threshold import ThresholdChoice
from lakeforge.fairness import Audit
from lakeforge.serving.export import Export
from lakeforge.serving.layout import (
    ARTIFACT_DIR,
    MODEL_FILE,
    ONLINE_REASON,
    SERVABLE,
    SIGNATURE_FILE,
)
from lakeforge.serving.pyfunc import LOADER_MODULE, pyfunc_signature
from lakeforge.tuning.search import CandidateScore

log = logging.getLogger(__name__)

# MLflow's own chatter (pip inference notices, progress bars) is not for operators.
for _noisy in ("mlflow", "alembic"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

LIBRARIES = (
    "pyspark",
    "delta-spark",
    "mlflow",
    "great-expectations",
    "lakeforge",
    "numpy",
    "onnxruntime",
)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def start(tracking_uri: str, experiment: str, run_name: str) -> Any:
    """Point MLflow at `tracking_uri` and open the parent run of a training."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    return mlflow.start_run(run_name=run_name)


def find_trained(
    tracking_uri: str, experiment: str, silver_version: int, config_sha256: str
) -> tuple[str, str] | None:
    """(run id, model version) of a finished training on this silver version
    with this config, if there is one: training it again would repeat it."""
    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        return None
    found = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=(
            f"tags.`lakeforge.silver_version` = '{silver_version}' AND "
            f"tags.`lakeforge.config_sha256` = '{config_sha256}' AND "
            "attributes.status = 'FINISHED'"
        ),
        output_format="list",
    )
    for run in found:
        version = run.data.tags.get("lakeforge.model_version")
        if version:
            return str(run.info.run_id), str(version)
    return None


def log_inputs(df: DataFrame, table: str, version: int, name: str, tags: Mapping[str, str]) -> None:
    """The Delta table and version the training read (rebuild it by time travel)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pandas schema hints, see log_model
        dataset = from_spark(df, path=table, version=str(version), name=name)
        mlflow.log_input(dataset, context="training")
    set_tags({"lakeforge.silver_table": table, "lakeforge.silver_version": str(version)})
    set_tags(dict(tags))
    log_params({f"lib.{k}": v for k, v in library_versions().items()})


def log_candidates(scores: list[CandidateScore], metric: str) -> None:
    """One child run per candidate: its params, fold metrics, mean and std."""
    for score in scores:
        with mlflow.start_run(run_name=score.spec.label, nested=True):
            log_params({"estimator": score.spec.estimator, **_flat(score.spec.params)})
            if score.spec.base:  # stacking: its members
                members = [m.model_dump() for m in score.spec.base]
                meta = score.spec.meta.model_dump() if score.spec.meta else "default"
                log_params({"base": json.dumps(members), "meta": json.dumps(meta)})
            for fold, value in enumerate(score.fold_metrics):
                mlflow.log_metric(f"cv_{metric}", value, step=fold)
            mlflow.log_metrics({f"cv_{metric}_mean": score.mean, f"cv_{metric}_std": score.std})
            mlflow.log_metric("fit_seconds", score.fit_seconds)
            # 1.0: scored on all rows; less: successive halving stopped it earlier
            mlflow.log_metric("cv_fraction", score.fraction)


def log_figures(figures: Mapping[str, Figure]) -> None:
    """Log each figure under plots/, then close it: pyplot keeps every figure
    it made open otherwise, and a long process (a test run, a retraining
    pipeline) would pile them up."""
    import matplotlib.pyplot as plt

    for file_name, figure in figures.items():
        mlflow.log_figure(figure, f"plots/{file_name}")
        plt.close(figure)


def log_model(model: PipelineModel, example: DataFrame, scored: DataFrame) -> str:
    """Log the fitted PipelineModel (Spark flavour, with signature); its URI."""
    from mlflow.models import infer_signature

    requirements = [
        f"{k}=={v}" for k, v in library_versions().items() if k in ("pyspark", "mlflow")
    ]
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values; Spark
        # scoring does not go through pandas, so the hint does not apply.
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(example, scored)
        # Spark saves the model through a DFS temp dir first (MLFLOW_DFS_TMP, a
        # path every executor can write on a cluster), then MLflow copies it.
        info = mlflow.spark.log_model(
            model, artifact_path="model", signature=signature, pip_requirements=requirements
        )
    return str(info.model_uri)


def log_online(online: Export) -> None:
    """The online (ONNX) form of the model and its parity with Spark, or why
    there is none: `online/model.onnx` and `online/signature.json` in the
    run, the largest difference as a metric, servable as a tag."""
    set_tags({SERVABLE: str(online.servable).lower()})
    if online.reason is not None:
        # an MLflow tag holds at most 8,000 characters; the worst row may be long
        mlflow.set_tag(ONLINE_REASON, secrets.scrub(online.reason)[:7000])
    if online.parity is not None:
        mlflow.log_metrics(
            {
                "online_parity_max_diff": online.parity.largest,
                "online_parity_rows": online.parity.rows,
                "online_parity_label_mismatches": online.parity.mismatches,
            }
        )
    if online.onnx is None or online.signature is None:
        return
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, MODEL_FILE).write_bytes(online.onnx)
        Path(folder, SIGNATURE_FILE).write_text(online.signature.to_json())
        mlflow.log_artifacts(folder, ARTIFACT_DIR)


def add_online_flavour(model_uri: str, online: Export) -> None:
    """Make the logged model's `python_function` flavour the ONNX model
    (serving/pyfunc.py), its files in the model's `online/` folder, so MLflow
    serves the registered version without Spark. The `spark` flavour, which
    predict loads, stays as it is. A model that is not servable keeps MLflow's
    Spark pyfunc."""
    from mlflow.models import Model

    if not online.servable or online.onnx is None or online.signature is None:
        return
    prefix = f"runs:/{mlflow.active_run().info.run_id}/"  # type: ignore[union-attr]
    if not model_uri.startswith(prefix):
        log.warning(
            "train: %s is not in the run's artifacts: MLflow's pyfunc stays Spark", model_uri
        )
        return
    artifact_path = model_uri.removeprefix(prefix)
    with tempfile.TemporaryDirectory() as folder:
        described = Path(
            mlflow.artifacts.download_artifacts(f"{model_uri}/MLmodel", dst_path=folder)
        )
        mlmodel = Model.load(str(described))
        spark_pyfunc = mlmodel.flavors["python_function"]
        mlmodel.flavors["python_function"] = {
            **{k: v for k, v in spark_pyfunc.items() if k in ("env", "python_version")},
            "loader_module": LOADER_MODULE,
            "data": ARTIFACT_DIR,
        }
        # the inputs the ONNX model reads, each optional (a null is handled as
        # the model handles it): not every column of the Spark model's example
        mlmodel.signature = pyfunc_signature(online.signature)
        mlmodel.save(str(described))
        files = Path(folder, ARTIFACT_DIR)
        files.mkdir()
        (files / MODEL_FILE).write_bytes(online.onnx)
        (files / SIGNATURE_FILE).write_text(online.signature.to_json())
        mlflow.log_artifacts(str(files), f"{artifact_path}/{ARTIFACT_DIR}")
        mlflow.log_artifact(str(described), artifact_path)


def log_json(data: object, artifact_file: str) -> None:
    scrubbed = secrets.scrub_tree(json.loads(json.dumps(data, default=str)))
    mlflow.log_text(json.dumps(scrubbed, indent=2), artifact_file)


# what predict and monitor read back from a run: hiding part of it would
# break them (a `where` monitor filters by), so a secret there is refused
READ_BACK = frozenset(
    {"where", "lakeforge.silver_table", "lakeforge.silver_version", "split_table"}
)


def _scrubbed(values: Mapping[str, object]) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        text, clean = str(value), secrets.scrub(str(value))
        if key in READ_BACK and clean != text:
            raise ConfigError(
                f"MLflow {key} = {clean!r} holds a value the config references with ${{...}}; "
                "predict and monitor read it back, so it cannot be hidden: write that value "
                "in the config itself"
            )
        out[key] = clean
    return out


def log_params(params: Mapping[str, object]) -> None:
    """Params of the active run, each value scrubbed of secrets: a candidate's
    params and the config come from files that may reference them."""
    mlflow.log_params(_scrubbed(params))


def set_tags(tags: Mapping[str, object]) -> None:
    """Tags of the active run, scrubbed as params are."""
    mlflow.set_tags(_scrubbed(tags))


def log_threshold(choice: ThresholdChoice, goal: str) -> None:
    """The tuned decision threshold and what it gives on the validation split."""
    log_params({"decision_threshold": choice.threshold, "threshold_goal": goal})
    mlflow.log_metrics(
        {
            "threshold_validation_precision": choice.precision,
            "threshold_validation_recall": choice.recall,
            "threshold_validation_f1": choice.f1,
            "threshold_target_met": float(choice.target_met),
        }
    )


def log_fairness(audit: Audit, prefix: str = "fairness") -> None:
    """The fairness audit in the active run: its gaps as metrics
    (`fairness.demographic_parity_difference` is the worst grouping's,
    `fairness.race.demographic_parity_difference` one grouping's), one row per
    group (`<prefix>/groups.json`, too small groups with their row counts) and
    one per gap with the two groups giving it (`<prefix>/gaps.json`), as
    MLflow tables."""
    mlflow.log_metrics(audit.metrics(prefix))
    mlflow.log_table(audit.table(), f"{prefix}/groups.json")
    gaps = audit.gaps
    mlflow.log_table(
        {
            "grouping": [g.grouping for g in gaps],
            "summary": [g.name for g in gaps],
            "value": [g.value for g in gaps],
            "metric": [g.metric for g in gaps],
            "high_group": [g.high for g in gaps],
            "high_value": [g.high_value for g in gaps],
            "low_group": [g.low for g in gaps],
            "low_value": [g.low_value for g in gaps],
        },
        f"{prefix}/gaps.json",
    )


def log_importances(
    slots: Sequence[tuple[str, float]], columns: Sequence[tuple[str, float]], estimator: str
) -> None:
    """The model's global importances as two MLflow tables (shown in the run's
    artifacts view): per feature slot (`carrier=UA`) and per silver column."""
    if not slots:
        log.info("train: %s has no global feature importance to log", estimator)
        return
    mlflow.log_table(
        {"feature": [n for n, _ in slots], "weight": [w for _, w in slots]},
        "feature_importance.json",
    )
    mlflow.log_table(
        {"column": [n for n, _ in columns], "importance": [w for _, w in columns]},
        "column_importance.json",
    )


def _flat(params: Mapping[str, object]) -> dict[str, str]:
    return {k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in params.items()}
