"""The estimators lakeforge can search over, by the names config uses.

Each name maps, per task, to a Spark ML estimator class. Checking a
candidate reads the class's declared `Param`s and their type converters only,
so a typo in an estimator or parameter name fails before Spark starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pyspark.ml.param import Param

if TYPE_CHECKING:
    from pyspark.ml import Estimator

    from lakeforge.config.training import Candidate, Features, ParamValue

_C = "pyspark.ml.classification"
_R = "pyspark.ml.regression"

CATALOGUE: dict[str, dict[str, str]] = {
    "logistic_regression": {
        "binary": f"{_C}.LogisticRegression",
        "multiclass": f"{_C}.LogisticRegression",
    },
    "linear_regression": {"regression": f"{_R}.LinearRegression"},
    "decision_tree": {
        "binary": f"{_C}.DecisionTreeClassifier",
        "multiclass": f"{_C}.DecisionTreeClassifier",
        "regression": f"{_R}.DecisionTreeRegressor",
    },
    "random_forest": {
        "binary": f"{_C}.RandomForestClassifier",
        "multiclass": f"{_C}.RandomForestClassifier",
        "regression": f"{_R}.RandomForestRegressor",
    },
    "gbt": {"binary": f"{_C}.GBTClassifier", "regression": f"{_R}.GBTRegressor"},
    "linear_svc": {"binary": f"{_C}.LinearSVC"},
    "naive_bayes": {"binary": f"{_C}.NaiveBayes", "multiclass": f"{_C}.NaiveBayes"},
    "mlp": {
        "binary": f"{_C}.MultilayerPerceptronClassifier",
        "multiclass": f"{_C}.MultilayerPerceptronClassifier",
    },
    "factorization_machines": {
        "binary": f"{_C}.FMClassifier",
        "regression": f"{_R}.FMRegressor",
    },
}

# Set by lakeforge itself: the column wiring of the pipeline.
RESERVED = frozenset(
    {"featuresCol", "labelCol", "predictionCol", "probabilityCol", "rawPredictionCol", "layers"}
)
# mlp: the hidden layer sizes; input and output sizes come from the data.
HIDDEN_LAYERS = "hidden_layers"


def estimator_class(name: str, task: str) -> type[Estimator[Any]]:
    module, _, cls = CATALOGUE[name][task].rpartition(".")
    found: type[Estimator[Any]] = getattr(importlib.import_module(module), cls)
    return found


def param_names(name: str, task: str) -> list[str]:
    cls = estimator_class(name, task)
    names = [n for n in dir(cls) if isinstance(getattr(cls, n, None), Param)]
    extra = [HIDDEN_LAYERS] if name == "mlp" else []
    return sorted(n for n in [*names, *extra] if n not in RESERVED)


def check_candidate(candidate: Candidate, task: str, features: Features) -> str | None:
    """What is wrong with `candidate` for `task`, or None."""
    if candidate.estimator not in CATALOGUE:
        return f"unknown estimator; the catalogue has: {', '.join(sorted(CATALOGUE))}"
    tasks = CATALOGUE[candidate.estimator]
    if task not in tasks:
        return f"does not do {task} (it does: {', '.join(tasks)})"
    both = sorted(set(candidate.params) & set(candidate.grid))
    if both:
        return f"{', '.join(both)} in both params and grid"
    cls = estimator_class(candidate.estimator, task)
    allowed = param_names(candidate.estimator, task)
    values: list[tuple[str, object]] = [
        *candidate.params.items(),
        *((k, v) for k, vs in candidate.grid.items() for v in vs),
    ]
    for key, value in values:
        if key not in allowed:
            return f"unknown param {key!r}; it takes: {', '.join(allowed)}"
        if key == HIDDEN_LAYERS:
            if not (isinstance(value, list) and all(isinstance(v, int) and v > 0 for v in value)):
                return f"{HIDDEN_LAYERS} must be a list of positive layer sizes, got {value!r}"
            continue
        try:
            getattr(cls, key).typeConverter(value)
        except TypeError as exc:
            return f"param {key}={value!r}: {exc}"
    if candidate.estimator == "naive_bayes":
        model_type = candidate.params.get("modelType", "multinomial")
        scale = features.numeric.scale if features.numeric else "none"
        if model_type != "gaussian" and scale not in ("minmax", "none"):
            return (
                f"{model_type} naive Bayes needs non-negative features: use "
                "features.numeric.scale minmax (or modelType gaussian)"
            )
    return None


def build(
    name: str,
    task: str,
    params: Mapping[str, ParamValue | list[ParamValue]],
    *,
    label: str,
    n_features: int,
    n_classes: int,
    seed: int,
) -> Estimator[Any]:
    """The estimator `name` for `task`, reading `features` and `label`, with
    `params` set (the seed too, unless given, so fits repeat exactly)."""
    estimator = estimator_class(name, task)()
    estimator.set(estimator.getParam("featuresCol"), "features")
    estimator.set(estimator.getParam("labelCol"), label)
    if estimator.hasParam("seed") and "seed" not in params:
        estimator.set(estimator.getParam("seed"), seed)
    for key, value in params.items():
        if key == HIDDEN_LAYERS:
            assert isinstance(value, list)
            layers = [n_features, *(int(v) for v in value), n_classes]  # type: ignore[arg-type]
            estimator.set(estimator.getParam("layers"), layers)
        else:
            estimator.set(estimator.getParam(key), value)
    if name == "mlp" and HIDDEN_LAYERS not in params:
        estimator.set(estimator.getParam("layers"), [n_features, n_classes])
    return estimator
