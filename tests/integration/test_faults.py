"""Faults with nothing lost: a driver killed in the middle of a write (ingest,
clean, predict) or of a model search, writers racing on one table, and a
failing data-quality rule. After each, the tables show their last commit only,
the registry did not move, a re-run completes with every row exactly once,
and no credential from the environment was written anywhere.

The jobs that crash run as their own processes (`lakeforge STEP`, a driver
JVM of their own) and are SIGKILLed, process group and all, at the moment
their data files start to appear, before Delta commits them.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.cli import main
from lakeforge.config import JobConfig
from lakeforge.steps import clean, ingest, predict, train
from lakeforge.storage import delta
from lakeforge.storage.paths import Tables, tables_for
from tests.faults import lakeforge, new_data_file, run_and_kill
from tests.helpers import SCORES_COLUMNS, job_config, scores_frame, train_section, write_dataset

pytestmark = pytest.mark.integration

DAY1, ALL = 4_000, 16_000  # rows of the first file, and of both days
CANARY = f"canary-{uuid.uuid4()}"
RULES = [
    # |x2| > 6 happens (x2 ~ N(0, 2)): those rows go to the silver quarantine
    {"name": "x2_plausible", "type": "range", "column": "x2", "min": -6, "max": 6},
    {
        "name": "x2_bounded",
        "type": "range",
        "column": "x2",
        "min": -100,
        "max": 100,
        "severity": "fail",
    },
]
QUICK = [{"estimator": "logistic_regression", "params": {"regParam": 0.01}}]
SEARCH = [
    {"estimator": "random_forest", "grid": {"numTrees": [10, 20], "maxDepth": [4]}},
    {"estimator": "logistic_regression", "grid": {"regParam": [0.0, 0.1]}},
]


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials in the environment, referenced the way users do: a Spark
    setting of the conf (`${...}`) and a database password variable."""
    monkeypatch.setenv("FAULTS_S3_SECRET_KEY", CANARY)
    monkeypatch.setenv("SHOP_DB_PASSWORD", CANARY)
    return CANARY


