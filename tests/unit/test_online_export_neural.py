"""ONNX export of naive Bayes (every modelType), the multilayer perceptron
and factorization machines: fitted as lakeforge fits them (feature stages,
then the catalogue's estimator), each gives Spark's probabilities and labels
on every scored row, nulls and unseen categories included; a row Spark's
naive Bayes refuses gets no answer; and the parity check fails when a
converter reads a weight wrong."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from py4j.protocol import Py4JJavaError
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml import classification as clf
from pyspark.ml import regression as reg
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import DenseMatrix, DenseVector
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config.training import Candidate, Features
from lakeforge.features.stages import build_stages
from lakeforge.models.catalogue import build, check_candidate
from lakeforge.serving.export import TOLERANCE, convert, export
from lakeforge.serving.signature import feeds
from lakeforge.tuning.search import vector_size

SCHEMA = "x1 double, x2 double, n int, c string, h int, d date, y double, z double"
COLUMNS = ["x1", "x2", "n", "c", "h", "d"]


def _rows(spark: SparkSession, count: int, seed: int, categories: str) -> DataFrame:
    """x1 (normal) and x2 (whole numbers 0..50) with some nulls, n 0..99, c a
    category (some null), h an int category, d a date (some null); y a
    3-class label, z a target. x2 and n never leave the range 600 training
    rows cover, so min-max scaled features stay non-negative."""
    rng = random.Random(seed)
    rows: list[tuple[Any, ...]] = []
    for _ in range(count):
        x1 = rng.gauss(0, 1)
        x2 = float(rng.randrange(51))
        c = rng.choice(categories)
        h = rng.randrange(5)
        d = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(800))
        score = x1 + 0.05 * x2 + (1.5 if c == "a" else 0) + 0.3 * h + rng.gauss(0, 0.7)
        y = 0.0 if score < 0.5 else 1.0 if score < 2 else 2.0
        z = 3 * x1 - 0.2 * x2 + (4.0 if c == "b" else 0) + 0.5 * x1 * h + rng.gauss(0, 0.1)
        rows.append(
            (
                None if rng.random() < 0.05 else x1,
                None if rng.random() < 0.05 else x2,
                rng.randrange(100),
                None if rng.random() < 0.05 else c,
                h,
                None if rng.random() < 0.03 else d,
                y,
                z,
            )
        )
    return spark.createDataFrame(rows, SCHEMA)


def _features(numeric: dict[str, Any] | None) -> Features:
    return Features.model_validate(
        {
            "numeric": numeric,
            "categorical": {"columns": ["c", "h"], "handle_invalid": "keep"},
            "dates": [{"column": "d", "parts": ["dayofweek", "month"]}],
            "buckets": [{"column": "x2", "splits": [10, 25.5]}],
        }
    )


STANDARD = {"columns": ["x1", "x2", "n"], "impute": "median", "scale": "standard"}
MINMAX = {"columns": ["x2", "n"], "impute": "mean", "scale": "minmax"}
NO_SCALE = {"columns": ["x2", "n"], "impute": "median", "scale": "none"}


@dataclass(frozen=True)
class Case:
    name: str
    task: str
    estimator: str  # the catalogue's name
    numeric: dict[str, Any] | None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> int:
        return {"binary": 2, "multiclass": 3, "regression": 0}[self.task]

    @property
    def label(self) -> str:
        return "z" if self.task == "regression" else "y"


CASES = [
    Case("nb-multinomial", "multiclass", "naive_bayes", MINMAX),
    Case("nb-complement", "binary", "naive_bayes", NO_SCALE, {"modelType": "complement"}),
    # Bernoulli takes 0/1 features only: categories, date parts and buckets
    Case("nb-bernoulli", "multiclass", "naive_bayes", None, {"modelType": "bernoulli"}),
    Case("nb-gaussian", "multiclass", "naive_bayes", STANDARD, {"modelType": "gaussian"}),
    Case(
        "nb-gaussian-thresholds",
        "multiclass",
        "naive_bayes",
        STANDARD,
        {"modelType": "gaussian", "thresholds": [0.2, 0.5, 0.3]},
    ),
    Case("mlp-no-hidden", "binary", "mlp", STANDARD, {"maxIter": 15}),
    Case("mlp-two-hidden", "multiclass", "mlp", STANDARD, {"hidden_layers": [6, 4], "maxIter": 20}),
    Case("fm-classifier", "binary", "factorization_machines", STANDARD, {"maxIter": 15}),
    Case("fm-regressor", "regression", "factorization_machines", STANDARD, {"maxIter": 15}),
]
BY_NAME = {case.name: case for case in CASES}


@dataclass(frozen=True)
class Fitted:
    model: PipelineModel
    scored: DataFrame


def _fit(spark: SparkSession, case: Case) -> Fitted:
    """Feature stages, then the catalogue's estimator sized to their output
    (a candidate config accepts); scored rows hold nulls and categories
    training never saw ("e", "f")."""
    spec = _features(case.numeric)
    candidate = Candidate(estimator=case.estimator, params=case.params)
    assert check_candidate(candidate, case.task, spec) is None
    train = _rows(spark, 600, 1, "abcd")
    test = _rows(spark, 300, 2, "abcdef")
    if case.task == "binary":
        train, test = (
            rows.withColumn("y", (rows["y"] > 0).cast("double")) for rows in (train, test)
        )
    label = case.label
    features = Pipeline(stages=build_stages(spec, case.task, label)).fit(train)
    featurised = features.transform(train)
    estimator = build(
        case.estimator,
        case.task,
        case.params,
        label=label,
        n_features=vector_size(featurised),
        n_classes=case.classes,
        seed=7,
    )
    model = PipelineModel(stages=[*features.stages, estimator.fit(featurised)])
    return Fitted(model, model.transform(test))


@pytest.fixture(scope="module")
def fitted(spark: SparkSession) -> Callable[[str], Fitted]:
    """One fit per case for the whole module (the failing-parity tests reuse them)."""
    fits: dict[str, Fitted] = {}

    def get(name: str) -> Fitted:
        if name not in fits:
            fits[name] = _fit(spark, BY_NAME[name])
        return fits[name]

    return get


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_model_matches_spark_on_every_row(
    fitted: Callable[[str], Fitted], case: Case
) -> None:
    fit = fitted(case.name)
    online = export(fit.model, fit.scored, COLUMNS, case.task, case.classes)
    assert online.reason is None, online.reason
    assert online.parity is not None
    assert online.parity.rows == fit.scored.count() == 300
    assert online.parity.largest <= TOLERANCE, online.parity.largest
    assert online.parity.mismatches == 0
    if "thresholds" in case.params:
        # the thresholds moved some labels off the most probable class
        probability = vector_to_array(F.col("probability"))
        most_probable = F.array_position(probability, F.array_max(probability)) - 1
        assert fit.scored.where(F.col("prediction") != most_probable).count() > 0


def _bumped(value: Any) -> Any:
    """The same Spark vector or matrix with its first entry 0.1 larger."""
    values = value.toArray().copy()
    values.flat[0] += 0.1
    if isinstance(value, DenseMatrix):
        return DenseMatrix(value.numRows, value.numCols, values.ravel(order="F"))
    return DenseVector(values)


# a converter reading one weight wrong: (case, model class, the attribute it reads)
PERTURBED = [
    ("nb-multinomial", clf.NaiveBayesModel, "theta"),
    ("nb-gaussian", clf.NaiveBayesModel, "sigma"),
    ("mlp-two-hidden", clf.MultilayerPerceptronClassificationModel, "weights"),
    ("fm-classifier", clf.FMClassificationModel, "factors"),
    ("fm-regressor", reg.FMRegressionModel, "linear"),
]


@pytest.mark.parametrize(
    ("name", "kind", "attribute"), PERTURBED, ids=[f"{n}-{a}" for n, _, a in PERTURBED]
)
def test_parity_fails_when_a_converter_reads_one_weight_wrong(
    fitted: Callable[[str], Fitted],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    kind: type,
    attribute: str,
) -> None:
    case = BY_NAME[name]
    fit = fitted(name)
    true_value = getattr(fit.model.stages[-1], attribute)
    monkeypatch.setattr(kind, attribute, property(lambda _: _bumped(true_value)))
    online = export(fit.model, fit.scored, COLUMNS, case.task, case.classes)
    assert online.parity is not None
    assert not online.parity.holds
    assert online.reason is not None and online.reason.startswith("parity with Spark failed")


def test_a_row_naive_bayes_refuses_gets_no_answer(
    spark: SparkSession, fitted: Callable[[str], Fitted]
) -> None:
    """x2 below anything training saw scales to a negative feature: Spark's
    multinomial naive Bayes fails the batch, the ONNX model answers NaN."""
    fit = fitted("nb-multinomial")
    record = {"x1": 0.0, "x2": -30.0, "n": 5, "c": "a", "h": 1, "d": "2024-02-29"}
    row = spark.createDataFrame([(0.0, -30.0, 5, "a", 1, dt.date(2024, 2, 29), 0.0, 0.0)], SCHEMA)
    with pytest.raises(Py4JJavaError, match="nonnegative"):
        fit.model.transform(row).collect()
    onnx_bytes, signature = convert(fit.model, row.schema, COLUMNS, "multiclass", 3)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    prediction, probability = session.run(
        ["prediction", "probability"], feeds(signature, {k: [v] for k, v in record.items()}, 1)
    )
    assert np.isnan(prediction).all() and np.isnan(probability).all()
