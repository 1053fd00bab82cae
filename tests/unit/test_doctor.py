"""`lakeforge doctor` on this machine: all green as set up, and each broken
piece (jars, master, lakehouse, tracking store) named with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakeforge.cli import main
from lakeforge.deploy.cluster import free_port


def test_doctor_passes_on_the_set_up_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAKEFORGE_LAKEHOUSE", str(tmp_path / "lake"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns.db")
    assert main(["doctor", "--dataset", "conf/datasets/flights.yaml"]) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out
    for name in (
        "java",
        "pyspark",
        "delta-spark",
        "native blas",
        "xgboost",
        "delta jars",
        "lakehouse",
        "mlflow",
    ):
        assert f"ok    {name}" in out


def test_doctor_names_each_broken_piece_and_its_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "jars").mkdir()
    master = f"spark://127.0.0.1:{free_port()}"
    tracking = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("LAKEFORGE_JARS_DIR", str(tmp_path / "jars"))
    monkeypatch.setenv("LAKEFORGE_LAKEHOUSE", str(tmp_path / "a-file" / "lake"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    monkeypatch.setenv("SPARK_MASTER", master)
    monkeypatch.delenv("LAKEFORGE_CONF_DIR", raising=False)
    assert main(["doctor", "--env", "cluster"]) == 1
    out = capsys.readouterr().out
    failed = {line.split()[1] for line in out.splitlines() if line.startswith("FAIL")}
    assert failed == {"delta", "spark", "lakehouse", "mlflow"}
    assert f"Spark master {master} is unreachable" in out
    assert f"{tracking}/health" in out
    assert "a-file" in out
    lines = out.splitlines()
    after_failures = [lines[i + 1] for i, line in enumerate(lines) if line.startswith("FAIL")]
    assert len(after_failures) == 4 and all("fix: " in line for line in after_failures)
    assert "4 check(s) failed" in out


def test_doctor_rejects_an_unknown_environment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--env", "nowhere"]) == 2
    assert "no such environment 'nowhere'" in capsys.readouterr().err
