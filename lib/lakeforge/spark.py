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
import socket
import sys
import time
import uuid
from pathlib import Path

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from lakeforge import secrets
from lakeforge.config.models import Settings
from lakeforge.errors import SetupError
from lakeforge.jars import delta_jar_paths
from lakeforge.storage.paths import is_uri, lakehouse_root

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

# For the JVMs lakeforge's session starts (a local driver, which is also the
# executors, or a cluster's executors): G1 regions of 8 MB. A DataFrame
# persisted from Python with StorageLevel.MEMORY_AND_DISK is cached
# serialized, in chunks of 1 MB (`spark.storage.unrollMemoryThreshold`). G1
# stores an object of more than half a region as "humongous", in whole regions
# of its own, and picks 1 MB regions for heaps up to 2 GB and 2 MB up to 4 GB:
# each chunk then takes 2 MB. Clean's cached batch at 100x flights (2.2 GB of
# live byte arrays by `jcmd GC.class_histogram`, within Spark's storage
# budget) filled the whole 4 GB heap and the step died with OutOfMemoryError;
# with 8 MB regions the chunks are ordinary objects and the same step
# finished (bench/scale.py, README "Performance"). Given as the *default*
# Java options, which Spark puts before `extraJavaOptions`: a user's own
# options add to these (and win where they say otherwise), never drop them.
JVM_OPTIONS = "-XX:G1HeapRegionSize=8m"


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
        # an s3a:// lakehouse needs the S3A jars too (`python -m lakeforge.jars fetch --with s3`)
        extras = ("s3",) if lakehouse_root(settings).startswith("s3a://") else ()
        wanted["spark.jars"] = ",".join(str(p) for p in delta_jar_paths(extras=extras))
        wanted["spark.driver.defaultJavaOptions"] = (
            f"-Dlog4j.configurationFile=file:{_LOG4J} {JVM_OPTIONS}"
        )
    # executors start with the session, under spark-submit too (where a
    # platform's own defaults, given to spark-submit, win)
    wanted["spark.executor.defaultJavaOptions"] = JVM_OPTIONS
    wanted["spark.sql.warehouse.dir"] = f"{lakehouse_root(settings)}/_warehouse"
    wanted.update(DELTA_CONF)
    wanted.update({k: _text(v) for k, v in settings.spark.conf.items()})
    if submitted:
        given = submitted_conf()
        wanted = {k: v for k, v in wanted.items() if k not in given}
    return wanted


def submitted_conf() -> dict[str, str]:
    """The settings spark-submit gave (its --master, --conf, defaults file).

    They live in the JVM spark-submit started; without the gateway a SparkConf
    is an empty Python-side dict, so connect to it first."""
    SparkContext._ensure_initialized()
    return dict(SparkConf().getAll())


