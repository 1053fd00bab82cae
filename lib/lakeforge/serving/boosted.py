"""ONNX converters for xgboost's Spark models, built from the booster's own
trees.

xgboost scores what `xgboost.spark` hands it: the features vector cast to
float32 (`vector_to_array(..., "float32")`), a NaN (or the `missing` value)
as missing, a zero as a zero. A split sends `x < threshold` left and a
missing value along the node's default direction; the margin starts at
`base_score` taken through the objective's link. The graph does the same:
features rounded to float32, thresholds that are exactly the booster's
float32 values, `BRANCH_LT` with the default direction per node.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import TensorProto
from pyspark.ml import Transformer

from lakeforge.serving.graph import Graph, NotExportable, tree_ensemble

Converter = Callable[[Graph, Any], None]


def converter(stage: Transformer) -> Converter | None:
    try:  # xgboost is an optional extra: without it no stage is one of its models
        from xgboost.spark import SparkXGBClassifierModel, SparkXGBRegressorModel
    except ImportError:
        return None
    if isinstance(stage, SparkXGBClassifierModel):
        return xgboost_classifier
    if isinstance(stage, SparkXGBRegressorModel):
        return xgboost_regressor
    return None


# How an objective turns base_score (stored on the prediction scale) into a
# margin (xgboost's ProbToMargin), and the margin into a regressor's
# prediction (PredTransform). Objectives not listed are refused.
_LINKS = {
    "reg:squarederror": "identity",
    "reg:squaredlogerror": "identity",
    "reg:pseudohubererror": "identity",
    "reg:absoluteerror": "identity",
    "reg:quantileerror": "identity",
    "multi:softprob": "identity",
    "reg:logistic": "logit",
    "binary:logistic": "logit",
    "count:poisson": "log",
    "reg:gamma": "log",
    "reg:tweedie": "log",
}


@dataclass
class _Booster:
    """What the graph needs of a booster's JSON model."""

    objective: str
    targets: int  # 1, or the classes of multi:softprob
    features: int
    base_margin: list[float]  # one per target
    trees: list[dict[str, Any]]
    tree_targets: list[int]
    tree_weights: list[float]  # dart's weight_drop; 1.0 for gbtree


def _f32(value: float) -> float:
    return float(np.float32(value))


def _booster(model: Any) -> _Booster:
    """The trees `model.transform` uses, read from the booster's JSON."""
    for param in ("base_margin_col", "features_cols"):
        if model.hasParam(param) and model.isDefined(param) and model.getOrDefault(param):
            raise NotExportable(f"`{param}` is not exported")
    learner = json.loads(bytes(model.get_booster().save_raw("json")))["learner"]
    objective = learner["objective"]["name"]
    if objective not in _LINKS:
        raise NotExportable(f"objective {objective!r} is not exported")
    params = learner["learner_model_param"]
    targets = max(1, int(params["num_class"]))
    if int(params.get("num_target", "1")) > 1:
        raise NotExportable("multi-target models are not exported")
    booster = learner["gradient_booster"]
    if booster["name"] == "gbtree":
        trees_model, drops = booster["model"], None
    elif booster["name"] == "dart":
        trees_model, drops = booster["gbtree"]["model"], booster["weight_drop"]
    else:
        raise NotExportable(f"booster {booster['name']!r} is not exported")
    # trees of the iterations predict uses (all of them unless early stopping set one)
    predict_params = model._gen_predict_params_dict()
    first, last = model._xgb_sklearn_model._get_iteration_range(
        predict_params.get("iteration_range")
    )
    bounds = trees_model["iteration_indptr"]
    last = last if last else len(bounds) - 1
    chosen = range(bounds[first], bounds[last])
    trees = [trees_model["trees"][i] for i in chosen]
    for tree in trees:
        if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            raise NotExportable("vector-leaf trees are not exported")
        if any(int(t) != 0 for t in tree.get("split_type", [])):
            raise NotExportable("categorical splits are not exported")
    base = [_f32(float(v)) for v in str(params["base_score"]).strip("[]").split(",")]
    if len(base) == 1:
        base = base * targets
    if len(base) != targets:
        raise NotExportable(f"{len(base)} base scores for {targets} outputs")
    link = _LINKS[objective]
    if link == "logit":
        base = [math.log(b / (1 - b)) for b in base]
    elif link == "log":
        base = [math.log(b) for b in base]
    return _Booster(
        objective=objective,
        targets=targets,
        features=int(params["num_feature"]),
        base_margin=base,
        trees=trees,
        tree_targets=[int(trees_model["tree_info"][i]) for i in chosen],
        tree_weights=[float(drops[i]) if drops else 1.0 for i in chosen],
    )


