"""`lakeforge serve` end to end (issue 19): train exports and checks the ONNX
model; a real uvicorn server on 127.0.0.1 (started and stopped by PID, no
JVM in it) answers a record as gold holds it, refuses bad requests with
422/413 naming the field, switches to a new version under a stream of
requests without failing one, and logs every answer to Delta, which
`monitor --source online` then measures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.serving.layout import SERVABLE
from lakeforge.serving.pyfunc import LOADER_MODULE
from lakeforge.steps import monitor, predict, train
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from lakeforge.tracking.registry import CHAMPION
from tests.helpers import job_config, scores_frame, with_predict_where, write_scores_dataset

pytestmark = pytest.mark.integration

INPUTS = ["x1", "x2", "noise", "segment"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:  # a 500 is plain text
            return error.code, text.decode(errors="replace")


class Server:
    """`lakeforge serve` in a process of its own, stopped by PID."""

    def __init__(self, dataset: Path, cwd: Path, *extra: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = cwd / f"serve-{self.port}.log"
        command = [sys.executable, "-m", "lakeforge", "serve", "--dataset", str(dataset)]
        command += ["--port", str(self.port), *extra]
        with self.output.open("w") as sink:
            self.process = subprocess.Popen(
                command, cwd=cwd, env=dict(os.environ), stdout=sink, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {self.output.read_text()}")
            try:
                if _call(f"{self.url}/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"serve did not come up: {self.output.read_text()}")

    def stop(self) -> str:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.output.read_text()


def test_serve_answers_like_gold_reloads_without_failing_and_logs_to_delta(
    spark: SparkSession, tmp_path: Path, lakehouse: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dataset = write_scores_dataset(
        tmp_path / "conf",
        where="id < 4000",
        models=[{"estimator": "logistic_regression", "params": {"regParam": 0.01}}],
    )
    cfg = job_config(dataset)
    tables = tables_for(cfg.settings, "scores")
    rows = scores_frame(spark)
    delta.append(rows, tables.silver)
    trained = train.run(spark, cfg)
    assert trained is not None

    # train exported the model and checked it on every test row
    client = MlflowClient()
    version = client.get_model_version("scores", trained.model_version)
    assert version.tags[SERVABLE] == "true"
    metrics = client.get_run(trained.run_id).data.metrics
    assert metrics["online_parity_max_diff"] <= 1e-5
    assert metrics["online_parity_rows"] == trained.split_counts["test"]

    batch = with_predict_where(cfg, "id >= 5900")
    predict.run(spark, batch, batch_id="gold-batch")
    gold = delta.read(spark, tables.predictions).where(F.col("_batch_id") == "gold-batch")
    silver_rows = {
        r["id"]: r.asDict() for r in delta.read(spark, tables.silver).where("id >= 5900").collect()
    }
    expected = {r["id"]: r for r in gold.collect()}
    assert len(expected) == 100

    server = Server(dataset, tmp_path, "--max-batch", "50", "--reload-seconds", "0.5")
    try:
        _no_jvm_in(server.process.pid)
        # one record, as JSON: gold's answer for the same silver row
        some = sorted(expected)[:40]
        records = [{c: silver_rows[i][c] for c in INPUTS} for i in some]
        status, answer = _call(f"{server.url}/predict", records[0])
        assert status == 200, answer
        assert (answer["model"], answer["version"]) == ("scores", trained.model_version)
        assert answer["prediction"] == expected[some[0]]["prediction"]
        assert answer["probability"] == pytest.approx(expected[some[0]]["probability"], abs=1e-9)
        # a list of records: every answer equals gold's row
        status, many = _call(f"{server.url}/predict", records)
        assert status == 200, many
        for key, got in zip(some, many["predictions"], strict=True):
            assert got["prediction"] == expected[key]["prediction"]
            assert got["probability"] == pytest.approx(expected[key]["probability"], abs=1e-9)
        # a missing number is imputed and an unseen category kept, as Spark does
        odd = {"x1": None, "x2": 0.5, "noise": 0.1, "segment": "nowhere"}
        status, got = _call(f"{server.url}/predict", odd)
        assert status == 200, got
        spark_row = _spark_answer(spark, trained.model_uri, odd)
        assert got["prediction"] == spark_row["prediction"]
        assert got["probability"] == pytest.approx(spark_row["probability"], abs=1e-9)

        # bad requests: the field is named
        status, problem = _call(f"{server.url}/predict", {**records[0], "colour": "red"})
        assert status == 422 and problem["detail"][0]["field"] == "colour"
        status, problem = _call(f"{server.url}/predict", {**records[0], "x2": "high"})
        assert status == 422 and problem["detail"][0]["field"] == "x2"
        status, problem = _call(f"{server.url}/predict", [records[0]] * 51)
        assert status == 413
        status, problem = _call(f"{server.url}/predict", {**records[0], "x2": float("nan")})
        assert status == 422 and "NaN" in problem["detail"][0]["msg"]
        status, meta = _call(f"{server.url}/metadata")
        assert [i["name"] for i in meta["inputs"]] == INPUTS
        assert meta["run_id"] == trained.run_id

        # the alias moves under a stream of requests: none fails, and the
        # answers switch to the new version
        failures, versions = _stream_while(
            server.url, records[0], lambda: _second_champion(spark, cfg, dataset)
        )
        assert failures == []
        new_version = client.get_model_version_by_alias("scores", CHAMPION).version
        assert new_version != trained.model_version
        assert versions[-1] == str(new_version)
        assert str(trained.model_version) in versions
        status, health = _call(f"{server.url}/health")
        assert health["reloads"] == 1 and health["version"] == str(new_version)
        answered = 1 + len(records) + 1 + len(versions)
    finally:
        output = server.stop()
    assert "Traceback" not in output, output

    # every answered record reached the inference log, with its inputs and lineage
    logged = delta.read(spark, tables.online_predictions)
    assert logged.count() == answered
    same = [F.col(c).eqNullSafe(F.lit(records[1][c])) for c in INPUTS]
    first = logged.where(same[0] & same[1] & same[2] & same[3]).orderBy("_scored_at").first()
    assert first is not None  # records[1] was sent once, in the list
    assert first["prediction"] == expected[some[1]]["prediction"]
    assert first["_model_name"] == "scores" and first["_source_table"] == "online"
    assert {r[0] for r in logged.select("_model_version").distinct().collect()} == {
        str(trained.model_version),
        str(new_version),
    }

    # monitor measures the online traffic of the day against the training profile
    v1_rows = logged.where(F.col("_model_version") == str(trained.model_version)).count()
    measured = monitor.run(spark, cfg, source="online", signal=False)
    # the first version's rows of the day are left out, and counted as such
    assert f"not measured: v{trained.model_version} ({v1_rows} rows)" in caplog.text
    assert measured.batch_id.startswith("online-")
    assert measured.model_version == str(new_version)
    assert {d.subject for d in measured.drifts} >= set(INPUTS)

    # the registered version's pyfunc flavour is the ONNX model: MLflow serves
    # it with no Spark, answering as gold does
    _mlflow_serves_like_gold(
        trained.model_version, [silver_rows[i] for i in some], [expected[i] for i in some], tmp_path
    )


def _mlflow_serves_like_gold(
    version: str, rows: list[dict[str, Any]], gold: list[Any], cwd: Path
) -> None:
    flavour = mlflow.pyfunc.load_model(f"models:/scores/{version}")
    assert flavour.metadata.flavors["python_function"]["loader_module"] == LOADER_MODULE
    port = _free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/scores/{version}"]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    output = cwd / "mlflow-serve.log"
    with output.open("w") as sink:
        # a session of its own: the server's workers are stopped with it
        # MLflow runs `uvicorn` from PATH: the virtualenv's, as when it is activated
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, "PATH": path},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5):
                    break
            except OSError:
                time.sleep(0.5)
        # the model is loaded in mlflow's uvicorn child: it is among those checked
        assert _no_jvm_in(process.pid) >= 2
        # only the model's inputs, nulls included: the flavour's signature is
        # the ONNX model's, not the Spark example's (which also lists the key)
        records = [{k: row[k] for k in INPUTS} for row in rows]
        status, answer = _call(
            f"http://127.0.0.1:{port}/invocations", {"dataframe_records": records}
        )
        assert status == 200, answer
        for got, want in zip(answer["predictions"], gold, strict=True):
            assert got["prediction"] == want["prediction"]
            assert got["probability"] == pytest.approx(want["probability"], abs=1e-9)
        # a null is optional input, imputed by the model
        status, answer = _call(
            f"http://127.0.0.1:{port}/invocations",
            {"dataframe_records": [{**records[0], "x1": None}]},
        )
        assert status == 200, answer
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _no_jvm_in(pid: int) -> int:
    """No JVM in the process nor in any process below it (mlflow serves from a
    uvicorn child); how many processes were looked at."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert "libjvm" not in maps, f"process {pid} has a JVM loaded"
    assert "java" not in Path(f"/proc/{pid}/cmdline").read_text().split("\0")[0]
    looked = 1
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            looked += _no_jvm_in(int(child))
    return looked


