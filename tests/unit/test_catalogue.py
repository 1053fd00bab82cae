"""Every estimator of the catalogue fits and scores for every task it claims,
through the same `build` the search uses."""

from __future__ import annotations

import math

import pytest
from pyspark.ml.linalg import Vectors
from pyspark.sql import DataFrame, SparkSession

from lakeforge.config.training import METRICS, Member, ParamValue
from lakeforge.evaluation.metrics import evaluate
from lakeforge.models.catalogue import CATALOGUE, build

PAIRS = sorted((name, task) for name, tasks in CATALOGUE.items() for task in tasks)
# small models: the point is that each one is wired right, not that it is good
SMALL: dict[str, dict[str, ParamValue | list[ParamValue]]] = {
    "random_forest": {"numTrees": 5, "maxDepth": 3},
    "gbt": {"maxIter": 5, "maxDepth": 2},
    "mlp": {"hidden_layers": [4], "maxIter": 20},
    "factorization_machines": {"maxIter": 10},
    "logistic_regression": {"maxIter": 20},
    "linear_svc": {"maxIter": 20},
    "xgboost": {"n_estimators": 10, "max_depth": 2},
    "stacking": {"numFolds": 2},
}


def _rows(spark: SparkSession, task: str) -> DataFrame:
    rows = []
    for i in range(120):
        a, b = (i % 12) / 12, ((i * 7) % 10) / 10  # non-negative: naive Bayes reads counts
        if task == "regression":
            y = 3 * a - b
        elif task == "binary":
            y = float(a + b > 0.9)
        else:
            y = float(int(a * 3))
        rows.append((Vectors.dense([a, b]), y))
    return spark.createDataFrame(rows, ["features", "y"])


@pytest.mark.parametrize(("name", "task"), PAIRS)
def test_estimator_fits_and_scores(spark: SparkSession, name: str, task: str) -> None:
    rows = _rows(spark, task)
    n_classes = 0 if task == "regression" else (2 if task == "binary" else 3)
    # a stack of two small members of the task (its meta-learner: the default)
    base = (
        [
            Member(estimator="decision_tree", params={"maxDepth": 3}),
            Member(estimator="random_forest", params=SMALL["random_forest"]),
        ]
        if name == "stacking"
        else []
    )
    estimator = build(
        name,
        task,
        SMALL.get(name, {}),
        label="y",
        n_features=2,
        n_classes=n_classes,
        seed=3,
        base=base,
    )
    metrics = evaluate(estimator.fit(rows).transform(rows), task, "y")
    assert set(metrics) == set(METRICS[task])
    finite = {k: v for k, v in metrics.items() if not math.isnan(v)}
    assert set(metrics) - set(finite) <= {"log_loss"}  # only models without probabilities