@dataclass
class _Trees:
    """The node and leaf lists of one TreeEnsembleRegressor built from
    xgboost's trees (node ids renumbered from each tree's root; nodes pruned
    away are not reached, so not written)."""

    nodes: dict[str, list[Any]] = field(default_factory=dict)
    leaves: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("treeids", "nodeids", "featureids", "modes", "values", "true", "false"):
            self.nodes[key] = []
        self.nodes["missing"] = []
        for key in ("treeids", "nodeids", "ids", "weights"):
            self.leaves[key] = []

    def add(self, tree_id: int, tree: dict[str, Any], target: int, weight: float) -> None:
        left, right = tree["left_children"], tree["right_children"]
        values, features = tree["split_conditions"], tree["split_indices"]
        default_left = tree["default_left"]
        start = len(self.nodes["nodeids"])

        def emit(i: int) -> int:
            nid = len(self.nodes["nodeids"]) - start
            leaf = left[i] == -1
            row = (
                tree_id,
                nid,
                0 if leaf else int(features[i]),
                "LEAF" if leaf else "BRANCH_LT",
                0.0 if leaf else _f32(values[i]),
                0,
                0,
                0 if leaf else int(default_left[i]),  # missing goes left: the "true" branch
            )
            for key, v in zip(self.nodes, row, strict=True):
                self.nodes[key].append(v)
            if leaf:
                for key, v in zip(
                    self.leaves, (tree_id, nid, target, _f32(values[i]) * weight), strict=True
                ):
                    self.leaves[key].append(v)
            else:
                self.nodes["true"][start + nid] = emit(int(left[i]))
                self.nodes["false"][start + nid] = emit(int(right[i]))
            return nid

        emit(0)

    def op(self, graph: Graph, x: str, targets: int, base: list[float]) -> str:
        return tree_ensemble(
            graph,
            x,
            "xgb_trees",
            targets=targets,
            nodes=self.nodes,
            leaves=self.leaves,
            missing_goes_true=self.nodes["missing"],
            base=base,
        )


def _xgboost_margin(graph: Graph, model: Any, booster: _Booster) -> str:
    """The margin `[N, targets]` (float64) of the booster on the model's features."""
    x = graph.column(model.getFeaturesCol())
    if x.width != booster.features:
        raise NotExportable(f"{booster.features} features, the graph built {x.width}")
    # xgboost.spark feeds float32 values; a value equal to `missing` is missing
    # too (enable_sparse_data_optim needs missing 0: every zero, stored or not)
    x32 = graph.op("Cast", [x.tensor], "x32", to=TensorProto.FLOAT)
    missing = float(model.getOrDefault("missing"))
    if not math.isnan(missing):
        is_missing = graph.op("Equal", [x32, graph.const(np.float32(missing))], "is_missing")
        x32 = graph.op("Where", [is_missing, graph.const(np.float32("nan")), x32], "x32")
    trees = _Trees()
    for i, tree in enumerate(booster.trees):
        trees.add(i, tree, booster.tree_targets[i], booster.tree_weights[i])
    x64 = graph.op("Cast", [x32], "x", to=TensorProto.DOUBLE)
    summed = trees.op(graph, x64, booster.targets, booster.base_margin)
    return graph.op("Cast", [summed], "margin", to=TensorProto.DOUBLE)


def xgboost_classifier(graph: Graph, model: Any) -> None:
    booster = _booster(model)
    margin = _xgboost_margin(graph, model, booster)
    # xgboost.spark: [-m, m] and [1 - p, p] for binary:logistic, the margins
    # and their softmax for multi:softprob; the label is the argmax of the
    # probabilities
    if booster.objective == "binary:logistic" and booster.targets == 1:
        p1 = graph.op("Sigmoid", [margin], "p1")
        p0 = graph.op("Sub", [graph.const(1.0), p1], "p0")
        probability = graph.op("Concat", [p0, p1], "probability", axis=1)
        raw = graph.op("Concat", [graph.op("Neg", [margin], "neg"), margin], "raw", axis=1)
        k = 2
    elif booster.objective == "multi:softprob":
        raw = margin
        probability = graph.op("Softmax", [margin], "probability", axis=1)
        k = booster.targets
    else:
        raise NotExportable(f"objective {booster.objective!r} in a classifier")
    prediction = graph.op(
        "Cast",
        [graph.op("ArgMax", [probability], "argmax", axis=1, keepdims=1)],
        "prediction",
        to=TensorProto.DOUBLE,
    )
    # an empty column name: xgboost.spark does not write that column
    for column, tensor, width in (
        (model.getOrDefault("rawPredictionCol"), raw, k),
        (model.getOrDefault("probabilityCol"), probability, k),
        (model.getOrDefault("predictionCol"), prediction, 1),
    ):
        if column:
            graph.set(column, tensor, width)


def xgboost_regressor(graph: Graph, model: Any) -> None:
    booster = _booster(model)
    if booster.targets != 1:
        raise NotExportable(f"a regressor of {booster.targets} outputs")
    margin = _xgboost_margin(graph, model, booster)
    link = _LINKS[booster.objective]
    prediction = (
        graph.op("Sigmoid", [margin], "prediction")
        if link == "logit"
        else graph.op("Exp", [margin], "prediction")
        if link == "log"
        else margin
    )
    if model.getOrDefault("predictionCol"):
        graph.set(model.getOrDefault("predictionCol"), prediction, 1)
