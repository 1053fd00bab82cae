"""Feature stages from config: one PipelineModel that saves, loads and scores
categories it never saw."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import SparkSession

from lakeforge.config.training import Features
from lakeforge.evaluation.importance import feature_names
from lakeforge.features.dateparts import DateParts
from lakeforge.features.stages import FEATURES, build_stages

SPEC = Features.model_validate(
    {
        "derive": {"x_twice": "x * 2"},
        "numeric": {"columns": ["x", "x_twice"], "impute": "median", "scale": "standard"},
        "categorical": {"columns": ["c"], "handle_invalid": "keep"},
        "dates": [{"column": "d", "parts": ["dayofweek"]}],
        "buckets": [{"column": "x", "splits": [2.5]}],
    }
)


def _frame(spark: SparkSession, categories: str):  # type: ignore[no-untyped-def]
    rows = [
        (float(i % 5), categories[i % len(categories)], dt.date(2024, 1, 1 + i % 7), i % 2)
        for i in range(40)
    ]
    rows.append((None, None, None, 1))  # nulls everywhere: imputed / own category
    return spark.createDataFrame(rows, "x double, c string, d date, y int")


def test_features_fit_save_load_and_score_unseen_categories(
    spark: SparkSession, tmp_path: Path
) -> None:
    model = Pipeline(stages=build_stages(SPEC, "binary", "y")).fit(_frame(spark, "ab"))
    model.write().save(str(tmp_path / "features"))
    loaded = PipelineModel.load(str(tmp_path / "features"))
    assert any(isinstance(s, DateParts) for s in loaded.stages)
    scored = loaded.transform(_frame(spark, "abz"))  # 'z' never seen in training
    vectors = [r[FEATURES] for r in scored.select(FEATURES).collect()]
    assert len(vectors) == 41
    assert len({v.size for v in vectors}) == 1
    assert all(v.toArray().tolist() == v.toArray().tolist() for v in vectors)  # no NaN
    names = feature_names(scored.schema, ["x", "x_twice"])
    assert names[:2] == ["x", "x_twice"]
    assert "c=a" in names and "d_dayofweek=2" in names
    assert any(n.startswith("x bucket [") for n in names)


def test_date_parts_keeps_its_params_through_save_and_load(tmp_path: Path) -> None:
    stage = DateParts(inputCol="when", parts=["month", "hour"])
    stage.save(str(tmp_path / "parts"))
    loaded = DateParts.load(str(tmp_path / "parts"))
    assert loaded.getInputCol() == "when"
    assert loaded.outputCols() == ["when_month", "when_hour"]


def test_variance_selection_drops_a_constant_feature_and_keeps_names(
    spark: SparkSession,
) -> None:
    spec = Features.model_validate(
        {
            "numeric": {"columns": ["x", "flat"], "impute": "none", "scale": "none"},
            "select": {"method": "variance", "threshold": 0.0},
        }
    )
    rows = spark.createDataFrame(
        [(float(i), 1.0, i % 2) for i in range(20)], "x double, flat double, y int"
    )
    scored = Pipeline(stages=build_stages(spec, "binary", "y")).fit(rows).transform(rows)
    assert {r[FEATURES].size for r in scored.select(FEATURES).collect()} == {1}
    assert feature_names(scored.schema, ["x", "flat"]) == ["x"]
