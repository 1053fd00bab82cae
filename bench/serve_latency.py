"""Benchmark: one record scored online, side by side in one run.

In process, single records (p50 / p99):
  (a) the champion's ONNX model as `lakeforge serve` runs it (record -> tensors
      -> onnxruntime -> answer),
  (b) the Spark PipelineModel on a one-row DataFrame,
  (c) MLflow's spark-flavour pyfunc (a pandas row through Spark).
Over HTTP on 127.0.0.1 against a real `lakeforge serve` (started and stopped
by PID, inference log on): p50 / p99 at fixed request rates with a bounded
client (a fixed schedule for a fixed time; latency counted from the
scheduled send, so a slow answer delays no later measurement), and rows/s
for batches of 1,000 records.

Targets (issue 19): in process p99 <= 1 ms and >= 100x faster than (b);
HTTP p99 <= 10 ms at 200 requests/s on 2 cores. Needs the demo's tables and
a champion trained by this version (scripts/demo.sh).

    .venv/bin/python bench/serve_latency.py [--records 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    values = np.asarray(seconds) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def _time_each(
    records: list[dict[str, Any]], score: Callable[[dict[str, Any]], Any]
) -> list[float]:
    timings = []
    for record in records:
        start = time.perf_counter()
        score(record)
        timings.append(time.perf_counter() - start)
    return timings


def _json_ready(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(dataset: str, port: int, lakehouse: str, log: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LAKEFORGE_LAKEHOUSE": lakehouse}
    command = [sys.executable, "-m", "lakeforge", "serve", "--dataset", dataset]
    command += ["--port", str(port), "--max-batch", "1000"]
    if not log:
        command.append("--no-inference-log")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"serve exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("serve did not come up in 90 s")


def _at_rate(port: int, records: list[bytes], rate: float, seconds: float) -> dict[str, float]:
    """Send one record every 1/rate s for `seconds` from a pool of keep-alive
    connections; latency from the scheduled time to the answer."""
    start = time.perf_counter() + 0.2
    count = int(rate * seconds)
    schedule: queue.Queue[tuple[float, bytes] | None] = queue.Queue()
    for i in range(count):
        schedule.put((start + i / rate, records[i % len(records)]))
    workers = 16
    for _ in range(workers):
        schedule.put(None)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def work() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while (item := schedule.get()) is not None:
            due, body = item
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            try:
                connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                ok = False
            with lock:
                if ok:
                    latencies.append(time.perf_counter() - due)
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    p50, p99 = _percentiles(latencies)
    return {"p50": p50, "p99": p99, "sent": count, "errors": errors[0], "achieved": count / elapsed}


def _batches(port: int, records: list[dict[str, Any]], batch: int, rounds: int) -> float:
    bodies = [
        json.dumps(records[i * batch % len(records) :][:batch]).encode() for i in range(rounds)
    ]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    rows = 0
    for body in bodies:
        connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
        answer = json.loads(connection.getresponse().read())
        rows += len(answer["predictions"])
    return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(REPO / "conf/datasets/flights.yaml"))
    parser.add_argument("--records", type=int, default=2000, help="single records timed in (a)")
    parser.add_argument("--spark-records", type=int, default=30, help="records timed in (b), (c)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per HTTP rate")
    parser.add_argument("--rates", default="100,200,500")
    args = parser.parse_args()

    import mlflow
    import pandas as pd

    from lakeforge.config import load_job_config
    from lakeforge.logs import configure
    from lakeforge.serving import scorer
    from lakeforge.spark import build_session
    from lakeforge.storage import delta
    from lakeforge.storage.paths import tables_for

    configure(os.environ.get("BENCH_LOG", "WARNING"))
    cfg = load_job_config(args.dataset)
    ds = cfg.dataset
    assert ds.train is not None
    name = ds.train.registry.model_name or ds.name
    tracking = cfg.settings.mlflow.tracking_uri
    loaded = scorer.load(tracking, name, "champion")
    assert loaded is not None
    spark = build_session(cfg.settings, app_name="lakeforge-bench-serve")
    silver = delta.read(spark, tables_for(cfg.settings, ds.name).silver)
    columns = loaded.signature.names()
    rows = silver.where(ds.predict.where or "true").select(*columns).limit(args.records).collect()
    records = [{c: _json_ready(r[c]) for c in columns} for r in rows]
    raw_rows = [r.asDict() for r in rows]
    print(f"{name} v{loaded.version}: {len(records)} records of {len(columns)} inputs")

    onnx = _time_each(records, lambda r: loaded.score([r]))
    uri = f"models:/{name}/{loaded.version}"
    pipeline = mlflow.spark.load_model(uri)
    schema = silver.select(*columns).schema
    few = raw_rows[: args.spark_records]
    # the first call of each warms up caches and code paths: not counted
    pipeline.transform(spark.createDataFrame([few[0]], schema)).collect()
    spark_rows = _time_each(
        few, lambda r: pipeline.transform(spark.createDataFrame([r], schema)).collect()
    )
    local = Path(mlflow.artifacts.download_artifacts(uri))
    spark_pyfunc = mlflow.spark._load_pyfunc(str(local / "sparkml"))
    spark_pyfunc.predict(pd.DataFrame([few[0]]))
    pyfunc_rows = _time_each(few, lambda r: spark_pyfunc.predict(pd.DataFrame([r])))

    # with the inference log (as deployed) and without it: what the log costs
    http_rows: dict[tuple[bool, float], dict[str, float]] = {}
    batch_rates: dict[bool, float] = {}
    for log_on in (True, False):
        port = _free_port()
        with tempfile.TemporaryDirectory(prefix="lakeforge-bench-serve-") as scratch:
            server = _serve(args.dataset, port, scratch, log_on)
            try:
                bodies = [json.dumps(r).encode() for r in records]
                _at_rate(port, bodies, 50, 1)  # warm-up
                for rate in args.rates.split(","):
                    http_rows[log_on, float(rate)] = _at_rate(
                        port, bodies, float(rate), args.seconds
                    )
                batch_rates[log_on] = _batches(port, records, 1000, 20)
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)

    a50, a99 = _percentiles(onnx)
    b50, b99 = _percentiles(spark_rows)
    c50, c99 = _percentiles(pyfunc_rows)
    print()
    print("| single record, in process | p50 ms | p99 ms |")
    print("|---|---|---|")
    print(f"| (a) ONNX (lakeforge serve's scorer) | {a50:.3f} | {a99:.3f} |")
    print(f"| (b) Spark PipelineModel, one-row DataFrame | {b50:.1f} | {b99:.1f} |")
    print(f"| (c) MLflow spark-flavour pyfunc | {c50:.1f} | {c99:.1f} |")
    print(f"\n(b) / (a) at p50: {b50 / a50:,.0f}x; (c) / (a): {c50 / a50:,.0f}x")
    print()
    print("| HTTP on 127.0.0.1 | inference log | requests/s achieved | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for (log_on, rate), found in http_rows.items():
        print(
            f"| {rate:g} requests/s, one record each | {'on' if log_on else 'off'} | "
            f"{found['achieved']:.0f} | {found['p50']:.2f} | {found['p99']:.2f} | "
            f"{found['errors']:.0f} |"
        )
    for log_on, rate in batch_rates.items():
        print(
            f"| batches of 1,000 records | {'on' if log_on else 'off'} | {rate:,.0f} rows/s | | | |"
        )
    print()
    checks = {
        "in process p99 <= 1 ms": a99 <= 1.0,
        "in process >= 100x faster than (b)": b50 / a50 >= 100,
        "HTTP p99 <= 10 ms at 200 requests/s (log on)": http_rows.get((True, 200.0), {"p99": 1e9})[
            "p99"
        ]
        <= 10,
    }
    for what, met in checks.items():
        print(f"target {what}: {'met' if met else 'MISSED'}")
    spark.stop()


if __name__ == "__main__":
    main()
