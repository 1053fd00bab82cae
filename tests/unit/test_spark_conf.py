"""Session settings: Delta always on, local sizing only for local masters,
config beats lakeforge's defaults."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from lakeforge.config import Settings, SparkSettings
from lakeforge.jars import BASE_JARS
from lakeforge.spark import JVM_OPTIONS, session_conf


def test_local_session_gets_delta_jars_extensions_and_small_partitions(tmp_path: Path) -> None:
    conf = session_conf(Settings(lakehouse=str(tmp_path)), submitted=False)
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert [Path(p).name for p in conf["spark.jars"].split(",")] == [j.filename for j in BASE_JARS]
    assert all(Path(p).is_file() for p in conf["spark.jars"].split(","))
    assert conf["spark.sql.shuffle.partitions"] == "8"
    assert conf["spark.sql.warehouse.dir"] == f"{tmp_path}/_warehouse"


def test_config_overrides_lakeforge_defaults() -> None:
    settings = Settings(spark=SparkSettings(conf={"spark.sql.shuffle.partitions": 64}))
    assert session_conf(settings, submitted=False)["spark.sql.shuffle.partitions"] == "64"


def test_cluster_master_gets_no_local_sizing() -> None:
    settings = Settings(spark=SparkSettings(master="spark://127.0.0.1:7077"))
    conf = session_conf(settings, submitted=False)
    assert "spark.sql.shuffle.partitions" not in conf
    assert "spark.driver.host" not in conf


def test_cached_chunks_are_ordinary_objects_in_the_jvms_lakeforge_starts(
    spark: SparkSession,
) -> None:
    """A DataFrame persisted from Python is cached in serialized chunks of
    `spark.storage.unrollMemoryThreshold` (1 MB). G1 keeps an object of half a
    region or more in regions of its own: with G1's own choice for a 4 GB heap
    (2 MB regions) each chunk took twice its size, and clean's cached batch at
    100x flights filled the heap (OutOfMemoryError). Checked on the running
    JVM, not on the option string."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hotspot = jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    vm = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(hotspot)
    assert vm.getVMOption("UseG1GC").getValue() == "true"
    region = int(vm.getVMOption("G1HeapRegionSize").getValue())
    chunk = (
        spark.sparkContext._jsc.sc()
        .conf()
        .getSizeAsBytes("spark.storage.unrollMemoryThreshold", "1m")
    )
    header = 16  # a byte array's object header, rounded up
    assert chunk + header < region / 2, (chunk, region)
    # a cluster's executors are started with the same option
    conf = session_conf(Settings(spark=SparkSettings(master="spark://h:7077")), submitted=False)
    assert JVM_OPTIONS in conf["spark.executor.extraJavaOptions"]
    assert JVM_OPTIONS in conf["spark.driver.extraJavaOptions"]
