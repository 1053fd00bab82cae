"""ONNX converters for the estimators' fitted models and DecisionThreshold.

Each writes the columns Spark's model writes: `prediction` ([N, 1]) and, for
a classifier, `probability` and `rawPrediction` ([N, K]). Trees are one
`TreeEnsembleRegressor` with float64 thresholds (float32 ones send a value
near a threshold down the other branch), built by walking Spark's own nodes:
a categorical split keeps its whole category set (onnxmltools' tree
converter keeps only the first category, which is where its measured 0.15
gap to Spark came from).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import TensorProto
from pyspark.ml import classification as clf
from pyspark.ml import regression as reg

from lakeforge.models.threshold import DecisionThreshold
from lakeforge.serving.graph import Graph, NotExportable, tree_ensemble


def _features(graph: Graph, model: Any) -> tuple[str, int]:
    x = graph.column(model.getFeaturesCol())
    if x.width != model.numFeatures:
        raise NotExportable(
            f"model {type(model).__name__}: {model.numFeatures} features, the graph built {x.width}"
        )
    return x.tensor, x.width


def _set_classes(
    graph: Graph, model: Any, raw: str, probability: str, prediction: str, k: int
) -> None:
    graph.set(model.getRawPredictionCol(), raw, k)
    graph.set(model.getProbabilityCol(), probability, k)
    graph.set(model.getPredictionCol(), prediction, 1)


def _argmax(graph: Graph, scores: str) -> str:
    best = graph.op("ArgMax", [scores], "argmax", axis=1, keepdims=1)
    return graph.op("Cast", [best], "prediction", to=TensorProto.DOUBLE)


def _linear(graph: Graph, x: str, weights: np.ndarray, intercept: np.ndarray) -> str:
    product = graph.op("MatMul", [x, graph.const(weights)], "matmul")
    return graph.op("Add", [product, graph.const(intercept[None, :])], "margin")


def logistic_regression(graph: Graph, model: clf.LogisticRegressionModel) -> None:
    x, _ = _features(graph, model)
    k = model.numClasses
    if model.isSet("thresholds"):
        raise NotExportable("model LogisticRegression: per-class `thresholds`")
    if k == 2 and model.coefficientMatrix.numRows == 1:
        margin = _linear(
            graph, x, model.coefficients.toArray()[:, None], np.array([model.intercept])
        )
        p1 = graph.op("Sigmoid", [margin], "p1")
        p0 = graph.op("Sub", [graph.const(1.0), p1], "p0")
        probability = graph.op("Concat", [p0, p1], "probability", axis=1)
        raw = graph.op("Concat", [graph.op("Neg", [margin], "neg"), margin], "raw", axis=1)
        # Spark: 1 when the margin passes log(t / (1 - t))
        t = model.getThreshold()
        cut = -np.inf if t == 0 else np.inf if t == 1 else float(np.log(t / (1 - t)))
        above = graph.op("Greater", [margin, graph.const(cut)], "gt")
        prediction = graph.op("Cast", [above], "prediction", to=TensorProto.DOUBLE)
    else:
        raw = _linear(
            graph, x, model.coefficientMatrix.toArray().T, model.interceptVector.toArray()
        )
        probability = graph.op("Softmax", [raw], "probability", axis=1)
        prediction = _argmax(graph, raw)
    _set_classes(graph, model, raw, probability, prediction, k)


def linear_regression(graph: Graph, model: reg.LinearRegressionModel) -> None:
    x, _ = _features(graph, model)
    margin = _linear(graph, x, model.coefficients.toArray()[:, None], np.array([model.intercept]))
    graph.set(model.getPredictionCol(), margin, 1)


def linear_svc(graph: Graph, model: clf.LinearSVCModel) -> None:
    x, _ = _features(graph, model)
    margin = _linear(graph, x, model.coefficients.toArray()[:, None], np.array([model.intercept]))
    raw = graph.op("Concat", [graph.op("Neg", [margin], "neg"), margin], "raw", axis=1)
    above = graph.op("Greater", [margin, graph.const(float(model.getThreshold()))], "gt")
    graph.set(model.getRawPredictionCol(), raw, 2)
    graph.set(model.getPredictionCol(), graph.op("Cast", [above], "p", to=TensorProto.DOUBLE), 1)


@dataclass
class _Ensemble:
    """The flat node and leaf lists of a TreeEnsembleRegressor."""

    targets: int
    nodes: dict[str, list[Any]] = field(default_factory=dict)
    leaves: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("treeids", "nodeids", "featureids", "modes", "values", "true", "false"):
            self.nodes[key] = []
        for key in ("treeids", "nodeids", "ids", "weights"):
            self.leaves[key] = []

    def add_tree(self, tree_id: int, root: Any, leaf_value: Callable[[Any], list[float]]) -> None:
        def node(tree: int, mode: str, feature: int, value: float) -> int:
            # a global position now; made relative to the tree's first node below
            nid = len(self.nodes["nodeids"])
            for key, v in zip(
                ("treeids", "nodeids", "featureids", "modes", "values", "true", "false"),
                (tree, nid, feature, mode, value, 0, 0),
                strict=True,
            ):
                self.nodes[key].append(v)
            return nid

        def empty_leaf() -> int:
            nid = node(tree_id, "LEAF", 0, 0.0)
            for target in range(self.targets):
                self.leaves["treeids"].append(tree_id)
                self.leaves["nodeids"].append(nid)
                self.leaves["ids"].append(target)
                self.leaves["weights"].append(0.0)
            return nid

        def emit(java_node: Any) -> int:
            if java_node.getClass().getSimpleName() == "LeafNode":
                nid = node(tree_id, "LEAF", 0, 0.0)
                for target, weight in enumerate(leaf_value(java_node)):
                    self.leaves["treeids"].append(tree_id)
                    self.leaves["nodeids"].append(nid)
                    self.leaves["ids"].append(target)
                    self.leaves["weights"].append(weight)
                return nid
            split = java_node.split()
            feature = int(split.featureIndex())
            if split.getClass().getSimpleName() == "ContinuousSplit":
                nid = node(tree_id, "BRANCH_LEQ", feature, float(split.threshold()))
                self.nodes["true"][nid] = emit(java_node.leftChild())
                self.nodes["false"][nid] = emit(java_node.rightChild())
                return nid
            # categorical: left when the value is one of the left categories;
            # a chain of equality tests, the left subtree copied per test
            categories = sorted(float(c) for c in split.leftCategories())
            if not categories:
                return emit(java_node.rightChild())
            first = None
            previous = None
            for category in categories:
                nid = node(tree_id, "BRANCH_EQ", feature, category)
                if previous is not None:
                    self.nodes["false"][previous] = nid
                first = nid if first is None else first
                self.nodes["true"][nid] = emit(java_node.leftChild())
                previous = nid
            assert previous is not None and first is not None
            # onnxruntime folds a run of BRANCH_EQ nodes on one feature linked by
            # their false edges into one set test with the first node's true
            # branch; a right subtree that tests the same feature again would be
            # folded into this chain (measured: rows sent down the wrong side).
            # A test that always holds (an index is never NaN; NaN would get a
            # zero leaf) keeps the two chains apart.
            separator = node(tree_id, "BRANCH_LEQ", feature, float("inf"))
            self.nodes["false"][previous] = separator
            self.nodes["true"][separator] = emit(java_node.rightChild())
            self.nodes["false"][separator] = empty_leaf()
            return first

        # node ids restart per tree: positions are global, so offset them
        start = len(self.nodes["nodeids"])
        before = len(self.leaves["nodeids"])
        emit(root)
        for key in ("nodeids", "true", "false"):
            values = self.nodes[key]
            for i in range(start, len(values)):
                if key == "nodeids" or self.nodes["modes"][i] != "LEAF":
                    values[i] -= start
        for i in range(before, len(self.leaves["nodeids"])):
            self.leaves["nodeids"][i] -= start

    def op(self, graph: Graph, x: str) -> str:
        return tree_ensemble(
            graph,
            x,
            "trees",
            targets=self.targets,
            nodes=self.nodes,
            leaves=self.leaves,
            missing_goes_true=[0] * len(self.nodes["modes"]),
        )


def _class_shares(java_leaf: Any) -> list[float]:
    stats = [float(v) for v in java_leaf.impurityStats().stats()]
    total = sum(stats)
    return [v / total if total else 0.0 for v in stats]


def _weighted_prediction(weight: float) -> Callable[[Any], list[float]]:
    def value(java_leaf: Any) -> list[float]:
        return [weight * float(java_leaf.prediction())]

    return value


def _roots(model: Any) -> list[Any]:
    java = model._java_obj
    if hasattr(model, "trees"):
        return [tree.rootNode() for tree in java.trees()]
    return [java.rootNode()]


def tree_classifier(graph: Graph, model: Any) -> None:
    x, _ = _features(graph, model)
    k = model.numClasses
    roots = _roots(model)
    if isinstance(model, clf.GBTClassificationModel):
        weights = list(model.treeWeights)
        ensemble = _Ensemble(1)
        for i, root in enumerate(roots):
            ensemble.add_tree(i, root, _weighted_prediction(weights[i]))
        margin = graph.op("Cast", [ensemble.op(graph, x)], "margin", to=TensorProto.DOUBLE)
        # Spark's logistic loss: p = 1 / (1 + exp(-2 m)); 1 when the margin is positive
        p1 = graph.op("Sigmoid", [graph.op("Mul", [margin, graph.const(2.0)], "2m")], "p1")
        p0 = graph.op("Sub", [graph.const(1.0), p1], "p0")
        probability = graph.op("Concat", [p0, p1], "probability", axis=1)
        raw = graph.op("Concat", [graph.op("Neg", [margin], "neg"), margin], "raw", axis=1)
        above = graph.op("Greater", [margin, graph.const(0.0)], "gt")
        prediction = graph.op("Cast", [above], "prediction", to=TensorProto.DOUBLE)
        _set_classes(graph, model, raw, probability, prediction, 2)
        return
    ensemble = _Ensemble(k)
    if isinstance(model, clf.RandomForestClassificationModel):
        # Spark sums each tree's class shares, then normalises
        for i, root in enumerate(roots):
            ensemble.add_tree(i, root, _class_shares)
    else:  # a single tree: the raw prediction is the leaf's class counts
        ensemble.add_tree(
            0, roots[0], lambda leaf: [float(v) for v in leaf.impurityStats().stats()]
        )
    raw = graph.op("Cast", [ensemble.op(graph, x)], "raw", to=TensorProto.DOUBLE)
    total = graph.op("ReduceSum", [raw, graph.const(np.array([1], np.int64))], "total", keepdims=1)
    probability = graph.op("Div", [raw, total], "probability")
    _set_classes(graph, model, raw, probability, _argmax(graph, raw), k)


def tree_regressor(graph: Graph, model: Any) -> None:
    x, _ = _features(graph, model)
    roots = _roots(model)
    ensemble = _Ensemble(1)
    if isinstance(model, reg.GBTRegressionModel):
        weights = list(model.treeWeights)
    elif isinstance(model, reg.RandomForestRegressionModel):
        weights = [1.0 / len(roots)] * len(roots)
    else:
        weights = [1.0]
    for i, root in enumerate(roots):
        ensemble.add_tree(i, root, _weighted_prediction(weights[i]))
    prediction = graph.op("Cast", [ensemble.op(graph, x)], "prediction", to=TensorProto.DOUBLE)
    graph.set(model.getPredictionCol(), prediction, 1)


def decision_threshold(graph: Graph, stage: DecisionThreshold) -> None:
    score = graph.column(stage.getScoreCol())
    positive = graph.op(
        "Gather", [score.tensor, graph.const(np.array([1], np.int64))], "positive", axis=1
    )
    above = graph.op("GreaterOrEqual", [positive, graph.const(stage.getThreshold())], "ge")
    graph.set(stage.getPredictionCol(), graph.op("Cast", [above], "p", to=TensorProto.DOUBLE), 1)


CONVERTERS: dict[type[Any], Callable[[Graph, Any], None]] = {
    clf.LogisticRegressionModel: logistic_regression,
    clf.LinearSVCModel: linear_svc,
    reg.LinearRegressionModel: linear_regression,
    clf.DecisionTreeClassificationModel: tree_classifier,
    clf.RandomForestClassificationModel: tree_classifier,
    clf.GBTClassificationModel: tree_classifier,
    reg.DecisionTreeRegressionModel: tree_regressor,
    reg.RandomForestRegressionModel: tree_regressor,
    reg.GBTRegressionModel: tree_regressor,
    DecisionThreshold: decision_threshold,
}
