"""Clean on real Spark + Delta + Great Expectations: bronze → silver, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakeforge.cli import main
from lakeforge.errors import DataQualityFailure, ReconciliationError
from lakeforge.steps import clean, ingest
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from tests.helpers import TRIPS_HEADER, job_config, write_dataset, write_lines

pytestmark = pytest.mark.integration

RULES = [
    {"name": "delay_known", "type": "not_null", "column": "delay", "severity": "drop"},
    {"name": "delay_sane", "type": "range", "column": "delay", "min": -60, "max": 600},
    {"name": "carrier_known", "type": "allowed", "column": "carrier", "values": ["UA", "AA"]},
    {"name": "keys_unique", "type": "unique", "severity": "fail"},
    {"name": "some_rows", "type": "row_count", "min": 1, "severity": "fail"},
]
DAY1 = [
    "1,UA,5.0,2024-01-01",
    "2,aa,7.0,2024-01-01",  # normalised to AA
    "3,UA,,2024-01-01",  # no delay: quarantined
    "4,ZZ,1.0,2024-01-01",  # unknown carrier: quarantined
    "5,UA,9999,2024-01-01",  # implausible delay: quarantined
    "6,UA,1.0,2024-01-01",
    "6,UA,2.0,2024-01-02",  # same key twice: the later day is kept
]


def _setup(tmp_path: Path, rules: list[dict[str, object]] | None = None):  # type: ignore[no-untyped-def]
    extra = {
        "clean": {"upper": ["carrier"], "dedupe": {"order_by": ["day DESC"]}},
        "rules": RULES if rules is None else rules,
    }
    dataset = write_dataset(tmp_path / "conf", tmp_path / "in", extra=extra)
    return job_config(dataset)


def test_dirty_batch_reconciles_and_quarantine_names_the_rules(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    write_lines(tmp_path / "in" / "day1.csv", [TRIPS_HEADER, *DAY1])
    cfg = _setup(tmp_path)
    ingest.run(spark, cfg, batch_id="d1")

    result = clean.run(spark, cfg)

    assert (result.bronze_rows, result.inserted, result.updated, result.unchanged) == (7, 3, 0, 0)
    assert (result.quarantined, result.duplicates) == (3, 1)
    tables = tables_for(cfg.settings, "trips")
    silver = {r["id"]: r for r in delta.read(spark, tables.silver).collect()}
    assert sorted(silver) == [1, 2, 6]
    assert silver[2]["carrier"] == "AA"
    quarantine = {
        json.loads(r["_row"])["id"]: r["_failed_rules"]
        for r in delta.read(spark, tables.silver_quarantine).collect()
    }
    assert quarantine == {3: ["delay_known"], 4: ["carrier_known"], 5: ["delay_sane"]}
    validation = result.table_validation
    assert validation is not None and validation.success
    assert validation.report_json is not None and Path(validation.report_json).is_file()
    assert validation.data_docs is not None and Path(validation.data_docs).is_file()


def test_a_row_lost_before_dedupe_fails_the_reconciliation(
    spark: SparkSession, lakehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each term is measured: a transformation that loses a row (broken here
    on purpose) cannot pass the row off as a duplicate removed."""
    write_lines(tmp_path / "in" / "day1.csv", [TRIPS_HEADER, *DAY1])
    cfg = _setup(tmp_path)
    ingest.run(spark, cfg, batch_id="d1")
    real = clean.deduplicate
    monkeypatch.setattr(
        clean,
        "deduplicate",
        lambda df, keys, order, *more: real(df, keys, order, *more).where("id <> 2"),
    )
    with pytest.raises(ReconciliationError, match="add up to 6, not 7"):
        clean.run(spark, cfg)


