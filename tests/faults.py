"""Crash a job for real: run it as its own process (driver JVM included, in a
new process group) and SIGKILL the whole group the moment a condition holds,
such as a new data file in a table folder before its Delta commit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Outcome:
    output: str
    killed: bool
    returncode: int


def lakeforge(*args: str) -> list[str]:
    """The installed `lakeforge` command of this virtualenv."""
    return [str(Path(sys.executable).parent / "lakeforge"), *args]


def run_and_kill(
    command: list[str], cwd: Path, kill_when: Callable[[str], bool], timeout: float = 600
) -> Outcome:
    """Run `command`; SIGKILL its process group as soon as `kill_when(output so
    far)` is true. The job's Spark runs in a JVM child of the Python driver, so
    the whole group dies at once, as on a lost machine."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    log = cwd / f"job-{time.monotonic_ns()}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout
            while proc.poll() is None:
                if kill_when(log.read_text(errors="replace")):
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    _wait_group_gone(proc.pid)
                    return Outcome(log.read_text(errors="replace"), True, proc.returncode)
                if time.monotonic() > deadline:
                    raise AssertionError(f"{command[1]} neither ended nor reached the kill point")
                time.sleep(0.005)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return Outcome(log.read_text(errors="replace"), False, proc.returncode)


def _wait_group_gone(pgid: int) -> None:
    """Until no process of the group (the JVM) is left."""
    for _ in range(200):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of group {pgid} still alive after SIGKILL")


def data_files(table: Path) -> set[Path]:
    """The Parquet files in a Delta table's folder (committed or not)."""
    if not table.exists():
        return set()
    return {p for p in table.rglob("*.parquet") if "_delta_log" not in p.parts}


def new_data_file(table: Path) -> Callable[[str], bool]:
    """True once a data file appears in `table` that was not there at the start:
    the job is writing, and has not committed yet if the Delta log has no new
    version (the test checks that)."""
    before = data_files(table)
    return lambda _output: bool(data_files(table) - before)
