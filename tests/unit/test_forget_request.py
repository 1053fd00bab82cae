"""What `lakeforge forget` accepts as a request, and how it finds a subject's
rows in each kind of table without the values entering the SQL text."""

from __future__ import annotations

import json
import re

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.errors import ConfigError
from lakeforge.privacy import forget
from lakeforge.privacy.keys import pseudonym
from lakeforge.privacy.request import (
    Request,
    check_columns,
    check_purpose,
    parse_keys,
    parse_where,
)

KEY = b"unit-test-key-0123456789abcdef"


def test_where_takes_equalities_joined_by_and_and_or_and_in_lists(spark: SparkSession) -> None:
    request = parse_where(
        spark, "(a = 'x' AND b = 2) OR (b IN (3, 4) AND a = \"y\") OR a = 'x' AND b = 2"
    )
    assert request.columns == ("a", "b")
    assert request.subjects == (("x", "2"), ("y", "3"), ("y", "4"))  # the repeat once
    assert parse_where(spark, "`odd name` <=> DATE '2024-01-31'").subjects == (("2024-01-31",),)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("id LIKE 'SECRET%'", "LIKE"),
        ("id > 'SECRET'", ">"),
        ("lower(id) = 'SECRET'", "function"),
        ("id = upper('SECRET')", "where a value goes"),
        ("id = 'SECRET' OR name = 'SECRET'", "same columns"),
        ("id = 'SECRET' AND id = 'SECRET2'", "named twice"),
        ("t.id = 'SECRET'", "qualified"),
        ("id = NULL", "null"),
        ("NOT id = 'SECRET'", "NOT"),
        ("id = 'SECRET'; DROP TABLE silver", "';' ends a statement"),
        ("id = (SELECT max(id) FROM silver)", "SELECT starts a statement"),
        ("id = 'SECRET' -- and", "starts a comment"),
        ("id = 'SECRET' AND", "alias"),
        ("id = = 'SECRET'", "not a valid SQL expression"),
    ],
)
def test_a_where_of_another_form_is_refused_without_quoting_it(
    spark: SparkSession, text: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_where(spark, text)
    assert reason in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_a_keys_file_names_the_columns_and_holds_a_subject_per_row() -> None:
    request = parse_keys("id,email\n7,a@x.org\n\n8,b@x.org\n7,a@x.org\n", "k.csv")
    assert (request.columns, request.kind) == (("id", "email"), "keys")
    assert request.subjects == (("7", "a@x.org"), ("8", "b@x.org"))
    for text, reason in [
        ("", "first line must name"),
        ("id,id\n1,2\n", "first line must name"),
        ("id\n", "no subject"),
        ("id,email\n7\n", "line 2 has 1 field(s)"),
        ("id,email\n7,\n", "line 2 has an empty value"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(reason)):
            parse_keys(text, "k.csv")


def test_unknown_columns_are_named() -> None:
    request = Request(("id", "emial"), (("1", "x"),), "where")
    with pytest.raises(ConfigError, match="does not hold: emial"):
        check_columns(request, ["id", "email"], "people")


def test_a_pseudonymised_value_is_looked_for_as_given_as_spark_writes_it_and_as_its_pseudonym() -> (
    None
):
    request = Request(("id", "city"), (("042", "Oslo"),), "keys")
    subjects = forget.request_forms(request, [("42", "Oslo")], ["id"], KEY)
    assert subjects.forms == (
        (frozenset({"042", "42", pseudonym(KEY, "42")}), frozenset({"Oslo"})),
    )
    assert sorted(subjects.rows()) == sorted(
        [("042", "Oslo"), ("42", "Oslo"), (pseudonym(KEY, "42"), "Oslo")]
    )


def test_values_are_written_as_spark_writes_their_column_type(spark: SparkSession) -> None:
    types = {"id": "int", "day": "date", "name": "string"}
    request = Request(("id", "day", "name"), (("042", "2024-01-31", " Ann"),), "keys")
    assert forget.canonical_values(spark, request, types) == [("42", "2024-01-31", " Ann")]
    bad = Request(("id", "name"), (("7", "x"), ("SECRET", "y")), "keys")
    with pytest.raises(ConfigError, match="subject 2: its id is not a valid int") as caught:
        forget.canonical_values(spark, bad, types)
    assert "SECRET" not in str(caught.value)


def test_each_kind_of_table_is_matched_with_a_condition_that_names_columns_only(
    spark: SparkSession,
) -> None:
    secret = "C-42"
    subjects = forget.request_forms(
        Request(("customer_id",), ((secret,),), "where"), [(secret,)], ["customer_id"], KEY
    )
    hidden = pseudonym(KEY, secret)
    tables = {
        "silver": (
            spark.createDataFrame(
                [(hidden, 1.0), ("C-421", 2.0), (secret, 3.0), (None, 4.0)],
                "customer_id string, x double",
            ),
            [1.0, 3.0],
        ),
        "bronze_quarantine": (
            spark.createDataFrame(
                [(f"{secret},abc",), (f"C-421,{secret}x",), (f"x,{hidden},y",), ("C-4,2",)],
                "_raw string",
            ),
            # a line that did not split: only a value of 8+ characters or a pseudonym
            [f"x,{hidden},y"],
        ),
        "silver_quarantine": (
            spark.createDataFrame(
                [(json.dumps({"customer_id": hidden, "x": 1}),), ('{"customer_id":"C-421"}',)],
                "_row string",
            ),
            [json.dumps({"customer_id": hidden, "x": 1})],
        ),
    }
    for name, (frame, expected) in tables.items():
        match = forget.plan_match(frame.columns, [subjects])
        assert match is not None, name
        assert secret not in match.condition and hidden not in match.condition
        found = match.rows_of(frame)
        column = frame.columns[-1] if name == "silver" else frame.columns[0]
        assert sorted(r[0] for r in found.select(column).collect()) == sorted(expected), name
    monitoring = spark.createDataFrame([("x1", 0.1)], "feature string, psi double")
    assert forget.plan_match(monitoring.columns, [subjects]) is None


def test_the_history_pattern_finds_a_value_as_a_token_escaped_or_cut_to_its_statistics_prefix(
    spark: SparkSession,
) -> None:
    long = "p" * 40
    pattern = forget.history_pattern({"C-42", 'say "hi"', long})
    texts = {
        '{"minValues":{"id":"C-42"}}': True,
        '{"minValues":{"id":"C-421"}}': False,
        '{"v":"say \\"hi\\""}': True,
        '{"maxValues":{"h":"' + "p" * 32 + '\\uDBFF"}}': True,
        '{"maxValues":{"h":"' + "p" * 31 + '"}}': False,
    }
    frame = spark.createDataFrame([(t,) for t in texts], "text string")
    needle = spark.createDataFrame([(pattern,)], "pattern string")
    found = {r[0] for r in frame.join(needle, F.expr("text RLIKE pattern"), "semi").collect()}
    assert found == {t for t, hit in texts.items() if hit}


def test_the_request_reference_is_keyed_and_is_no_pseudonym_of_a_value() -> None:
    request = Request(("id",), (("C-42",), ("C-7",)), "keys")
    ref = forget.request_reference(KEY, request, [("C-42",), ("C-7",)])
    again = forget.request_reference(KEY, request, [("C-7",), ("C-42",)])
    assert ref == again and re.fullmatch(r"[0-9a-f]{64}", ref)
    assert ref not in {pseudonym(KEY, "C-42"), pseudonym(KEY, "C-7")}
    assert ref != forget.request_reference(
        b"another-key-0123456789", request, [("C-42",), ("C-7",)]
    )


def _raw_hits(
    spark: SparkSession,
    columns: tuple[str, ...],
    subject: tuple[str, ...],
    lines: list[str],
    types: dict[str, str] | None = None,
) -> list[str]:
    request = Request(columns, (subject,), "where")
    canonical = forget.canonical_values(spark, request, types) if types else [subject]
    subjects = forget.request_forms(request, canonical, [], KEY)
    frame = spark.createDataFrame([(line,) for line in lines], "_raw string")
    match = forget.plan_match(frame.columns, [subjects])
    assert match is not None
    return sorted(r[0] for r in match.rows_of(frame).collect())


def test_a_quarantined_line_is_matched_per_column_as_json_and_by_long_tokens_as_text(
    spark: SparkSession,
) -> None:
    # a short value does not find other people's lines
    assert (
        _raw_hits(
            spark,
            ("customer_id",),
            ("7",),
            ["7,Ann,0.5,x", "12,Bob,0.7,x", "14,Di,7,x"],
            {"customer_id": "int"},
        )
        == []
    )
    assert _raw_hits(spark, ("customer_id",), ("042",), ["99,Bob,42"], {"customer_id": "int"}) == []
    # JSON: per column, whatever the length; not a value of another column
    rows = [
        json.dumps({"customer_id": "7", "full_name": "Ann"}),
        json.dumps({"customer_id": "12", "full_name": "7"}),
    ]
    assert _raw_hits(spark, ("customer_id",), ("7",), rows) == [rows[0]]
    # not next to a letter of any script
    assert (
        _raw_hits(spark, ("full_name",), ("Zoe Smith",), ["C-1,Zoe Smithë,1", "C-1,éZoe Smith,1"])
        == []
    )
    assert _raw_hits(spark, ("full_name",), ("Zoe Smith",), ["C-1,Zoe Smith,1"]) == [
        "C-1,Zoe Smith,1"
    ]
    # two columns: both needed, each as a value of its own column in JSON
    pair = [
        json.dumps({"first": "Leonardo", "last": "Annabelle"}),
        json.dumps({"first": "Annabelle", "last": "Leonardo"}),
        "C-1,Annabelle,Someoneelse,1",
        "C-2,Leonardo,Annabelle,1",
    ]
    assert _raw_hits(spark, ("first", "last"), ("Leonardo", "Annabelle"), pair) == sorted(
        [pair[0], pair[3]]
    )
    assert (
        _raw_hits(spark, ("first", "last"), ("Lee", "Ann"), ["C-1,Ann,Lee,1", "C-2,Lee,Ann,1"])
        == []
    )
    # a value with quotes: JSON-escaped and CSV-quoted
    quoted = 'Anna "Nan" Lee'
    lines = [json.dumps({"full_name": quoted}), 'C-9,"Anna ""Nan"" Lee",1', "C-8,Anna Lee,1"]
    assert _raw_hits(spark, ("full_name",), (quoted,), lines) == sorted(lines[:2])


@pytest.mark.parametrize(
    "text, reason",
    [
        ("id = ''", "empty"),
        ("id = '   '", "empty"),
        ("id IN ('SECRET', '')", "empty"),
        ("a IN ('SECRET', 'x') AND b IN ('1', '2')", "more than one IN"),
        ("id = '${SECRET}'", "${"),
    ],
)
def test_a_where_meaning_everyone_is_refused(spark: SparkSession, text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_where(spark, text)
    assert reason in str(caught.value)
    assert "SECRET" not in str(caught.value)
    assert parse_where(spark, "a IN ('x', 'y') AND b = '1'").subjects == (("x", "1"), ("y", "1"))


def test_request_columns_must_identify_a_person() -> None:
    protected = {"email": "pseudonymise", "card": "mask", "age": "generalise"}
    check_purpose(Request(("id", "email"), (("1", "x"),), "where"), ["id"], protected, False)
    with pytest.raises(ConfigError, match=r"segment.*--any-column"):
        check_purpose(Request(("segment",), (("n",),), "where"), ["id"], protected, False)
    check_purpose(Request(("segment",), (("n",),), "where"), ["id"], protected, True)
    for column, word in [("card", "masked"), ("age", "generalised")]:
        with pytest.raises(ConfigError, match=f"{column}.*{word}"):
            check_purpose(Request((column,), (("n",),), "where"), ["id"], protected, True)


def test_the_history_is_searched_for_long_values_and_pseudonyms_only(spark: SparkSession) -> None:
    commit = spark.createDataFrame(
        [('{"commitInfo":{"operationMetrics":{"numOutputRows":"7"}}}',)], "text string"
    )
    assert forget.history_values({"7", "C-42", "Aaltje Forgetmenot"}) == {"Aaltje Forgetmenot"}
    assert not forget.holds_any(commit, {"7"})
