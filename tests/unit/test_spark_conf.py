"""Session settings: Delta always on, local sizing only for local masters,
config beats lakeforge's defaults."""

from __future__ import annotations

from pathlib import Path

from lakeforge.config import Settings, SparkSettings
from lakeforge.jars import BASE_JARS
from lakeforge.spark import session_conf


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
