"""Casting text rows: the SQL the parser writes survives any header and any
null marker (quotes, backticks, backslashes, dots), and a bad value is named."""

from __future__ import annotations

from pyspark.sql import SparkSession

from lakeforge.config.models import Column
from lakeforge.ingest import parse


def test_odd_names_and_markers_are_quoted_not_interpreted(spark: SparkSession) -> None:
    odd = ["it's", "a`b", "dot.ted", "back\\slash"]
    rows = spark.createDataFrame(
        [
            (" n'a ", "1", "2020-01-02", "\\N", None, "f.csv"),
            ("3.5", "x'y", "2020-13-40", "7", None, "f.csv"),
        ],
        ", ".join(f"`{c.replace('`', '``')}` string" for c in [*odd, parse.RAW, parse.SOURCE_FILE]),
    )
    renamed = parse._renamed(rows, dict(zip(odd, ["q", "b", "d", "s"], strict=True)))
    columns = [
        Column(name="q", type="double"),
        Column(name="b", type="int"),
        Column(name="d", type="date", format="yyyy-MM-dd"),
        Column(name="s", type="long"),
    ]
    typed = parse.type_rows(renamed, columns, ["n'a", "\\N"], "csv").collect()
    first, second = typed
    assert (first["q"], first["b"], first["s"], first[parse.REASON]) == (None, 1, None, None)
    assert str(first["d"]) == "2020-01-02"
    assert (second["q"], second["s"]) == (3.5, 7)
    assert second[parse.REASON] == "b: x'y is not a int; d: 2020-13-40 is not a date"
    assert second[parse.RAW] is not None and "x'y" in second[parse.RAW]


def test_a_name_spark_would_substitute_a_variable_into_is_refused(spark: SparkSession) -> None:
    """Spark replaces `${env:X}` in SQL text before parsing it, quoted or not."""
    import pytest

    from lakeforge.errors import SchemaMismatch

    rows = spark.createDataFrame(
        [("1", None, "f.csv")], "`${env:HOME}` string, _raw string, _source_file string"
    )
    with pytest.raises(SchemaMismatch, match=r"holding '\$\{' cannot be read safely"):
        parse._renamed(rows, {"${env:HOME}": "h"})
