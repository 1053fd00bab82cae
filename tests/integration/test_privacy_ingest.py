"""Personal data at ingest, end to end on real Spark + Delta: the `privacy:`
block is applied before bronze is written for CSV, JSON, Parquet and a
database, so no byte of the lakehouse (data files, `_delta_log` JSON and
checkpoints, the ingest log) nor of the logs holds a protected raw value,
even for malformed rows; the PII scan warns about, or stops on, personal
columns the block does not cover; a missing key stops the job first."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from pyspark.sql import SparkSession

from lakeforge.cli import main
from lakeforge.config.loader import JobConfig
from lakeforge.errors import ConfigError, UndeclaredPersonalData
from lakeforge.privacy import keys
from lakeforge.steps import clean, ingest
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from tests import postgres
from tests.helpers import job_config, write_dataset, write_lines

pytestmark = pytest.mark.integration

KEY_ENV = "PEOPLE_PSEUDONYM_KEY"
KEY = "people-hmac-key-5f1c9e27a4b8"
COLUMNS = [
    {"name": "customer_id", "type": "string"},
    {"name": "email", "type": "string"},
    {"name": "card", "type": "string"},
    {"name": "age", "type": "int"},
    {"name": "born", "type": "date", "format": "yyyy-MM-dd"},
    {"name": "postcode", "type": "string"},
    {"name": "full_name", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "note", "type": "string"},
]
PRIVACY = {
    "key_env": KEY_ENV,
    "columns": {
        "customer_id": {"action": "pseudonymise"},
        "email": {"action": "pseudonymise"},
        "card": {"action": "mask", "keep_last": 4},
        "age": {"action": "generalise", "band": 10},
        "born": {"action": "generalise", "to": "month"},
        "postcode": {"action": "generalise", "prefix": 3},
        "full_name": {"action": "drop"},
    },
}
HEADER = ",".join(c["name"] for c in COLUMNS)
GOOD = [
    "C-1001,ann.jones@example.com,4111 1111 1111 1111,37,1984-03-17,SW1A 1AA,Annabel Jones,10.5,a",
    "C-1002,bo.chen@example.net,5500 0055 5555 5559,52,1971-11-23,EC1A 1BB,Bo Chen,20.0,two",
]
# splits, an unprotected value does not cast
CAST_FAILS = (
    "C-1003,cy.diaz@example.org,3782 822463 10005,29,1995-06-09,W1A 0AX,Cyrus Diaz,lots,third"
)
# splits, a protected value does not cast
PROTECTED_FAILS = (
    "C-1004,dee.ekwueme@example.com,6011 1111 1111 1117,41y,1980-02-14,M1 1AE,Dee Ekwueme,5.0,x"
)
# an unquoted comma in the name: one field too many
TOO_MANY = "C-1005,eli.fox@example.com,4012 8888 8888 1881,33,1990-08-21,B33 8TH,Fox, Eli,1.0,y"
TOO_FEW = "C-1006,gus.hale@example.com,3530 1113 3330 0000"
LINES = [*GOOD, CAST_FAILS, PROTECTED_FAILS, TOO_MANY, TOO_FEW]
# every raw value of a protected column the file holds, as it can be found in
# clear when nothing is protected (the control test checks each is; ages are
# too short to search for as bytes: their protected form is checked in
# bronze instead)
RAW_VALUES = [
    *(f"C-100{i}" for i in range(1, 7)),
    "ann.jones@example.com",
    "bo.chen@example.net",
    "cy.diaz@example.org",
    "dee.ekwueme@example.com",
    "eli.fox@example.com",
    "gus.hale@example.com",
    *(
        form
        for card in (
            "4111 1111 1111 1111",
            "5500 0055 5555 5559",
            "3782 822463 10005",
            "6011 1111 1111 1117",
            "4012 8888 8888 1881",
            "3530 1113 3330 0000",
        )
        # as written, and its first digits (what a mask must not keep)
        for form in (card, card[:9])
    ),
    "41y",
    *("1984-03-17", "1971-11-23", "1995-06-09", "1980-02-14", "1990-08-21"),
    *("SW1A 1AA", "EC1A 1BB", "W1A 0AX", "M1 1AE", "B33 8TH", "SW1A", "EC1A"),
    *("Annabel", "Jones", "Bo Chen", "Cyrus", "Diaz", "Ekwueme", "Fox, Eli"),
]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY.encode()


CHECKPOINT_EVERY = "spark.databricks.delta.properties.defaults.checkpointInterval"


@pytest.fixture
def plain_parquet(spark: SparkSession) -> Iterator[None]:
    """Parquet files written uncompressed for the test, so that a value in a
    data file or checkpoint is there as plain bytes for the scan to find; and
    a Delta checkpoint at every commit, so there are checkpoints to scan."""
    settings = {"spark.sql.parquet.compression.codec": "uncompressed", CHECKPOINT_EVERY: "1"}
    before = {name: spark.conf.get(name, None) for name in settings}
    for name, value in settings.items():
        spark.conf.set(name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                spark.conf.unset(name)
            else:
                spark.conf.set(name, value)


def _leaks(root: Path, values: list[str]) -> dict[str, list[str]]:
    """value → the files under `root` holding it (any byte sequence)."""
    found: dict[str, list[str]] = {}
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files, f"nothing under {root}"
    for value in values:
        hits = [str(p.relative_to(root)) for p in files if value.encode() in p.read_bytes()]
        if hits:
            found[value] = hits
    return found


def _second_batch(spark: SparkSession, cfg: JobConfig, tmp_path: Path) -> None:
    """One more file, ingested as batch b2: bronze's second commit, so that
    its Delta log has a checkpoint (holding the first commit's statistics)."""
    line = "C-1007,hal.ives@example.com,4000 0566 5566 5556,45,1979-05-05,N1 9GU,Hal Ives,3.0,z"
    write_lines(tmp_path / "in" / "people2.csv", [HEADER, line])
    assert ingest.run(spark, cfg, batch_id="b2").bronze_rows == 1


def _people(tmp_path: Path, privacy: dict[str, object] | None = PRIVACY, **extra: object) -> Path:
    write_lines(tmp_path / "in" / "people.csv", [HEADER, *LINES])
    spec: dict[str, object] = {"keys": ["customer_id"], **extra}
    if privacy is not None:
        spec["privacy"] = privacy
    return write_dataset(
        tmp_path / "conf", tmp_path / "in", columns=COLUMNS, name="people", extra=spec
    )


def test_no_byte_of_the_lakehouse_or_the_logs_holds_a_protected_value(
    spark: SparkSession,
    lakehouse: Path,
    tmp_path: Path,
    key: bytes,
    plain_parquet: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = job_config(_people(tmp_path))
    tables = tables_for(cfg.settings, "people")
    with caplog.at_level(logging.DEBUG, logger="lakeforge"):
        result = ingest.run(spark, cfg, batch_id="b1")
        _second_batch(spark, cfg, tmp_path)
        cleaned = clean.run(spark, cfg)

    # no raw protected value, nor the key, in any file or log line (the scan
    # does see a value where one is: here, and in the next test)
    assert _leaks(tmp_path / "in", ["ann.jones@example.com"])
    assert _leaks(lakehouse, RAW_VALUES) == {}
    # the key, and the padded blocks of it the Spark plan holds
    padded = key.ljust(64, b"\0")
    blocks = [bytes(b ^ pad for b in padded).hex() for pad in (0x36, 0x5C)]
    secret = [KEY, *blocks, *(b.upper() for b in blocks)]
    assert _leaks(lakehouse, secret) == {}
    # lakeforge's own log records (the JVM's console log: next test)
    logged = caplog.text
    assert "ingest: reconcile batch b1" in logged
    for value in [*RAW_VALUES, *secret]:
        assert value not in logged
    checkpoints = [
        p for p in lakehouse.rglob("*.checkpoint.parquet") if "_ingest_log" not in str(p)
    ]
    assert checkpoints, "no checkpoint of bronze was scanned"

    # nothing lost: counted in the tables, against the file's lines
    assert (result.rows_read, result.bronze_rows, result.quarantined_rows) == (6, 2, 4)
    assert cleaned.inserted == 3  # b2's row too

    bronze = delta.read(spark, tables.bronze)
    assert "full_name" not in bronze.columns
    types = dict(bronze.dtypes)
    assert (types["customer_id"], types["card"], types["age"], types["born"]) == (
        "string",
        "string",
        "int",
        "date",
    )
    first = bronze.where(f"customer_id = '{keys.pseudonym(key, 'C-1001')}'").first()
    assert first is not None
    assert first["email"] == keys.pseudonym(key, "ann.jones@example.com")
    assert first["card"] == "*" * 15 + "1111"
    assert (first["age"], str(first["born"]), first["postcode"]) == (30, "1984-03-01", "SW1")
    assert (first["amount"], first["note"]) == (10.5, "a")
    assert "full_name" not in delta.read(spark, tables.silver).columns

    quarantined = delta.read(spark, tables.bronze_quarantine).collect()
    quarantine = {r["_reason"]: r for r in quarantined}
    # no value quoted under a privacy block, even of an unprotected column
    cast = json.loads(quarantine["amount: a value of 4 characters is not a double"]["_raw"])
    assert cast["amount"] == "[withheld]"
    assert cast["customer_id"] == keys.pseudonym(key, "C-1003")
    assert cast["email"] == keys.pseudonym(key, "cy.diaz@example.org")
    assert (cast["age"], cast["born"], cast["postcode"]) == ("20", "1995-06-01", "W1A")
    assert "full_name" not in cast
    protected = quarantine["age: a value withheld by privacy is not a int"]
    assert json.loads(protected["_raw"])["age"] == "[withheld]"
    # the keys, protected like bronze's, let forget find a quarantined row
    assert protected["customer_id"] == keys.pseudonym(key, "C-1004")
    split = [r for r in quarantined if "does not split" in r["_reason"]]
    assert {r["_raw"] for r in split} == {
        f"[withheld: {len(line)} characters; hmac-sha256 {keys.pseudonym(key, line)}]"
        for line in (TOO_MANY, TOO_FEW)
    }
    assert all(r["customer_id"] is None for r in split)


def test_the_console_output_of_an_ingest_holds_no_protected_value(
    lakehouse: Path, tmp_path: Path, key: bytes
) -> None:
    """`lakeforge ingest` in its own process, so that everything the JVM and
    Python print to stdout and stderr is captured (`capfd` does not see the
    JVM's stderr once a session has started in an earlier test)."""
    dataset = _people(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "lakeforge", "ingest", "--dataset", str(dataset)],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout
    assert done.returncode == 0, output
    # positive control: the output is the run's (it names the batch's file)
    assert "people.csv" in output or "quarantined" in output, output
    padded = key.ljust(64, b"\0")
    blocks = [bytes(b ^ pad for b in padded).hex() for pad in (0x36, 0x5C)]
    for value in [*RAW_VALUES, KEY, *blocks, *(b.upper() for b in blocks)]:
        assert value not in output, value


def test_a_zipped_input_leaves_no_clear_copy_in_the_lakehouse(
    spark: SparkSession, lakehouse: Path, tmp_path: Path, key: bytes, plain_parquet: None
) -> None:
    """A zip member is extracted to the staging folder for Spark to read;
    once the batch is committed the extract is gone."""
    write_lines(tmp_path / "people.csv", [HEADER, *LINES])
    (tmp_path / "in").mkdir()
    with zipfile.ZipFile(tmp_path / "in" / "people.zip", "w") as archive:
        archive.write(tmp_path / "people.csv", "people.csv")
    dataset = write_dataset(
        tmp_path / "conf",
        tmp_path / "in",
        columns=COLUMNS,
        name="people",
        extra={"keys": ["customer_id"], "privacy": PRIVACY},
    )
    result = ingest.run(spark, job_config(dataset), batch_id="z1")
    assert (result.rows_read, result.bronze_rows) == (6, 2)
    assert _leaks(lakehouse, RAW_VALUES) == {}


def test_the_leak_scan_finds_every_value_when_nothing_is_protected(
    spark: SparkSession, lakehouse: Path, tmp_path: Path, plain_parquet: None
) -> None:
    """The same file without the block: the byte scan of the previous test
    finds every value it searches, in data files and in the Delta log alike."""
    cfg = job_config(_people(tmp_path, privacy=None))
    ingest.run(spark, cfg, batch_id="b1")
    _second_batch(spark, cfg, tmp_path)
    leaks = _leaks(lakehouse, RAW_VALUES)
    assert sorted(set(RAW_VALUES) - set(leaks)) == []
    checkpoints = [
        f for hits in leaks.values() for f in hits if ".checkpoint." in f and "_ingest_log" not in f
    ]
    assert checkpoints, "no value found in a Delta checkpoint"
    data_files = [f for f in leaks["Ekwueme"] if f.endswith(".parquet") and "_delta_log" not in f]
    assert data_files, leaks["Ekwueme"]


def test_the_pii_scan_warns_about_undeclared_columns_and_can_stop_the_batch(
    spark: SparkSession,
    lakehouse: Path,
    tmp_path: Path,
    key: bytes,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `note` holds e-mail addresses in 3 of its 4 values; the block does not cover it
    notes = ["p@q.com", "r@s.net", "t@u.io", "not one"]
    rows = [
        f"C-20{i},e{i}@example.com,4111 1111 1111 1111,30,1990-01-0{i + 1},AB1 2CD,N N,1.0,{n}"
        for i, n in enumerate(notes)
    ]
    write_lines(tmp_path / "in" / "people.csv", [HEADER, *rows])
    dataset = write_dataset(
        tmp_path / "conf",
        tmp_path / "in",
        columns=COLUMNS,
        name="people",
        extra={"keys": ["customer_id"], "privacy": PRIVACY},
    )
    cfg = job_config(dataset)
    with caplog.at_level(logging.WARNING, logger="lakeforge"):
        ingest.run(spark, cfg)
    warning = "column note looks like e-mail addresses: 75% of its 4 non-null values"
    assert warning in caplog.text
    assert not any(n in caplog.text for n in notes if "@" in n)
    assert "column email" not in caplog.text  # declared: pseudonymised, not scanned

    strict = {**PRIVACY, "undeclared": "fail"}
    spec = yaml.safe_load(dataset.read_text())
    spec["name"] = "strict"
    spec["privacy"] = strict
    strict_file = dataset.with_name("strict.yaml")
    strict_file.write_text(yaml.safe_dump(spec))
    cfg = job_config(strict_file)
    with pytest.raises(UndeclaredPersonalData, match=warning):
        ingest.run(spark, cfg)
    tables = tables_for(cfg.settings, "strict")
    assert not delta.is_table(spark, tables.bronze)
    assert not delta.is_table(spark, tables.bronze_quarantine)
    statuses = [r["status"] for r in delta.read(spark, tables.ingest_log).collect()]
    assert sorted(set(statuses)) == ["failed", "planned"]
    capsys.readouterr()
    assert main(["ingest", "--dataset", str(strict_file)]) == 4
    err = capsys.readouterr().err
    assert warning in err and "p@q.com" not in err

    # declared (masked): the same values raise nothing
    spec["privacy"] = {**strict, "columns": {**PRIVACY["columns"], "note": {"action": "mask"}}}
    strict_file.write_text(yaml.safe_dump(spec))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lakeforge"):
        assert ingest.run(spark, job_config(strict_file)).bronze_rows == 4
    assert "looks like" not in caplog.text


def test_a_missing_key_stops_ingest_before_anything_is_written(
    spark: SparkSession,
    lakehouse: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    dataset = _people(tmp_path)
    assert main(["ingest", "--dataset", str(dataset)]) == 2
    err = capsys.readouterr().err
    assert f"the pseudonymisation key variable {KEY_ENV} is not set" in err
    assert not (lakehouse / "people").exists()


def test_json_and_parquet_sources_are_protected_before_bronze(
    spark: SparkSession, lakehouse: Path, tmp_path: Path, key: bytes, plain_parquet: None
) -> None:
    columns = [
        {"name": "id", "type": "int"},
        {"name": "email", "type": "string"},
        {"name": "age", "type": "int"},
        {"name": "full_name", "type": "string"},
    ]
    privacy = {
        "key_env": KEY_ENV,
        "columns": {
            "id": {"action": "pseudonymise"},
            "email": {"action": "pseudonymise"},
            "age": {"action": "generalise", "band": 10},
            "full_name": {"action": "drop"},
        },
    }
    broken = '{"id": 3, "email": "zed@example.com", "full_name": "Zed Quill"'
    write_lines(
        tmp_path / "json" / "people.json",
        [
            json.dumps({"id": 1, "email": "ann@example.com", "age": 37, "full_name": "Ann Ark"}),
            broken,
        ],
    )
    pq.write_table(
        pa.table(
            {
                "id": pa.array([2], pa.int32()),
                "email": ["bo@example.com"],
                "age": pa.array([52], pa.int32()),
                "full_name": ["Bo Bell"],
            }
        ),
        tmp_path / "people.parquet",
    )
    extra = {"keys": ["id"], "privacy": privacy}
    for fmt, path, name in (
        ("json", tmp_path / "json", "people_json"),
        ("parquet", tmp_path / "people.parquet", "people_parquet"),
    ):
        cfg = job_config(
            write_dataset(tmp_path / "conf", path, fmt=fmt, columns=columns, name=name, extra=extra)
        )
        ingest.run(spark, cfg)
        bronze = delta.read(spark, tables_for(cfg.settings, name).bronze)
        assert bronze.columns[:3] == ["id", "email", "age"]
        assert dict(bronze.dtypes)["id"] == "string"  # a pseudonym is text
        rows = {(r["id"], r["email"], r["age"]) for r in bronze.collect()}
        if fmt == "json":
            assert rows == {(keys.pseudonym(key, "1"), keys.pseudonym(key, "ann@example.com"), 30)}
            raw = delta.read(spark, tables_for(cfg.settings, name).bronze_quarantine).first()
            assert raw is not None
            assert raw["_raw"] == (
                f"[withheld: {len(broken)} characters; hmac-sha256 {keys.pseudonym(key, broken)}]"
            )
        else:
            assert rows == {(keys.pseudonym(key, "2"), keys.pseudonym(key, "bo@example.com"), 50)}
    leaks = _leaks(lakehouse, ["ann@example.com", "zed@example.com", "bo@example.com", "Ann Ark"])
    assert leaks == {}


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres.Postgres]:
    server = postgres.start("privacy-Pw-3c8d")
    try:
        yield server
    finally:
        server.stop()
        postgres.remove(server)


def test_a_database_source_is_protected_before_bronze(
    spark: SparkSession,
    pg: postgres.Postgres,
    lakehouse: Path,
    tmp_path: Path,
    key: bytes,
    monkeypatch: pytest.MonkeyPatch,
    plain_parquet: None,
) -> None:
    monkeypatch.setenv("SHOP_DB_USER", "shop")
    monkeypatch.setenv("SHOP_DB_PASSWORD", "privacy-Pw-3c8d")
    pg.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, email text, born date, "
        "full_name text, updated_at timestamp NOT NULL)"
    )
    pg.sql(
        "INSERT INTO customers VALUES (1, 'ann@example.com', DATE '1984-03-17', 'Ann Ark', "
        "TIMESTAMP '2026-01-01 10:00'), (2, 'bo@example.com', DATE '1971-11-23', 'Bo Bell', "
        "TIMESTAMP '2026-01-01 11:00')"
    )
    spec = {
        "name": "customers",
        "source": {
            "format": "jdbc",
            "jdbc": {
                "url": pg.jdbc_url,
                "table": "customers",
                "user_env": "SHOP_DB_USER",
                "password_env": "SHOP_DB_PASSWORD",
                "watermark": "updated_at",
            },
            "columns": [
                {"name": "id", "type": "int"},
                {"name": "email", "type": "string"},
                {"name": "born", "type": "date"},
                {"name": "full_name", "type": "string"},
                {"name": "updated_at", "type": "timestamp"},
            ],
        },
        "keys": ["id"],
        "privacy": {
            "key_env": KEY_ENV,
            "columns": {
                "email": {"action": "pseudonymise"},
                "born": {"action": "generalise", "to": "year"},
                "full_name": {"action": "drop"},
            },
        },
    }
    path = tmp_path / "conf" / "datasets" / "customers.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    cfg = job_config(path)
    assert ingest.run(spark, cfg).bronze_rows == 2
    bronze = delta.read(spark, tables_for(cfg.settings, "customers").bronze)
    assert bronze.columns[:4] == ["id", "email", "born", "updated_at"]
    rows = {(r["id"], r["email"], str(r["born"])) for r in bronze.collect()}
    assert rows == {
        (1, keys.pseudonym(key, "ann@example.com"), "1984-01-01"),
        (2, keys.pseudonym(key, "bo@example.com"), "1971-01-01"),
    }
    leaks = _leaks(lakehouse, ["ann@example.com", "bo@example.com", "Ann Ark", "1984-03-17"])
    assert leaks == {}

    # a later window under another key is refused before it is read or logged
    pg.sql(
        "INSERT INTO customers VALUES (3, 'cy@example.com', DATE '1995-06-09', 'Cy Dee', "
        "TIMESTAMP '2026-01-02 09:00')"
    )
    tables = tables_for(cfg.settings, "customers")
    versions = (delta.version(spark, tables.bronze), delta.version(spark, tables.jdbc_log))
    monkeypatch.setenv(KEY_ENV, "another-key-of-enough-bytes-0000")
    with pytest.raises(ConfigError, match=f"the key in {KEY_ENV} is not the key"):
        ingest.run(spark, job_config(path))
    assert (delta.version(spark, tables.bronze), delta.version(spark, tables.jdbc_log)) == versions
    monkeypatch.setenv(KEY_ENV, KEY)
    assert ingest.run(spark, job_config(path)).bronze_rows == 1


def _bronze_version(spark: SparkSession, lakehouse: Path) -> int | None:
    return delta.version(spark, str(lakehouse / "people" / "bronze"))


def test_a_batch_protected_otherwise_than_bronze_is_refused_before_anything_is_written(
    spark: SparkSession,
    lakehouse: Path,
    tmp_path: Path,
    key: bytes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dataset = _people(tmp_path)
    assert main(["ingest", "--dataset", str(dataset)]) == 0
    before = _bronze_version(spark, lakehouse)
    line = "C-1007,hal.ives@example.com,4000 0566 5566 5556,45,1979-05-05,N1 9GU,Hal Ives,3.0,z"
    write_lines(tmp_path / "in" / "people2.csv", [HEADER, line])
    capsys.readouterr()

    # another key: its pseudonyms would not join the earlier ones
    monkeypatch.setenv(KEY_ENV, "another-key-of-enough-bytes-0000")
    assert main(["ingest", "--dataset", str(dataset)]) == 2
    err = capsys.readouterr().err
    assert f"the key in {KEY_ENV} is not the key bronze's earlier batches" in err, err
    assert "another-key" not in err and KEY not in err
    assert _bronze_version(spark, lakehouse) == before

    # another block: a band changed, a column no longer dropped
    monkeypatch.setenv(KEY_ENV, KEY)
    columns = dict(PRIVACY["columns"])  # type: ignore[call-overload]
    columns["age"] = {"action": "generalise", "band": 5}
    del columns["full_name"]
    changed = _people(tmp_path, {**PRIVACY, "columns": columns})
    assert main(["ingest", "--dataset", str(changed)]) == 2
    err = capsys.readouterr().err
    assert "another privacy block" in err, err
    assert "age (changed)" in err and "full_name (removed)" in err
    assert _bronze_version(spark, lakehouse) == before

    # the block and key bronze was protected with: the batch goes in
    dataset = _people(tmp_path)
    assert main(["ingest", "--dataset", str(dataset)]) == 0
    assert _bronze_version(spark, lakehouse) == (before or 0) + 1


def test_a_privacy_block_added_to_a_dataset_ingested_without_one_is_refused(
    spark: SparkSession,
    lakehouse: Path,
    tmp_path: Path,
    key: bytes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plain = _people(tmp_path, None)
    assert main(["ingest", "--dataset", str(plain)]) == 0
    before = _bronze_version(spark, lakehouse)
    write_lines(tmp_path / "in" / "people2.csv", [HEADER, GOOD[0].replace("C-1001", "C-1009")])
    capsys.readouterr()
    protected = _people(tmp_path)
    assert main(["ingest", "--dataset", str(protected)]) == 2
    err = capsys.readouterr().err
    assert "bronze's earlier batches were not protected" in err, err
    assert _bronze_version(spark, lakehouse) == before
