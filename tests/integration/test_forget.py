"""`lakeforge forget` on a lakehouse built by the library's own steps (two
ingest + clean batches, train, predict): the subject's rows leave every table,
and no byte of any file under the lakehouse (data files of every version,
commit JSONs, checksums, checkpoints, the audit table, the ingest log) holds
the subject's values any more, while every other row is still there.

Parquet is written uncompressed in these tests so that a byte search of a
data file finds a value it holds (snappy may split a string into
back-references); the search is shown to find the values before `forget`.
"""

from __future__ import annotations

import getpass
import random
import string
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.cli import main
from lakeforge.errors import SPARK_ERRORS
from lakeforge.privacy.keys import pseudonym
from lakeforge.steps import clean, ingest, predict, train
from lakeforge.storage import delta, maintenance
from lakeforge.storage.maintenance import files_read
from lakeforge.storage.paths import tables_for
from tests.helpers import job_config, train_section, write_dataset, write_lines

pytestmark = pytest.mark.integration

KEY_ENV = "LAKEFORGE_TEST_PRIVACY_KEY"
KEY = "forget-test-key-5b1e0c9d2a7f4e36"
HEADER = "customer_id,full_name,x1,x2,segment,y"
COLUMNS = [
    {"name": "customer_id", "type": "string"},
    {"name": "full_name", "type": "string"},
    {"name": "x1", "type": "double"},
    {"name": "x2", "type": "double"},
    {"name": "segment", "type": "string"},
    {"name": "y", "type": "int"},
]
# Subject S sorts first by id and by name, so Delta's per-file min statistics
# (in the commit JSONs and checksums) hold S's values: a leak through the log.
S_ID, S_NAME = "C-000SUBJ7", "Aaltje Forgetmenot"
T_ID, T_NAME = "C-5T9W3RJ6", "Bartholomew Quaxley"
DATA_TABLES = (
    "bronze",
    "bronze_quarantine",
    "silver",
    "silver_quarantine",
    "splits",
    "predictions",
)


@pytest.fixture
def uncompressed(spark: SparkSession) -> Iterator[None]:
    key = "spark.sql.parquet.compression.codec"
    before = spark.conf.get(key)
    spark.conf.set(key, "uncompressed")
    yield
    spark.conf.set(key, str(before))


def _people(n: int) -> list[tuple[str, str]]:
    rng = random.Random(20)
    upper = string.ascii_uppercase + string.digits
    letters = string.ascii_lowercase
    people = []
    for _ in range(n):
        ident = "C-" + rng.choice("123456789") + "".join(rng.choices(upper, k=7))
        name = " ".join(
            rng.choice("BCDFGHJKLMNPRSTVWZ") + "".join(rng.choices(letters, k=6)) for _ in range(2)
        )
        people.append((ident, name))
    return people


def _line(ident: str, name: str, x1: object, x2: object, segment: str, y: int) -> str:
    return f"{ident},{name},{x1},{x2},{segment},{y}"


def _batches(folder: Path) -> tuple[Path, Path]:
    """Day 1: 200 people, S and T, one unparseable line of S's and one of
    someone else's. Day 2: S again (an update: silver's old file keeps the
    first row) and a row of S's failing a drop rule, another person's failing
    row, and 20 updates."""
    rng = random.Random(7)
    people = _people(200)
    segments = ["north", "south", "east", "west"]

    def row(ident: str, name: str) -> str:
        x1, x2 = round(rng.gauss(0, 1), 4), round(rng.gauss(0, 2), 4)
        return _line(ident, name, x1, x2, rng.choice(segments), int(x1 - 0.5 * x2 > 0))

    day1 = [HEADER, *(row(i, n) for i, n in people), row(S_ID, S_NAME), row(T_ID, T_NAME)]
    day1 += [_line(S_ID, S_NAME, "not-a-number", 1.0, "north", 1)]
    day1 += [_line(people[0][0], people[0][1], "n/a", 2.0, "east", 0)]
    day2 = [HEADER, row(S_ID, S_NAME), _line(S_ID, S_NAME, 0.3, 999.0, "west", 1)]
    day2 += [_line(people[1][0], people[1][1], 0.1, -999.0, "south", 0)]
    day2 += [row(i, n) for i, n in people[2:22]]
    return (
        write_lines(folder / "day1.csv", day1),
        write_lines(folder / "day2.csv", day2),
    )


