"""`lakeforge doctor`: is this machine (or cluster edge node) ready to run the jobs?

Checks, without starting Spark: Python and Java versions, the installed
pyspark / delta-spark / MLflow / Great Expectations / pandas / pyarrow against
the supported matrix, the Delta jars (present, pinned checksums, built for
this pyspark), the Spark master (reachable), the lakehouse (writable, or its
S3A jars and credentials present) and the MLflow tracking store (reachable).
Each failed check prints how to fix it; the exit code is 1 if any failed.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from lakeforge.config.models import Settings
from lakeforge.errors import LakeforgeError
from lakeforge.jars import SPARK_MINOR, delta_jar_paths, jars_dir
from lakeforge.spark import check_master_reachable
from lakeforge.storage.paths import is_uri, lakehouse_root

# What lakeforge is tested with; outside these ranges the jobs may still run,
# but Delta's jars and Spark must agree (delta-spark 4.4 supports 4.0.1-4.2.0).
SUPPORTED: dict[str, str] = {
    "pyspark": ">=4.0.1,<=4.2.0",
    "delta-spark": ">=4.4,<4.5",
    "mlflow": ">=3.17,<3.18",
    "great-expectations": ">=1.24,<1.25",
    "pandas": ">=2.2,<3",
    "pyarrow": ">=14,<26",
}
PYTHON = SpecifierSet(">=3.11,<3.14")
JAVA_MAJORS = (17, 21)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_python() -> Check:
    version = ".".join(str(v) for v in sys.version_info[:3])
    ok = Version(version) in PYTHON
    return Check("python", ok, f"{version} ({sys.executable})", "" if ok else f"use {PYTHON}")


def check_java() -> Check:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    fix = "install OpenJDK 17 (apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
    if not java or not Path(java).exists():
        return Check("java", False, "no java on PATH or in JAVA_HOME", fix)
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if match is None:
        return Check("java", False, f"{java} -version said nothing usable", fix)
    major = int(match.group(1))
    ok = major in JAVA_MAJORS
    fix = "" if ok else f"Spark 4 needs Java 17 or 21; {fix}"
    return Check("java", ok, f"{major} ({java})", fix)


def check_packages() -> list[Check]:
    checks = []
    for name, spec in SUPPORTED.items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            checks.append(Check(name, False, "not installed", "run scripts/setup.sh"))
            continue
        ok = Version(found) in SpecifierSet(spec)
        fix = "" if ok else f"install a version {spec} (scripts/setup.sh installs the tested pins)"
        checks.append(Check(name, ok, f"{found} (supported {spec})", fix))
    return checks


def check_xgboost() -> Check:
    """The `xgboost` estimator is an extra: advice when it is missing, never a
    failure (every other estimator works without it)."""
    for dist in ("xgboost-cpu", "xgboost"):
        try:
            found = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        return Check("xgboost", True, f"{dist} {found}: the xgboost estimator is available")
    return Check(
        "xgboost",
        True,
        "not installed: the xgboost estimator is unavailable",
        "optional: pip install 'lakeforge[xgboost]' (scripts/setup.sh installs it)",
    )


def check_jars(extras: tuple[str, ...]) -> Check:
    fix = "run scripts/setup.sh (python -m lakeforge.jars fetch" + (
        " --with s3)" if extras else ")"
    )
    try:
        paths = delta_jar_paths(extras=extras)
    except LakeforgeError as exc:
        return Check("delta jars", False, str(exc), fix)
    try:
        pyspark_minor = ".".join(metadata.version("pyspark").split(".")[:2])
    except metadata.PackageNotFoundError:
        pyspark_minor = "?"
    if pyspark_minor != SPARK_MINOR:
        return Check(
            "delta jars",
            False,
            f"the jars are built for Spark {SPARK_MINOR}, pyspark is {pyspark_minor}",
            f"install pyspark {SPARK_MINOR}.x, or pin the Delta artifact for {pyspark_minor}",
        )
    return Check("delta jars", True, f"{len(paths)} in {jars_dir()}")


def check_master(settings: Settings) -> Check:
    master = settings.spark.master
    if not master.startswith("spark://"):
        return Check("spark master", True, f"{master} (nothing to reach)")
    try:
        check_master_reachable(master)
    except LakeforgeError as exc:
        return Check("spark master", False, str(exc), "scripts/cluster.sh start, or fix --env")
    return Check("spark master", True, f"{master} answers")


def check_lakehouse(settings: Settings) -> Check:
    root = lakehouse_root(settings)
    if root.startswith("s3a://"):
        missing = [v for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if v not in os.environ]
        if missing:
            return Check(
                "lakehouse",
                False,
                f"{root}: {', '.join(missing)} not set",
                "export the credentials (names only are read; values are never printed)",
            )
        return Check("lakehouse", True, f"{root} (written to at job start; S3A credentials set)")
    if is_uri(root) and not root.startswith("file:"):
        return Check("lakehouse", True, f"{root} (object store: checked at job start)")
    folder = Path(root.removeprefix("file://").removeprefix("file:"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".doctor-{uuid.uuid4().hex}"
        probe.write_text("ok\n")
        probe.unlink()
    except OSError as exc:
        return Check(
            "lakehouse",
            False,
            f"{folder}: {exc.strerror or exc}",
            "set LAKEFORGE_LAKEHOUSE (or `lakehouse:` in the conf) to a writable folder",
        )
    return Check("lakehouse", True, f"{folder} is writable")


def check_tracking(settings: Settings) -> Check:
    uri = settings.mlflow.tracking_uri
    fix = "set MLFLOW_TRACKING_URI (or mlflow.tracking_uri in the conf)"
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///")).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(path) as db:
                db.execute("select 1")
        except (OSError, sqlite3.Error) as exc:
            return Check("mlflow", False, f"{uri}: {exc}", fix)
        return Check("mlflow", True, f"{uri} opens")
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5) as answer:
                answer.read()
        except (OSError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", exc)
            return Check("mlflow", False, f"{uri}/health: {reason}", f"start the server or {fix}")
        return Check("mlflow", True, f"{uri} is healthy")
    return Check("mlflow", True, f"{uri} (not checked: the platform's own store)")


def check_blas() -> Check:
    """Spark ML's netlib loads `libblas.so.3`; without it Spark's own fits run
    the Java fallback (correct, slower), so this is advice, never a failure.
    The shared-pass search uses numpy's own bundled OpenBLAS either way."""
    try:
        ctypes.CDLL("libblas.so.3")
    except OSError:
        return Check(
            "native blas",
            True,
            "none (no libblas.so.3): Spark ML falls back to Java BLAS",
            "optional: apt-get install libopenblas0-pthread (Debian/Ubuntu)",
        )
    return Check("native blas", True, "libblas.so.3 loads: Spark ML uses native BLAS")


def run_checks(settings: Settings) -> list[Check]:
    extras = ("s3",) if lakehouse_root(settings).startswith("s3a://") else ()
    steps: list[Callable[[], Check | list[Check]]] = [
        check_python,
        check_java,
        check_packages,
        check_blas,
        check_xgboost,
        lambda: check_jars(extras),
        lambda: check_master(settings),
        lambda: check_lakehouse(settings),
        lambda: check_tracking(settings),
    ]
    checks: list[Check] = []
    for step in steps:
        found = step()
        checks.extend(found if isinstance(found, list) else [found])
    return checks


def report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        lines.append(f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"{'':<{width + 6}}  fix: {check.fix}")
    failed = sum(not c.ok for c in checks)
    lines.append("all checks passed" if not failed else f"{failed} check(s) failed")
    return "\n".join(lines) + "\n"