def _spark_answer(spark: SparkSession, model_uri: str, record: dict[str, Any]) -> dict[str, Any]:
    model = mlflow.spark.load_model(model_uri)
    frame = spark.createDataFrame([record], "x1 double, x2 double, noise double, segment string")
    row = model.transform(frame).select("prediction", "probability").first()
    assert row is not None
    return {"prediction": row["prediction"], "probability": row["probability"].toArray().tolist()}


def _second_champion(spark: SparkSession, cfg: Any, dataset: Path) -> None:
    """Train another model (another config) and give it the champion alias."""
    other = write_scores_dataset(
        dataset.parent.parent,
        where="id < 4000",
        models=[{"estimator": "logistic_regression", "params": {"regParam": 0.5}}],
    )
    trained = train.run(spark, job_config(other))
    assert trained is not None
    MlflowClient().set_registered_model_alias("scores", CHAMPION, trained.model_version)


def _stream_while(url: str, record: dict[str, Any], action: Any) -> tuple[list[str], list[str]]:
    """POST `record` from three clients at once (so requests are in flight
    when the model is swapped) while `action` runs and for 3 s after;
    (failures, the version of every answer in the order they came)."""
    failures: list[str] = []
    versions: list[str] = []
    done = threading.Event()

    def stream() -> None:
        settle: float | None = None
        while settle is None or time.monotonic() < settle:
            try:
                status, answer = _call(f"{url}/predict", record)
                if status == 200:
                    versions.append(answer["version"])
                else:
                    failures.append(f"{status}: {answer}")
            except Exception as exc:
                failures.append(repr(exc))
            if done.is_set() and settle is None:
                settle = time.monotonic() + 3
            time.sleep(0.01)

    threads = [threading.Thread(target=stream) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        action()
    finally:
        done.set()
        for thread in threads:
            thread.join()
    return failures, versions
