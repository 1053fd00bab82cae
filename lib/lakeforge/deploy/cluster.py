"""A real Spark standalone cluster on 127.0.0.1, started from the installed pyspark.

One master and N workers run as child processes of `spark-class` (no Docker,
no daemons left behind): their PIDs, ports and log files are recorded in a
state folder, and `stop` ends exactly those PIDs (TERM, then KILL). The
cluster tests and `scripts/cluster.sh` use this one code path.

    python -m lakeforge.deploy.cluster start --workers 2   # prints the master URL
    python -m lakeforge.deploy.cluster status
    python -m lakeforge.deploy.cluster stop
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyspark.find_spark_home import _find_spark_home

from lakeforge.errors import SetupError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


@dataclass
class Cluster:
    """What was started: enough to reach it and to stop it by PID."""

    state_dir: str
    master_port: int
    webui_port: int
    master_pid: int
    worker_pids: list[int] = field(default_factory=list)
    worker_dirs: list[str] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def webui_url(self) -> str:
        return f"http://{HOST}:{self.webui_port}"

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """The master's own JSON view (workers, running and finished apps)."""
        with urllib.request.urlopen(f"{self.webui_url}/json/", timeout=timeout) as answer:
            status: dict[str, Any] = json.load(answer)
        return status

    def alive_workers(self) -> int:
        try:
            return int(self.status().get("aliveworkers", 0))
        except (OSError, ValueError):
            return 0

    def save(self) -> None:
        Path(self.state_dir, "cluster.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, state_dir: str | Path) -> Cluster:
        path = Path(state_dir, "cluster.json")
        if not path.is_file():
            raise SetupError(f"no cluster recorded in {state_dir} (nothing to stop or show)")
        return cls(**json.loads(path.read_text()))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _spark_class() -> list[str]:
    return [str(Path(_find_spark_home()) / "bin" / "spark-class")]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("SPARK_HOME", _find_spark_home())
    env["SPARK_LOCAL_IP"] = HOST
    # Executors' Python workers run this interpreter (the project's virtualenv).
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    # Quieter daemons: the same log4j settings as lakeforge's drivers.
    log4j = Path(__file__).resolve().parents[1] / "log4j2.properties"
    env["SPARK_DAEMON_JAVA_OPTS"] = f"-Dlog4j.configurationFile=file:{log4j}"
    return env


def _spawn(args: list[str], log_file: Path, prefix: list[str] | None = None) -> int:
    with log_file.open("ab") as out:
        process = subprocess.Popen(
            [*(prefix or []), *_spark_class(), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_environment(),
            start_new_session=True,  # its own process group: stop() ends the JVM and children
        )
    return process.pid


def start_master(state_dir: Path, port: int = 0, webui_port: int = 0) -> Cluster:
    state_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    webui_port = webui_port or free_port()
    pid = _spawn(
        [MASTER_CLASS, "--host", HOST, "--port", str(port), "--webui-port", str(webui_port)],
        state_dir / "master.log",
    )
    cluster = Cluster(str(state_dir), port, webui_port, pid)
    cluster.save()
    wait_until(lambda: _port_open(port) and _webui_up(cluster), 60, "the master", cluster)
    return cluster


def add_worker(
    cluster: Cluster, cores: int = 1, memory: str = "2g", prefix: list[str] | None = None
) -> int:
    """Start one worker for the cluster; returns its PID once the master counts it.

    `prefix` runs the worker under another command, e.g. `unshare` to give it
    its own view of the file system (how the tests hide a path from executors).
    """
    index = len(cluster.worker_pids)
    work_dir = Path(cluster.state_dir) / f"worker-{index}"
    work_dir.mkdir(parents=True, exist_ok=True)
    wanted = cluster.alive_workers() + 1
    pid = _spawn(
        [
            WORKER_CLASS,
            cluster.master_url,
            "--host",
            HOST,
            "--cores",
            str(cores),
            "--memory",
            memory,
            "--work-dir",
            str(work_dir),
            "--webui-port",
            str(free_port()),
        ],
        Path(cluster.state_dir) / f"worker-{index}.log",
        prefix,
    )
    cluster.worker_pids.append(pid)
    cluster.worker_dirs.append(str(work_dir))
    cluster.save()
    wait_until(lambda: cluster.alive_workers() >= wanted, 60, f"worker {index}", cluster)
    return pid


def start(
    state_dir: Path, workers: int = 2, cores: int = 1, memory: str = "2g", port: int = 0
) -> Cluster:
    """A master and `workers` workers, each registered before this returns.

    Stops whatever it started if any part fails to come up."""
    cluster = start_master(state_dir, port=port)
    try:
        for _ in range(workers):
            add_worker(cluster, cores=cores, memory=memory)
    except BaseException:
        stop(cluster)
        raise
    log.info(
        "cluster: master %s (UI %s), %d workers x %d core(s), logs in %s",
        cluster.master_url,
        cluster.webui_url,
        workers,
        cores,
        state_dir,
    )
    return cluster


def kill(pid: int, grace: float = 10.0) -> None:
    """End one started process group: TERM, then KILL after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not is_alive(pid):
                return
            time.sleep(0.2)


def stop(cluster: Cluster) -> None:
    """Stop the workers, then the master, by the PIDs recorded at start."""
    for pid in [*cluster.worker_pids, cluster.master_pid]:
        kill(pid)
    log.info("cluster: stopped master and %d workers", len(cluster.worker_pids))


def is_alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap our own child
        if waited == pid:
            return False
    except ChildProcessError:
        pass  # not our child (stop from another process): ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) == 0


def _webui_up(cluster: Cluster) -> bool:
    try:
        cluster.status(timeout=2.0)
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return True


def wait_until(ready: Callable[[], bool], seconds: float, what: str, cluster: Cluster) -> None:
    """Poll `ready` until true; SetupError naming `what` and the logs after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.5)
    raise SetupError(
        f"{what} of the loopback cluster did not come up within {seconds:.0f} s; "
        f"see the logs in {cluster.state_dir}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lakeforge.deploy.cluster",
        description="Start or stop a Spark standalone cluster on 127.0.0.1 (by PID).",
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument(
        "--state-dir",
        default=".spark-cluster",
        help="where PIDs, ports, logs and worker folders are kept (default .spark-cluster)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cores", type=int, default=1, help="cores per worker")
    parser.add_argument("--memory", default="2g", help="memory per worker")
    parser.add_argument("--port", type=int, default=7077, help="master port (0: any free)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    state_dir = Path(args.state_dir).resolve()
    try:
        if args.action == "start":
            if (state_dir / "cluster.json").is_file():
                running = Cluster.load(state_dir)
                if is_alive(running.master_pid):
                    sys.stdout.write(running.master_url + "\n")
                    return 0
            cluster = start(state_dir, args.workers, args.cores, args.memory, args.port)
            sys.stdout.write(cluster.master_url + "\n")
        elif args.action == "stop":
            stop(Cluster.load(state_dir))
            (state_dir / "cluster.json").unlink()
        else:
            cluster = Cluster.load(state_dir)
            status = cluster.status()
            sys.stdout.write(
                f"{cluster.master_url}: {status.get('aliveworkers')} alive workers, "
                f"{len(status.get('activeapps', []))} running apps (UI {cluster.webui_url})\n"
            )
    except SetupError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except OSError as exc:
        sys.stderr.write(f"error: the master does not answer: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
