"""Personal-data protection on real Spark: pseudonyms equal the one definition
(keys.pseudonym, Python's hmac) on every value, mask and generalise give the
documented results and types, drop removes, the quarantine's raw text and
reasons never carry a protected value, and the PII scan tells personal
columns from the others."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
from datetime import date, datetime
from decimal import Decimal

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge import secrets
from lakeforge.config.models import Column
from lakeforge.config.privacy import Privacy
from lakeforge.errors import ConfigError, UndeclaredPersonalData
from lakeforge.ingest import parse
from lakeforge.privacy import keys, scan
from lakeforge.privacy.protect import Protector, protect, pseudonym_column

KEY = "k3y-for-tests-Ünïcode-0123456789".encode()

TEXTS = [
    "",
    "a",
    "alice.smith@example.com",
    "héllo wörld ✓ 😀",
    "Zoë O'Brien-Łukasiewicz",
    "x" * 64,
    "y" * 1000,
    " padded ",
    "line\nbreak\ttab",
    "日本語のテキスト",
]


def _privacy(**columns: dict[str, object]) -> Privacy:
    return Privacy.model_validate({"key_env": "PRIVACY_TEST_KEY", "columns": columns})


@pytest.mark.parametrize(
    "key",
    [KEY, b"sixteen-bytes-ok", b"k" * 64, b"long-key-" * 20],
    ids=["unicode", "16-bytes", "one-block", "longer-than-a-block"],
)
def test_spark_pseudonyms_equal_the_one_definition_on_every_text(
    spark: SparkSession, key: bytes
) -> None:
    df = spark.createDataFrame([(t,) for t in [*TEXTS, None]], "s string")
    out = protect(df, _privacy(s={"action": "pseudonymise"}), key).collect()
    for text, row in zip([*TEXTS, None], out, strict=True):
        if text is None:
            assert row["s"] is None  # null stays null
            continue
        # trimmed, a blank text is null (keys.normalised), before the HMAC
        clear = keys.normalised(text)
        if clear is None:
            assert row["s"] is None
            continue
        assert row["s"] == keys.pseudonym(key, clear)
        assert row["s"] == hmac.new(key, clear.encode("utf-8"), hashlib.sha256).hexdigest()


def test_a_value_of_another_type_is_pseudonymised_as_sparks_text_of_it(
    spark: SparkSession,
) -> None:
    """Spark's CAST AS STRING (session time zone UTC) is the rendering, e.g.
    a double 1e20 is "1.0E20" and a decimal(10,2) 3.5 is "3.50"."""
    schema = "i int, l long, d double, m decimal(10,2), day date, at timestamp, b boolean"
    values = (
        42,
        -9007199254740993,
        1e20,
        Decimal("3.5"),
        date(2024, 1, 31),
        datetime(2024, 1, 31, 10, 0, 0),
        True,
    )
    rendered = ["42", "-9007199254740993", "1.0E20", "3.50", "2024-01-31", "2024-01-31 10:00:00"]
    rendered.append("true")
    df = spark.createDataFrame([values, (None,) * 7], schema)
    columns = {c: {"action": "pseudonymise"} for c in df.columns}
    first, nulls = protect(df, _privacy(**columns), KEY).collect()
    for column, text in zip(df.columns, rendered, strict=True):
        assert first[column] == keys.pseudonym(KEY, text), column
        assert nulls[column] is None
    as_text = protect(df, _privacy(**columns), KEY).schema
    assert all(isinstance(f.dataType, T.StringType) for f in as_text.fields)
    # forget's helper gives the same pseudonym from the typed column
    assert df.select(pseudonym_column("d", KEY)).first()[0] == keys.pseudonym(KEY, "1.0E20")


def test_mask_keeps_the_chosen_characters_and_nulls(spark: SparkSession) -> None:
    values = ["4111 1111 1111 1111", "abc", "", "ü€😀xyz", None, "1234"]
    df = spark.createDataFrame([(v, v) for v in values], "card string, code string")
    df = df.withColumn("n", F.lit(123456789).cast("long"))
    privacy = Privacy.model_validate(
        {
            "columns": {
                "card": {"action": "mask", "keep_last": 4},
                "code": {"action": "mask", "keep_first": 2, "mask_char": "#"},
                "n": {"action": "mask"},
            }
        }
    )
    rows = protect(df, privacy, None).collect()
    # a value no longer than what is kept is masked whole; a blank one is null
    assert [r["card"] for r in rows] == ["*" * 15 + "1111", "***", None, "**😀xyz", None, "****"]
    assert [r["code"] for r in rows] == ["41" + "#" * 17, "ab#", None, "ü€####", None, "12##"]
    assert rows[0]["n"] == "*********"
    assert dict(protect(df, privacy, None).dtypes)["n"] == "string"


def test_generalise_keeps_the_type_and_gives_the_lower_bound(spark: SparkSession) -> None:
    ints = [37, 30, 0, -3, -10, 2147483647, -2147483648, None]
    doubles = [37.3, -0.1, 2.5, 1e-9, 123456.789, -7.5, float("nan"), float("inf"), None]
    privacy = Privacy.model_validate(
        {
            "columns": {
                "age": {"action": "generalise", "band": 10},
                "score": {"action": "generalise", "band": 2.5},
                "amount": {"action": "generalise", "band": 0.25},
                "odd": {"action": "generalise", "band": 2.5},
            }
        }
    )
    ages = spark.createDataFrame([(a, a) for a in ints], "age int, odd int")
    out = protect(ages, privacy, None)
    assert dict(out.dtypes) == {"age": "int", "odd": "int"}
    rows = out.collect()
    # the smallest int has no lower bound of its band inside the type: null
    assert [r["age"] for r in rows] == [30, 30, 0, -10, -10, 2147483640, None, None]
    # a fractional band on an integer column: the bound rounded down
    assert [r["odd"] for r in rows[:5]] == [35, 30, 0, -5, -10]

    scores = spark.createDataFrame([(d,) for d in doubles], "score double")
    got = [r["score"] for r in protect(scores, privacy, None).collect()]
    for value, bound in zip(doubles, got, strict=True):
        if value is None:
            assert bound is None
        elif math.isnan(value) or math.isinf(value):
            assert bound == value or (math.isnan(bound) and math.isnan(value))
        else:
            assert bound == math.floor(value / 2.5) * 2.5, value

    amounts = spark.createDataFrame(
        [(Decimal("37.35"),), (Decimal("-0.01"),), (None,)], "amount decimal(7,2)"
    )
    out = protect(amounts, privacy, None)
    assert dict(out.dtypes)["amount"] == "decimal(7,2)"
    assert [r["amount"] for r in out.collect()] == [Decimal("37.25"), Decimal("-0.25"), None]


def test_generalise_dates_to_their_month_or_year_and_text_to_a_prefix(
    spark: SparkSession,
) -> None:
    privacy = Privacy.model_validate(
        {
            "columns": {
                "born": {"action": "generalise", "to": "month"},
                "seen": {"action": "generalise", "to": "year"},
                "postcode": {"action": "generalise", "prefix": 3},
            }
        }
    )
    df = spark.createDataFrame(
        [(date(1984, 3, 17), datetime(2024, 7, 9, 13, 45, 1), "SW1A 1AA"), (None, None, None)],
        "born date, seen timestamp, postcode string",
    )
    out = protect(df, privacy, None)
    assert dict(out.dtypes) == {"born": "date", "seen": "timestamp", "postcode": "string"}
    first, nulls = out.collect()
    assert (first["born"], first["seen"], first["postcode"]) == (
        date(1984, 3, 1),
        datetime(2024, 1, 1),
        "SW1",
    )
    assert tuple(nulls) == (None, None, None)


def test_a_dropped_column_is_gone_and_others_are_untouched(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1, "Ada Lovelace", "x")], "id int, name string, note string")
    out = protect(df, Privacy.model_validate({"columns": {"name": {"action": "drop"}}}), None)
    assert out.columns == ["id", "note"]
    assert tuple(out.first()) == (1, "x")


def test_the_key_comes_from_its_variable_and_is_scrubbed_from_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a variable whose name does not look secret: its value is scrubbed all the same
    privacy = Privacy.model_validate(
        {"key_env": "PEOPLE_PSEUDONYMS", "columns": {"s": {"action": "pseudonymise"}}}
    )
    assert not secrets.looks_secret("PEOPLE_PSEUDONYMS")
    monkeypatch.delenv("PEOPLE_PSEUDONYMS", raising=False)
    with pytest.raises(ConfigError, match="PEOPLE_PSEUDONYMS is not set"):
        Protector.load(privacy, "people")
    monkeypatch.setenv("PEOPLE_PSEUDONYMS", "too-short")
    with pytest.raises(ConfigError, match="PEOPLE_PSEUDONYMS holds 9 bytes"):
        Protector.load(privacy, "people")

    value = "plain-name-key-7c1e4b9a"
    monkeypatch.setenv("PEOPLE_PSEUDONYMS", value)
    protector = Protector.load(privacy, "people")
    assert protector.key == value.encode()
    inner = bytes(b ^ 0x36 for b in value.encode().ljust(64, b"\0")).hex()
    line = f"key {value}, inner block {inner}, plan {inner.upper()}"
    assert secrets.scrub(line) == "key ***, inner block ***, plan ***"
    assert value not in repr(protector)


def test_quarantined_text_holds_protected_fields_only_in_their_protected_form(
    spark: SparkSession,
) -> None:
    columns = [
        Column(name="id", type="string"),
        Column(name="email", type="string"),
        Column(name="age", type="int"),
        Column(name="card", type="string"),
        Column(name="name", type="string"),
        Column(name="amount", type="double"),
    ]
    privacy = _privacy(
        email={"action": "pseudonymise"},
        age={"action": "generalise", "band": 10},
        card={"action": "mask", "keep_last": 4},
        name={"action": "drop"},
        id={"action": "pseudonymise"},
    )
    protector = Protector(privacy, KEY)
    line = "C-9,bob@example.org,41,4111111111111111,Bob Stone,1.0,extra"
    rows = spark.createDataFrame(
        [
            # splits; amount does not cast: the raw JSON shows protected fields protected
            ("C-7", "eve@example.org", "37", "5500005555555559", "Eve Adams", "n/a", None, "f.csv"),
            # splits; the protected age does not cast: its value is named nowhere
            ("C-8", "amy@example.org", "37y", "4012888888881881", "Amy Lee", "2.0", None, "f.csv"),
            # too many fields: which field is which cannot be told
            ("C-9", "bob@example.org", "41", "4111111111111111", "Bob Stone", "1.0", line, "f.csv"),
        ],
        "id string, email string, age string, card string, name string, amount string, "
        "_raw string, _source_file string",
    )
    out = parse.type_rows(rows, columns, [], "csv", protector=protector).collect()
    cast_fail, age_fail, split_fail = out

    record = json.loads(cast_fail[parse.RAW])
    assert record == {
        "id": keys.pseudonym(KEY, "C-7"),
        "email": keys.pseudonym(KEY, "eve@example.org"),
        "age": "30",
        "card": "*" * 12 + "5559",
        "amount": "[withheld]",
    }
    assert cast_fail[parse.REASON] == "amount: a value of 3 characters is not a double"

    record = json.loads(age_fail[parse.RAW])
    assert record["age"] == "[withheld]"
    assert age_fail[parse.REASON] == "age: a value withheld by privacy is not a int"

    digest = keys.pseudonym(KEY, line)
    assert split_fail[parse.RAW] == f"[withheld: {len(line)} characters; hmac-sha256 {digest}]"
    # a row that did not split has no fields to trust (nor to leak through the keys)
    assert split_fail["id"] is None and split_fail["email"] is None

    for row in out:
        for clear in ("@example.org", "Stone", "Adams", "Lee", "37y", "4111111111111111"):
            assert clear not in str(row[parse.RAW]) + str(row[parse.REASON])


def test_without_a_privacy_block_the_raw_text_is_kept_whole(spark: SparkSession) -> None:
    rows = spark.createDataFrame(
        [("1", "x,y,z", "f.csv")], "id string, _raw string, _source_file string"
    )
    out = parse.type_rows(rows, [Column(name="id", type="int")], [], "csv").first()
    assert out[parse.RAW] == "x,y,z"


PERSONAL = {
    "email": ["ann@example.com", "b.o+tag@mail.example.co.uk", " c@d.io ", "not an email"],
    "phone": ["+44 20 7946 0958", "(555) 123-4567", "020 7946 0958", "12345"],
    "card": ["4111 1111 1111 1111", "5500-0055-5555-5559", "378282246310005", "4111111111111112"],
    "ssn": ["123-45-6789", "AB 12 34 56 C", "JG103759A", "000-12-3456"],
    "plain": ["2024-01-15", "12345678901234", "hello world", "SKU-0042"],
}


def _personal(spark: SparkSession):  # type: ignore[no-untyped-def]
    rows = list(zip(*PERSONAL.values(), strict=True))
    return spark.createDataFrame([*rows, (None,) * 5], ", ".join(f"{c} string" for c in PERSONAL))


def test_the_scan_measures_each_kind_in_one_pass(spark: SparkSession) -> None:
    found = {(f.column, f.kind): f for f in scan.shares(_personal(spark), list(PERSONAL))}
    assert found["email", "e-mail addresses"].share == 0.75
    assert found["email", "e-mail addresses"].values == 4  # nulls not counted
    assert found["phone", "phone numbers"].share == 0.75
    # Luhn: the last card's check digit is wrong
    assert found["card", "payment card numbers"].share == 0.75
    assert found["ssn", "national ids"].share == 0.75  # 000 is no SSN area
    assert all(found["plain", kind].share == 0.0 for kind in scan.KINDS)
    assert found["card", "phone numbers"].share == 0.0


def test_the_scan_warns_fails_or_keeps_quiet_as_configured(
    spark: SparkSession, caplog: pytest.LogCaptureFixture
) -> None:
    df = _personal(spark)
    declared = Privacy.model_validate({"columns": {"email": {"action": "drop"}}})
    with caplog.at_level(logging.WARNING, logger="lakeforge"):
        found = scan.check(df, declared, "people", df.columns)
    assert {(f.column, f.kind) for f in found} == {
        ("phone", "phone numbers"),
        ("card", "payment card numbers"),
        ("ssn", "national ids"),
    }
    text = caplog.text
    assert "column phone looks like phone numbers: 75% of its 4 non-null values" in text
    assert "email" not in text.replace("e-mail", "")  # declared: not scanned
    for values in PERSONAL.values():
        for value in values:
            assert value.strip() not in text  # shares, never values

    strict = Privacy.model_validate({"undeclared": "fail", "undeclared_share": 0.8})
    assert scan.check(df, strict, "people", df.columns) == []  # 75% < 80%
    with pytest.raises(UndeclaredPersonalData, match="column email looks like e-mail ad") as err:
        scan.check(df, strict.model_copy(update={"undeclared_share": 0.7}), "people", df.columns)
    assert err.value.exit_code == 4
    assert scan.check(df, Privacy(undeclared="ignore"), "people", df.columns) == []


def test_a_protected_column_cannot_be_the_jdbc_watermark() -> None:
    from pydantic import ValidationError

    from lakeforge.config.models import DatasetConfig

    spec = {
        "name": "customers",
        "source": {
            "format": "jdbc",
            "jdbc": {
                "url": "jdbc:postgresql://db/shop",
                "table": "customers",
                "user_env": "U",
                "password_env": "P",
                "watermark": "updated_at",
            },
            "columns": [{"name": "id", "type": "int"}, {"name": "updated_at", "type": "date"}],
        },
        "keys": ["id"],
        "privacy": {"columns": {"updated_at": {"action": "generalise", "to": "month"}}},
    }
    with pytest.raises(ValidationError, match="jdbc watermark's raw values are kept"):
        DatasetConfig.model_validate(spec)
    spec["privacy"] = {"undeclared_share": 0}
    with pytest.raises(ValidationError, match="undeclared_share"):
        DatasetConfig.model_validate(spec)


def _people_spec(privacy: dict[str, object], **extra: object) -> dict[str, object]:
    return {
        "name": "people",
        "source": {
            "format": "csv",
            "path": "data/people.csv",
            "columns": [
                {"name": "id", "type": "string"},
                {"name": "email", "type": "string"},
                {"name": "card", "type": "string"},
                {"name": "score", "type": "string"},
            ],
        },
        "keys": ["id"],
        "privacy": privacy,
        **extra,
    }


@pytest.mark.parametrize(
    "action",
    [{"action": "mask", "keep_last": 2}, {"action": "generalise", "prefix": 2}],
    ids=["mask", "generalise"],
)
def test_a_key_column_may_only_be_pseudonymised(action: dict[str, object]) -> None:
    from pydantic import ValidationError

    from lakeforge.config.models import DatasetConfig

    with pytest.raises(ValidationError, match=r"privacy.columns.id: .*key.*pseudonymise"):
        DatasetConfig.model_validate(_people_spec({"columns": {"id": action}}))
    ok = _people_spec({"key_env": "K", "columns": {"id": {"action": "pseudonymise"}}})
    DatasetConfig.model_validate(ok)


@pytest.mark.parametrize(
    ("section", "value"),
    [
        ("upper", ["email"]),
        ("lower", ["card"]),
        ("replace", {"email": {"a": "b"}}),
        ("parse", {"card": {"type": "double"}}),
    ],
)
def test_normalising_a_pseudonymised_or_masked_column_is_refused(
    section: str, value: object
) -> None:
    from pydantic import ValidationError

    from lakeforge.config.models import DatasetConfig

    privacy = {
        "key_env": "K",
        "columns": {"email": {"action": "pseudonymise"}, "card": {"action": "mask"}},
    }
    column = next(iter(value))
    spec = _people_spec(privacy, clean={section: value})
    with pytest.raises(ValidationError, match=rf"clean.{section}.*{column}"):
        DatasetConfig.model_validate(spec)


def test_numeric_features_on_a_protected_text_column_are_refused() -> None:
    from pydantic import ValidationError

    from lakeforge.config.models import DatasetConfig

    privacy = {"columns": {"card": {"action": "mask"}}}
    train = {
        "task": "regression",
        "label": "score",
        "features": {"numeric": {"columns": ["card"]}},
        "models": [{"estimator": "linear_regression"}],
    }
    with pytest.raises(ValidationError, match=r"train.features.numeric.*card"):
        DatasetConfig.model_validate(_people_spec(privacy, train=train))


def test_values_are_trimmed_and_blanks_are_null_before_protection(spark: SparkSession) -> None:
    assert keys.normalised("  C-1 ") == "C-1"
    assert keys.normalised(" \t ") is None and keys.normalised("") is None
    df = spark.createDataFrame(
        [(" C-1", " 4111 ", "x"), ("C-1", "4111", "y"), ("  ", "", "z")],
        "id string, card string, note string",
    )
    privacy = _privacy(id={"action": "pseudonymise"}, card={"action": "mask", "keep_last": 2})
    rows = protect(df, privacy, KEY).collect()
    assert rows[0]["id"] == rows[1]["id"] == keys.pseudonym(KEY, "C-1")
    assert rows[0]["card"] == rows[1]["card"] == "**11"
    assert (rows[2]["id"], rows[2]["card"]) == (None, None)
    assert df.select(pseudonym_column("id", KEY)).first()[0] == keys.pseudonym(KEY, "C-1")


def test_a_header_line_of_data_is_not_quoted_when_privacy_is_on(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lakeforge.errors import SchemaMismatch
    from lakeforge.ingest import files

    path = tmp_path / "people.csv"
    path.write_text("C-2001,bea.k@example.com,4111\n")
    file = files.InputFile(path=str(path), size=1, checksum="x", readable=f"file:{path}")
    expected = ["id", "email", "card"]
    with pytest.raises(SchemaMismatch) as err:
        files.check_csv_header(file, expected, ",", '"', "utf-8", private=True)
    message = str(err.value)
    assert "C-2001" not in message and "bea.k@example.com" not in message
    assert "3 missing" in message or "missing column(s) id, email, card" in message
    assert "3 unexpected column(s) at position(s) 1, 2, 3" in message
    with pytest.raises(SchemaMismatch, match="C-2001"):
        files.check_csv_header(file, expected, ",", '"', "utf-8")


def test_a_reason_never_quotes_a_value_when_privacy_is_on(spark: SparkSession) -> None:
    columns = [Column(name="id", type="string"), Column(name="amount", type="double")]
    protector = Protector(_privacy(id={"action": "pseudonymise"}), KEY)
    rows = spark.createDataFrame(
        [("C-7", "bea.k@example.com", None, "f.csv")],
        "id string, amount string, _raw string, _source_file string",
    )
    out = parse.type_rows(rows, columns, [], "csv", protector=protector).first()
    assert out[parse.REASON] == "amount: a value of 17 characters is not a double"
    assert json.loads(out[parse.RAW]) == {"id": keys.pseudonym(KEY, "C-7"), "amount": "[withheld]"}


def test_the_key_is_hidden_in_sparks_plan(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    privacy = Privacy.model_validate(
        {"key_env": "PEOPLE_PLAN_KEY", "columns": {"s": {"action": "pseudonymise"}}}
    )
    name = "spark.sql.redaction.string.regex"
    before = spark.conf.get(name, None)
    try:
        for value in ("plan-key-4d2a9e7b1c", "12345678901234567890"):
            monkeypatch.setenv("PEOPLE_PLAN_KEY", value)
            protector = Protector.load(privacy, "people")
            blocks = [
                bytes(b ^ pad for b in value.encode().ljust(64, b"\0")).hex()
                for pad in (0x36, 0x5C)
            ]
            df = protector.apply(spark.createDataFrame([("a",)], "s string"))
            plan = df._jdf.queryExecution().toString()
            assert "sha2" in plan.lower()
            for block in blocks:
                assert block not in plan.lower(), value
            line = f"key {value} in 0x{blocks[0].upper()} and {blocks[1]}"
            assert secrets.scrub(line) == "key *** in *** and ***"
    finally:
        if before is None:
            spark.conf.unset(name)
        else:
            spark.conf.set(name, before)


def test_a_timestamp_is_protected_only_under_utc(spark: SparkSession) -> None:
    df = spark.createDataFrame([(datetime(2024, 1, 31, 10, 0),)], "at timestamp")
    name = "spark.sql.session.timeZone"
    before = spark.conf.get(name)
    spark.conf.set(name, "Europe/Paris")
    try:
        for action in ({"action": "pseudonymise"}, {"action": "generalise", "to": "month"}):
            with pytest.raises(ConfigError, match=name):
                protect(df, _privacy(at=action), KEY)
        # a date has no time zone
        day = spark.createDataFrame([(date(2024, 1, 31),)], "day date")
        protect(day, _privacy(day={"action": "pseudonymise"}), KEY)
    finally:
        spark.conf.set(name, before)
