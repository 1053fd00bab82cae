"""Ingest on real Spark + Delta: every row lands in bronze or quarantine, once."""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import zipfile
from datetime import date
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.cli import main
from lakeforge.errors import InputNotFound, SchemaMismatch, UnreadableInput
from lakeforge.steps import ingest
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from tests.helpers import TRIPS_HEADER, job_config, write_dataset, write_lines

pytestmark = pytest.mark.integration

GOOD = [f"{i},UA,{i * 1.5},2024-01-{(i % 28) + 1:02d}" for i in range(1, 21)]
DIRTY = [
    "21,AA,3.0,2024-02-01",  # good
    "22,AA,not-a-number,2024-02-01",  # bad double
    "23,AA,1.0,2024-13-45",  # bad date
    "24,AA",  # too few fields
    "25,AA,1.0,2024-02-01,extra",  # too many fields
    "NA,DL,NA,NA",  # null markers: a good row of nulls
    "26,UA, NA ,  ",  # markers with spaces around them (and a field of spaces) are nulls too
]


def _tables(cfg):  # type: ignore[no-untyped-def]
    return tables_for(cfg.settings, cfg.dataset.name)


def _raw_key(raw: str) -> str:
    """Rows that split keep their fields as JSON; rows that did not, the line."""
    return str(json.loads(raw)["id"]) if raw.startswith("{") else raw