def _text(value: str | int | float | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def build_session(settings: Settings, app_name: str | None = None) -> SparkSession:
    """Return the SparkSession for a job, Delta enabled.

    An already active session (a test's, a notebook's, Databricks') is reused as
    it is (its JVM's log scrubs the secrets known now, if it logs with ours).
    Raises SetupError when the Delta jars are missing locally or absent from
    the classpath under spark-submit.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        scrub_jvm_log(active)
        return active
    submitted = launched_by_spark_submit()
    # Python workers must run this interpreter (the project's virtualenv), or
    # pandas UDFs fail with missing modules on a bare machine.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    wanted = session_conf(settings, submitted)
    master = submitted_conf().get("spark.master", "") if submitted else settings.spark.master
    check_master_reachable(master)  # before Spark tries (and retries for a minute)
    builder = SparkSession.builder.appName(app_name or settings.spark.app_name)
    if not submitted:
        builder = builder.master(settings.spark.master)
    for key, value in wanted.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.spark.log_level)
    scrub_jvm_log(spark)
    try:
        _check_delta_on_classpath(spark)
        if _standalone_static(spark):
            _wait_for_executors(spark, settings.spark.executor_wait_seconds)
        if not (spark.sparkContext.master or "").startswith("local"):
            check_lakehouse_visible(spark, lakehouse_root(settings))
    except SetupError:
        spark.stop()
        raise
    log.info(
        "spark %s session: master=%s delta=on",
        spark.version,
        spark.sparkContext.master,
    )
    return spark


# named so that Spark's redaction (`spark.redaction.regex`: "secret") hides
# its value wherever Spark shows system properties (UI, event log)
SCRUB_PROPERTY = "lakeforge.scrub.secrets"


def scrub_jvm_log(spark: SparkSession) -> None:
    """Make the JVM's console log scrub the secrets known now, as ours does:
    a failed task's message is logged by Spark itself and may quote a config
    value. Our log4j2.properties reads the pattern from a system property
    (not the command line, which `ps` shows); set it and reload logging,
    keeping the root level. A JVM logging with another configuration
    (spark-submit's, a notebook's) is left alone."""
    jvm = spark._jvm
    assert jvm is not None
    system = jvm.java.lang.System
    pattern = secrets.java_pattern()
    if str(system.getProperty("log4j.configurationFile")) != f"file:{_LOG4J}" or (
        str(system.getProperty(SCRUB_PROPERTY)) == pattern
    ):
        return
    system.setProperty(SCRUB_PROPERTY, pattern)
    log4j = jvm.org.apache.logging.log4j
    level = log4j.LogManager.getRootLogger().getLevel()
    log4j.LogManager.getContext(False).reconfigure()
    log4j.core.config.Configurator.setRootLevel(level)


def check_master_reachable(master: str, timeout: float = 5.0) -> None:
    """Fail in seconds, naming the master, when no `spark://` master answers.

    Spark itself retries registration for a minute and then stops the context
    under a running job; a TCP connect tells the same thing at once."""
    if not master.startswith("spark://"):
        return
    problems = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
            return
        except (OSError, ValueError) as exc:
            problems.append(f"{address}: {getattr(exc, 'strerror', None) or exc}")
    raise SetupError(
        f"Spark master {master} is unreachable ({'; '.join(problems)}): start the cluster "
        "(scripts/cluster.sh start) or fix --master / spark.master"
    )


def _standalone_static(spark: SparkSession) -> bool:
    """A standalone master without dynamic allocation: executors come at start."""
    conf = spark.sparkContext.getConf()
    return (spark.sparkContext.master or "").startswith("spark://") and conf.get(
        "spark.dynamicAllocation.enabled", "false"
    ) != "true"


def executor_count(spark: SparkSession) -> int:
    """Executors registered with the driver (the driver itself not counted)."""
    jsc = spark.sparkContext._jsc
    assert jsc is not None
    return max(0, len(jsc.sc().statusTracker().getExecutorInfos()) - 1)


def _wait_for_executors(spark: SparkSession, seconds: int) -> None:
    """Bounded wait for the first executor: with no alive worker (or none with
    the cores and memory asked for) Spark would wait forever."""
    if seconds <= 0:
        return
    deadline = time.monotonic() + seconds
    while executor_count(spark) == 0:
        if time.monotonic() > deadline:
            conf = spark.sparkContext.getConf()
            raise SetupError(
                f"no executor registered with {spark.sparkContext.master} within {seconds} s: "
                "the master has no alive worker with the free cores and memory this job asks "
                f"for (spark.executor.memory={conf.get('spark.executor.memory', '1g')}, "
                f"spark.executor.cores={conf.get('spark.executor.cores', 'all')}); check the "
                "master's web UI, or raise spark.executor_wait_seconds"
            )
        time.sleep(0.5)
    # The app's other executors start on their workers a little later: wait
    # until no new one came for 3 s (at most 20 s), so that the lakehouse probe
    # reaches every worker and the count logged is the app's.
    found, settled_at, give_up = executor_count(spark), time.monotonic(), time.monotonic() + 20
    while time.monotonic() - settled_at < 3 and time.monotonic() < give_up:
        time.sleep(0.5)
        now = executor_count(spark)
        if now != found:
            found, settled_at = now, time.monotonic()
    log.info("cluster: %d executor(s) registered", found)


def check_lakehouse_visible(spark: SparkSession, root: str) -> None:
    """On a cluster, a local lakehouse path must be the same shared folder on
    every node: the driver writes a probe file and every executor must see it.

    Without this, executors write table files into their own local disks and
    the driver commits a Delta log pointing at files it cannot read."""
    if is_uri(root) and not root.startswith("file:"):
        return  # s3a://, abfss://, hdfs://: one namespace for every process
    folder = Path(root.removeprefix("file://").removeprefix("file:")) / "_probe"
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / uuid.uuid4().hex
    probe.write_text("lakeforge probe\n")
    slots = max(2, executor_count(spark) * 2)
    path = str(probe)

    def sees(_: object) -> tuple[str, bool]:
        import os as _os
        import socket as _socket

        return _socket.gethostname(), _os.path.exists(path)

    try:
        answers = spark.sparkContext.parallelize(range(slots), slots).map(sees).collect()
    finally:
        probe.unlink(missing_ok=True)
    blind = sorted({host for host, seen in answers if not seen})
    if blind:
        raise SetupError(
            f"the lakehouse {root} is not visible from the executors on {', '.join(blind)}: "
            "a local path must be a shared file system mounted at the same path on every "
            "node; otherwise use an object-store URI (s3a://, abfss://, gs://) as lakehouse"
        )


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
