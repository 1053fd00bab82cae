"""Predict and monitor on a small silver table: gold rows carry their lineage
and equal the model's own output, a re-run adds nothing, and drift is near
zero for rows like the training ones and high for a shifted batch."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.config import JobConfig
from lakeforge.errors import ConfigError, DriftDetected, ReconciliationError
from lakeforge.steps import monitor, predict, train
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from tests.helpers import job_config, scores_frame, with_predict_where, write_scores_dataset

pytestmark = pytest.mark.integration

LINEAGE = {
    "_model_name",
    "_model_version",
    "_run_id",
    "_source_table",
    "_source_version",
    "_batch_id",
    "_scored_at",
    "_batch_date",
}


def test_predict_and_monitor(spark: SparkSession, tmp_path: Path, lakehouse: Path) -> None:
    base = job_config(
        write_scores_dataset(
            tmp_path / "conf",
            where="id < 4000",
            models=[{"estimator": "logistic_regression", "params": {"regParam": 0.01}}],
        )
    )
    tables = tables_for(base.settings, "scores")
    delta.append(scores_frame(spark), tables.silver)
    trained = train.run(spark, base)
    assert trained is not None

    # A batch from the same population as the training rows.
    same = with_predict_where(base, "id >= 4000")
    first = predict.run(spark, same, batch_id="same")
    assert first.rows == 2000
    gold = delta.read(spark, tables.predictions)
    assert set(gold.columns) >= LINEAGE
    row = gold.first()
    assert row is not None
    assert (row["_model_name"], row["_model_version"], row["_run_id"]) == (
        "scores",
        trained.model_version,
        trained.run_id,
    )
    assert (row["_source_table"], row["_source_version"]) == (tables.silver, 0)

    # The gold rows are exactly what the model's PipelineModel gives on the same rows.
    expected = (
        mlflow.spark.load_model(trained.model_uri)
        .transform(delta.read(spark, tables.silver).where("id >= 4000"))
        .select("id", "prediction", vector_to_array("probability").alias("probability"))
    )
    joined = gold.alias("g").join(expected.alias("e"), "id")
    assert joined.count() == 2000
    assert joined.where("g.prediction != e.prediction").isEmpty()
    assert joined.where("abs(g.probability[1] - e.probability[1]) > 1e-9").isEmpty()

    # Re-running the batch adds nothing (not even a table version).
    version = delta.version(spark, tables.predictions)
    again = predict.run(spark, same, batch_id="same")
    assert again.skipped
    assert delta.version(spark, tables.predictions) == version
    assert delta.read(spark, tables.predictions).count() == 2000

    # The same batch id with a predict.where that now selects other rows is
    # not "already scored": its rows are replaced by the new selection.
    narrower = predict.run(spark, with_predict_where(base, "id >= 4500"), batch_id="same")
    assert not narrower.skipped and narrower.rows == 1500
    assert delta.read(spark, tables.predictions).where("_batch_id = 'same'").count() == 1500
    first = predict.run(spark, same, batch_id="same")
    assert not first.skipped and first.rows == 2000
    # gold never counts a row twice for one model and silver version: the
    # same rows under another batch id are a no-op naming the batch that has
    # them; rows some of which another batch has are refused
    again = predict.run(spark, same, batch_id="again")
    assert (again.skipped, again.batch_id) == (True, "same")
    with pytest.raises(ConfigError, match=r"as batch same \(2000 rows\); run predict with"):
        predict.run(spark, with_predict_where(base, "id >= 3000"), batch_id="wider")
    assert delta.read(spark, tables.predictions).count() == 2000

    quiet = monitor.run(spark, same, "same")
    assert not quiet.skipped
    assert monitor.run(spark, same, "same").skipped  # same batch, model and settings
    # other monitor settings shape other figures: measured again, not served stale
    finer = same.dataset.model_copy(
        update={"monitor": same.dataset.monitor.model_copy(update={"bins": 20})}
    )
    remeasured = monitor.run(spark, JobConfig(same.settings, finer, same.env, same.files), "same")
    assert not remeasured.skipped
    quiet = monitor.run(spark, same, "same")
    assert not quiet.skipped
    assert quiet.drifted == []
    assert all(d.psi < 0.1 for d in quiet.drifts)
    assert quiet.performance["roc_auc"] > 0.75  # labels are known: performance is measured

    # A later batch where x1 moved by two standard deviations.
    shifted_rows = scores_frame(spark, 1500).select(
        (F.col("id") + 10_000).alias("id"),
        (F.col("x1") + 2.0).alias("x1"),
        "x2",
        "noise",
        "segment",
        "y",
    )
    delta.append(shifted_rows, tables.silver)
    shifted = with_predict_where(base, "id >= 10000")
    predict.run(spark, shifted, batch_id="shifted")
    with pytest.raises(DriftDetected, match=r"PSI above 0.2 for .*x1"):
        monitor.run(spark, shifted, "shifted")
    stored = delta.read(spark, tables.monitoring).where("batch_id = 'shifted' AND measure = 'psi'")
    by_subject = {r["subject"]: r["value"] for r in stored.collect()}
    assert by_subject["x1"] > 0.5
    assert by_subject["noise"] < 0.1
    assert "prediction" in by_subject
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("scores").experiment_id],
        "tags.`lakeforge.step` = 'monitor'",
    )
    assert len(runs) == 4  # same, same with 20 bins, same again, shifted


def test_a_batch_the_model_scores_short_is_refused_before_gold_changes(
    spark: SparkSession, tmp_path: Path, lakehouse: Path
) -> None:
    """A categorical stage with handle_invalid: skip drops rows of a value it
    never saw: the batch fails naming the count, nothing is committed, and a
    re-run is not taken for done."""
    cfg = job_config(
        write_scores_dataset(
            tmp_path / "conf",
            where="id < 4000",
            features={
                "numeric": {"columns": ["x1", "x2"]},
                "categorical": {"columns": ["segment"], "handle_invalid": "skip"},
            },
            models=[{"estimator": "logistic_regression", "params": {"regParam": 0.01}}],
        )
    )
    tables = tables_for(cfg.settings, "scores")
    delta.append(scores_frame(spark, 3000), tables.silver)
    assert train.run(spark, cfg) is not None
    novel = scores_frame(spark, 10).select(
        (F.col("id") + 5000).alias("id"),
        "x1",
        "x2",
        "noise",
        F.lit("never-seen").alias("segment"),
        "y",
    )
    delta.append(novel, tables.silver)
    batch = with_predict_where(cfg, "id >= 2000")
    for _ in range(2):
        with pytest.raises(ReconciliationError, match=r"scored 1000 of 1010 silver rows"):
            predict.run(spark, batch, batch_id="b")
        assert delta.version(spark, tables.predictions) is None
