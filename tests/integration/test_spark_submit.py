"""Jobs under spark-submit keep spark-submit's master (no override back to local[*])."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakeforge.jars import delta_jar_paths
from lakeforge.storage import delta
from tests.helpers import TRIPS_HEADER, write_dataset, write_lines

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_ingest_job_runs_under_spark_submit_with_its_master(
    spark: SparkSession, tmp_path: Path
) -> None:
    write_lines(
        tmp_path / "in" / "a.csv", [TRIPS_HEADER, "1,UA,2.0,2024-01-01", "2,AA,x,2024-01-01"]
    )
    dataset = write_dataset(tmp_path / "conf", tmp_path / "in")
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "LAKEFORGE_LAKEHOUSE": str(tmp_path / "lake"),
        "PYSPARK_PYTHON": sys.executable,
    }
    done = subprocess.run(
        [
            str(bin_dir / "spark-submit"),
            "--master",
            "local[1]",
            "--conf",
            "spark.ui.enabled=false",
            # a short-lived driver: the JIT tier that starts fastest (test speed)
            "--driver-java-options",
            "-XX:TieredStopAtLevel=1",
            "--jars",
            ",".join(str(p) for p in delta_jar_paths()),
            str(REPO / "jobs" / "ingest.py"),
            "--dataset",
            str(dataset),
            "--batch-id",
            "submitted",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # spark-submit merges the Python process's stderr into its own stdout
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "session: master=local[1] delta=on" in output
    bronze = delta.read(spark, str(tmp_path / "lake" / "trips" / "bronze"))
    assert [(r["id"], r["_batch_id"]) for r in bronze.collect()] == [(1, "submitted")]
    assert delta.read(spark, str(tmp_path / "lake" / "trips" / "bronze_quarantine")).count() == 1
