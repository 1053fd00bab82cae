"""A referenced secret in an unexpected failure: an exception that is not
lakeforge's own (a Python error from our code, a Spark error from an
executor) whose message and traceback carry a value the config references
with `${NAME}`. The CLI runs with and without `--debug`; the canary is in no
byte of stdout and stderr (our lines, lakeforge's log handler, the JVM's
log4j), of the traceback file, of the lakehouse or of the MLflow store, and
the traceback file exists and names the exception.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from pyspark.sql import SparkSession

from lakeforge.cli import main
from lakeforge.steps import ingest, train
from tests.faults import lakeforge
from tests.helpers import (
    SCORES_COLUMNS,
    TRIPS_HEADER,
    job_config,
    scores_frame,
    train_section,
    write_dataset,
    write_lines,
)

pytestmark = pytest.mark.integration

QUICK = [{"estimator": "logistic_regression", "params": {"regParam": 0.01}}]


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"canary-{uuid.uuid4()}"
    monkeypatch.setenv("SHOP_DSN", value)  # a name that does not look secret
    return value


class _Stderr:
    """Whatever sys.stderr is at the moment of writing (pytest swaps it
    between a test's setup and its call)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture
def terminal(capfd: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """fd 1 and 2 of this process (the JVM's log4j writes there too), with
    lakeforge's log handler writing there as well: it keeps the stderr of the
    moment logging was first configured, another test's."""
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_lakeforge", False))
    assert isinstance(handler, logging.StreamHandler)
    old = handler.setStream(_Stderr())
    try:
        yield capfd
    finally:
        handler.setStream(old)


def _leaks(root: Path, secret: str) -> list[str]:
    """Files under `root` (lakehouse, crash reports, MLflow database and
    artifacts, GX results) holding `secret`."""
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def _crash_report(err: str, step: str) -> Path:
    """The traceback file the one terminal line names."""
    last = [line for line in err.splitlines() if line.startswith(f"lakeforge {step}: error: ")]
    assert len(last) == 1, err[-3000:]
    assert "(unexpected; the traceback is in " in last[0]
    return Path(last[0].split("the traceback is in ")[1].split(",")[0].rstrip(")"))


def test_a_python_error_carrying_a_referenced_secret_writes_it_nowhere(
    spark: SparkSession,
    lakehouse: Path,
    tmp_path: Path,
    canary: str,
    monkeypatch: pytest.MonkeyPatch,
    terminal: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The injected fault: the model search (inside the MLflow run, after the
    params and the config copy were logged) fails with a RuntimeError whose
    message, cause and note quote the resolved value."""
    frame = scores_frame(spark, 300).toPandas()
    (tmp_path / "in").mkdir()
    frame.to_csv(tmp_path / "in" / "part-0.csv", index=False)
    dataset = write_dataset(
        tmp_path / "conf",
        tmp_path / "in",
        columns=SCORES_COLUMNS,
        name="scores",
        extra={
            "description": "scores of the shop at ${SHOP_DSN}",
            "train": train_section(models=QUICK),
        },
    )

    def search_fails(*args: object, **kwargs: object) -> None:
        try:
            raise ValueError(f"no route to {canary}")
        except ValueError as cause:
            error = RuntimeError(f"search on {canary} failed")
            error.add_note(f"shop: {canary}")
            raise error from cause

    monkeypatch.setattr(train, "cross_validate", search_fails)

    assert main(["pipeline", "--dataset", str(dataset)]) == 1
    out, err = terminal.readouterr()
    assert "RuntimeError: search on *** failed (unexpected" in err
    report = _crash_report(err, "pipeline")
    assert report.parent == lakehouse / "_logs"
    text = report.read_text()
    assert "RuntimeError: search on *** failed" in text and "ValueError: no route to ***" in text
    assert "Traceback (most recent call last)" not in err
    assert canary not in out + err

    assert main(["train", "--dataset", str(dataset), "--debug"]) == 1
    out, err = terminal.readouterr()
    assert canary not in out + err
    assert "Traceback (most recent call last)" in err and "RuntimeError" in err
    assert "shop: ***" in err
    assert canary not in caplog.text
    assert _leaks(tmp_path, canary) == []
    # what was searched holds the value's place: both failed MLflow runs keep
    # the config copy, scrubbed
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("scores")
    assert experiment is not None
    failed = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in failed] == ["FAILED", "FAILED"]
    copy = Path(client.download_artifacts(failed[0].info.run_id, "config/dataset.json"))
    assert "scores of the shop at ***" in copy.read_text()


def test_a_spark_error_carrying_a_referenced_secret_writes_it_nowhere(
    spark: SparkSession, lakehouse: Path, tmp_path: Path, canary: str
) -> None:
    """A route with no fault injected: a derived column calls Spark's
    `raise_error` with a message quoting a referenced value. The task fails
    on an executor, the JVM logs the failure (log4j, on the process's own
    stderr: hence a process of its own here, as a terminal sees it) and clean
    ends with Spark's exception, not lakeforge's."""
    write_lines(
        tmp_path / "in" / "day1.csv",
        [TRIPS_HEADER, "1,UA,5.0,2024-01-01", "2,UA,900.0,2024-01-01"],
    )
    derive = {
        "delay_checked": "CASE WHEN delay > 600 THEN raise_error('delay over 600 at ${SHOP_DSN}') "
        "ELSE delay END"
    }
    dataset = write_dataset(tmp_path / "conf", tmp_path / "in", extra={"clean": {"derive": derive}})
    ingest.run(spark, job_config(dataset))
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}

    def clean(*flags: str) -> subprocess.CompletedProcess[str]:
        command = lakeforge("clean", "--dataset", str(dataset), *flags)
        return subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
        )

    plain = clean()
    assert plain.returncode == 1, plain.stderr[-3000:]
    # the JVM's own report of the failed task is there, scrubbed
    assert "Lost task" in plain.stderr and "delay over 600 at ***" in plain.stderr
    assert canary not in plain.stdout + plain.stderr
    report = _crash_report(plain.stderr, "clean")
    kind = plain.stderr.split("lakeforge clean: error: ")[1].split(":")[0]
    assert kind == "SparkRuntimeException"
    text = report.read_text()
    assert f"{kind}: [USER_RAISED_EXCEPTION] delay over 600 at ***" in text

    debug = clean("--debug")
    assert debug.returncode == 1
    assert canary not in debug.stdout + debug.stderr
    assert "Traceback (most recent call last)" in debug.stderr and kind in debug.stderr
    assert _leaks(tmp_path, canary) == []
