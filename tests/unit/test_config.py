"""Config fails before Spark starts, naming the file and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lakeforge.cli import main
from lakeforge.config import load_job_config, load_settings
from lakeforge.errors import ConfigError
from tests.helpers import write_dataset

REPO = Path(__file__).resolve().parents[2]


def _dataset(tmp_path: Path, **changes: object) -> Path:
    path = write_dataset(tmp_path / "conf", tmp_path / "in.csv")
    data = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_text(yaml.safe_dump(data))
    return path


def test_demo_dataset_config_is_valid() -> None:
    cfg = load_job_config(REPO / "conf/datasets/flights.yaml")
    assert cfg.dataset.name == "flights"
    assert len(cfg.dataset.source.columns) == 19
    assert cfg.settings.spark.master == "local[*]"


def test_typo_in_a_key_names_the_file_and_key_path(tmp_path: Path) -> None:
    path = _dataset(tmp_path, source__csv={"delimter": ";"})
    with pytest.raises(ConfigError) as err:
        load_job_config(path)
    assert str(path) in str(err.value)
    assert "source.csv.delimter: unknown key" in str(err.value)


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    path = _dataset(tmp_path, source__csv={"header": "perhaps"})
    with pytest.raises(ConfigError, match=r"source\.csv\.header"):
        load_job_config(path)


def test_missing_required_value_names_the_key(tmp_path: Path) -> None:
    path = _dataset(tmp_path)
    data = yaml.safe_load(path.read_text())
    del data["source"]["format"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"source\.format: Field required"):
        load_job_config(path)


def test_unknown_column_type_is_rejected(tmp_path: Path) -> None:
    path = _dataset(tmp_path, source__columns=[{"name": "id", "type": "integr"}])
    with pytest.raises(ConfigError, match=r"source\.columns\.0\.type: .*unknown type 'integr'"):
        load_job_config(path)


def test_key_naming_an_unknown_column_is_rejected(tmp_path: Path) -> None:
    path = _dataset(tmp_path, keys=["nope"])
    with pytest.raises(ConfigError, match="keys name unknown columns: nope"):
        load_job_config(path)


def test_a_multi_character_delimiter_is_rejected(tmp_path: Path) -> None:
    path = _dataset(tmp_path, source__csv={"delimiter": ";;"})
    with pytest.raises(ConfigError, match=r"source\.csv\.delimiter: .*one character"):
        load_job_config(path)


def test_null_marker_must_be_text(tmp_path: Path) -> None:
    path = _dataset(tmp_path, source__csv={"null_values": [["NA"]]})
    with pytest.raises(ConfigError, match=r"source\.csv\.null_values\.0"):
        load_job_config(path)


def test_null_marker_holding_the_delimiter_is_rejected(tmp_path: Path) -> None:
    path = _dataset(tmp_path, source__csv={"null_values": ["N,A"]})
    with pytest.raises(ConfigError, match=r"source\.csv: .*contain the delimiter"):
        load_job_config(path)


def test_environment_reference_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIPS_DIR", "/data/trips")
    path = _dataset(tmp_path, source__path="${TRIPS_DIR}/*.csv")
    assert load_job_config(path).dataset.source.path == "/data/trips/*.csv"


def test_missing_environment_variable_names_key_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = _dataset(tmp_path, source__path="${NOT_SET_ANYWHERE}")
    with pytest.raises(ConfigError, match=r"source\.path: environment variable NOT_SET_ANYWHERE"):
        load_job_config(path)


def test_overlay_wins_over_base_and_env_variable_wins_over_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    (conf / "env").mkdir(parents=True)
    (conf / "base.yaml").write_text("lakehouse: /base\nspark: {master: 'local[1]'}\n")
    (conf / "env" / "cluster.yaml").write_text("spark: {master: 'spark://127.0.0.1:7077'}\n")
    monkeypatch.delenv("LAKEFORGE_LAKEHOUSE", raising=False)
    settings, _ = load_settings(conf, "cluster")
    assert settings.spark.master == "spark://127.0.0.1:7077"
    assert settings.lakehouse == "/base"
    monkeypatch.setenv("LAKEFORGE_LAKEHOUSE", "/from-env")
    assert load_settings(conf, "cluster")[0].lakehouse == "/from-env"


def test_unknown_environment_is_an_error_listing_the_known_ones(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "env").mkdir(parents=True)
    (conf / "env" / "local.yaml").write_text("{}\n")
    with pytest.raises(ConfigError, match=r"no such environment 'prod' \(known: local\)"):
        load_settings(conf, "prod")


def test_embedded_defaults_without_any_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("LAKEFORGE_LAKEHOUSE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    settings, files = load_settings(tmp_path, "local")
    assert files == ()
    assert (settings.spark.master, settings.lakehouse, settings.mlflow.tracking_uri) == (
        "local[*]",
        "./lakehouse",
        "sqlite:///mlruns.db",
    )


def test_cli_exits_2_on_bad_config_with_a_one_line_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _dataset(tmp_path, sourc={"x": 1})
    assert main(["ingest", "--dataset", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lakeforge ingest: error: ")
    assert "sourc: unknown key" in err[-1]


def test_cli_rejects_an_unknown_step_with_exit_2() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ingets", "--dataset", "x.yaml"])
    assert exc.value.code == 2
