"""Session settings: Delta always on, local sizing only for local masters,
config beats lakeforge's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
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
    """A DataFrame persisted from Python with MEMORY_AND_DISK is cached in
    serialized chunks of `spark.storage.unrollMemoryThreshold` (1 MB). G1
    keeps an object of more than half a region in whole regions of its own:
    with G1's own choice for a 3-4 GB heap (2 MB regions) each chunk took twice
    its size, and clean's cached batch at 100x flights filled the heap
    (OutOfMemoryError). Checked on the running JVM, and that the region size
    is lakeforge's (given at JVM creation), not G1's own pick for this heap."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hotspot = jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    vm = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(hotspot)
    if vm.getVMOption("UseG1GC").getValue() != "true":
        pytest.skip("not G1 (a 1-CPU machine gets SerialGC): no humongous regions")
    region = vm.getVMOption("G1HeapRegionSize")
    assert region.getOrigin().toString() == "VM_CREATION", region.toString()
    chunk = (
        spark.sparkContext._jsc.sc()
        .conf()
        .getSizeAsBytes("spark.storage.unrollMemoryThreshold", "1m")
    )
    header = 16  # a byte array's object header on 64-bit HotSpot
    assert chunk + header <= int(region.getValue()) / 2, (chunk, region.toString())


def test_user_java_options_add_to_lakeforges() -> None:
    """The region size and log4j settings are Spark's *default* Java options:
    a user's `extraJavaOptions` are appended by Spark, not put in their place."""
    settings = Settings(
        spark=SparkSettings(
            master="spark://h:7077",
            conf={
                "spark.driver.extraJavaOptions": "-Dmine=1",
                "spark.executor.extraJavaOptions": "-Dmine=2",
            },
        )
    )
    conf = session_conf(settings, submitted=False)
    assert JVM_OPTIONS in conf["spark.executor.defaultJavaOptions"]
    assert JVM_OPTIONS in conf["spark.driver.defaultJavaOptions"]
    assert "log4j.configurationFile" in conf["spark.driver.defaultJavaOptions"]
    assert conf["spark.driver.extraJavaOptions"] == "-Dmine=1"
    assert conf["spark.executor.extraJavaOptions"] == "-Dmine=2"
