"""Monitor derives a batch's inputs with the model's leading derivation
stages read from the saved model's metadata (not the whole model loaded):
the same columns and values as the loaded model's own stages give."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import SQLTransformer, StringIndexer
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from lakeforge.features.dateparts import DateParts
from lakeforge.monitoring import profile


def test_saved_derivation_equals_the_loaded_models_own(spark: SparkSession, tmp_path: Path) -> None:
    rows = spark.createDataFrame(
        [(1, 2.0, "a", date(2026, 1, 5)), (2, -1.5, "b", date(2026, 7, 11)), (3, 0.5, "a", None)],
        "id int, x double, c string, d date",
    )
    stages = [
        SQLTransformer(statement="SELECT *, x * 2 AS x2 FROM __THIS__"),
        DateParts(inputCol="d", parts=["dayofweek", "month"]),
        StringIndexer(inputCol="c", outputCol="c__idx"),
        # after the indexer: not a leading derivation stage, so not applied
        SQLTransformer(statement="SELECT *, x + 1 AS late FROM __THIS__"),
    ]
    path = str(tmp_path / "model")
    Pipeline(stages=stages).fit(rows).write().save(path)

    expected = profile.derivation(PipelineModel.load(path)).transform(rows)
    found = profile.saved_derivation(path).transform(rows)
    assert found.columns == [*rows.columns, "x2", "d_dayofweek", "d_month"]
    assert found.columns == expected.columns
    assertDataFrameEqual(found, expected)
