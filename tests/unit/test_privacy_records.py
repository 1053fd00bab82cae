"""The online scorer protects a record as ingest protects bronze: the Python
twin of every action (privacy/records.py) gives, value for value, what
Spark's protection (privacy/protect.py) gives on the same typed values, for
each supported source type; the key a server holds is checked against the
one training's data was protected with."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import SparkSession

from lakeforge.config.privacy import Privacy, Protection
from lakeforge.errors import ConfigError
from lakeforge.privacy import keys, records
from lakeforge.privacy.protect import protect
from lakeforge.privacy.records import InvalidValue, RecordProtector

KEY = "k3y-for-tests-Ünïcode-0123456789".encode()

VALUES: dict[str, list[Any]] = {
    "string": ["C-1", " C-1 ", "", "   ", "é漢字 x😀", "a\tb\n", "x" * 70, "ab", None],
    "int": [0, 1, -1, 3, -3, 37, -37, 2147483647, -2147483648, None],
    "long": [0, 123456789012, -9223372036854775808, 9223372036854775807, -7, None],
    "short": [0, 32767, -32768, 99, -99, None],
    "byte": [0, 127, -128, 5, -5, None],
    "double": [0.0, -0.0, 37.3, -3.7, 1e20, 1e-5, 1.7976931348623157e308, 2.5, -2.5, None],
    "float": [0.0, 37.3, -3.7, 1e20, 2.5, -1.25, None],
    "decimal(10,2)": [
        Decimal("3.50"),
        Decimal("-0.05"),
        Decimal("99999999.99"),
        Decimal("0.00"),
        Decimal("-12345.67"),
        None,
    ],
    "decimal(4,2)": [Decimal("99.99"), Decimal("-0.50"), Decimal("0.01"), None],
    "decimal(38,18)": [
        Decimal("0.000000000000000001"),
        Decimal("-1.5"),
        Decimal("12345678901234567890.123456789012345678"),
        None,
    ],
    "date": [date(2024, 1, 31), date(1999, 12, 1), date(1, 1, 1), date(9999, 12, 31), None],
    "boolean": [True, False, None],
}

# (protection, the source types it is checked on)
CASES: list[tuple[dict[str, Any], list[str]]] = [
    (
        {"action": "pseudonymise"},
        [
            "string",
            "int",
            "long",
            "short",
            "byte",
            "decimal(10,2)",
            "decimal(38,18)",
            "date",
            "boolean",
        ],
    ),
    ({"action": "mask", "keep_last": 4}, ["string", "int", "long", "decimal(10,2)", "date"]),
    ({"action": "mask", "keep_first": 2, "mask_char": "#"}, ["string", "int", "boolean"]),
    ({"action": "mask"}, ["string", "long"]),
    (
        {"action": "generalise", "band": 5},
        ["int", "long", "short", "byte", "double", "float", "decimal(10,2)", "decimal(4,2)"],
    ),
    ({"action": "generalise", "band": 2.5}, ["int", "long", "double", "float", "decimal(10,2)"]),
    ({"action": "generalise", "band": 100}, ["byte", "short", "decimal(4,2)"]),
    ({"action": "generalise", "band": 0.25}, ["double", "decimal(10,2)", "decimal(38,18)"]),
    # bounds a float cannot hold exactly: the float column rounds them as Spark's cast does
    ({"action": "generalise", "band": 0.1}, ["float", "double", "decimal(10,2)"]),
    ({"action": "generalise", "band": 1e9}, ["long", "double"]),
    # a band wider than the column can hold: negative values have no bound in range
    ({"action": "generalise", "band": 1e30}, ["decimal(10,2)", "long", "int"]),
    ({"action": "generalise", "to": "month"}, ["date"]),
    ({"action": "generalise", "to": "year"}, ["date"]),
    ({"action": "generalise", "prefix": 3}, ["string"]),
]


def _case_id(case: tuple[dict[str, Any], list[str]]) -> str:
    options = {k: v for k, v in case[0].items() if k != "action"}
    return case[0]["action"] + "".join(f"-{k}={v}" for k, v in options.items())


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_a_record_is_protected_exactly_as_spark_protects_bronze(
    spark: SparkSession, case: tuple[dict[str, Any], list[str]]
) -> None:
    options, source_types = case
    protection = Protection(**options)
    for source_type in source_types:
        values = VALUES[source_type]
        df = spark.createDataFrame([(v,) for v in values], f"v {source_type}")
        privacy = Privacy.model_validate({"key_env": "UNUSED", "columns": {"v": options}})
        in_bronze = [row["v"] for row in protect(df, privacy, KEY).collect()]
        raw = [row["v"] for row in df.collect()]  # the values as Spark typed them
        twin = RecordProtector({"v": (protection, source_type)}, KEY)
        online = [twin.value("v", protection, source_type, v) for v in raw]
        assert online == in_bronze, (source_type, raw)
        # Decimal equality ignores scale and the sign of zero: the text does not
        assert [str(v) for v in online] == [str(v) for v in in_bronze], (source_type, raw)
        # and the types the model reads: a pseudonym or mask is text, a band a number
        for got, want in zip(online, in_bronze, strict=True):
            assert type(got) is type(want), (source_type, got, want)


def test_a_value_sent_as_json_is_typed_as_the_source_column_would_hold_it() -> None:
    band = Protection(action="generalise", band=5)
    twin = RecordProtector({"age": (band, "int")})
    assert twin.protect([{"age": 37, "other": "kept"}]) == [{"age": 35, "other": "kept"}]
    assert twin.protect([{"age": 37.0}, {"age": None}, {}]) == [{"age": 35}, {"age": None}, {}]
    for bad, problem in (
        (37.5, "integer"),
        ("37", "number"),
        (True, "number"),
        (2**31, "out of range"),
    ):
        with pytest.raises(InvalidValue, match=problem) as caught:
            twin.protect([{"age": bad}])
        assert caught.value.column == "age"
    month = RecordProtector({"born": (Protection(action="generalise", to="month"), "date")})
    assert month.protect([{"born": "1990-07-14"}]) == [{"born": date(1990, 7, 1)}]
    with pytest.raises(InvalidValue, match="YYYY-MM-DD"):
        month.protect([{"born": "14/07/1990"}])
    money = RecordProtector({"amount": (Protection(action="generalise", band=10), "decimal(10,2)")})
    assert money.protect([{"amount": 37.456}]) == [{"amount": Decimal("30.00")}]


def test_the_server_needs_the_key_bronze_was_protected_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    privacy = Privacy.model_validate(
        {
            "key_env": "SERVE_TEST_KEY",
            "columns": {
                "id": {"action": "pseudonymise"},
                "age": {"action": "generalise", "band": 5},
            },
        }
    )
    check = keys.key_check(KEY)
    recorded = records.describe(privacy, {"id": "int", "age": "int"}, ["id", "age", "x"], check)
    assert set(recorded["columns"]) == {"id", "age"}
    assert KEY.hex() not in str(recorded) and KEY.decode() not in str(recorded)
    assert recorded["key_check"] == keys.key_check(KEY)

    monkeypatch.delenv("SERVE_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"SERVE_TEST_KEY.*unset"):
        RecordProtector.from_recorded(recorded)
    monkeypatch.setenv("SERVE_TEST_KEY", "another-key-of-enough-bytes")
    with pytest.raises(ConfigError, match="not the one"):
        RecordProtector.from_recorded(recorded)
    monkeypatch.setenv("SERVE_TEST_KEY", KEY.decode())
    protector = RecordProtector.from_recorded(recorded)
    assert protector is not None
    assert protector.protect([{"id": 42, "age": 44, "x": 1.0}]) == [
        {"id": keys.pseudonym(KEY, "42"), "age": 40, "x": 1.0}
    ]
    # no protected input: nothing to protect, no key needed
    assert records.describe(privacy, {"id": "int"}, ["x"], check)["columns"] == {}
    assert RecordProtector.from_recorded({}) is None
    assert RecordProtector.from_recorded(None) is None


def test_what_python_cannot_render_as_spark_does_is_refused_by_name() -> None:
    text = Protection(action="pseudonymise")
    assert "cannot be reproduced" in str(records.unsupported("score", text, "double"))
    assert "timestamp" in str(records.unsupported("seen", text, "timestamp"))
    assert records.unsupported("age", Protection(action="generalise", band=5), "double") is None
    assert records.unsupported("id", text, "long") is None


def test_train_records_bronze_protections_and_names_what_cannot_be_served() -> None:
    from lakeforge.config.cleaning import CleanSteps
    from lakeforge.privacy.protect import Protector
    from lakeforge.serving.export import Export, with_privacy
    from lakeforge.serving.signature import Input, Signature

    signature = Signature(
        "binary", 2, (Input("age", "int"), Input("score", "string"), Input("id", "string"))
    )
    online = Export(b"onnx", signature, None)

    def block(age_band: float, **more: dict[str, object]) -> Privacy:
        return Privacy.model_validate(
            {
                "key_env": "SERVE_TEST_KEY",
                "columns": {
                    "age": {"action": "generalise", "band": age_band},
                    "id": {"action": "pseudonymise"},
                    "name": {"action": "drop"},
                    **more,
                },
            }
        )

    types = {"age": "int", "score": "double", "id": "long", "name": "string"}
    bronze = Protector(block(5), KEY, types).fingerprint  # what the ingest log holds
    served = with_privacy(online, block(5), types, bronze, CleanSteps())
    assert served.servable, served.reason
    assert served.signature is not None and served.signature.privacy is not None
    assert set(served.signature.privacy["columns"]) == {"age", "id"}
    assert served.signature.privacy["key_check"] == keys.key_check(KEY)
    assert served.signature.protection("age") == "generalise"
    assert served.signature.source_type("id") == "long"
    assert served.signature.protection("score") is None
    # the recorded block survives the signature's JSON (what the server reads)
    assert Signature.from_json(served.signature.to_json()).privacy == served.signature.privacy

    # the config changed after bronze was written: bronze's band is what silver holds
    edited = with_privacy(online, block(10), types, bronze, CleanSteps())
    assert edited.signature is not None and edited.signature.privacy is not None
    assert edited.signature.privacy["columns"]["age"]["protection"]["band"] == 5

    # the id's type changed in the config since: bronze's pseudonyms are of its old text
    retyped = with_privacy(online, block(5), {**types, "id": "string"}, bronze, CleanSteps())
    assert retyped.signature is not None and retyped.signature.source_type("id") == "long"
    # no fingerprint in the ingest log: the server's key could not be checked
    unchecked = with_privacy(online, block(5), types, None, CleanSteps())
    assert not unchecked.servable and "id is pseudonymised" in str(unchecked.reason)
    # a double pseudonymised: its text is Java's
    doubled = block(5, score={"action": "pseudonymise"})
    refused = with_privacy(
        online, doubled, types, Protector(doubled, KEY, types).fingerprint, CleanSteps()
    )
    assert not refused.servable and "score (double)" in str(refused.reason)
    # protected, then parsed by clean: not reproduced
    parsed = CleanSteps.model_validate({"parse": {"age": {"type": "int"}}})
    assert "parsed by clean" in str(with_privacy(online, block(5), types, bronze, parsed).reason)
    # a silver column clean derives from a protected one
    derived = CleanSteps.model_validate({"derive": {"score": "CAST(age AS DOUBLE) / 10"}})
    said = str(with_privacy(online, block(5), types, bronze, derived).reason)
    assert "input score is derived by clean from protected age" in said
    # nothing protected: servable, and recorded as such (not "trained before")
    plain = with_privacy(online, Privacy(), types, None, CleanSteps())
    assert plain.servable and plain.signature is not None
    assert plain.signature.privacy is not None and plain.signature.privacy["columns"] == {}


def test_a_model_trained_before_protections_were_recorded_is_not_served_in_clear() -> None:
    from lakeforge.serving.scorer import unprotected_inputs
    from lakeforge.serving.signature import Input, Signature

    old = Signature("binary", 2, (Input("age", "int"), Input("x", "number")))
    assert old.privacy is None  # a signature.json without the field
    assert unprotected_inputs(old, frozenset({"age", "name"})) == ["age"]
    assert unprotected_inputs(old, frozenset({"name"})) == []
    recorded = Signature(
        "binary", 2, (Input("age", "int"),), privacy={"columns": {}, "key_check": None}
    )
    assert unprotected_inputs(recorded, frozenset({"age"})) == []


# (source type, protection, values as a JSON client sends them)
JSON_CASES: list[tuple[str, dict[str, Any], list[Any]]] = [
    (
        "decimal(10,2)",
        {"action": "pseudonymise"},
        [-0.001, 0.004, 3.456, -12.345, 0.005, -0.0, 7, 99999999.994, -0.5],
    ),
    ("decimal(10,2)", {"action": "mask", "keep_last": 2}, [-0.001, 3.456, -12.345, 7]),
    ("decimal(10,2)", {"action": "generalise", "band": 10}, [-0.001, -3.456, 37.456, 0.0]),
    ("decimal(10,0)", {"action": "pseudonymise"}, [-0.4, 2.5, -2.5, 1e3]),
    ("float", {"action": "generalise", "band": 0.1}, [37.3, -3.7, 0.001, 123456.789]),
    ("double", {"action": "generalise", "band": 2.5}, [37.3, -3.7, 1e-300, -0.0]),
    ("long", {"action": "pseudonymise"}, [42, -7, 9223372036854775807]),
    ("date", {"action": "pseudonymise"}, ["2024-01-31", "0999-12-31"]),
    ("date", {"action": "generalise", "to": "month"}, ["2024-01-31"]),
]


@pytest.mark.parametrize("case", JSON_CASES, ids=[f"{c[0]}-{c[1]['action']}" for c in JSON_CASES])
def test_a_json_value_is_protected_as_ingest_protects_the_same_text(
    spark: SparkSession, case: tuple[str, dict[str, Any], list[Any]]
) -> None:
    """From the value a client sends, not the value Spark typed: the twin's
    typing (rounding to the decimal's scale, float32, no negative zero) is
    held against ingest's `try_cast(trim(text) AS type)` of the same text."""
    source_type, options, values = case
    texts = [v if isinstance(v, str) else json.dumps(v) for v in values]
    df = spark.createDataFrame([(t,) for t in texts], "t string").selectExpr(
        f"try_cast(trim(t) AS {source_type}) AS v"
    )
    privacy = Privacy.model_validate({"key_env": "UNUSED", "columns": {"v": options}})
    in_bronze = [row["v"] for row in protect(df, privacy, KEY).collect()]
    protection = Protection(**options)
    twin = RecordProtector({"v": (protection, source_type)}, KEY)
    online = [twin.value("v", protection, source_type, v) for v in values]
    assert [str(v) for v in online] == [str(v) for v in in_bronze], values


TEXT_VALUES = [" N1 9GU", "n1 9gu ", "   ", "\tab c", "SW1A", "é x", None]


@pytest.mark.parametrize(
    "steps",
    [
        {"trim": True},
        {"trim": False},
        {"trim": True, "upper": ["v"]},
        {"trim": True, "lower": ["v"], "replace": {"v": {"n1": "N1", "sw1": "SW1"}}},
    ],
    ids=["trim", "no-trim", "upper", "lower-replace"],
)
def test_a_protected_text_input_gets_silvers_form_after_clean(
    spark: SparkSession, steps: dict[str, Any]
) -> None:
    """A prefix keeps what clean then trims ("N1 9GU" → "N1 " → "N1"): the
    model read silver, so the twin applies clean's text steps as well."""
    from lakeforge.clean.transform import normalise
    from lakeforge.config.cleaning import CleanSteps

    clean = CleanSteps.model_validate(steps)
    for options in (
        {"action": "generalise", "prefix": 3},
        {"action": "mask", "keep_first": 1, "mask_char": " "},
    ):
        privacy = Privacy.model_validate({"key_env": "UNUSED", "columns": {"v": options}})
        df = spark.createDataFrame([(t,) for t in TEXT_VALUES], "v string")
        in_silver = [r["v"] for r in normalise(protect(df, privacy, KEY), clean).collect()]
        recorded = records.describe(privacy, {"v": "string"}, ["v"], None, clean)
        twin = RecordProtector.from_recorded(recorded)
        assert twin is not None
        online = [row["v"] for row in twin.protect([{"v": t} for t in TEXT_VALUES])]
        assert online == in_silver, (options, steps)


def test_values_no_source_column_could_hold_are_refused_by_field() -> None:
    band = Protection(action="generalise", band=5)
    for source_type, bad, problem in [
        ("double", 10**400, "out of range"),
        ("float", 1e39, "out of range for float"),
        ("int", float("inf"), "integer"),
        ("decimal(10,2)", Decimal("NaN"), "finite"),
        ("decimal(4,2)", 123.0, "out of range"),
    ]:
        twin = RecordProtector({"v": (band, source_type)})
        with pytest.raises(InvalidValue, match=problem):
            twin.protect([{"v": bad}])
    text = RecordProtector({"v": (Protection(action="generalise", prefix=2), "string")})
    with pytest.raises(InvalidValue, match="Unicode"):
        text.protect([{"v": "ann\ud800"}])
    day = RecordProtector({"v": (Protection(action="generalise", to="month"), "date")})
    for odd in ("20240131", "2024-W05-3", "2024-1-5", 20240131):
        with pytest.raises(InvalidValue, match="YYYY-MM-DD"):
            day.protect([{"v": odd}])


def test_bronze_is_held_to_the_block_types_and_key_it_was_protected_with(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from lakeforge.privacy.protect import Protector

    other = b"another-key-of-enough-bytes-0000"
    masked = Privacy.model_validate(
        {"key_env": "K_ENV", "columns": {"card": {"action": "mask", "keep_last": 4}}}
    )
    first = Protector(masked, KEY, {"card": "string"})
    # nothing pseudonymised: the key makes no difference to any stored form
    assert Protector(masked, other, {"card": "string"}).fingerprint == first.fingerprint
    Protector(masked, other, {"card": "string"}).check_same_as([first.fingerprint], "d")

    ids = Privacy.model_validate(
        {"key_env": "K_ENV", "columns": {"id": {"action": "pseudonymise"}}}
    )
    bronze = Protector(ids, KEY, {"id": "int"}).fingerprint
    # the same block over another type: "007" as an int was hashed as "7"
    with pytest.raises(ConfigError, match=r"id \(changed\)"):
        Protector(ids, KEY, {"id": "string"}).check_same_as([bronze], "d")
    with pytest.raises(ConfigError, match="the key in K_ENV is not the key"):
        Protector(ids, other, {"id": "int"}).check_same_as([bronze], "d")
    with pytest.raises(ConfigError, match="were not protected"):
        Protector(ids, KEY, {"id": "int"}).check_same_as(
            [Protector(Privacy(), None).fingerprint], "d"
        )
    # held to the latest batch that recorded one; a log from before records none
    Protector(ids, KEY, {"id": "int"}).check_same_as([bronze, None], "d")
    with caplog.at_level("WARNING"):
        Protector(ids, other, {"id": "int"}).check_same_as([None, None], "d")
    assert "carry no record of how they were protected" in caplog.text
