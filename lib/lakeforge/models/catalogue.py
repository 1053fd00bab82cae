"""The estimators lakeforge can search over, by the names config uses.

Each name maps, per task, to a Spark ML estimator class. Checking a
candidate reads the class's declared `Param`s and their type converters only,
so a typo in an estimator or parameter name fails before Spark starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from pyspark.ml.param import Param

if TYPE_CHECKING:
    from pyspark.ml import Estimator

    from lakeforge.config.training import Candidate, Features, Member, ParamValue

_C = "pyspark.ml.classification"
_R = "pyspark.ml.regression"
_X = "xgboost.spark"
_S = "lakeforge.models.stacking"

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
    # Distributed XGBoost: trained by `num_workers` barrier tasks on the
    # executors (default: the cluster's cores), never on the driver.
    "xgboost": {
        "binary": "lakeforge.models.boosting.XGBClassifier",
        "multiclass": "lakeforge.models.boosting.XGBClassifier",
        "regression": f"{_X}.SparkXGBRegressor",
    },
    # base models + a meta-learner on their out-of-fold predictions
    "stacking": {
        "binary": f"{_S}.StackingClassifier",
        "multiclass": f"{_S}.StackingClassifier",
        "regression": f"{_S}.StackingRegressor",
    },
}
STACKING = "stacking"
# the meta-learner when a stacking candidate names none
DEFAULT_META = {
    "binary": "logistic_regression",
    "multiclass": "logistic_regression",
    "regression": "linear_regression",
}

# Set by lakeforge itself: the column wiring of the pipeline (and the class
# weights), and what xgboost.spark refuses or takes from Spark.
RESERVED = frozenset(
    {
        "featuresCol",
        "labelCol",
        "predictionCol",
        "probabilityCol",
        "rawPredictionCol",
        "weightCol",
        "layers",
        "numClasses",
        "baseEstimators",
        "metaEstimator",
        "features_cols",
        "arbitrary_params_dict",
        "validationIndicatorCol",
        "base_margin_col",
        "qid_col",
        "pred_contrib_col",
        "n_jobs",
        "nthread",
        "enable_categorical",
        "callbacks",
    }
)
# mlp: the hidden layer sizes; input and output sizes come from the data.
HIDDEN_LAYERS = "hidden_layers"
# the param that seeds an estimator's randomness, by the names estimators use
_SEEDS = ("seed", "random_state")


class MissingEstimator(ImportError):
    """The estimator's package is not installed (xgboost is an extra)."""


def estimator_class(name: str, task: str) -> type[Estimator[Any]]:
    """Raises MissingEstimator when the module holding it cannot be imported."""
    module, _, cls = CATALOGUE[name][task].rpartition(".")
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:
        raise MissingEstimator(
            f"needs the {exc.name or module.split('.')[0]} package ({exc}); "
            f"install lakeforge[{name}]"
        ) from exc
    found: type[Estimator[Any]] = getattr(loaded, cls)
    return found


def param_names(name: str, task: str) -> list[str]:
    cls = estimator_class(name, task)
    names = [n for n in dir(cls) if isinstance(getattr(cls, n, None), Param)]
    extra = [HIDDEN_LAYERS] if name == "mlp" else []
    return sorted(n for n in [*names, *extra] if n not in RESERVED)


def check_candidate(
    candidate: Candidate, task: str, features: Features, *, weighted: bool = False
) -> str | None:
    """What is wrong with `candidate` for `task`, or None. `weighted`: the
    training rows carry class weights, so the estimator must take a weightCol."""
    if candidate.estimator not in CATALOGUE:
        return f"unknown estimator; the catalogue has: {', '.join(sorted(CATALOGUE))}"
    tasks = CATALOGUE[candidate.estimator]
    if task not in tasks:
        return f"does not do {task} (it does: {', '.join(tasks)})"
    if candidate.estimator == STACKING:
        problem = _check_members(candidate, task, features, weighted)
        if problem:
            return problem
    elif candidate.base or candidate.meta:
        return "base and meta are for estimator stacking"
    both = sorted(set(candidate.params) & set(candidate.grid))
    if both:
        return f"{', '.join(both)} in both params and grid"
    try:
        cls = estimator_class(candidate.estimator, task)
    except MissingEstimator as exc:
        return str(exc)
    if weighted and not hasattr(cls, "weightCol"):
        return "takes no row weights, so it cannot use train.class_weight"
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


def _check_members(
    candidate: Candidate, task: str, features: Features, weighted: bool
) -> str | None:
    """A stack's base models (two or more) and meta-learner, each checked as a
    candidate of its own."""
    from lakeforge.config.training import Candidate as Single

    if len(candidate.base) < 2:
        return "stacking needs two or more base models (base: [...])"
    members = [(f"base.{i}", m) for i, m in enumerate(candidate.base)]
    if candidate.meta is not None:
        members.append(("meta", candidate.meta))
    for where, member in members:
        if member.estimator == STACKING:
            return f"{where}: a stack cannot hold a stack"
        problem = check_candidate(
            Single(estimator=member.estimator, params=member.params),
            task,
            features,
            weighted=weighted,
        )
        if problem:
            return f"{where} ({member.estimator}): {problem}"
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
    workers: int = 1,
    weight_col: str | None = None,
    base: Sequence[Member] = (),
    meta: Member | None = None,
) -> Estimator[Any]:
    """The estimator `name` for `task`, reading `features` and `label` (and
    `weight_col` when given), with `params` set (the seed too, unless given,
    so fits repeat exactly). xgboost trains on `workers` executor tasks unless
    `num_workers` is given; stacking gets its `base` and `meta` members."""
    estimator = estimator_class(name, task)()
    estimator.set(estimator.getParam("featuresCol"), "features")
    estimator.set(estimator.getParam("labelCol"), label)
    if weight_col is not None:
        estimator.set(estimator.getParam("weightCol"), weight_col)
    for seed_param in _SEEDS:
        if estimator.hasParam(seed_param) and seed_param not in params:
            estimator.set(estimator.getParam(seed_param), seed)
            break
    if estimator.hasParam("num_workers") and "num_workers" not in params:
        estimator.set(estimator.getParam("num_workers"), max(1, workers))
    if estimator.hasParam("verbose") and "verbose" not in params:
        # xgboost prints a line per boosting round from every worker otherwise
        estimator.set(estimator.getParam("verbose"), False)
    if name == STACKING:
        from lakeforge.config.training import Member as Single

        member = partial(
            build,
            task=task,
            label=label,
            n_features=n_features,
            n_classes=n_classes,
            seed=seed,
            workers=workers,
            weight_col=weight_col,
        )
        chosen_meta = meta or Single(estimator=DEFAULT_META[task])
        estimator.set(
            estimator.getParam("baseEstimators"),
            [member(m.estimator, params=m.params) for m in base],
        )
        if n_classes:  # known here: the stack need not count the labels again
            estimator.set(estimator.getParam("numClasses"), n_classes)
        # the meta-learner's inputs: one score per base (k-1 for k classes),
        # then the features themselves under passthrough
        slots = len(base) * max(1, n_classes - 1) + (n_features if params.get("passthrough") else 0)
        estimator.set(
            estimator.getParam("metaEstimator"),
            member(chosen_meta.estimator, params=chosen_meta.params, n_features=slots),
        )
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
