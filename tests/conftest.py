"""One SparkSession for the whole test process (real Spark + Delta), and a
fresh lakehouse folder per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakeforge.config import Settings, SparkSettings
from lakeforge.logs import configure
from lakeforge.spark import build_session


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    configure("INFO")
    settings = Settings(
        lakehouse=str(tmp_path_factory.mktemp("warehouse")),
        spark=SparkSettings(
            master="local[2]",
            conf={
                "spark.sql.shuffle.partitions": 2,
                "spark.default.parallelism": 2,
                # one JVM runs the whole suite's ~280 tests (executors included,
                # in local mode): the default 1g filled up near the end
                "spark.driver.memory": "3g",
            },
        ),
    )
    session = build_session(settings, app_name="lakeforge-tests")
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def _release_spark_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used Spark: drop its cached frames and Delta's
    cached table logs (every test writes tables of its own, never read again),
    so one long-lived session does not accumulate them."""
    yield
    if "spark" in request.fixturenames:
        session = request.getfixturevalue("spark")
        session.catalog.clearCache()
        session._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()


@pytest.fixture
def lakehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh lakehouse root and MLflow store for one test (through the documented
    env variables), run from a fresh working directory (MLflow's ./mlruns)."""
    root = tmp_path / "lakehouse"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKEFORGE_LAKEHOUSE", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns.db")
    monkeypatch.delenv("LAKEFORGE_CONF_DIR", raising=False)
    return root
