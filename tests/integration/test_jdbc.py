"""Ingest from a real PostgreSQL server (started and stopped by the fixture):
a full load, an incremental load of inserts and updates that clean MERGEs
into silver, a re-run that reads nothing, a connection dropped mid-read that
leaves bronze unchanged, and credential errors that never print the password."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from lakeforge.cli import main
from lakeforge.config import JobConfig
from lakeforge.errors import ReconciliationError, UnreadableInput
from lakeforge.ingest import jdbc
from lakeforge.steps import clean, ingest
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from tests import postgres
from tests.helpers import job_config

pytestmark = pytest.mark.integration

PASSWORD = "canary-Pw-7f3e9a"  # must never appear in any output
COLUMNS = [
    {"name": "id", "type": "int"},
    {"name": "customer", "type": "string"},
    {"name": "amount", "type": "decimal(10,2)"},
    {"name": "status", "type": "string"},
    {"name": "updated_at", "type": "timestamp"},
]


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres.Postgres]:
    server = postgres.start(PASSWORD)
    try:
        yield server
    finally:
        server.stop()
        postgres.remove(server)


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_DB_USER", "shop")
    monkeypatch.setenv("SHOP_DB_PASSWORD", PASSWORD)


def _orders(pg: postgres.Postgres, table: str, first: int, last: int, day: str) -> None:
    pg.sql(
        f"CREATE TABLE IF NOT EXISTS {table} (id int PRIMARY KEY, customer text, "
        "amount numeric(10,2), status text, updated_at timestamp NOT NULL)"
    )
    pg.sql(
        f"INSERT INTO {table} SELECT i, 'c' || (i % 50), i * 1.5, 'new', "
        f"TIMESTAMP '{day}' + i * interval '1 second' FROM generate_series({first}, {last}) i"
    )


def _dataset(tmp_path: Path, pg: postgres.Postgres, name: str, **source: object) -> JobConfig:
    spec = {
        "name": name,
        "source": {
            "format": "jdbc",
            "jdbc": {
                "url": pg.jdbc_url,
                "user_env": "SHOP_DB_USER",
                "password_env": "SHOP_DB_PASSWORD",
                "watermark": "updated_at",
                **source,
            },
            "columns": COLUMNS,
        },
        "keys": ["id"],
    }
    path = tmp_path / "conf" / "datasets" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    return job_config(path)


def test_full_then_incremental_load_merges_updates_and_rerun_reads_nothing(
    spark: SparkSession, pg: postgres.Postgres, tmp_path: Path, lakehouse: Path, credentials: None
) -> None:
    _orders(pg, "orders", 1, 1000, "2026-01-01")
    cfg = _dataset(
        tmp_path, pg, "orders", table="orders", partition={"column": "id", "num_partitions": 3}
    )
    tables = tables_for(cfg.settings, "orders")
    src = cfg.dataset.source.jdbc
    assert src is not None
    assert jdbc.Reader(spark, src).read("1 = 1").rdd.getNumPartitions() == 3

    first = ingest.run(spark, cfg)
    assert (first.rows_read, first.bronze_rows, first.quarantined_rows) == (1000, 1000, 0)
    assert clean.run(spark, cfg).inserted == 1000

    # 50 orders change (newer updated_at), 200 new ones arrive
    pg.sql(
        "UPDATE orders SET status = 'shipped', amount = amount + 1, "
        "updated_at = TIMESTAMP '2026-02-01' + id * interval '1 second' WHERE id <= 50"
    )
    _orders(pg, "orders", 1001, 1200, "2026-02-02")
    second = ingest.run(spark, cfg)
    assert (second.rows_read, second.bronze_rows) == (250, 250)
    bronze = delta.read(spark, tables.bronze)
    assert bronze.count() == 1250
    assert bronze.where(f"_batch_id = '{second.batch_id}'").select("id").distinct().count() == 250
    assert bronze.select("_source_file").distinct().first()[0] == f"{pg.jdbc_url}#orders"

    cleaned = clean.run(spark, cfg)
    assert (cleaned.inserted, cleaned.updated) == (200, 50)
    silver = delta.read(spark, tables.silver)
    assert silver.count() == 1200
    changed = silver.where("id <= 50")
    assert changed.where("status = 'shipped'").count() == 50
    assert changed.where("amount = id * 1.5 + 1").count() == 50

    # Nothing new: nothing read, no new bronze version, no new log entry.
    versions = (delta.version(spark, tables.bronze), delta.version(spark, tables.jdbc_log))
    assert ingest.run(spark, cfg).batch_id is None
    assert (delta.version(spark, tables.bronze), delta.version(spark, tables.jdbc_log)) == versions

    # The same rows split by predicates instead of a range column.
    by_predicates = jdbc.Reader(
        spark,
        src.model_copy(update={"partition": None, "predicates": ["id % 2 = 0", "id % 2 = 1"]}),
    ).read("1 = 1")
    assert by_predicates.rdd.getNumPartitions() == 2
    assert by_predicates.count() == 1200


def test_dropped_connection_leaves_bronze_unchanged_and_the_rerun_completes(
    spark: SparkSession, pg: postgres.Postgres, tmp_path: Path, lakehouse: Path, credentials: None
) -> None:
    _orders(pg, "slow_orders", 1, 500, "2026-01-01")
    # every query of this source takes 2 s, long enough to be cut mid-read
    cfg = _dataset(
        tmp_path,
        pg,
        "slow",
        query="SELECT o.* FROM slow_orders o CROSS JOIN pg_sleep(2)",
        fetch_size=50,
    )
    tables = tables_for(cfg.settings, "slow")
    assert ingest.run(spark, cfg).bronze_rows == 500
    _orders(pg, "slow_orders", 501, 600, "2026-01-02")
    version = delta.version(spark, tables.bronze)

    def drop_the_read() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            killed = pg.sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE usename = 'shop' AND query LIKE '%lakeforge_src%' AND state = 'active'"
            )
            if killed != "0":
                return
            time.sleep(0.1)

    killer = threading.Thread(target=drop_the_read)
    killer.start()
    with pytest.raises(UnreadableInput, match="terminating connection due to administrator"):
        ingest.run(spark, cfg)
    killer.join()
    assert delta.version(spark, tables.bronze) == version
    logged = sorted(
        (r["batch_seq"], r["status"]) for r in delta.read(spark, tables.jdbc_log).collect()
    )
    assert logged == [(1, "done"), (1, "planned"), (2, "failed"), (2, "planned")]

    again = ingest.run(spark, cfg)
    assert again.bronze_rows == 100
    bronze = delta.read(spark, tables.bronze)
    assert bronze.count() == bronze.select("id").distinct().count() == 600


def test_predicates_that_miss_rows_fail_the_batch_naming_the_gap(
    spark: SparkSession, pg: postgres.Postgres, tmp_path: Path, lakehouse: Path, credentials: None
) -> None:
    """The README's own example, `region = 'EU'` and `region <> 'EU'`, never
    reads a row whose region is NULL: the batch fails before bronze, and the
    predicates that cover it read every row."""
    _orders(pg, "regional", 1, 300, "2026-01-01")
    pg.sql("ALTER TABLE regional ADD COLUMN region text")
    pg.sql(
        "UPDATE regional SET region = CASE WHEN id % 3 = 0 THEN 'EU' WHEN id % 3 = 1 THEN 'US' END"
    )
    halves = ["region = 'EU'", "region <> 'EU'"]
    cfg = _dataset(tmp_path, pg, "regional", table="regional", predicates=halves)
    tables = tables_for(cfg.settings, "regional")
    with pytest.raises(
        ReconciliationError, match=r"100 row\(s\) of the window match none, or more than one"
    ):
        ingest.run(spark, cfg)
    assert delta.version(spark, tables.bronze) is None
    statuses = {r["status"] for r in delta.read(spark, tables.jdbc_log).collect()}
    assert statuses == {"planned", "failed"}
    covered = _dataset(
        tmp_path, pg, "regional", table="regional", predicates=[*halves, "region IS NULL"]
    )
    assert ingest.run(spark, covered).bronze_rows == 300


def test_wrong_password_is_named_without_printing_it(
    pg: postgres.Postgres,
    tmp_path: Path,
    lakehouse: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = _dataset(tmp_path, pg, "locked", table="orders")
    dataset = str(cfg.files[-1])
    monkeypatch.setenv("SHOP_DB_USER", "shop")
    monkeypatch.delenv("SHOP_DB_PASSWORD", raising=False)
    assert main(["ingest", "--dataset", dataset]) == 2
    assert "SHOP_DB_PASSWORD not set" in capsys.readouterr().err

    monkeypatch.setenv("SHOP_DB_PASSWORD", PASSWORD + "-wrong")
    with caplog.at_level(logging.DEBUG):
        assert main(["ingest", "--dataset", dataset]) == 3
    err = capsys.readouterr().err
    assert 'password authentication failed for user "shop"' in err
    assert "$SHOP_DB_USER / $SHOP_DB_PASSWORD" in err
    assert PASSWORD not in err + caplog.text
    assert not (lakehouse / "locked" / "bronze").exists()


def test_a_column_of_another_type_is_a_schema_error(
    pg: postgres.Postgres,
    tmp_path: Path,
    lakehouse: Path,
    credentials: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _orders(pg, "typed_orders", 1, 10, "2026-01-01")
    cfg = _dataset(tmp_path, pg, "typed", table="typed_orders")
    spec = yaml.safe_load(cfg.files[-1].read_text())
    spec["source"]["columns"][2] = {"name": "amount", "type": "int"}  # numeric(10,2) in the db
    cfg.files[-1].write_text(yaml.safe_dump(spec))
    assert main(["ingest", "--dataset", str(cfg.files[-1])]) == 3
    err = capsys.readouterr().err
    assert "column amount is decimal(10,2), schema says int" in err
    assert not (lakehouse / "typed" / "bronze").exists()