def _write_inputs(spark: SparkSession, folder: Path) -> tuple[Path, pd.DataFrame]:
    """Day 1 as one CSV file, day 2 as eight (eight write tasks: time to crash)."""
    rows = scores_frame(spark, ALL).toPandas().sort_values("id")
    day1, day2 = folder / "day1", folder / "day2"
    day1.mkdir(parents=True)
    day2.mkdir()
    rows[:DAY1].to_csv(day1 / "part-0.csv", index=False)
    for i, part in enumerate(range(DAY1, ALL, (ALL - DAY1) // 8)):
        rows[part : part + (ALL - DAY1) // 8].to_csv(day2 / f"part-{i}.csv", index=False)
    return day2, rows


def _dataset(tmp_path: Path, conf: str, models: list[dict[str, object]]) -> Path:
    """The `scores` dataset; conf/base.yaml gives a crashing job more partitions
    than its rows need (many write tasks: a window to crash in before the
    commit), and hands a secret to Spark the way an S3 setup does."""
    root = tmp_path / conf
    root.mkdir()
    (root / "base.yaml").write_text(
        yaml.safe_dump(
            {
                "allow_external_paths": True,
                "spark": {
                    "master": "local[2]",
                    "conf": {
                        "spark.ui.enabled": False,
                        "spark.sql.shuffle.partitions": 8,
                        "spark.sql.adaptive.coalescePartitions.enabled": False,
                        "spark.hadoop.fs.s3a.secret.key": "${FAULTS_S3_SECRET_KEY}",
                        # short-lived drivers: the JIT tier that starts fastest
                        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
                    },
                },
            }
        )
    )
    return write_dataset(
        root,
        tmp_path / "in" / "day1",
        columns=SCORES_COLUMNS,
        name="scores",
        extra={
            # a config that names a credential where it should not: it must
            # not reach the config copy MLflow keeps
            "description": "scores of the shop (db password ${SHOP_DB_PASSWORD})",
            "rules": RULES,
            "train": train_section(
                models=models, split={"validation": 0.1, "test": 0.25, "folds": 2, "seed": 1}
            ),
        },
    )


def _count(spark: SparkSession, table: str, where: str = "true") -> int:
    return delta.read(spark, table).where(where).count() if delta.is_table(spark, table) else 0


def _ids_once(spark: SparkSession, table: str, expected: int) -> None:
    """`expected` rows, each id once."""
    df = delta.read(spark, table)
    assert df.count() == df.select("id").distinct().count() == expected


def _race(*jobs: Callable[[], object]) -> list[object]:
    """Run the jobs at the same time in threads of this driver (Delta's commit
    protocol on a local disk holds within one JVM) and return their results."""
    results: list[object] = [None] * len(jobs)
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def work(i: int, job: Callable[[], object]) -> None:
        start.wait()
        try:
            results[i] = job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def _assert_nothing_holds(tmp_path: Path, secret: str, *outputs: str) -> None:
    """The canary is in no log and no byte of the lakehouse, the MLflow store
    or the artifacts."""
    for text in outputs:
        assert secret not in text
    leaks = [
        str(p) for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()
    ]
    assert leaks == []


def test_killed_ingest_and_clean_keep_the_last_commit_and_racing_cleans_lose_nothing(
    spark: SparkSession,
    tmp_path: Path,
    lakehouse: Path,
    canary: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    day2, rows = _write_inputs(spark, tmp_path / "in")
    dataset = _dataset(tmp_path, "conf", QUICK)
    cfg = job_config(dataset)
    tables = tables_for(cfg.settings, "scores")
    ingest.run(spark, cfg, batch_id="day1")

    # Two cleans of the same batch at once, the first writes of silver: both
    # succeed (the loser retries, then has nothing to change); each row once.
    results = _race(lambda: clean.run(spark, cfg), lambda: clean.run(spark, cfg))
    assert all(isinstance(r, clean.CleanResult) and r.batches == ("day1",) for r in results)
    quarantined = int((rows[:DAY1]["x2"].abs() > 6).sum())
    assert quarantined > 0
    _ids_once(spark, tables.silver, DAY1 - quarantined)
    assert _count(spark, tables.silver_quarantine) == quarantined
    assert _count(spark, tables.clean_log) == 1

    # Ingest of day 2 killed while writing bronze.
    bronze = (delta.version(spark, tables.bronze), _count(spark, tables.bronze))
    crash = run_and_kill(
        lakeforge("ingest", "--dataset", str(dataset), "--input", str(day2), "--batch-id", "day2"),
        tmp_path,
        new_data_file(Path(tables.bronze)),
    )
    assert crash.killed, crash.output[-3000:]
    assert (delta.version(spark, tables.bronze), _count(spark, tables.bronze)) == bronze
    statuses = {
        r["status"]
        for r in delta.read(spark, tables.ingest_log).where("batch_id = 'day2'").collect()
    }
    assert statuses == {"planned"}
    resumed = ingest.run(spark, cfg, input_path=str(day2), batch_id="other")
    assert (resumed.batch_id, resumed.bronze_rows) == ("day2", ALL - DAY1)
    _ids_once(spark, tables.bronze, ALL)
    assert delta.version(spark, tables.bronze) == bronze[0] + 1  # one commit for day 2

    # Clean of day 2 killed while writing silver (its quarantine rows, written
    # first, were committed: the re-run must not add them again).
    silver = (delta.version(spark, tables.silver), _count(spark, tables.silver))
    crash = run_and_kill(
        lakeforge("clean", "--dataset", str(dataset)),
        tmp_path,
        new_data_file(Path(tables.silver)),
    )
    assert crash.killed, crash.output[-3000:]
    assert (delta.version(spark, tables.silver), _count(spark, tables.silver)) == silver
    assert _count(spark, tables.clean_log, "batch_id = 'day2'") == 0
    again = clean.run(spark, cfg)
    assert again.batches == ("day2",)
    quarantined = int((rows["x2"].abs() > 6).sum())
    _ids_once(spark, tables.silver, ALL - quarantined)
    assert _count(spark, tables.silver_quarantine) == quarantined
    assert _count(spark, tables.clean_log) == 2
    assert delta.version(spark, tables.silver) == silver[0] + 1
    assert clean.run(spark, cfg).batches == ()  # and then nothing is left to do

    out, err = capfd.readouterr()
    _assert_nothing_holds(tmp_path, canary, out, err)


def _champion(client: MlflowClient) -> tuple[list[str], str]:
    versions = sorted(str(v.version) for v in client.search_model_versions("name = 'scores'"))
    return versions, str(client.get_model_version_by_alias("scores", "champion").version)


def _frozen(spark: SparkSession, tables: Tables, client: MlflowClient) -> object:
    """What a failed or crashed job must leave exactly as it was."""
    return (
        delta.version(spark, tables.silver),
        delta.version(spark, tables.predictions),
        _count(spark, tables.predictions),
        _champion(client),
    )


def _where(cfg: JobConfig, where: str) -> JobConfig:
    predict_config = cfg.dataset.predict.model_copy(update={"where": where})
    ds = cfg.dataset.model_copy(update={"predict": predict_config})
    return JobConfig(cfg.settings, ds, cfg.env, cfg.files)


def test_crashed_search_killed_predict_and_failing_rule_leave_registry_and_gold_alone(
    spark: SparkSession,
    tmp_path: Path,
    lakehouse: Path,
    canary: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    rows = scores_frame(spark, ALL)
    dataset = _dataset(tmp_path, "conf", QUICK)
    cfg = job_config(dataset)
    tables = tables_for(cfg.settings, "scores")
    client = MlflowClient(cfg.settings.mlflow.tracking_uri)  # not an earlier test's
    # silver as clean leaves it (the lineage columns are not needed here)
    delta.append(rows.where(f"id < {DAY1}"), tables.silver)
    assert train.run(spark, cfg) is not None
    assert _champion(client) == (["1"], "1")

    # Two predict jobs at once, batches of different rows, into a gold table
    # that does not exist yet: both land, each row once.
    half = DAY1 // 2
    first = _race(
        lambda: predict.run(spark, _where(cfg, f"id < {half}"), batch_id="a"),
        lambda: predict.run(spark, _where(cfg, f"id >= {half}"), batch_id="b"),
    )
    silver_rows = _count(spark, tables.silver)
    low = _count(spark, tables.silver, f"id < {half}")
    sizes = sorted(r.rows for r in first if isinstance(r, predict.PredictResult))
    assert sizes == sorted([low, silver_rows - low])
    gold = delta.read(spark, tables.predictions).where(F.col("_batch_id").isin("a", "b"))
    assert gold.count() == gold.select("id").distinct().count() == silver_rows

    delta.append(rows.where(f"id >= {DAY1}"), tables.silver)  # a new silver version
    before = _frozen(spark, tables, client)

    # Training on the new silver version killed in the middle of its search
    # (after the first fit): no model registered, no alias moved, and its
    # MLflow run is not a finished training (a re-run trains again).
    searching = job_config(_dataset(tmp_path, "conf-search", SEARCH))
    crash = run_and_kill(
        lakeforge("train", "--dataset", str(searching.files[-1])),
        tmp_path,
        lambda output: " fit 1/" in output,
    )
    assert crash.killed, crash.output[-3000:]
    assert "search:" in crash.output and "registry:" not in crash.output
    assert _frozen(spark, tables, client) == before
    killed = [
        r
        for r in client.search_runs([client.get_experiment_by_name("scores").experiment_id])
        if r.info.run_name == f"train-scores-silver-v{before[0]}"
    ]
    assert [r.info.status for r in killed] == ["RUNNING"]
    assert "lakeforge.model_version" not in killed[0].data.tags

    # Predict of a new batch killed while writing gold: gold keeps its last
    # commit; the re-run scores every row once, with the champion (v1).
    crash = run_and_kill(
        lakeforge("predict", "--dataset", str(dataset), "--batch-id", "c"),
        tmp_path,
        new_data_file(Path(tables.predictions)),
    )
    assert crash.killed, crash.output[-3000:]
    assert _frozen(spark, tables, client) == before
    assert predict.run(spark, cfg, batch_id="c").rows == _count(spark, tables.silver)
    scored = delta.read(spark, tables.predictions).where("_batch_id = 'c'")
    assert scored.count() == scored.select("id").distinct().count() == _count(spark, tables.silver)
    assert {r[0] for r in scored.select("_model_version").distinct().collect()} == {"1"}
    assert _count(spark, tables.predictions, "_batch_id IN ('a', 'b')") == silver_rows

    # A batch that breaks a `fail` rule: the pipeline stops at clean (exit 4);
    # silver, the registry and gold are as they were.
    bad = rows.limit(3).toPandas().assign(id=[ALL + 1, ALL + 2, ALL + 3], x2=[0.5, 999.0, -0.5])
    (tmp_path / "in" / "day3").mkdir(parents=True)
    bad.to_csv(tmp_path / "in" / "day3" / "part-0.csv", index=False)
    before = _frozen(spark, tables, client)
    assert (
        main(["pipeline", "--dataset", str(dataset), "--input", str(tmp_path / "in" / "day3")]) == 4
    )
    assert _frozen(spark, tables, client) == before
    assert _count(spark, tables.silver, f"id > {ALL}") == 0

    out, err = capfd.readouterr()
    assert "x2_bounded" in err
    config_copy = next(tmp_path.rglob("config/dataset.json")).read_text()
    assert "db password ***" in config_copy
    _assert_nothing_holds(tmp_path, canary, out, err)
