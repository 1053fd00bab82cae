"""The Delta Lake jars: which ones, where they are cached, how to fetch them.

delta-spark's Python package does not carry its jars. Setup fetches them from
Maven Central once (with Maven, `python -m lakeforge.jars fetch`) into a local
cache; the session builder then hands Spark the file paths, so no run needs
the network. Checksums pin the exact bytes we tested with.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lakeforge.errors import SetupError
from lakeforge.hashing import sha256_of

log = logging.getLogger(__name__)

DELTA_VERSION = "4.4.0"
SPARK_MINOR = "4.2"
SCALA_BINARY = "2.13"
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


@dataclass(frozen=True)
class Jar:
    group: str
    artifact: str
    version: str
    # None: checked by Maven against Maven Central's own checksum (-C) only
    sha256: str | None = None

    @property
    def coordinate(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def filename(self) -> str:
        return f"{self.artifact}-{self.version}.jar"


# delta-spark's other compile dependencies (delta-kernel-*, Hadoop, Jackson,
# Parquet, Scala) are either shipped by pyspark or only used by the Unity
# Catalog / kernel code paths that lakeforge does not call.
DELTA_JARS: tuple[Jar, ...] = (
    Jar(
        "io.delta",
        f"delta-spark_{SPARK_MINOR}_{SCALA_BINARY}",
        DELTA_VERSION,
        "27d4fd8b1f879535c573ed1c718177d6a27f24d3e626ba02e216369725721ead",
    ),
    Jar(
        "io.delta",
        "delta-storage",
        DELTA_VERSION,
        "c46735481fa8e326b0957be02b4420cbcab4b325bb08009b7f2045a95133f1cc",
    ),
)


# JDBC drivers for database sources (`source.format: jdbc`). MySQL or SQL
# Server need only their driver's coordinates here (com.mysql:mysql-connector-j,
# com.microsoft.sqlserver:mssql-jdbc) and `source.jdbc.driver` in the dataset.
JDBC_JARS: tuple[Jar, ...] = (
    Jar(
        "org.postgresql",
        "postgresql",
        "42.7.14",
        "73914527305a40cce504b0d3d90b23caf565136912d607ae8ae7c5895512332c",
    ),
)

# Every session gets these: Delta, and the JDBC drivers.
BASE_JARS = DELTA_JARS + JDBC_JARS

# S3A (s3a:// lakehouse on S3 or MinIO): the hadoop-aws of pyspark's Hadoop
# client (3.5.0) and the AWS SDK v2 bundle it was built against. Fetched only
# with `--with s3` (the Docker image does); the bundle is several hundred MB.
S3A_JARS: tuple[Jar, ...] = (
    Jar("org.apache.hadoop", "hadoop-aws", "3.5.0"),
    Jar("software.amazon.awssdk", "bundle", "2.35.4"),
)

EXTRAS: dict[str, tuple[Jar, ...]] = {"s3": S3A_JARS}


def wanted(extras: tuple[str, ...] = ()) -> tuple[Jar, ...]:
    """The base jars (Delta, JDBC drivers) plus those of the named extras (`s3`)."""
    return BASE_JARS + tuple(jar for name in extras for jar in EXTRAS[name])


def jars_dir() -> Path:
    """The cache folder: `LAKEFORGE_JARS_DIR`, else `~/.cache/lakeforge/jars`."""
    env = os.environ.get("LAKEFORGE_JARS_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "lakeforge" / "jars"


def _is_valid(path: Path, jar: Jar) -> bool:
    return path.is_file() and (jar.sha256 is None or sha256_of(path) == jar.sha256)


def delta_jar_paths(directory: Path | None = None, extras: tuple[str, ...] = ()) -> list[Path]:
    """Paths of the cached Delta jars (and extras), checked to exist.

    Raises SetupError naming the missing files and the command that fetches them.
    """
    directory = directory or jars_dir()
    paths = [directory / jar.filename for jar in wanted(extras)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise SetupError(
            f"jars not found in {directory}: {', '.join(missing)}; "
            "run scripts/setup.sh (or `python -m lakeforge.jars fetch`)"
        )
    return paths


def fetch(directory: Path | None = None, extras: tuple[str, ...] = ()) -> list[Path]:
    """Make sure every Delta jar is in the cache with the pinned checksum.

    Downloads what is missing with Maven (`mvn dependency:copy`, which also
    fills ~/.m2). Raises SetupError when Maven is absent or a checksum differs.
    """
    directory = directory or jars_dir()
    directory.mkdir(parents=True, exist_ok=True)
    for jar in wanted(extras):
        target = directory / jar.filename
        if _is_valid(target, jar):
            continue
        mvn = shutil.which("mvn")
        if mvn is None:
            raise SetupError(
                f"{jar.coordinate} is not cached in {directory} and Maven (mvn) is not "
                "installed: install Maven, or copy the jar there by hand"
            )
        log.info("fetching %s from Maven Central", jar.coordinate)
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "--strict-checksums",
                f"{_DEPENDENCY_PLUGIN}:copy",
                f"-Dartifact={jar.coordinate}:jar",
                f"-DoutputDirectory={directory}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise SetupError(f"Maven could not fetch {jar.coordinate}: " + " | ".join(tail))
        if not _is_valid(target, jar):
            raise SetupError(f"{target}: checksum differs from the pinned sha256 {jar.sha256}")
    return delta_jar_paths(directory, extras)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lakeforge.jars",
        description="Fetch or locate the Delta Lake jars Spark needs.",
    )
    parser.add_argument(
        "action",
        choices=["fetch", "path"],
        help="fetch: download what is missing; path: print the comma-separated jar "
        "paths (for spark-submit --jars)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        paths = fetch() if args.action == "fetch" else delta_jar_paths()
    except SetupError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    if args.action == "fetch":
        log.info("jars ready in %s: %s", jars_dir(), ", ".join(p.name for p in paths))
    else:
        sys.stdout.write(",".join(str(p) for p in paths) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
