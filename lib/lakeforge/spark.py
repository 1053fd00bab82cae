"""The one SparkSession builder: Delta enabled, embedded defaults, cluster-aware.

Started from plain Python (the `lakeforge` CLI, tests), it runs the configured
master (`local[*]` by default) with the cached Delta jars on the classpath.
Started by `spark-submit`, it keeps the master and settings spark-submit gave
and only adds what is missing; the Delta jars must then come with `--jars`
(`python -m lakeforge.jars path` prints them).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from pyspark import SparkConf
from pyspark.sql import SparkSession

from lakeforge.config.models import Settings
from lakeforge.errors import SetupError
from lakeforge.jars import delta_jar_paths
from lakeforge.storage.paths import lakehouse_root

log = logging.getLogger(__name__)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# Sizing for one machine: Spark's defaults (200 shuffle partitions, 50 Delta
# snapshot partitions) are for clusters and make small local jobs slow.
LOCAL_DEFAULTS = {
    "spark.sql.shuffle.partitions": "8",
    "spark.databricks.delta.snapshotPartitions": "4",
    "spark.default.parallelism": "8",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
}

COMMON_DEFAULTS = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    # wide source schemas otherwise warn on every plan string
    "spark.sql.debug.maxToStringFields": "500",
}

_LOG4J = Path(__file__).with_name("log4j2.properties")


def launched_by_spark_submit() -> bool:
    """True when spark-submit started this Python process (it passes the gateway)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def session_conf(settings: Settings, submitted: bool) -> dict[str, str]:
    """The Spark settings lakeforge asks for, lowest precedence first applied.

    Precedence: spark-submit's own settings > `spark.conf` of the config >
    lakeforge's defaults. A pure function, so the rules are testable without Spark.
    """
    wanted: dict[str, str] = dict(COMMON_DEFAULTS)
    master = settings.spark.master
    if not submitted:
        if master.startswith("local"):
            wanted.update(LOCAL_DEFAULTS)
        wanted["spark.jars"] = ",".join(str(p) for p in delta_jar_paths())
        wanted["spark.driver.extraJavaOptions"] = f"-Dlog4j.configurationFile=file:{_LOG4J}"
    wanted["spark.sql.warehouse.dir"] = f"{lakehouse_root(settings)}/_warehouse"
    wanted.update(DELTA_CONF)
    wanted.update({k: _text(v) for k, v in settings.spark.conf.items()})
    if submitted:
        given = dict(SparkConf().getAll())
        wanted = {k: v for k, v in wanted.items() if k not in given}
    return wanted


def _text(value: str | int | float | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def build_session(settings: Settings, app_name: str | None = None) -> SparkSession:
    """Return the SparkSession for a job, Delta enabled.

    An already active session (a test's, a notebook's, Databricks') is reused as
    it is. Raises SetupError when the Delta jars are missing locally or absent
    from the classpath under spark-submit.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    submitted = launched_by_spark_submit()
    # Python workers must run this interpreter (the project's virtualenv), or
    # pandas UDFs fail with missing modules on a bare machine.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name or settings.spark.app_name)
    if not submitted:
        builder = builder.master(settings.spark.master)
    for key, value in session_conf(settings, submitted).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.spark.log_level)
    _check_delta_on_classpath(spark)
    log.info(
        "spark %s session: master=%s delta=on",
        spark.version,
        spark.sparkContext.master,
    )
    return spark


def _check_delta_on_classpath(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    try:
        jvm.org.apache.spark.util.Utils.classForName(
            DELTA_CONF["spark.sql.extensions"], True, False
        )
    except Exception as exc:
        raise SetupError(
            "Delta Lake classes are not on Spark's classpath; under spark-submit pass "
            "--jars $(python -m lakeforge.jars path)"
        ) from exc


def cores(spark: SparkSession) -> int:
    """Task slots of the session: N for `local[N]`, the machine's CPUs for
    `local[*]`, the cluster's default parallelism (its executor cores) otherwise."""
    master = spark.sparkContext.master or ""
    match = re.match(r"^local(?:\[(\d+|\*)(?:,\d+)?\])?$", master)
    if match is None:
        return max(1, spark.sparkContext.defaultParallelism)
    slots = match.group(1) or "1"
    return (os.cpu_count() or 1) if slots == "*" else int(slots)
