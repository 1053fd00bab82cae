"""The inference log of `lakeforge serve` (issue 19): every answer lands in
Delta with its inputs typed as silver holds them and gold's lineage; losing
the log (a table it cannot write, a full queue) never fails a request, and
is counted on /health of a real server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
import uvicorn
from pyspark.ml import Pipeline
from pyspark.ml import classification as clf
from pyspark.sql import SparkSession

from lakeforge.config.training import Features
from lakeforge.features.stages import build_stages
from lakeforge.serving.export import convert
from lakeforge.serving.online_log import Entry, OnlineLog
from lakeforge.serving.scorer import Loaded, Scorer
from lakeforge.serving.server import create_app
from lakeforge.storage import delta

SCHEMA = "x double, n int, c string, d date, y double"
COLUMNS = ["x", "n", "c", "d"]


@pytest.fixture(scope="module")
def loaded(spark: SparkSession) -> Loaded:
    rows = [
        (float(i % 7), i % 3, "ab"[i % 2], dt.date(2024, 1, 1) + dt.timedelta(days=i), float(i % 2))
        for i in range(60)
    ]
    frame = spark.createDataFrame(rows, SCHEMA)
    spec = Features.model_validate(
        {
            "numeric": {"columns": ["x", "n"]},
            "categorical": {"columns": ["c"]},
            "dates": [{"column": "d", "parts": ["month"]}],
        }
    )
    stages = [*build_stages(spec, "binary", "y"), clf.LogisticRegression(labelCol="y")]
    model = Pipeline(stages=stages).fit(frame)
    onnx_bytes, signature = convert(model, frame.schema, COLUMNS, "binary", 2)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    outputs = tuple(o.name for o in session.get_outputs())
    return Loaded("m", "1", "run-1", signature, session, outputs)


RECORD = {"x": 2.5, "n": 1, "c": "a", "d": "2024-03-05"}


def _entry(loaded: Loaded, records: list[dict[str, Any]]) -> Entry:
    return Entry(
        loaded.name,
        loaded.version,
        loaded.run_id,
        loaded.signature,
        records,
        loaded.score(records),
        dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.UTC),
    )


def test_every_answer_lands_in_delta_with_typed_inputs_and_lineage(
    spark: SparkSession, loaded: Loaded, tmp_path: Path
) -> None:
    path = str(tmp_path / "online_predictions")
    online_log = OnlineLog(path, flush_seconds=60)
    online_log.append(_entry(loaded, [RECORD, {**RECORD, "x": None, "c": None}]))
    online_log.append(_entry(loaded, [{**RECORD, "n": 2}]))
    online_log.close()  # writes what is queued
    assert online_log.counts.rows_written == 3 and online_log.counts.rows_lost == 0
    logged = delta.read(spark, path)
    assert logged.count() == 3
    types = dict(logged.dtypes)
    assert (types["x"], types["n"], types["c"], types["d"]) == (
        "double",
        "bigint",
        "string",
        "date",
    )
    row = logged.where("n = 1 AND x IS NOT NULL").first()
    assert row is not None
    assert row["d"] == dt.date(2024, 3, 5)
    assert row["prediction"] == loaded.score([RECORD])[0]["prediction"]
    assert row["_batch_id"] == "online-2026-12-04" and row["_source_table"] == "online"
    assert (row["_model_name"], row["_model_version"], row["_run_id"]) == ("m", "1", "run-1")
    assert logged.where("x IS NULL AND c IS NULL").count() == 1  # nulls stay null


def test_a_full_queue_counts_the_rows_it_drops(loaded: Loaded, tmp_path: Path) -> None:
    online_log = OnlineLog(str(tmp_path / "t"), flush_seconds=60, capacity=1)
    for _ in range(3):
        online_log.append(_entry(loaded, [RECORD, RECORD]))
    assert online_log.counts.rows_lost == 4
    online_log.close()
    assert online_log.counts.rows_written == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_a_log_that_cannot_be_written_fails_no_request_and_shows_on_health(
    loaded: Loaded, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the table should be")
    online_log = OnlineLog(str(blocked / "online_predictions"), flush_seconds=0.2)
    scorer = Scorer(lambda _version: None, loaded, poll_seconds=0)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(scorer, online_log), host="127.0.0.1", port=port, log_level="error"
        )
    )
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        statuses = [_get(f"http://127.0.0.1:{port}/predict", RECORD)[0] for _ in range(20)]
        assert statuses == [200] * 20
        deadline = time.monotonic() + 30
        while True:
            health = _get(f"http://127.0.0.1:{port}/health")[1]["inference_log"]
            if health["rows_lost"] == 20 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert health["rows_lost"] == 20 and health["rows_written"] == 0
        assert health["failed_writes"] >= 1 and health["last_error"]
    finally:
        server.should_exit = True
        thread.join(timeout=30)
