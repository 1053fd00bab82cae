"""Each rule type catches what it should and lets good rows through (one pass)."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from lakeforge.clean.transform import REPEATS, deduplicate, normalise, repeated_keys
from lakeforge.config.cleaning import CleanSteps, ParseSpec, Rule
from lakeforge.quality.rules import FAILED, WARNED, summarise, tag

ROWS = [
    (1, "UA", 10.0, "N123AB"),
    (2, None, 20.0, "N9"),
    (3, "XX", 30.0, "BAD-TAIL"),
    (4, "AA", -5.0, None),
    (5, "AA", 99999.0, "N1"),
]
SCHEMA = "id int, carrier string, distance double, tailnum string"
RULES = [
    Rule(type="not_null", column="carrier"),
    Rule(type="allowed", column="carrier", values=["UA", "AA"]),
    Rule(type="range", column="distance", min=0, max=5000),
    Rule(type="regex", column="tailnum", pattern="^N[0-9A-Z]+$", severity="warn"),
    Rule(name="even_or_small", type="sql", expression="id % 2 = 0 OR id < 4"),
]


def test_each_row_rule_flags_exactly_the_rows_that_break_it(spark: SparkSession) -> None:
    tagged = tag(normalise(spark.createDataFrame(ROWS, SCHEMA), CleanSteps()), RULES)
    by_id = {r["id"]: (sorted(r[FAILED]), r[WARNED]) for r in tagged.collect()}
    assert by_id == {
        1: ([], []),
        2: (["not_null:carrier"], []),  # a null breaks only not_null
        3: (["allowed:carrier"], ["regex:tailnum"]),
        4: (["range:distance"], []),
        5: (["even_or_small", "range:distance"], []),
    }
    summary = summarise(tagged, RULES, [])
    assert (summary.rows, summary.failed) == (5, 4)
    assert summary.counts == {
        "not_null:carrier": 1,
        "allowed:carrier": 1,
        "range:distance": 2,
        "regex:tailnum": 1,
        "even_or_small": 1,
    }


def test_normalise_trims_fixes_spellings_parses_locale_numbers_and_derives(
    spark: SparkSession,
) -> None:
    df = spark.createDataFrame(
        [(1, "  ua ", "1.234,5"), (2, "United", "oops"), (3, "", None)],
        "id int, carrier string, amount string",
    )
    steps = CleanSteps(
        upper=["carrier"],
        replace={"carrier": {"UNITED": "UA"}},
        parse={"amount": ParseSpec(type="double", decimal=",", group=".")},
        derive={"double_amount": "amount * 2"},
    )
    rows = {r["id"]: r for r in tag(normalise(df, steps), []).collect()}
    assert (rows[1]["carrier"], rows[1]["amount"], rows[1]["double_amount"]) == (
        "UA",
        1234.5,
        2469.0,
    )
    assert rows[2]["carrier"] == "UA" and rows[2][FAILED] == ["parse:amount"]
    assert rows[3]["carrier"] is None and rows[3][FAILED] == []


def test_dedupe_keeps_the_latest_row_per_key(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [(1, "old", 1), (1, "new", 2), (2, "only", 1)], "id int, v string, _ingested_at int"
    )
    kept = deduplicate(df, ["id"], ["_ingested_at DESC"])
    assert sorted((r["id"], r["v"]) for r in kept.collect()) == [(1, "new"), (2, "only")]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"type": "range", "column": "x"}, "needs `min` and/or `max`"),
        ({"type": "regex", "column": "x", "pattern": "("}, "not a valid regex"),
        ({"type": "row_count", "min": 1, "severity": "drop"}, "severity warn or fail"),
        ({"type": "sql"}, "needs `expression`"),
    ],
)
def test_incomplete_rules_are_config_errors(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rule.model_validate(rule)


def test_dedupe_matches_null_keys_as_merge_does(spark: SparkSession) -> None:
    """Rows whose keys are null in the same place are one key (MERGE matches
    them with <=>): dedupe keeps one, else both reach MERGE and silver holds
    the key twice."""
    df = spark.createDataFrame(
        [(None, 1, "old", 1), (None, 1, "new", 2), (None, 2, "other", 1), (3, 1, "x", 1)],
        "a int, b int, v string, _ingested_at int",
    )
    kept = deduplicate(df, ["a", "b"], ["_ingested_at DESC"]).collect()
    assert sorted((r["a"] or 0, r["b"], r["v"]) for r in kept) == [
        (0, 1, "new"),
        (0, 2, "other"),
        (3, 1, "x"),
    ]


def test_repeated_keys_found_once_serve_the_count_and_the_dedupe(spark: SparkSession) -> None:
    """Clean finds the repeated keys in one aggregation and uses it twice: the
    rows dedupe must remove (null keys one key, as MERGE matches) and the
    dedupe itself, which keeps the same rows as when it finds them alone."""
    df = spark.createDataFrame(
        [
            (None, 1, "a", 1),
            (None, 1, "b", 2),
            (None, 1, "c", 3),
            (2, 2, "d", 1),
            (2, 2, "e", 1),
            (3, None, "f", 1),
        ],
        "a int, b int, v string, _ingested_at int",
    )
    repeated = repeated_keys(df, ["a", "b"])
    extra = sum(r[REPEATS] - 1 for r in repeated.collect())
    pandas_rows = df.toPandas()
    expected = len(pandas_rows) - len(pandas_rows.drop_duplicates(["a", "b"]))
    assert extra == expected == 3
    shared = deduplicate(df, ["a", "b"], ["_ingested_at DESC"], repeated).collect()
    alone = deduplicate(df, ["a", "b"], ["_ingested_at DESC"]).collect()
    assert sorted(map(tuple, shared), key=str) == sorted(map(tuple, alone), key=str)
    assert len(shared) == len(df.collect()) - extra
