"""The rules of `lakeforge maintain`, without Spark: what a registered model
version pins, what a pin needs, what maintain picks by itself, and which
`--retain-hours` it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput

from lakeforge.cli import main
from lakeforge.errors import ConfigError
from lakeforge.steps.maintain import PinAge, choose_retention, same_table
from lakeforge.tracking.pins import Pin, registered_pins

PIN = Pin("/lake/scores/silver", 2, "scores", "1")
MONTH_OLD = PinAge(PIN, 30 * 24.0)


def test_without_pins_delta_defaults_are_kept() -> None:
    chosen = choose_retention("scores/silver", [], None, check_enabled=True)
    assert (chosen.vacuum_hours, chosen.log_hours, chosen.minimum_hours) == (168, 720, 0)
    assert chosen.oldest is None


def test_the_default_covers_the_oldest_pin_plus_a_week_in_whole_days() -> None:
    younger = PinAge(Pin("/lake/scores/silver", 5, "scores", "2"), 2.0)
    chosen = choose_retention("scores/silver", [younger, MONTH_OLD], None, check_enabled=True)
    assert chosen.oldest == MONTH_OLD
    assert chosen.minimum_hours == 721  # 720 h + 1 h of margin
    assert chosen.vacuum_hours == 912  # 721 + 168 = 889 h, rounded up to 38 days
    assert chosen.log_hours == 912


def test_a_pin_on_todays_version_still_keeps_a_margin() -> None:
    """Files the pinned version reads may be removed by the OPTIMIZE that runs
    next: a retention of 0 would then delete them."""
    today = PinAge(PIN, 0.0)
    assert choose_retention("scores/silver", [today], None, True).minimum_hours == 1
    with pytest.raises(ConfigError, match="keep at least 1 h"):
        choose_retention("scores/silver", [today], 0, check_enabled=False)


def test_a_retention_that_breaks_a_pin_is_refused_naming_table_model_and_version() -> None:
    with pytest.raises(ConfigError) as refused:
        choose_retention("scores/silver", [MONTH_OLD], 500, check_enabled=True)
    message = str(refused.value)
    assert "scores/silver version 2, which model scores v1 pins" in message
    assert "keep at least 721 h" in message
    assert "\n" not in message


def test_a_given_retention_that_keeps_every_pin_is_used() -> None:
    chosen = choose_retention("scores/silver", [MONTH_OLD], 721, check_enabled=True)
    assert chosen.vacuum_hours == 721
    assert chosen.log_hours == 912  # the log still covers the pin and the grace


def test_below_deltas_safety_check_only_when_the_check_is_off() -> None:
    with pytest.raises(ConfigError, match=r"retentionDurationCheck\.enabled: false"):
        choose_retention("scores/silver", [], 24, check_enabled=True)
    chosen = choose_retention("scores/silver", [], 24, check_enabled=False)
    assert (chosen.vacuum_hours, chosen.log_hours) == (24, 720)


def test_a_recorded_path_names_the_table_with_or_without_its_scheme() -> None:
    assert same_table("file:/lake/scores/silver/", "/lake/scores/silver")
    assert same_table("file:///lake/scores/silver", "/lake/scores/silver")
    assert not same_table("/lake/scores/silver_quarantine", "/lake/scores/silver")


def test_retain_hours_must_be_a_whole_number(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["maintain", "--dataset", "x.yaml", "--retain-hours", "1.5"])
    assert exited.value.code == 2
    assert "not a whole number of hours" in capsys.readouterr().err


def test_a_run_pins_its_silver_its_split_table_and_any_delta_input(tmp_path: Path) -> None:
    """What train records (tags, params, a logged Delta input), read back from
    a real MLflow store; archived versions pin nothing."""
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("scores")
    run = client.create_run(experiment)
    run_id = run.info.run_id
    client.set_tag(run_id, "lakeforge.silver_table", "/lake/scores/silver")
    client.set_tag(run_id, "lakeforge.silver_version", "4")
    client.log_param(run_id, "split_table", "/lake/scores/splits")
    client.log_param(run_id, "split_table_version", "2")
    lookup = MetaDataset(DeltaDatasetSource(path="/lake/zones/silver", delta_table_version=7))
    client.log_inputs(run_id, [DatasetInput(lookup._to_mlflow_entity())])
    client.create_registered_model("scores")
    client.create_model_version("scores", "unused", run_id)
    client.create_model_version("scores", "unused", run_id)
    client.set_model_version_tag("scores", "2", "archived", "true")

    found = registered_pins(uri)

    assert set(found.pins) == {
        Pin("/lake/scores/silver", 4, "scores", "1"),
        Pin("/lake/scores/splits", 2, "scores", "1"),
        Pin("/lake/zones/silver", 7, "scores", "1"),
    }
    assert found.archived == ("scores v2",)
