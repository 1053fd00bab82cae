"""`lakeforge init` writes a starter dataset config that loads, from the first
rows of a file, without Spark."""

from __future__ import annotations

import gzip
import json
import logging
import re
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakeforge import cli
from lakeforge.cli import main
from lakeforge.config import DatasetConfig, load_dataset
from lakeforge.starter.infer import identifier, infer_type, unique_names


@pytest.fixture(autouse=True)
def no_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    """init must never build a SparkSession."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("lakeforge init started Spark")

    monkeypatch.setattr(cli, "build_session", refuse)


def _init(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["init", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _load(path: Path) -> DatasetConfig:
    return load_dataset(path)


def _columns(cfg: DatasetConfig) -> dict[str, tuple[str, str | None, str | None]]:
    return {c.name: (c.type, c.format, c.header) for c in cfg.source.columns}


def _comments(path: Path) -> str:
    """The file's comments as one text (wrapped lines joined)."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return " ".join(line.lstrip("#").strip() for line in lines if line.startswith("#"))


def _european_csv(path: Path) -> Path:
    lines = ["Sample Number;Weight (kg);Height;Site;Measured On;Passed"]
    for i in range(1, 41):
        weight = "?" if i % 7 == 0 else f"{i},{i % 10}5"
        height = " ? " if i % 9 == 0 else str(150 + i)
        passed = "yes" if i % 4 == 0 else "no"
        lines.append(f"{i};{weight};{height};{'ABC'[i % 3]};2024-02-{i % 28 + 1:02d};{passed}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_semicolon_file_with_decimal_commas_and_markers_gets_parse_and_null_values(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _european_csv(lakehouse.parent / "lab results.csv")
    code, out, _ = _init(capsys, "--input", str(source), "--label", "Passed")
    assert code == 0
    written = Path("conf/datasets/lab_results.yaml")
    assert out.startswith(f"wrote {written}: 6 columns, label passed (binary), keys sample_number")
    cfg = _load(written)
    assert cfg.source.csv.delimiter == ";"
    assert cfg.source.csv.header is True
    assert set(cfg.source.csv.null_values) == {"", "?"}  # ingest ignores the spaces around
    assert _columns(cfg) == {
        "sample_number": ("int", None, "Sample Number"),
        "weight_kg": ("string", None, "Weight (kg)"),
        "height": ("int", None, "Height"),
        "site": ("string", None, "Site"),
        "measured_on": ("date", "yyyy-MM-dd", "Measured On"),
        "passed": ("string", None, "Passed"),
    }
    spec = cfg.clean.parse["weight_kg"]
    assert (spec.type, spec.decimal, spec.group) == ("double", ",", ".")
    assert cfg.keys == ["sample_number"]
    assert cfg.train is not None
    assert cfg.train.task == "binary"
    # "yes" is the rarer value: class 1
    assert cfg.clean.derive["passed_id"] == (
        "CASE WHEN `passed` = 'no' THEN 0 WHEN `passed` = 'yes' THEN 1 END"
    )
    assert cfg.train.label == "passed_id"
    assert [(r.type, r.column, r.severity) for r in cfg.rules] == [
        ("not_null", "passed_id", "drop")
    ]
    features = cfg.train.features
    assert features.numeric is not None and features.numeric.columns == ["weight_kg", "height"]
    assert features.categorical is not None and features.categorical.columns == ["site"]
    assert [(d.column, d.parts) for d in features.dates] == [
        ("measured_on", ["month", "dayofweek"])
    ]
    assert [m.estimator for m in cfg.train.models] == ["logistic_regression", "xgboost"]
    assert "the rarest class ('yes') has 10 rows in the sample" in _comments(written)
    assert (cfg.train.split.method, cfg.train.split.folds, cfg.train.split.seed) == ("hash", 3, 42)
    text = written.read_text()
    assert "#   sample_number: its name looks like an id" in text
    assert "REVIEW" in text


def test_a_file_outside_the_lakehouse_is_copied_into_its_landing_folder(
    lakehouse: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    source = _european_csv(lakehouse.parent / "lab.csv")
    # the line is logged: read it where the log goes, whatever handlers other
    # tests of the process installed
    caplog.set_level(logging.INFO, logger="lakeforge")
    code, _, _ = _init(capsys, "--input", str(source), "--label", "Passed")
    err = caplog.text
    assert code == 0
    cfg = _load(Path("conf/datasets/lab.yaml"))
    assert cfg.source.path == "_landing/lab/lab.csv"
    assert (lakehouse / "_landing/lab/lab.csv").read_bytes() == source.read_bytes()
    assert "copied" in err


def test_no_copy_writes_the_absolute_path_and_says_it_needs_allow_external_paths(
    lakehouse: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    source = _european_csv(lakehouse.parent / "lab.csv")
    caplog.set_level(logging.INFO, logger="lakeforge")
    code, _, _ = _init(capsys, "--input", str(source), "--label", "Passed", "--no-copy")
    err = caplog.text
    assert code == 0
    assert _load(Path("conf/datasets/lab.yaml")).source.path == str(source.resolve())
    assert "allow_external_paths" in err
    assert not (lakehouse / "_landing").exists()


def test_a_file_inside_the_lakehouse_is_named_relative_to_it(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (lakehouse / "raw").mkdir(parents=True)
    source = _european_csv(lakehouse / "raw" / "lab.csv")
    code, _, _ = _init(capsys, "--input", str(source), "--label", "Passed")
    assert code == 0
    assert _load(Path("conf/datasets/lab.yaml")).source.path == "raw/lab.csv"


def test_an_existing_config_is_replaced_only_with_force(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _european_csv(lakehouse.parent / "lab.csv")
    out = lakehouse.parent / "mine.yaml"
    out.write_text("name: mine\n")
    code, _, err = _init(capsys, "--input", str(source), "--out", str(out))
    assert code == 2
    assert f"{out}: already exists" in err
    assert out.read_text() == "name: mine\n"
    code, _, _ = _init(
        capsys, "--input", str(source), "--out", str(out), "--label", "Passed", "--force"
    )
    assert code == 0
    assert _load(out).name == "lab"


def test_an_id_column_is_the_key_even_when_only_the_first_rows_are_read(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = lakehouse.parent / "orders.csv.gz"
    rows = [
        f"{1000 + i},{i % 5},{(i * 37) % 101}.5,{'red' if i % 3 else 'blue'}" for i in range(300)
    ]
    with gzip.open(source, "wt") as handle:
        handle.write("order_id,priority,amount,colour\n" + "\n".join(rows) + "\n")
    code, _, _ = _init(capsys, "--input", str(source), "--label", "amount", "--sample-rows", "100")
    assert code == 0
    path = Path("conf/datasets/orders.yaml")
    cfg = _load(path)
    assert cfg.keys == ["order_id"]
    assert "its first 100 rows only" in _comments(path)
    assert cfg.train is not None and cfg.train.task == "regression"
    assert cfg.train.label == "amount"
    assert [m.estimator for m in cfg.train.models] == ["linear_regression", "xgboost"]
    assert cfg.train.features.categorical is not None
    # five distinct integers: categories, not a number
    assert cfg.train.features.categorical.columns == ["priority", "colour"]
    assert cfg.train.features.numeric is None


def test_a_file_with_duplicate_rows_gets_no_keys_and_says_why(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = lakehouse.parent / "readings.csv"
    rows = [
        f"{'north' if i % 2 else 'south'},{i}.5,{'hot' if i % 3 else 'cold'}" for i in range(30)
    ]
    source.write_text("station,temp,feel\n" + "\n".join([*rows, rows[0]]) + "\n")
    code, _, _ = _init(capsys, "--input", str(source), "--label", "feel")
    assert code == 0
    path = Path("conf/datasets/readings.yaml")
    cfg = _load(path)
    assert cfg.keys == []
    text = path.read_text()
    assert not re.search(r"^keys:", text, re.MULTILINE)
    assert "No keys: 1 of all 31 rows of the file repeat another row exactly" in _comments(path)


def test_json_lines_are_typed_and_columns_that_are_no_identifiers_left_out(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = lakehouse.parent / "events.jsonl"
    events = [
        {
            "event_id": i,
            "amount": i * 1.5,
            "at": f"2024-03-{i % 28 + 1:02d} 10:{i % 60:02d}:00",
            "tags": ["a", "b"],
            "urgent": i % 2 == 0,
            "Bad Name": 1,
            "kind": ["click", "view", "buy"][i % 3],
        }
        for i in range(1, 31)
    ]
    source.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    code, _, _ = _init(capsys, "--input", str(source), "--label", "kind")
    assert code == 0
    path = Path("conf/datasets/events.yaml")
    cfg = _load(path)
    assert cfg.source.format == "json"
    assert _columns(cfg) == {
        "event_id": ("int", None, None),
        "amount": ("double", None, None),
        "at": ("timestamp", "yyyy-MM-dd HH:mm:ss", None),
        "tags": ("string", None, None),
        "urgent": ("boolean", None, None),
        "kind": ("string", None, None),
    }
    assert "#   Bad Name: its name is not an identifier" in path.read_text()
    assert cfg.keys == ["event_id"]
    assert cfg.train is not None and cfg.train.task == "multiclass"
    assert cfg.clean.derive["kind_id"] == (
        "CASE WHEN `kind` = 'buy' THEN 0 WHEN `kind` = 'click' THEN 1 "
        "WHEN `kind` = 'view' THEN 2 END"
    )
    # a boolean feature enters as 0/1
    assert cfg.clean.derive["urgent_flag"] == "CAST(`urgent` AS INT)"
    assert cfg.train.features.numeric is not None
    assert cfg.train.features.numeric.columns == ["amount", "urgent_flag"]
    assert [(d.column, d.parts) for d in cfg.train.features.dates] == [
        ("at", ["month", "dayofweek", "hour"])
    ]


def test_parquet_columns_take_the_file_types_and_a_0_to_k_label_needs_no_mapping(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = lakehouse.parent / "plants.parquet"
    n = 40
    table = pa.table(
        {
            "plant_id": pa.array(range(n), pa.int64()),
            "leaves": pa.array([i % 30 for i in range(n)], pa.int32()),
            "height": pa.array([i / 3 for i in range(n)], pa.float64()),
            "soil": pa.array([["clay", "sand"][i % 2] for i in range(n)], pa.string()),
            "potted": pa.array([i % 2 == 0 for i in range(n)], pa.bool_()),
            "sown": pa.array([date(2024, 1, i % 28 + 1) for i in range(n)], pa.date32()),
            "species": pa.array([i % 3 for i in range(n)], pa.int32()),
        }
    )
    pq.write_table(table, source)
    code, _, _ = _init(capsys, "--input", str(source), "--label", "species")
    assert code == 0
    cfg = _load(Path("conf/datasets/plants.yaml"))
    assert cfg.source.format == "parquet"
    assert {c.name: c.type for c in cfg.source.columns} == {
        "plant_id": "long",
        "leaves": "int",
        "height": "double",
        "soil": "string",
        "potted": "boolean",
        "sown": "date",
        "species": "int",
    }
    assert cfg.train is not None
    assert (cfg.train.task, cfg.train.label) == ("multiclass", "species")
    assert "species_id" not in cfg.clean.derive
    assert cfg.keys == ["plant_id"]


def test_a_headerless_csv_names_columns_by_position(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = lakehouse.parent / "plain.txt"
    source.write_text("".join(f"{i},{i * 2.5},{'xy'[i % 2]}\n" for i in range(20)))
    code, _, _ = _init(capsys, "--input", str(source), "--label", "col_3")
    assert code == 0
    cfg = _load(Path("conf/datasets/plain.yaml"))
    assert cfg.source.csv.header is False
    assert _columns(cfg) == {
        "col_1": ("int", None, None),
        "col_2": ("double", None, None),
        "col_3": ("string", None, None),
    }
    assert cfg.train is not None and cfg.train.task == "binary"


def test_quotes_in_label_values_are_escaped_in_the_sql(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = lakehouse.parent / "quotes.csv"
    rows = [f"{i},{i % 4},{'it' + chr(39) + 's' if i % 3 else 'no way'}" for i in range(30)]
    source.write_text("id,size,answer\n" + "\n".join(rows) + "\n")
    code, _, _ = _init(capsys, "--input", str(source), "--label", "answer")
    assert code == 0
    cfg = _load(Path("conf/datasets/quotes.yaml"))
    assert cfg.clean.derive["answer_id"] == (
        "CASE WHEN `answer` = 'it\\'s' THEN 0 WHEN `answer` = 'no way' THEN 1 END"
    )


def test_a_tab_separated_file_with_number_classes_maps_them_in_ascending_order(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = lakehouse.parent / "wine.tsv"
    rows = [f"{i}\t{i % 7}.{i % 10}\t{[5, 3, 4][i % 3]}" for i in range(60)]
    source.write_text("id\tacidity\tquality\n" + "\n".join(rows) + "\n")
    code, _, _ = _init(capsys, "--input", str(source), "--label", "quality")
    assert code == 0
    cfg = _load(Path("conf/datasets/wine.yaml"))
    assert cfg.source.csv.delimiter == "\t"
    assert cfg.train is not None and cfg.train.task == "multiclass"
    assert cfg.clean.derive["quality_id"] == (
        "CASE WHEN `quality` = 3 THEN 0 WHEN `quality` = 4 THEN 1 WHEN `quality` = 5 THEN 2 END"
    )


def test_an_unnamed_header_column_is_declared_and_flagged_for_review(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = lakehouse.parent / "frame.csv"
    rows = [f"{i},{i * 1.5},{'ab'[i % 2]}" for i in range(20)]
    source.write_text(",width,shape\n" + "\n".join(rows) + "\n")
    code, _, _ = _init(capsys, "--input", str(source), "--label", "shape")
    assert code == 0
    path = Path("conf/datasets/frame.yaml")
    assert [c.name for c in _load(path).source.columns] == ["col_1", "width", "shape"]
    assert "REVIEW: the file's header leaves this column unnamed" in path.read_text()


def test_the_penguins_file_gives_a_multiclass_config_with_header_names_mapped(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _init(
        capsys, "--input", "pkg://palmerpenguins/data/penguins-raw.csv", "--label", "Species"
    )
    assert code == 0
    path = Path("conf/datasets/penguins_raw.yaml")
    cfg = _load(path)
    assert cfg.source.path == "pkg://palmerpenguins/data/penguins-raw.csv"
    assert cfg.source.csv.null_values == ["", "NA"]
    columns = _columns(cfg)
    assert columns["culmen_length_mm"] == ("double", None, "Culmen Length (mm)")
    assert columns["culmen_depth_mm"] == ("double", None, "Culmen Depth (mm)")
    assert columns["date_egg"] == ("date", "yyyy-MM-dd", "Date Egg")
    assert cfg.train is not None
    assert (cfg.train.task, cfg.train.label) == ("multiclass", "species_id")
    mapping = cfg.clean.derive["species_id"]
    for i, species in enumerate(("Adelie Penguin", "Chinstrap penguin", "Gentoo penguin")):
        assert f"`species` = '{species} (Pygoscelis" in mapping
        assert f"THEN {i}" in mapping
    # The whole file was read, and no one column is unique in it; sample number
    # and individual id together are, and both look like ids.
    assert cfg.keys == ["sample_number", "individual_id"]
    assert "unique and never null in all 344 rows of the file" in _comments(path)
    assert "label species (multiclass)" in out


def test_a_missing_file_is_a_one_line_error_naming_it(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _init(capsys, "--input", "nowhere.csv")
    assert code == 2
    assert err == "lakeforge init: error: nowhere.csv: no such file\n"


def test_an_empty_file_is_refused_naming_it(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = lakehouse.parent / "empty.csv"
    source.write_text("")
    code, _, err = _init(capsys, "--input", str(source))
    assert code == 2
    assert f"{source}: the file is empty" in err
    assert not Path("conf/datasets/empty.yaml").exists()


def test_a_header_without_rows_is_refused(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = lakehouse.parent / "header.csv"
    source.write_text("a,b,c\n")
    code, _, err = _init(capsys, "--input", str(source))
    assert code == 2
    assert f"{source}: a header but no rows" in err


def test_a_broken_gzip_file_is_unreadable(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = lakehouse.parent / "broken.csv.gz"
    source.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    code, _, err = _init(capsys, "--input", str(source))
    assert code == 3
    assert err.startswith(f"lakeforge init: error: {source}: cannot be decompressed")
    assert err.count("\n") == 1


def test_an_unknown_label_names_the_file_and_its_columns(
    lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _european_csv(lakehouse.parent / "lab.csv")
    code, _, err = _init(capsys, "--input", str(source), "--label", "grade")
    assert code == 2
    assert f"--label grade: no such column in {source}" in err
    assert "Sample Number" in err


def test_a_constant_label_is_refused(lakehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = lakehouse.parent / "same.csv"
    source.write_text("id,x,y\n" + "".join(f"{i},{i},same\n" for i in range(10)))
    code, _, err = _init(capsys, "--input", str(source), "--label", "y")
    assert code == 2
    assert "one value ('same') in the sample: nothing to learn" in err


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("Culmen Length (mm)", "culmen_length_mm"),
        ("studyName", "study_name"),
        ("2019 sales", "col_2019_sales"),
        ("%%", "col_4"),
    ],
)
def test_headers_become_identifiers(header: str, name: str) -> None:
    assert identifier(header, 4) == name


def test_identifiers_are_unique_and_never_a_lineage_name() -> None:
    assert unique_names(["Value", "value", "_batch_id", "batch id"]) == [
        "value",
        "value_2",
        "batch_id",
        "batch_id_2",
    ]


@pytest.mark.parametrize(
    ("values", "type_", "fmt"),
    [
        (["1", "-2"], "int", None),
        (["1", "3000000000"], "long", None),
        (["1", "2.5", "1e3"], "double", None),
        (["007", "010"], "string", None),
        (["true", "False"], "boolean", None),
        (["2024-01-31", "2024-02-01"], "date", "yyyy-MM-dd"),
        (["31/01/2024", "01/02/2024"], "date", "dd/MM/yyyy"),
        (["1/31/2024", "2/1/2024"], "date", "M/d/yyyy"),
        (["2024-01-31 10:00:00", "2024-02-01 11:30:59"], "timestamp", "yyyy-MM-dd HH:mm:ss"),
        (["2024-01-31T10:00:00.123Z"], "timestamp", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"),
        (["2024-13-01"], "string", None),
        (["red", "1"], "string", None),
    ],
)
def test_types_are_inferred_from_text(values: list[str], type_: str, fmt: str | None) -> None:
    inferred = infer_type(values)
    assert (inferred.type, inferred.format) == (type_, fmt)
