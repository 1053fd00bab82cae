"""Train end to end on a small silver table: the model is as good as
scikit-learn's on the same rows and features, everything is in MLflow, and a
worse model never takes the champion alias."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lakeforge.config.training import Split
from lakeforge.split.assign import FOLD, SPLIT, assign
from lakeforge.steps import train
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from tests.helpers import job_config, scores_frame, write_scores_dataset

pytestmark = pytest.mark.integration

NUMERIC = ["x1", "x2", "noise"]
SPLIT_SPEC = {"validation": 0.1, "test": 0.25, "folds": 3, "seed": 1}


def _sklearn_auc(train_rows: pd.DataFrame, test_rows: pd.DataFrame) -> float:
    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["segment"]),
            ]
        ),
        LogisticRegression(C=np.inf, max_iter=2000),  # unpenalised, as regParam 0,
    )
    model.fit(train_rows[[*NUMERIC, "segment"]], train_rows["y"])
    scores = model.predict_proba(test_rows[[*NUMERIC, "segment"]])[:, 1]
    return float(roc_auc_score(test_rows["y"], scores))


def test_training_matches_sklearn_is_tracked_and_gated(
    spark: SparkSession, tmp_path: Path, lakehouse: Path
) -> None:
    good = job_config(
        write_scores_dataset(
            tmp_path / "good",
            split=SPLIT_SPEC,
            models=[{"estimator": "logistic_regression", "params": {"regParam": 0.0}}],
        )
    )
    silver = tables_for(good.settings, "scores").silver
    delta.append(scores_frame(spark), silver)

    first = train.run(spark, good)
    assert first is not None

    # The same rows, split by the same keys, fitted by scikit-learn.
    rows = assign(delta.read(spark, silver), ["id"], Split(**SPLIT_SPEC), "y")
    train_rows = rows.where(F.col(SPLIT) == "train").toPandas()
    test_rows = rows.where(F.col(SPLIT) == "test")
    assert first.split_counts["train"] == len(train_rows)
    assert first.split_counts["test"] == test_rows.count()
    reference = _sklearn_auc(train_rows, test_rows.toPandas())
    assert first.test_metrics["roc_auc"] == pytest.approx(reference, abs=0.01)
    assert first.test_metrics["roc_auc"] > 0.75  # the rows carry real signal

    # The logged PipelineModel scores the test rows with exactly the reported AUC.
    model = mlflow.spark.load_model("models:/scores@champion")
    scored = (
        model.transform(test_rows)
        .select("y", vector_to_array("probability")[1].alias("p"))
        .toPandas()
    )
    assert roc_auc_score(scored["y"], scored["p"]) == pytest.approx(
        first.test_metrics["roc_auc"], abs=1e-6
    )

    client = MlflowClient()
    run = client.get_run(first.run_id)
    assert run.data.tags["lakeforge.silver_table"] == silver
    assert run.data.tags["lakeforge.silver_version"] == "0"
    assert run.data.metrics["test_roc_auc"] == pytest.approx(first.test_metrics["roc_auc"])
    # The split assignment is written out: the same rows in the same splits,
    # a fold for train rows only, tagged with the run.
    splits = tables_for(good.settings, "scores").splits
    first_split_version = int(run.data.params["split_table_version"])
    written = delta.read(spark, splits, as_of=first_split_version)
    mine = rows.select("id", SPLIT, F.when(F.col(SPLIT) == "train", F.col(FOLD)).alias(FOLD))
    assert written.select("id", SPLIT, FOLD).exceptAll(mine).count() == 0
    assert mine.exceptAll(written.select("id", SPLIT, FOLD)).count() == 0
    assert {r["run_id"] for r in written.select("run_id").distinct().collect()} == {first.run_id}
    children = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{first.run_id}'"
    )
    assert len(children) == 1
    plots = {a.path for a in client.list_artifacts(first.run_id, "plots")}
    assert {"plots/roc_curve.png", "plots/pr_curve.png", "plots/calibration.png"} <= plots
    assert str(client.get_model_version_by_alias("scores", "champion").version) == "1"

    # A model that only sees noise is registered but does not take the alias.
    worse = job_config(
        write_scores_dataset(
            tmp_path / "worse",
            split=SPLIT_SPEC,
            features={"numeric": {"columns": ["noise"]}},
            models=[{"estimator": "logistic_regression", "grid": {"regParam": [0.0, 0.5]}}],
        )
    )
    second = train.run(spark, worse)
    assert second is not None
    assert not second.decision.promoted
    assert second.decision.champion_value == pytest.approx(first.test_metrics["roc_auc"])
    assert str(client.get_model_version_by_alias("scores", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("scores", "challenger").version) == "2"
    assert len(second.search.scores) == 2
    assert all(len(s.fold_metrics) == 3 for s in second.search.scores)
    # each run's assignment stays readable at the version it logged
    second_split_version = int(client.get_run(second.run_id).data.params["split_table_version"])
    assert second_split_version > first_split_version
    earlier = delta.read(spark, splits, as_of=first_split_version).select("run_id").distinct()
    assert [r["run_id"] for r in earlier.collect()] == [first.run_id]

    # Same silver version, same config: nothing to do, no new model version.
    assert train.run(spark, worse) is None
    assert len(client.search_model_versions("name = 'scores'")) == 2