def _count_data_rows(path: Path) -> int:
    with path.open(newline="") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def test_clean_csv_lands_in_bronze_with_lineage(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    src = write_lines(tmp_path / "in" / "day1.csv", [TRIPS_HEADER, *GOOD])
    cfg = job_config(write_dataset(tmp_path / "conf", tmp_path / "in"))

    result = ingest.run(spark, cfg, batch_id="day1")

    bronze = delta.read(spark, _tables(cfg).bronze)
    assert bronze.count() == _count_data_rows(src) == result.bronze_rows == 20
    assert result.quarantined_rows == 0
    row = bronze.where("id = 2").first()
    assert row is not None
    assert (row["carrier"], row["delay"], str(row["day"])) == ("UA", 3.0, "2024-01-03")
    assert row["_batch_id"] == "day1"
    assert row["_source_file"].endswith("/in/day1.csv")
    assert row["_ingested_at"] is not None
    assert dict(bronze.dtypes)["day"] == "date"


def test_header_names_that_are_not_identifiers_map_to_the_declared_names(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    columns = [
        {"name": "id", "type": "int", "header": "Trip ID"},
        {"name": "carrier", "type": "string", "header": "Carrier (IATA)"},
        {"name": "delay", "type": "double"},
        {"name": "day", "type": "date", "format": "yyyy-MM-dd"},
    ]
    header = "Trip ID,Carrier (IATA),delay,day"
    write_lines(tmp_path / "in" / "day1.csv", [header, *GOOD])
    cfg = job_config(write_dataset(tmp_path / "conf", tmp_path / "in", columns=columns))
    assert ingest.run(spark, cfg).bronze_rows == 20
    bronze = delta.read(spark, _tables(cfg).bronze)
    assert bronze.columns[:4] == ["id", "carrier", "delay", "day"]
    assert bronze.where("id = 2 AND carrier = 'UA'").count() == 1

    # the header is still checked, by the file's own names
    write_lines(tmp_path / "in" / "day2.csv", ["id,Carrier (IATA),delay,day", *GOOD])
    with pytest.raises(SchemaMismatch, match=r"day2.csv: .*missing column\(s\) Trip ID"):
        ingest.run(spark, cfg)


def test_dirty_rows_are_quarantined_with_a_reason_and_counts_reconcile(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    src = write_lines(tmp_path / "in" / "dirty.csv", [TRIPS_HEADER, *DIRTY])
    cfg = job_config(write_dataset(tmp_path / "conf", src, csv={"null_values": ["NA", ""]}))

    result = ingest.run(spark, cfg)

    bronze = delta.read(spark, _tables(cfg).bronze)
    quarantine = delta.read(spark, _tables(cfg).bronze_quarantine)
    assert bronze.count() + quarantine.count() == _count_data_rows(src) == 7
    assert {(r["id"], r["carrier"], r["delay"], r["day"]) for r in bronze.collect()} == {
        (21, "AA", 3.0, date(2024, 2, 1)),
        (None, "DL", None, None),  # "NA" is a null marker, not a bad value
        (26, "UA", None, None),
    }
    reasons = {_raw_key(r["_raw"]): r["_reason"] for r in quarantine.collect()}
    assert reasons["22"] == "delay: not-a-number is not a double"
    assert reasons["23"] == "day: 2024-13-45 is not a date"
    assert reasons["24,AA"] == "row does not split into the 4 declared fields"
    assert reasons["25,AA,1.0,2024-02-01,extra"] == "row does not split into the 4 declared fields"
    assert (result.rows_read, result.bronze_rows, result.quarantined_rows) == (7, 3, 4)
    assert quarantine.where(F.col("_source_file").endswith("dirty.csv")).count() == 4


def test_second_run_on_the_same_folder_changes_no_table(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    write_lines(tmp_path / "in" / "day1.csv", [TRIPS_HEADER, *GOOD])
    cfg = job_config(write_dataset(tmp_path / "conf", tmp_path / "in"))
    tables = _tables(cfg)
    ingest.run(spark, cfg)
    versions = [
        delta.version(spark, t)
        for t in (tables.bronze, tables.bronze_quarantine, tables.ingest_log)
    ]

    again = ingest.run(spark, cfg)

    assert again.batch_id is None and again.skipped_files == 1
    assert [
        delta.version(spark, t)
        for t in (tables.bronze, tables.bronze_quarantine, tables.ingest_log)
    ] == versions
    assert delta.read(spark, tables.bronze).count() == 20


def test_a_new_file_in_the_folder_is_picked_up_alone(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    write_lines(tmp_path / "in" / "day1.csv", [TRIPS_HEADER, *GOOD])
    cfg = job_config(write_dataset(tmp_path / "conf", tmp_path / "in"))
    ingest.run(spark, cfg, batch_id="day1")
    write_lines(
        tmp_path / "in" / "day2.csv",
        [TRIPS_HEADER, "100,B6,1.0,2024-03-01", "101,B6,2.0,2024-03-02"],
    )

    second = ingest.run(spark, cfg, batch_id="day2")

    assert (second.files, second.skipped_files, second.bronze_rows) == (1, 1, 2)
    bronze = delta.read(spark, _tables(cfg).bronze)
    assert bronze.count() == 22
    assert bronze.where("_batch_id = 'day2'").count() == 2


def test_an_interrupted_batch_resumes_without_duplicating_rows(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    write_lines(tmp_path / "in" / "day1.csv", [TRIPS_HEADER, *GOOD])
    cfg = job_config(write_dataset(tmp_path / "conf", tmp_path / "in"))
    tables = _tables(cfg)
    ingest.run(spark, cfg, batch_id="day1")
    # The state a crash leaves between the bronze commit and the end of the run:
    # bronze and quarantine written, the batch only "planned" in the log.
    DeltaTable.forPath(spark, tables.ingest_log).delete("status = 'done'")
    bronze_version = delta.version(spark, tables.bronze)

    resumed = ingest.run(spark, cfg, batch_id="other")

    assert resumed.batch_id == "day1"
    assert delta.version(spark, tables.bronze) == bronze_version  # txn id: append skipped
    assert delta.read(spark, tables.bronze).count() == 20
    assert ingest.run(spark, cfg).batch_id is None


@pytest.mark.parametrize("compression", ["gz", "bz2", "zip"])
def test_compressed_inputs_are_read(
    spark: SparkSession, lakehouse: Path, tmp_path: Path, compression: str
) -> None:
    text = "\n".join([TRIPS_HEADER, *GOOD]) + "\n"
    target = tmp_path / "in" / f"day1.csv.{compression}"
    target.parent.mkdir()
    if compression == "gz":
        target.write_bytes(gzip.compress(text.encode()))
    elif compression == "bz2":
        target.write_bytes(bz2.compress(text.encode()))
    else:
        with zipfile.ZipFile(target, "w") as archive:
            archive.writestr("day1.csv", text)
    cfg = job_config(write_dataset(tmp_path / "conf", target))

    result = ingest.run(spark, cfg)

    assert (result.bronze_rows, result.quarantined_rows) == (20, 0)
    source_files = {
        r[0]
        for r in delta.read(spark, _tables(cfg).bronze).select("_source_file").distinct().collect()
    }
    suffix = "day1.csv.zip!/day1.csv" if compression == "zip" else f"day1.csv.{compression}"
    assert len(source_files) == 1 and source_files.pop().endswith(suffix)


def test_headerless_csv_with_custom_delimiter(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    src = write_lines(tmp_path / "in.txt", [line.replace(",", ";") for line in GOOD[:5]])
    cfg = job_config(write_dataset(tmp_path / "conf", src, csv={"header": False, "delimiter": ";"}))
    assert ingest.run(spark, cfg).bronze_rows == 5


def test_json_lines_with_a_broken_line(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    src = write_lines(
        tmp_path / "in.jsonl",
        [
            '{"id": 1, "carrier": "UA", "delay": 2.5, "day": "2024-01-01"}',
            '{"id": 2, "carrier": "UA", "delay": 1.0, "day": "2024-01-02"',
            '{"id": "x", "carrier": "UA", "delay": 1.0, "day": "2024-01-02"}',
        ],
    )
    cfg = job_config(write_dataset(tmp_path / "conf", src, fmt="json"))

    result = ingest.run(spark, cfg)

    assert (result.bronze_rows, result.quarantined_rows) == (1, 2)
    reasons = sorted(
        r["_reason"] for r in delta.read(spark, _tables(cfg).bronze_quarantine).collect()
    )
    assert reasons == ["id: x is not a int", "not a valid JSON object"]


def test_parquet_input_is_checked_against_the_schema(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    rows = spark.createDataFrame(
        [(1, "UA", 1.5, "2024-01-01")], "id int, carrier string, delay double, day string"
    )
    rows.withColumn("day", F.to_date("day")).write.parquet(str(tmp_path / "good"))
    cfg = job_config(write_dataset(tmp_path / "conf", tmp_path / "good", fmt="parquet"))
    assert ingest.run(spark, cfg).bronze_rows == 1

    rows.write.parquet(str(tmp_path / "bad"))  # day is a string there
    cfg_bad = job_config(
        write_dataset(tmp_path / "conf2", tmp_path / "bad", fmt="parquet", name="other")
    )
    with pytest.raises(SchemaMismatch, match="column day is string, schema says date"):
        ingest.run(spark, cfg_bad)


def test_swapped_header_columns_are_rejected_before_anything_is_written(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    src = write_lines(tmp_path / "in.csv", ["id,delay,carrier,day", "1,1.0,UA,2024-01-01"])
    cfg = job_config(write_dataset(tmp_path / "conf", src))
    with pytest.raises(SchemaMismatch) as err:
        ingest.run(spark, cfg)
    assert "in.csv" in str(err.value)
    assert "position 2 is 'delay', schema says 'carrier'" in str(err.value)
    tables = _tables(cfg)
    assert [delta.version(spark, t) for t in (tables.bronze, tables.ingest_log)] == [None, None]


def test_truncated_gzip_fails_with_the_file_name_and_no_bronze_rows(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    data = gzip.compress(("\n".join([TRIPS_HEADER, *GOOD * 500]) + "\n").encode())
    src = tmp_path / "in" / "cut.csv.gz"
    src.parent.mkdir()
    src.write_bytes(data[: len(data) // 2])
    cfg = job_config(write_dataset(tmp_path / "conf", src))

    with pytest.raises(UnreadableInput, match=r"cut\.csv\.gz"):
        ingest.run(spark, cfg)

    assert delta.version(spark, _tables(cfg).bronze) is None
    src.write_bytes(data)  # the file is fixed and re-delivered: the next run takes it
    assert ingest.run(spark, cfg).bronze_rows == 10000


def test_missing_path_and_empty_folder_are_clear_errors(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    cfg = job_config(write_dataset(tmp_path / "conf", tmp_path / "nowhere"))
    with pytest.raises(InputNotFound, match="nowhere: no such file or directory"):
        ingest.run(spark, cfg)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputNotFound, match="empty: folder holds no files"):
        ingest.run(spark, cfg, input_path=str(tmp_path / "empty"))


def test_cli_exit_codes_for_bad_input(
    spark: SparkSession, lakehouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = write_dataset(tmp_path / "conf", tmp_path / "nowhere")
    assert main(["ingest", "--dataset", str(dataset)]) == 2
    bad = write_lines(tmp_path / "bad.csv", ["id,carrier,delay", "1,UA,2.0"])
    assert main(["ingest", "--dataset", str(dataset), "--input", str(bad)]) == 3
    last = capsys.readouterr().err.strip().splitlines()[-1]
    expected = f"file:{bad}: header does not match the schema: missing column(s) day"
    assert last == f"lakeforge ingest: error: {expected}"


def test_bad_encoding_empty_header_only_and_huge_line_are_each_accounted_for(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    write_lines(folder / "good.csv", [TRIPS_HEADER, *GOOD])
    # Latin-1 bytes in a file read as UTF-8: Spark would store U+FFFD silently.
    latin = [TRIPS_HEADER, "101,Zürich,1.0,2024-03-01", "102,Köln,2.0,2024-03-02"]
    (folder / "latin1.csv").write_bytes(
        ("\n".join([*latin, "103,UA,3.0,2024-03-03"]) + "\n").encode("latin-1")
    )
    (folder / "empty.csv").write_bytes(b"")
    write_lines(folder / "header_only.csv", [TRIPS_HEADER])
    huge = "X" * 1_200_000
    write_lines(
        folder / "huge.csv", [TRIPS_HEADER, f"201,{huge},1.0,2024-04-01", "202,UA,1.0,2024-04-02"]
    )
    cfg = job_config(write_dataset(tmp_path / "conf", folder))
    tables = _tables(cfg)

    result = ingest.run(spark, cfg)

    assert (result.files, result.rows_read) == (5, 20 + 3 + 2)
    assert (result.bronze_rows, result.quarantined_rows) == (20 + 1 + 1, 2 + 1)
    quarantine = delta.read(spark, tables.bronze_quarantine)
    reasons = {
        Path(r["_source_file"]).name: r["_reason"]
        for r in quarantine.select("_source_file", "_reason").collect()
    }
    assert (
        reasons["latin1.csv"]
        == "carrier: holds bytes that are not valid UTF-8 (source.csv.encoding)"
    )
    assert reasons["huge.csv"] == (
        "row is 1200019 characters long, over source.max_row_chars (1000000)"
    )
    kept = quarantine.where(F.col("_source_file").endswith("huge.csv")).first()
    assert kept is not None and huge in kept["_raw"]  # the whole line is kept, not cut
    # Every file is logged done with its counts, the empty ones with zero rows,
    # so none is read again.
    logged = {
        Path(r["file"]).name: (r["bronze_rows"], r["quarantined_rows"])
        for r in delta.read(spark, tables.ingest_log).where("status = 'done'").collect()
    }
    assert logged == {
        "good.csv": (20, 0),
        "latin1.csv": (1, 2),
        "empty.csv": (0, 0),
        "header_only.csv": (0, 0),
        "huge.csv": (1, 1),
    }
    assert ingest.run(spark, cfg).batch_id is None


def test_schema_drift_is_rejected_or_evolves_bronze_as_configured(
    spark: SparkSession, lakehouse: Path, tmp_path: Path
) -> None:
    day1 = write_lines(tmp_path / "in" / "day1.csv", [TRIPS_HEADER, *GOOD])
    new_column = write_lines(
        tmp_path / "day2.csv", [f"{TRIPS_HEADER},gate", "301,UA,1.0,2024-05-01,B12"]
    )
    dropped = write_lines(tmp_path / "day3.csv", ["id,carrier,day", "401,UA,2024-05-02"])
    cfg = job_config(write_dataset(tmp_path / "conf", day1))
    tables = _tables(cfg)
    ingest.run(spark, cfg)
    before = [delta.version(spark, t) for t in (tables.bronze, tables.ingest_log)]

    # Default policy: reject, naming the file and the column, writing nothing.
    with pytest.raises(SchemaMismatch, match=r"day2\.csv: .*unexpected column\(s\) gate"):
        ingest.run(spark, cfg, input_path=str(new_column))
    with pytest.raises(SchemaMismatch, match=r"day3\.csv: .*missing column\(s\) delay"):
        ingest.run(spark, cfg, input_path=str(dropped))
    assert [delta.version(spark, t) for t in (tables.bronze, tables.ingest_log)] == before

    # evolve: the new column joins bronze (older rows have none); a missing
    # column is still refused, never read as nulls.
    evolving = job_config(
        write_dataset(tmp_path / "conf", day1, source_extra={"schema_drift": "evolve"})
    )
    with pytest.raises(SchemaMismatch, match=r"day3\.csv: .*missing column\(s\) delay"):
        ingest.run(spark, evolving, input_path=str(dropped))
    assert ingest.run(spark, evolving, input_path=str(new_column)).bronze_rows == 1
    bronze = delta.read(spark, tables.bronze)
    assert bronze.schema["gate"].dataType.simpleString() == "string"  # Delta adds it at the end
    assert [r["gate"] for r in bronze.where("id = 301").collect()] == ["B12"]
    assert bronze.where("gate IS NULL").count() == 20

    # Parquet: an undeclared column is drift too.
    rows = spark.createDataFrame(
        [(501, "UA", 1.5, date(2024, 6, 1), 7)],
        "id int, carrier string, delay double, day date, seats int",
    )
    rows.write.parquet(str(tmp_path / "pq"))
    parquet = job_config(
        write_dataset(tmp_path / "conf3", tmp_path / "pq", fmt="parquet", name="other")
    )
    with pytest.raises(SchemaMismatch, match="unexpected column\\(s\\) seats"):
        ingest.run(spark, parquet)
