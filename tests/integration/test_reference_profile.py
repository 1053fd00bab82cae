"""The drift reference is exactly the rows the model learnt from: train stores
a profile of its train split (derived inputs and the model's output included)
with the model, and monitor measures batches against it.

Checked against pandas counting the train split's rows (read back through the
split table the run logged) into the stored bins: unlabelled, validation and
test rows are not in it. A drift only a derived feature shows is flagged, and
a model whose run stored no profile (or no silver version) is refused by
name, never measured against silver version 0."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.errors import DriftDetected, InputNotFound
from lakeforge.monitoring.profile import ARTIFACT, PREDICTION, ReferenceProfile
from lakeforge.split.assign import SPLIT, TRAIN
from lakeforge.steps import monitor, predict, train
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from lakeforge.tracking.models import serving_model
from tests.helpers import job_config, scores_frame, with_predict_where, write_scores_dataset

pytestmark = pytest.mark.integration

FEATURES = {
    "derive": {"x12": "x1 * x2"},
    "numeric": {"columns": ["x1", "x2", "noise", "x12"], "impute": "median"},
    "categorical": {"columns": ["segment"]},
}


def test_monitor_measures_against_the_train_split_profile_stored_with_the_model(
    spark: SparkSession, tmp_path: Path, lakehouse: Path
) -> None:
    base = job_config(
        write_scores_dataset(
            tmp_path / "conf",
            where="id < 4000 OR id >= 20000",
            features=FEATURES,
            models=[{"estimator": "logistic_regression", "params": {"regParam": 0.01}}],
        )
    )
    tables = tables_for(base.settings, "scores")
    rows = scores_frame(spark)
    # rows inside train.where without a label, far from the rest: the model
    # never learns from them, so they are no part of its reference
    unlabelled = rows.where("id < 500").select(
        (F.col("id") + 20_000).alias("id"),
        (F.col("x1") + 50.0).alias("x1"),
        "x2",
        "noise",
        "segment",
        F.lit(None).cast("int").alias("y"),
    )
    delta.append(rows.unionByName(unlabelled), tables.silver)
    trained = train.run(spark, base)
    assert trained is not None

    stored = mlflow.artifacts.load_dict(f"runs:/{trained.run_id}/{ARTIFACT}")
    reference = ReferenceProfile.from_dict(stored)
    assert reference.rows == trained.split_counts[TRAIN]
    assert reference.silver_version == trained.silver_version

    # pandas counts the train split's rows, as the run's split table names
    # them, into the stored bins: the profile summarises those rows and no others
    run = MlflowClient().get_run(trained.run_id)
    split_version = int(run.data.params["split_table_version"])
    in_train = delta.read(spark, tables.splits, as_of=split_version).where(F.col(SPLIT) == TRAIN)
    frame = delta.read(spark, tables.silver).join(in_train.select("id"), "id").toPandas()
    frame["x12"] = frame["x1"] * frame["x2"]
    by_column = {p.column: p for p in reference.numeric}
    assert set(by_column) == {"x1", "x2", "noise", "x12", PREDICTION}
    for column in ("x1", "x2", "x12"):
        profiled = by_column[column]
        values = frame[column].to_numpy(dtype=float)
        present = values[~np.isnan(values)]
        placed = (present[:, None] > np.asarray(profiled.edges)[None, :]).sum(axis=1)
        expected = [float(np.isnan(values).sum())]
        expected += [float((placed == b).sum()) for b in range(len(profiled.edges) + 1)]
        assert profiled.bins == expected, column
    assert max(by_column["x1"].edges) < 10  # the unlabelled x1 + 50 rows are not in it
    (segment,) = reference.categorical
    counts = frame["segment"].value_counts()
    assert set(segment.categories) == set(counts.index)
    # each category's rows, then other and missing: none in the train split
    assert segment.counts == [float(counts[c]) for c in segment.categories] + [0.0, 0.0]

    # a batch like the training rows: quiet, the derived input measured too
    same = with_predict_where(base, "id >= 4000 AND id < 6000")
    predict.run(spark, same, batch_id="same")
    quiet = monitor.run(spark, same, "same")
    assert {d.subject for d in quiet.drifts} == {"x1", "x2", "noise", "x12", "segment", PREDICTION}
    assert quiet.drifted == []

    # x2 keeps its distribution but takes x1's sign: only x1 * x2 moves
    moved = scores_frame(spark, 2000).select(
        (F.col("id") + 10_000).alias("id"),
        "x1",
        (F.abs("x2") * F.when(F.col("x1") < 0, -1.0).otherwise(1.0)).alias("x2"),
        "noise",
        "segment",
        "y",
    )
    delta.append(moved, tables.silver)
    shifted = with_predict_where(base, "id >= 10000 AND id < 20000")
    predict.run(spark, shifted, batch_id="moved")
    with pytest.raises(DriftDetected, match="x12"):
        monitor.run(spark, shifted, "moved")
    psi = {
        r["subject"]: r["value"]
        for r in delta.read(spark, tables.monitoring)
        .where("batch_id = 'moved' AND measure = 'psi'")
        .collect()
    }
    assert psi["x12"] > 0.5
    assert psi["x1"] < 0.1 and psi["x2"] < 0.1


def test_a_model_whose_run_stored_no_profile_is_refused_by_name(
    spark: SparkSession, tmp_path: Path, lakehouse: Path
) -> None:
    """A registered version whose run recorded nothing (registered by hand
    from another run's model) has no silver version, and monitor names the
    missing profile instead of measuring against silver version 0."""
    base = job_config(
        write_scores_dataset(
            tmp_path / "conf",
            models=[{"estimator": "logistic_regression", "params": {"regParam": 0.01}}],
        )
    )
    tables = tables_for(base.settings, "scores")
    delta.append(scores_frame(spark, 1500), tables.silver)
    trained = train.run(spark, base)
    assert trained is not None
    client = MlflowClient()
    source = client.get_model_version("scores", trained.model_version).source
    with mlflow.start_run(run_name="by-hand") as bare:
        pass
    by_hand = client.create_model_version("scores", source, run_id=bare.info.run_id)
    found = serving_model(base.settings.mlflow.tracking_uri, "scores", int(by_hand.version))
    assert found.silver_version is None and found.split_version is None
    with pytest.raises(InputNotFound, match=f"scores v{by_hand.version} has no usable reference"):
        monitor._reference_profile(found)