def _dataset(tmp_path: Path) -> Path:
    return write_dataset(
        tmp_path / "conf",
        tmp_path / "in",
        columns=COLUMNS,
        name="customers",
        extra={
            "keys": ["customer_id"],
            "privacy": {"key_env": KEY_ENV, "columns": {"customer_id": {"action": "pseudonymise"}}},
            "rules": [
                {"name": "x2_plausible", "type": "range", "column": "x2", "min": -50, "max": 50}
            ],
            "train": train_section(
                features={
                    "numeric": {"columns": ["x1", "x2"]},
                    "categorical": {"columns": ["segment"]},
                },
                models=[{"estimator": "logistic_regression", "params": {"regParam": 0.01}}],
            ),
        },
    )


def _values(ident: str, name: str) -> dict[str, str]:
    """What would identify the subject: the id in clear and as ingest stores
    it (its pseudonym; Delta keeps 32 characters of a long string in its
    statistics, so the search is for that prefix) and the name."""
    return {"id": ident, "pseudonym": pseudonym(KEY.encode(), ident)[:32], "name": name}


def _files_holding(root: Path, values: dict[str, str]) -> dict[str, set[str]]:
    """Every file under `root` (hidden ones too) holding one of `values`, by
    path relative to `root`, with the names of the values it holds."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        held = {label for label, value in values.items() if value.encode() in data}
        if held:
            found[str(path.relative_to(root))] = held
    return found


def _rows(spark: SparkSession, table: str) -> Counter[str]:
    if not delta.is_table(spark, table):
        return Counter()
    frame = delta.read(spark, table)
    return Counter(r[0] for r in frame.select(F.to_json(F.struct(*frame.columns))).collect())


def _about(rows: Counter[str], values: dict[str, str]) -> Counter[str]:
    return Counter({r: n for r, n in rows.items() if any(v in r for v in values.values())})


def _audit(spark: SparkSession, root: Path) -> dict[str, dict[str, Any]]:
    """The audit rows of the latest forget, by table name."""
    audit = delta.read(spark, str(root / "customers" / "_forget_audit"))
    rows = [r.asDict() for r in audit.collect()]
    latest = max(rows, key=lambda r: r["requested_at"])["forget_id"]
    return {r["table_name"]: r for r in rows if r["forget_id"] == latest}


def _versions(spark: SparkSession, root: Path) -> dict[str, int | None]:
    return {t: delta.version(spark, str(root / "customers" / t)) for t in DATA_TABLES}


def _forget(dataset: Path, *args: str) -> int:
    return main(["forget", "--dataset", str(dataset), *args])


def test_forget_leaves_no_byte_of_the_subject_in_the_lakehouse_and_every_other_row(
    spark: SparkSession,
    tmp_path: Path,
    lakehouse: Path,
    uncompressed: None,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    dataset = _dataset(tmp_path)
    cfg = job_config(dataset)
    day1, day2 = _batches(tmp_path / "in")
    ingest.run(spark, cfg, input_path=str(day1), batch_id="d1")
    clean.run(spark, cfg)
    ingest.run(spark, cfg, input_path=str(day2), batch_id="d2")
    clean.run(spark, cfg)
    trained = train.run(spark, cfg)
    assert trained is not None
    predict.run(spark, cfg, batch_id="all")
    tables = tables_for(cfg.settings, "customers")
    paths = {t: str(lakehouse / "customers" / t) for t in DATA_TABLES}
    s, t = _values(S_ID, S_NAME), _values(T_ID, T_NAME)

    # The search finds S in the current rows, in a file only an old silver
    # version reads (S's day-1 row, updated on day 2) and in the Delta log.
    before = {name: _rows(spark, path) for name, path in paths.items()}
    of_s = {name: _about(rows, s) for name, rows in before.items()}
    assert {name: sum(rows.values()) for name, rows in of_s.items()} == {
        "bronze": 3,  # two good rows and the one failing the rule
        "bronze_quarantine": 1,
        "silver": 1,
        "silver_quarantine": 1,
        "splits": 1,
        "predictions": 1,
    }
    holding = _files_holding(lakehouse, s)
    only_old = _data_files(lakehouse / "customers" / "silver") - files_read(spark, paths["silver"])
    old_silver = {f"customers/silver/{f}" for f in only_old}
    assert old_silver & holding.keys()
    for name in DATA_TABLES:  # every table S is in: a data file, and its log
        # a data file of the table, partitioned (gold: _batch_id=...) or not
        assert any(
            f.startswith(f"customers/{name}/") and "/_delta_log/" not in f and "part-" in f
            for f in holding
        ), (name, sorted(holding))
        # the log, where its statistics (a column's minimum: S sorts first in
        # clear) hold S; not in silver_quarantine (`_row` is JSON: the prefix
        # kept starts `{"customer_id":"`), splits, predictions (pseudonyms)
        if name in ("bronze", "bronze_quarantine", "silver"):
            assert any(f.startswith(f"customers/{name}/_delta_log/") for f in holding), name

    # A registered model version was trained on silver and splits versions
    # that hold S: refused, naming them, before any table changes
    versions = _versions(spark, lakehouse)
    assert _forget(dataset, "--where", f"customer_id = '{S_ID}'") == 2
    err = capfd.readouterr().err
    assert "model customers v1" in err
    assert f"customers/silver version {trained.silver_version}" in err
    assert "--force" in err
    assert _versions(spark, lakehouse) == versions
    assert _files_holding(lakehouse, s) == holding

    # --force: S's rows go, every other row stays, each count measured
    caplog.clear()
    assert _forget(dataset, "--where", f"customer_id = '{S_ID}'", "--force") == 0
    # what the process printed and logged (the JVM's console, started with the
    # session, is not captured here: a control line of it was never seen)
    output = capfd.readouterr()
    said = output.out + output.err + caplog.text
    assert "history_purged=True" in said  # the per-table line was seen: the check can fail
    assert not [v for v in (*s.values(), pseudonym(KEY.encode(), S_ID)) if v in said]
    assert _files_holding(lakehouse, s) == {}
    audit = _audit(spark, lakehouse)
    for name, path in paths.items():
        after = _rows(spark, path)
        assert after == before[name] - of_s[name], name
        entry = audit[name]
        assert entry["rows_deleted"] == sum(of_s[name].values()), name
        assert entry["rows_before"] - entry["rows_deleted"] == entry["rows_after"], name
        assert (entry["rows_before"], entry["rows_after"]) == (
            sum(before[name].values()),
            sum(after.values()),
        ), name
        assert entry["history_purged"] and entry["forced"], name
        assert entry["version_after"] == delta.version(spark, path), name
        # no version before the erasure can be read back: no file of one, nor its log
        assert not _data_files(lakehouse / "customers" / name) - files_read(spark, path)
        with pytest.raises(SPARK_ERRORS):
            delta.read(spark, path, as_of=entry["version_before"]).count()
    assert audit["_clean_log"]["skipped"]  # no column to find S by
    assert audit["_ingest_log"]["skipped"]
    silver_entry = audit["silver"]
    assert silver_entry["pins_broken"] == [
        f"silver version {trained.silver_version} (model customers v1)"
    ]
    assert silver_entry["requested_by"] == getpass.getuser()
    assert silver_entry["request_ref"] and len(silver_entry["request_ref"]) == 64
    assert "forget" in said and "silver" in said
    tags = MlflowClient().get_model_version("customers", "1").tags
    assert "lakeforge.forget" in tags and "silver" in tags["lakeforge.forget"]

    # T by name from a file of keys (gold and splits have no name: found by
    # the customer id silver gives), with a person who is nowhere
    keys = tmp_path / "erase.csv"
    keys.write_text(f"full_name\n{T_NAME}\nNobody Atall\n")
    before_t = {name: _rows(spark, path) for name, path in paths.items()}
    of_t = {name: _about(rows, t) for name, rows in before_t.items()}
    assert sum(of_t["predictions"].values()) == sum(of_t["splits"].values()) == 1
    # full_name is neither a key nor a declared privacy column: --any-column
    assert _forget(dataset, "--keys", str(keys)) == 2
    assert "full_name" in capfd.readouterr().err
    assert _forget(dataset, "--keys", str(keys), "--any-column") == 0  # no pin readable any more
    assert _files_holding(lakehouse, t) == {}
    audit = _audit(spark, lakehouse)
    for name, path in paths.items():
        assert _rows(spark, path) == before_t[name] - of_t[name], name
        assert audit[name]["rows_deleted"] == sum(of_t[name].values()), name
    assert {e["subjects"] for e in audit.values()} == {2}

    # Again: nothing left to delete, no table changes, still a success
    versions = _versions(spark, lakehouse)
    assert _forget(dataset, "--where", f"customer_id = '{S_ID}'") == 0
    audit = _audit(spark, lakehouse)
    assert {audit[name]["rows_deleted"] for name in DATA_TABLES} == {0}
    assert not any(audit[name]["history_purged"] for name in DATA_TABLES)
    assert _versions(spark, lakehouse) == versions
    assert tables.forget_audit.endswith("/customers/_forget_audit")


def _data_files(table: Path) -> set[str]:
    return {
        str(p.relative_to(table))
        for p in table.rglob("*.parquet")
        if "_delta_log" not in p.relative_to(table).parts
    }


def test_forget_arguments_are_checked_before_any_table_changes(
    spark: SparkSession,
    tmp_path: Path,
    lakehouse: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    dataset = _dataset(tmp_path)
    cfg = job_config(dataset)
    day1, _ = _batches(tmp_path / "in")
    ingest.run(spark, cfg, input_path=str(day1), batch_id="d1")
    versions = _versions(spark, lakehouse)
    bad: Sequence[tuple[list[str], str]] = [
        (["--where", f"email = '{S_ID}'"], "email"),
        (["--where", f"customer_id LIKE '{S_ID}%'"], "LIKE"),
        (["--where", f"customer_id = '{S_ID}'; DROP TABLE x"], "single SQL expression"),
        (["--where", f"upper(customer_id) = '{S_ID}'"], "function"),
        (["--where", f"customer_id = '{S_ID}' OR full_name = 'x'"], "same columns"),
        (["--where", "customer_id = NULL"], "null"),
        (["--where", "customer_id = ' '"], "empty"),
        (["--where", "segment = 'north'"], "segment"),
        (["--keys", str(tmp_path / "missing.csv")], "missing.csv"),
    ]
    for args, reason in bad:
        assert _forget(dataset, *args) == 2, args
        err = capsys.readouterr().err
        assert reason in err, (args, err)
        assert S_ID not in err, args
    monkeypatch.delenv(KEY_ENV)
    assert _forget(dataset, "--where", f"customer_id = '{S_ID}'") == 2
    assert KEY_ENV in capsys.readouterr().err
    assert _versions(spark, lakehouse) == versions


def test_a_forget_that_failed_half_way_is_recorded_and_finished_by_running_it_again(
    spark: SparkSession,
    tmp_path: Path,
    lakehouse: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tables found only through the identities bronze and silver give
    (splits, predictions) are erased before them, each table's audit row
    is written when it is done, and a table whose MERGE committed before a
    failure has its row too: a second run finds and erases what is left."""
    monkeypatch.setenv(KEY_ENV, KEY)
    dataset = _dataset(tmp_path)
    cfg = job_config(dataset)
    day1, day2 = _batches(tmp_path / "in")
    ingest.run(spark, cfg, input_path=str(day1), batch_id="d1")
    clean.run(spark, cfg)
    ingest.run(spark, cfg, input_path=str(day2), batch_id="d2")
    clean.run(spark, cfg)
    assert train.run(spark, cfg) is not None
    predict.run(spark, cfg, batch_id="all")
    paths = {t: str(lakehouse / "customers" / t) for t in DATA_TABLES}
    t = _values(T_ID, T_NAME)
    of_t = {name: sum(_about(_rows(spark, path), t).values()) for name, path in paths.items()}
    assert of_t["splits"] == of_t["predictions"] == of_t["silver"] == 1

    real = maintenance.purge_history

    def crash(spark_: SparkSession, table: str) -> tuple[int, int]:
        if table.rstrip("/").endswith("/silver"):
            raise RuntimeError("simulated crash")
        return real(spark_, table)

    monkeypatch.setattr(maintenance, "purge_history", crash)
    keys = tmp_path / "erase.csv"
    keys.write_text(f"full_name\n{T_NAME}\n")
    args = ("--keys", str(keys), "--any-column", "--force")
    assert _forget(dataset, *args) == 1
    audit = _audit(spark, lakehouse)
    assert audit["silver"]["rows_deleted"] == 1 and "failed" in audit["silver"]["skipped"]
    assert audit["splits"]["rows_deleted"] == audit["predictions"]["rows_deleted"] == 1

    monkeypatch.setattr(maintenance, "purge_history", real)
    assert _forget(dataset, *args) == 0
    left = {name: sum(_about(_rows(spark, path), t).values()) for name, path in paths.items()}
    assert left == dict.fromkeys(DATA_TABLES, 0)
    assert _files_holding(lakehouse, t) == {}
