"""A real PostgreSQL server for tests, from the machine's own binaries.

Started with its own data folder on a free port of 127.0.0.1 (password
authentication over TCP, trust on its private Unix socket for the test's
admin `psql`), and stopped by PID. As root the server runs as the `postgres`
account (PostgreSQL refuses root), via setpriv, which execs, so the PID
recorded is the server's own.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lakeforge.deploy.cluster import free_port


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if found is None:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed: apt-get install postgresql (Debian)"
        )
    return found


@dataclass
class Postgres:
    folder: Path
    port: int
    pid: int
    owner: list[str]

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/shop"

    def sql(self, statement: str) -> str:
        """Run SQL as the superuser on the shop database; returns psql's unaligned output."""
        done = subprocess.run(
            [
                _binary("psql"),
                "-h",
                str(self.folder),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "shop",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                statement,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGINT)  # fast shutdown
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                waited, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return
            if waited == self.pid:
                return
            time.sleep(0.2)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


def start(password: str) -> Postgres:
    """initdb + postgres on a free port; a database `shop` and a login role
    `shop` (with `password`) that may read every table created later."""
    folder = Path(tempfile.mkdtemp(prefix="lakeforge-pg-"))
    owner: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
        owner = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups"]
    folder.chmod(0o700)
    data = folder / "data"
    subprocess.run(
        [
            *owner,
            _binary("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-instructions",
        ],
        capture_output=True,
        check=True,
    )
    port = free_port()
    log = (folder / "server.log").open("ab")
    server = subprocess.Popen(
        [
            *owner,
            _binary("postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(folder),
            "-c",
            "listen_addresses=127.0.0.1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    pg = Postgres(folder, port, server.pid, owner)
    deadline = time.monotonic() + 60
    while (
        subprocess.run(
            [_binary("pg_isready"), "-h", str(folder), "-p", str(port)], capture_output=True
        ).returncode
        != 0
    ):
        if time.monotonic() > deadline or server.poll() is not None:
            pg.stop()
            raise RuntimeError(f"PostgreSQL did not start; see {folder / 'server.log'}")
        time.sleep(0.3)
    admin = subprocess.run(
        [
            _binary("psql"),
            "-h",
            str(folder),
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            f"CREATE ROLE shop LOGIN PASSWORD '{password}'",
            "-c",
            "CREATE DATABASE shop OWNER shop",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if admin.returncode != 0:
        pg.stop()
        raise RuntimeError(admin.stderr)
    pg.sql("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO shop")
    return pg


def remove(pg: Postgres) -> None:
    shutil.rmtree(pg.folder, ignore_errors=True)
