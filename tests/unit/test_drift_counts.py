"""The binary search that places a value among a column's bin edges and KS
grid counts the points strictly below it, as the definition does: values on
an edge, below and above every point, NaN (above every number, as Spark
compares), infinities and missing values."""

from __future__ import annotations

import math

from pyspark.sql import SparkSession

from lakeforge.monitoring import drift

EDGES = [-1.0, 0.0, 0.5, 2.0, 7.0]
GRID = [-3.0, -1.0, 0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 7.0, 9.0, 11.0]
VALUES = [-5.0, -1.0, -0.5, 0.0, 0.5, 0.75, 2.0, 7.0, 8.0, 12.0]
SPECIAL = [math.nan, math.inf, -math.inf, None]


def _below(value: float, points: list[float]) -> int:
    if math.isnan(value):
        return len(points)  # Spark: NaN > any number
    return sum(1 for p in points if value > p)


def test_each_value_is_placed_by_the_points_strictly_below_it(spark: SparkSession) -> None:
    rows = [(v, -v if v is not None else None) for v in [*VALUES, *VALUES[::3], *SPECIAL]]
    frame = spark.createDataFrame(rows, "a double, b double")
    plans = [(0, EDGES, GRID), (1, sorted(-e for e in EDGES), [])]
    counted = drift._numeric_counts(frame, ["a", "b"], plans)
    for i, column in enumerate(["a", "b"]):
        _, edges, grid = plans[i]
        expected: dict[tuple[int | None, int | None], float] = {}
        for row in rows:
            value = row[i]
            key = (None, None) if value is None else (_below(value, edges), _below(value, grid))
            expected[key] = expected.get(key, 0.0) + 1.0
        found = {(b, g): n for b, g, n in counted[i]}
        assert found == expected, column
