"""ONNX export of fitted pipelines (issue 19): every stage lakeforge builds and
every catalogue estimator that can be exported gives, on rows with nulls,
unseen categories and dates, the probabilities and labels Spark gives;
what cannot be exported is named; and the parity check fails when the ONNX
model is not the model Spark scored with."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from decimal import Decimal
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml import classification as clf
from pyspark.ml import regression as reg
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config.training import Features
from lakeforge.features.stages import FEATURES, build_stages
from lakeforge.models.threshold import DecisionThreshold
from lakeforge.serving.export import TOLERANCE, check_parity, convert, export
from lakeforge.serving.signature import NULL_STRING, Input, InvalidRecord, Signature, feeds

SCHEMA = "x1 double, x2 double, n int, c string, h int, d date, y double, z double"


def _rows(spark: SparkSession, count: int, seed: int, categories: str) -> DataFrame:
    """x1, x2 numeric, n an int, c a string category, h an int category, d a
    date (each null now and then); y a 3-class label, z a target."""
    rng = random.Random(seed)
    rows: list[tuple[Any, ...]] = []
    for _ in range(count):
        x1 = rng.gauss(0, 1)
        x2 = rng.uniform(-5, 50)
        c = rng.choice(categories)
        h = rng.randrange(5)
        d = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(800))
        score = x1 + 0.05 * x2 + (1.5 if c == "a" else 0) + 0.3 * h + rng.gauss(0, 0.7)
        y = 0.0 if score < 0.5 else 1.0 if score < 2 else 2.0
        z = 3 * x1 - 0.2 * x2 + (4.0 if c == "b" else 0) + d.month * 0.1 + rng.gauss(0, 0.1)
        rows.append(
            (
                None if rng.random() < 0.05 else x1,
                None if rng.random() < 0.05 else x2,
                # int columns with nulls: a numeric one imputed, a categorical one
                None if rng.random() < 0.05 else rng.randrange(100),
                None if rng.random() < 0.05 else c,
                None if rng.random() < 0.05 else h,
                None if rng.random() < 0.03 else d,
                y,
                z,
            )
        )
    return spark.createDataFrame(rows, SCHEMA)


def _features(**overrides: Any) -> Features:
    spec: dict[str, Any] = {
        "numeric": {"columns": ["x1", "x2", "n"], "impute": "median", "scale": "standard"},
        "categorical": {"columns": ["c", "h"], "handle_invalid": "keep"},
        "dates": [{"column": "d", "parts": ["dayofweek", "month", "year", "day"]}],
        "buckets": [
            {"column": "x2", "splits": [0, 10, 20.5]},
            {"column": "x1", "quantiles": 4},
        ],
    }
    spec.update(overrides)
    return Features.model_validate(spec)


COLUMNS = ["x1", "x2", "n", "c", "h", "d"]


def _fit(
    spark: SparkSession, spec: Features, estimator: Any, task: str, label: str
) -> tuple[PipelineModel, DataFrame]:
    train = _rows(spark, 600, 1, "abcd")
    # scored rows hold categories training never saw ("e", "f") and nulls
    test = _rows(spark, 300, 2, "abcdef")
    stages = [*build_stages(spec, task, label), estimator.setFeaturesCol(FEATURES)]
    model = Pipeline(stages=stages).fit(train)
    return model, model.transform(test)


def _binary(rows: DataFrame) -> DataFrame:
    return rows.withColumn("y", (rows["y"] > 0).cast("double"))


# (task, estimator class, params): built in the test, once Spark is up
ESTIMATORS = [
    ("binary", clf.LogisticRegression, {"regParam": 0.01}),
    ("multiclass", clf.LogisticRegression, {"regParam": 0.01}),
    ("binary", clf.LinearSVC, {"regParam": 0.01}),
    ("binary", clf.DecisionTreeClassifier, {"maxDepth": 5}),
    ("multiclass", clf.RandomForestClassifier, {"numTrees": 10, "seed": 3}),
    ("binary", clf.RandomForestClassifier, {"numTrees": 10, "maxDepth": 6, "seed": 3}),
    ("binary", clf.GBTClassifier, {"maxIter": 10, "maxDepth": 3, "seed": 3}),
    ("regression", reg.LinearRegression, {"regParam": 0.1}),
    ("regression", reg.DecisionTreeRegressor, {"maxDepth": 5}),
    ("regression", reg.RandomForestRegressor, {"numTrees": 10, "seed": 3}),
    ("regression", reg.GBTRegressor, {"maxIter": 10, "seed": 3}),
]


@pytest.mark.parametrize(
    ("task", "kind", "params"), ESTIMATORS, ids=[f"{t}-{k.__name__}" for t, k, _ in ESTIMATORS]
)
def test_every_exportable_estimator_matches_spark_on_every_row(
    spark: SparkSession, task: str, kind: Any, params: dict[str, Any]
) -> None:
    label = "z" if task == "regression" else "y"
    estimator = kind(labelCol=label, **params)
    spec = _features()
    if task == "binary":
        train = _binary(_rows(spark, 600, 1, "abcd"))
        test = _binary(_rows(spark, 300, 2, "abcdef"))
        stages = [*build_stages(spec, task, label), estimator.setFeaturesCol(FEATURES)]
        model = Pipeline(stages=stages).fit(train)
        scored = model.transform(test)
    else:
        model, scored = _fit(spark, spec, estimator, task, label)
    classes = 0 if task == "regression" else 2 if task == "binary" else 3
    online = export(model, scored, COLUMNS, task, classes)
    if isinstance(estimator, clf.LinearSVC):
        # margins, no probabilities: named, not served
        assert online.reason is not None and "no class probabilities" in online.reason
        return
    assert online.reason is None, online.reason
    assert online.parity is not None
    # every scored row was checked, counted by the tasks that checked it
    assert online.parity.rows == scored.count() == 300
    assert online.parity.largest <= TOLERANCE, online.parity.largest
    assert online.parity.mismatches == 0


def test_one_hot_off_trees_split_on_category_sets(spark: SparkSession) -> None:
    """Without one-hot encoding a tree splits an index on a set of categories
    (onnxmltools kept only the first of them): every row still matches."""
    spec = _features(
        categorical={"columns": ["c", "h"], "handle_invalid": "keep", "one_hot": False},
        numeric={"columns": ["x1", "x2"], "impute": "mean", "scale": "none"},
    )
    estimator = clf.RandomForestClassifier(labelCol="y", numTrees=15, maxDepth=6, seed=5)
    model, scored = _fit(spark, spec, estimator, "multiclass", "y")
    splits = "\n".join(tree.toDebugString for tree in model.stages[-1].trees)
    # sets of several categories, and a feature tested again right after a set
    # (onnxruntime folded such runs of equality tests into one: a separator fixed it)
    assert re.search(r"in \{[0-9.]+,[0-9.]+", splits)
    online = export(model, scored, COLUMNS, "multiclass", 3)
    assert online.reason is None, online.reason


@pytest.mark.parametrize("scale", ["minmax", "robust", "none"])
def test_other_scalers_and_a_selector_match_spark(spark: SparkSession, scale: str) -> None:
    spec = _features(
        numeric={"columns": ["x1", "x2", "n"], "impute": "mean", "scale": scale},
        select={"method": "variance", "threshold": 0.01},
    )
    model, scored = _fit(spark, spec, clf.LogisticRegression(labelCol="y"), "multiclass", "y")
    online = export(model, scored, COLUMNS, "multiclass", 3)
    assert online.reason is None, online.reason


def test_a_tuned_decision_threshold_is_exported(spark: SparkSession) -> None:
    train = _binary(_rows(spark, 600, 1, "abcd"))
    test = _binary(_rows(spark, 300, 2, "abcdef"))
    stages = build_stages(_features(), "binary", "y")
    fitted = Pipeline(stages=[*stages, clf.LogisticRegression(labelCol="y")]).fit(train)
    model = PipelineModel(stages=[*fitted.stages, DecisionThreshold(threshold=0.3)])
    scored = model.transform(test)
    online = export(model, scored, COLUMNS, "binary", 2)
    assert online.reason is None, online.reason
    # rows the threshold moved to class 1: the ONNX labels (checked on every
    # row, mismatches 0) follow the threshold, not 0.5
    positive = vector_to_array(F.col("probability"))[1]
    assert scored.where((positive >= 0.3) & (positive < 0.5)).count() > 0
    assert online.parity is not None and online.parity.mismatches == 0


def test_derived_numeric_features_are_rebuilt_from_sparks_parse_tree(spark: SparkSession) -> None:
    """`features.derive` in the numeric subset: arithmetic, functions, casts,
    Spark's nulls (a log of a number <= 0: x2 goes down to -5) imputed as
    Spark imputes them; a column only a derived feature reads (z) becomes an
    input of its own."""
    derive = {
        "x3": "x1 * x2",
        "x4": "log(x2) + abs(n) / 3",
        "x5": "CAST(x2 AS INT) * 2 - n",
        "x6": "pow(x1, 2) + sqrt(abs(z)) + log10(n + 1)",
    }
    spec = _features(
        derive=derive,
        numeric={"columns": ["x1", "x2", "n", *derive], "impute": "median"},
    )
    model, scored = _fit(spark, spec, clf.LogisticRegression(labelCol="y"), "multiclass", "y")
    online = export(model, scored, COLUMNS, "multiclass", 3)
    assert online.reason is None, online.reason
    assert online.signature is not None
    assert online.signature.names() == [*COLUMNS, "z"]
    assert online.parity is not None and online.parity.rows == 300


def test_a_derived_feature_outside_the_subset_is_named_as_not_exportable(
    spark: SparkSession,
) -> None:
    spec = _features(
        derive={"x3": "x1 * x2", "c_len": "length(c)"},
        numeric={"columns": ["x1", "x2", "x3", "c_len"]},
    )
    model, scored = _fit(spark, spec, clf.LogisticRegression(labelCol="y"), "multiclass", "y")
    online = export(model, scored, COLUMNS, "multiclass", 3)
    assert online.reason is not None
    assert online.reason.startswith("not exportable: stage SQLTransformer")
    assert "derived column 'c_len'" in online.reason and "length" in online.reason
    assert online.onnx is None


def test_refusing_unseen_categories_is_exported_only_for_string_inputs(
    spark: SparkSession,
) -> None:
    """handle_invalid error: the server refuses an unseen string category
    (422) as Spark refuses it; an unseen int category or date part it could
    not refuse, so such a model is named as not exportable."""
    refusing = _features(
        categorical={"columns": ["c"], "handle_invalid": "error"}, dates=[], buckets=[]
    )
    train = _rows(spark, 600, 1, "abcd").where("c IS NOT NULL")
    stages = [*build_stages(refusing, "multiclass", "y"), clf.LogisticRegression(labelCol="y")]
    model = Pipeline(stages=stages).fit(train)
    scored = model.transform(_rows(spark, 100, 2, "abcd").where("c IS NOT NULL"))
    online = export(model, scored, COLUMNS, "multiclass", 3)
    assert online.reason is None, online.reason
    assert online.signature is not None
    known = {i.name: i.categories for i in online.signature.inputs}
    assert known["c"] is not None and set(known["c"]) == set("abcd")
    with pytest.raises(InvalidRecord, match="unseen category 'e'") as refused:
        feeds(online.signature, {"c": ["e"]}, 1)
    assert refused.value.field == "c"

    on_ints = _features(
        categorical={"columns": ["h"], "handle_invalid": "error"}, dates=[], buckets=[]
    )
    train = _rows(spark, 600, 1, "abcd").where("h IS NOT NULL")
    stages = [*build_stages(on_ints, "multiclass", "y"), clf.LogisticRegression(labelCol="y")]
    model = Pipeline(stages=stages).fit(train)
    scored = model.transform(train.limit(50))
    online = export(model, scored, COLUMNS, "multiclass", 3)
    assert online.reason is not None and "handle_invalid 'error'" in online.reason


def test_feeds_refuse_what_spark_could_never_have_read() -> None:
    signature = Signature(
        "binary",
        2,
        (Input("n", "int"), Input("x", "number"), Input("d", "date"), Input("c", "string")),
    )
    for field, value, problem in [
        ("n", 2.5, "expected an integer"),
        ("n", 2**63, "out of range"),
        ("x", 10**400, "out of range"),
        ("x", "1.5", "expected a number"),
        ("d", "2024-02-30", "expected a date"),
        ("c", 7, "expected a string"),
    ]:
        with pytest.raises(InvalidRecord, match=problem) as refused:
            feeds(signature, {field: [value]}, 1)
        assert refused.value.field == field
    # a decimal column's values (pandas hands Decimal objects over) are numbers
    assert feeds(signature, {"x": [Decimal("2.50")]}, 1)["x"][0, 0] == 2.5
    # pandas' own missing markers are nulls, as None is
    tensors = feeds(signature, {"n": [pd.NA], "d": [pd.NaT], "c": [pd.NA]}, 1)
    assert np.isnan(tensors["n"][0, 0]) and np.isnan(tensors["d"][0, 0])
    assert tensors["c"][0, 0] == NULL_STRING


def test_parity_fails_with_the_worst_row_when_the_models_differ(spark: SparkSession) -> None:
    """The check can fail: the ONNX model of one fit against the Spark scores
    of another (a tree converter that drops a split would look the same)."""
    spec = _features()
    model_a, _ = _fit(
        spark, spec, clf.LogisticRegression(labelCol="y", regParam=0.0), "multiclass", "y"
    )
    _, scored_b = _fit(
        spark, spec, clf.LogisticRegression(labelCol="y", regParam=1.0), "multiclass", "y"
    )
    onnx_a, signature = convert(model_a, scored_b.schema, COLUMNS, "multiclass", 3)
    parity = check_parity(scored_b, onnx_a, signature)
    assert not parity.holds
    assert parity.largest > 0.01
    worst = json.loads(parity.worst)
    assert set(worst["inputs"]) == set(COLUMNS)
    assert worst["difference"] == pytest.approx(parity.largest)


def test_the_onnx_model_answers_one_record_like_spark(spark: SparkSession) -> None:
    """A record as JSON gives it (ISO date, null, an unseen category): the
    same tensors the parity check fed, the same answer as Spark."""
    spec = _features()
    model, _ = _fit(spark, spec, clf.LogisticRegression(labelCol="y"), "multiclass", "y")
    record = {"x1": 0.4, "x2": None, "n": 7, "c": "zz", "h": 3, "d": "2024-02-29"}
    row = spark.createDataFrame([(0.4, None, 7, "zz", 3, dt.date(2024, 2, 29), 0.0, 0.0)], SCHEMA)
    expected = model.transform(row).select("probability", "prediction").first()
    assert expected is not None
    onnx_bytes, signature = convert(model, row.schema, COLUMNS, "multiclass", 3)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    prediction, probability = session.run(
        ["prediction", "probability"], feeds(signature, {k: [v] for k, v in record.items()}, 1)
    )
    assert prediction[0, 0] == expected["prediction"]
    np.testing.assert_allclose(probability[0], expected["probability"].toArray(), atol=1e-9)