def test_a_crash_after_the_quarantine_then_a_new_batch_quarantines_each_row_once(
    spark: SparkSession, lakehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clean wrote d1's quarantine, then died before its MERGE; d2 arrives
    before the re-run, which cleans both: d1's quarantine rows are there
    once, not once per attempt, and the counts reconcile."""
    write_lines(tmp_path / "in" / "day1.csv", [TRIPS_HEADER, *DAY1])
    cfg = _setup(tmp_path)
    tables = tables_for(cfg.settings, "trips")
    ingest.run(spark, cfg, batch_id="d1")
    with monkeypatch.context() as patch:

        def crash(*args: object, **kwargs: object) -> None:
            raise OSError("driver lost")

        patch.setattr(clean.delta, "upsert", crash)
        with pytest.raises(OSError):
            clean.run(spark, cfg)
    assert delta.count(spark, tables.silver_quarantine) == 3
    write_lines(tmp_path / "in" / "day2.csv", [TRIPS_HEADER, "7,ZZ,1.0,2024-01-03"])
    ingest.run(spark, cfg, batch_id="d2")
    result = clean.run(spark, cfg)
    assert (result.batches, result.quarantined) == (("d1", "d2"), 4)
    quarantine = delta.read(spark, tables.silver_quarantine)
    assert quarantine.where("_batch_id = 'd1'").count() == 3
    assert quarantine.count() == 4
    # cleaning d1 again on its own changes neither table's counts
    again = clean.run(spark, cfg, batch_id="d1")
    assert again.quarantined == 3 and delta.count(spark, tables.silver_quarantine) == 4
    assert delta.read(spark, tables.clean_log).where("batch_id = 'd1'").count() == 1


def test_null_keys_are_one_key_in_dedupe_and_merge(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    """A key with a null part is a key like any other, in dedupe as in MERGE:
    silver holds it once, the repeat is counted as a duplicate, and a later
    batch updates that row instead of adding it again."""
    write_lines(
        tmp_path / "in" / "day1.csv", [TRIPS_HEADER, ",UA,1.0,2024-01-01", ",UA,2.0,2024-01-02"]
    )
    cfg = _setup(tmp_path, [])
    tables = tables_for(cfg.settings, "trips")
    ingest.run(spark, cfg, batch_id="d1")
    first = clean.run(spark, cfg)
    assert (first.bronze_rows, first.inserted, first.duplicates) == (2, 1, 1)
    write_lines(tmp_path / "in" / "day2.csv", [TRIPS_HEADER, ",UA,3.0,2024-01-03"])
    ingest.run(spark, cfg, batch_id="d2")
    second = clean.run(spark, cfg)
    assert (second.inserted, second.updated) == (0, 1)
    assert [r["delay"] for r in delta.read(spark, tables.silver).collect()] == [3.0]


def test_rerun_is_a_no_op_and_updated_rows_update_silver(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    write_lines(tmp_path / "in" / "day1.csv", [TRIPS_HEADER, *DAY1])
    cfg = _setup(tmp_path)
    tables = tables_for(cfg.settings, "trips")
    ingest.run(spark, cfg, batch_id="d1")
    clean.run(spark, cfg)
    version = delta.version(spark, tables.silver)

    assert clean.run(spark, cfg).batches == ()
    assert delta.version(spark, tables.silver) == version

    # re-delivery: id 1 changed, id 2 identical, id 7 new
    write_lines(
        tmp_path / "in" / "day2.csv",
        [TRIPS_HEADER, "1,UA,50.0,2024-01-01", "2,AA,7.0,2024-01-01", "7,AA,0.0,2024-01-03"],
    )
    ingest.run(spark, cfg, batch_id="d2")
    result = clean.run(spark, cfg)
    assert (result.batches, result.inserted, result.updated, result.unchanged) == (("d2",), 1, 1, 1)
    silver = {r["id"]: r["delay"] for r in delta.read(spark, tables.silver).collect()}
    assert silver == {1: 50.0, 2: 7.0, 6: 2.0, 7: 0.0}
    # the keys rule ran on silver's rows of the three merged keys, and passed
    checked = result.silver_validation
    assert checked is not None and checked.results == {"keys_unique": True}
    assert checked.report_json is not None and Path(checked.report_json).is_file()


def test_a_fail_rule_stops_the_job_and_leaves_silver_untouched(
    spark: SparkSession, lakehouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lines(tmp_path / "in" / "day1.csv", [TRIPS_HEADER, "1,UA,5.0,2024-01-01"])
    strict = [*RULES[:2], {**RULES[2], "severity": "fail"}]
    cfg = _setup(tmp_path, strict)
    tables = tables_for(cfg.settings, "trips")
    ingest.run(spark, cfg, batch_id="d1")
    clean.run(spark, cfg)
    version = delta.version(spark, tables.silver)

    write_lines(tmp_path / "in" / "day2.csv", [TRIPS_HEADER, "9,ZZ,5.0,2024-01-01"])
    ingest.run(spark, cfg, batch_id="d2")
    with pytest.raises(DataQualityFailure, match=r"carrier_known \(1 rows\)"):
        clean.run(spark, cfg)
    assert delta.version(spark, tables.silver) == version
    dataset = str(tmp_path / "conf" / "datasets" / "trips.yaml")
    assert main(["clean", "--dataset", dataset]) == 4
    assert "silver not changed" in capsys.readouterr().err
    assert delta.version(spark, tables.silver) == version


def test_a_table_rule_of_severity_fail_is_checked_by_great_expectations(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    write_lines(tmp_path / "in" / "day1.csv", [TRIPS_HEADER, "1,UA,5.0,2024-01-01"])
    cfg = _setup(tmp_path, [{"type": "row_count", "min": 2, "severity": "fail"}])
    ingest.run(spark, cfg)
    with pytest.raises(DataQualityFailure, match=r"row_count:table \(observed 1\)"):
        clean.run(spark, cfg)
    assert delta.version(spark, tables_for(cfg.settings, "trips").silver) is None


def test_a_bad_sql_expression_is_a_config_error_naming_it(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    write_lines(tmp_path / "in" / "day1.csv", [TRIPS_HEADER, "1,UA,5.0,2024-01-01"])
    cfg = _setup(tmp_path, [{"name": "broken", "type": "sql", "expression": "no_such_col > 1"}])
    ingest.run(spark, cfg)
    dataset = str(tmp_path / "conf" / "datasets" / "trips.yaml")
    assert main(["clean", "--dataset", dataset]) == 2


def _silver_rows(spark: SparkSession, path: str) -> list[tuple[object, ...]]:
    return sorted(tuple(r) for r in delta.read(spark, path).drop("_ingested_at").collect())


@pytest.mark.parametrize("severity", ["fail", "warn"])
def test_keys_silver_holds_twice_fail_the_unique_rule_after_the_merge(
    spark: SparkSession,
    lakehouse: Path,
    tmp_path: Path,
    severity: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The batch is deduplicated on the keys, so its keys are unique by
    construction: the rule over the keys is checked on silver after the
    MERGE, on the keys the batch merged. A key an outside writer put in
    silver twice fails it: with `fail`, silver is restored to its version
    before the run and the batch is not marked cleaned; with `warn`, it is
    logged and the batch lands."""
    write_lines(tmp_path / "in" / "day1.csv", [TRIPS_HEADER, *DAY1])
    rules = [*RULES[:3], {**RULES[3], "severity": severity}, RULES[4]]
    cfg = _setup(tmp_path, rules)
    tables = tables_for(cfg.settings, "trips")
    ingest.run(spark, cfg, batch_id="d1")
    clean.run(spark, cfg)
    # an outside writer (or an earlier bug) appends a second row for key 2
    twice = delta.read(spark, tables.silver).where("id = 2")
    delta.append(spark.createDataFrame(twice.collect(), twice.schema), tables.silver)
    before = (delta.version(spark, tables.silver), _silver_rows(spark, tables.silver))
    assert len(before[1]) == 4
    # key 7 new; key 2 again: changed under `fail` (MERGE updates both of
    # its rows, which the reconciliation alone would report as a count that
    # does not add up), unchanged under `warn` (so the batch lands)
    delay = "8.0" if severity == "fail" else "7.0"
    write_lines(
        tmp_path / "in" / "day2.csv",
        [TRIPS_HEADER, f"2,AA,{delay},2024-01-01", "7,AA,0.0,2024-01-03"],
    )
    ingest.run(spark, cfg, batch_id="d2")

    if severity == "warn":
        with caplog.at_level("WARNING", logger="lakeforge"):
            result = clean.run(spark, cfg)
        assert (result.inserted, result.unchanged) == (1, 1)
        assert result.silver_validation is not None
        assert result.silver_validation.results == {"keys_unique": False}
        assert any("keys_unique (warn) failed" in m for m in caplog.messages)
        assert len(_silver_rows(spark, tables.silver)) == 5
        return
    with pytest.raises(
        DataQualityFailure,
        match=rf"keys_unique .*silver holds 1 extra row.*silver restored to v{before[0]}",
    ):
        clean.run(spark, cfg)
    after = (delta.version(spark, tables.silver), _silver_rows(spark, tables.silver))
    assert after[1] == before[1]  # key 7 undone, silver as before the run
    assert delta.read(spark, tables.clean_log).where("batch_id = 'd2'").count() == 0
    dataset = str(tmp_path / "conf" / "datasets" / "trips.yaml")
    capsys.readouterr()
    assert main(["clean", "--dataset", dataset]) == 4  # d2 is still to clean, and fails again
    assert "keys_unique" in capsys.readouterr().err
    assert _silver_rows(spark, tables.silver) == before[1]
