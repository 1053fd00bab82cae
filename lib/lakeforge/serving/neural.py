"""ONNX converters for the catalogue's other classifiers and regressors:
naive Bayes (every modelType), the multilayer perceptron and factorization
machines.

Each follows the model's Scala `predictRaw` and `raw2probability`, so the
columns match Spark's to rounding: naive Bayes' raw prediction is a log
joint likelihood per class and its probability the softmax of it; the
perceptron's raw prediction is the last affine layer's output (before the
softmax); a factorization machine's margin is intercept + linear + the
pairwise term, written as `[-m, m]` with `p1 = sigmoid(m)`. A model with
`thresholds` set predicts `argmax(p / t)`, as Spark's probability2prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import numpy as np
from onnx import TensorProto
from pyspark.ml import classification as clf
from pyspark.ml import regression as reg

from lakeforge.serving.graph import Graph, NotExportable
from lakeforge.serving.models import _argmax, _features, _linear, _set_classes

_AXIS_1 = np.array([1], np.int64)


def _predict(graph: Graph, model: Any, raw: str, probability: str) -> str:
    """Spark's prediction: the argmax of the raw prediction, or with
    `thresholds` set the argmax of probability / threshold (a NaN ratio, 0/0,
    never wins; a zero threshold wins once its class has any probability)."""
    if not model.isDefined(model.thresholds):
        return _argmax(graph, raw)
    thresholds = np.asarray(model.getThresholds(), np.float64)
    if thresholds.shape != (model.numClasses,):
        raise NotExportable(
            f"model {type(model).__name__}: {len(thresholds)} thresholds "
            f"for {model.numClasses} classes"
        )
    scaled = graph.op("Div", [probability, graph.const(thresholds[None, :])], "scaled")
    beaten = graph.op(
        "Where",
        [graph.op("IsNaN", [scaled], "isnan"), graph.const(-np.inf), scaled],
        "scaled",
    )
    return _argmax(graph, beaten)


def _refuse_rows(graph: Graph, bad: str, tensors: list[str]) -> list[str]:
    """NaN in every tensor on the rows where `bad` ([N, D] booleans) holds in
    any column: rows Spark's model refuses (it fails the batch) get no answer."""
    any_bad = graph.op(
        "ReduceMax",
        [graph.op("Cast", [bad], "bad", to=TensorProto.DOUBLE), graph.const(_AXIS_1)],
        "any_bad",
        keepdims=1,
    )
    refused = graph.op("Greater", [any_bad, graph.const(0.0)], "refused")
    nan = graph.const(np.nan)
    return [graph.op("Where", [refused, nan, t], "refused") for t in tensors]


def naive_bayes(graph: Graph, model: clf.NaiveBayesModel) -> None:
    """Multinomial: pi + theta x; complement: theta x - logsumexp(theta x);
    Bernoulli: pi + sum log(1 - e^theta) + (theta - log(1 - e^theta)) x;
    Gaussian: pi - (sum (x - mu)^2 / var + sum log var) / 2. Probability:
    the softmax of these. Multinomial and complement refuse a negative (or
    NaN) feature, Bernoulli one not 0 or 1: those rows answer NaN."""
    x, _ = _features(graph, model)
    kind = model.getModelType()
    k = model.numClasses
    pi = model.pi.toArray()
    theta = model.theta.toArray()  # [classes, features]
    name = f"model NaiveBayes ({kind})"
    if not np.all(np.isfinite(theta)) or not np.all(np.isfinite(pi)):
        # Spark multiplies a -inf only by non-zero entries of a sparse vector
        # but by every entry of a dense one: its answer depends on storage
        raise NotExportable(f"{name}: log-probabilities of -inf (smoothing 0)")
    bad: str | None = None
    if kind == "multinomial":
        raw = _linear(graph, x, theta.T, pi)
        bad = graph.op("Not", [graph.op("GreaterOrEqual", [x, graph.const(0.0)], "ge")], "bad")
    elif kind == "complement":
        scores = graph.op("MatMul", [x, graph.const(theta.T)], "scores")
        top = graph.op("ReduceMax", [scores, graph.const(_AXIS_1)], "top", keepdims=1)
        shifted = graph.op("Exp", [graph.op("Sub", [scores, top], "shifted")], "exp")
        total = graph.op("ReduceSum", [shifted, graph.const(_AXIS_1)], "total", keepdims=1)
        log_sum = graph.op("Add", [graph.op("Log", [total], "log"), top], "logsumexp")
        raw = graph.op("Sub", [scores, log_sum], "raw")
        bad = graph.op("Not", [graph.op("GreaterOrEqual", [x, graph.const(0.0)], "ge")], "bad")
    elif kind == "bernoulli":
        absent = np.log1p(-np.exp(theta))
        raw = _linear(graph, x, (theta - absent).T, pi + absent.sum(axis=1))
        zero = graph.op("Equal", [x, graph.const(0.0)], "zero")
        one = graph.op("Equal", [x, graph.const(1.0)], "one")
        bad = graph.op("Not", [graph.op("Or", [zero, one], "zero_one")], "bad")
    elif kind == "gaussian":
        variance = model.sigma.toArray()
        # [N, 1, D] - [K, D]: every row against every class's means
        rows = graph.op("Unsqueeze", [x, graph.const(_AXIS_1)], "rows")
        d = graph.op("Sub", [rows, graph.const(theta)], "d")
        scaled = graph.op(
            "Div", [graph.op("Mul", [d, d], "d2"), graph.const(variance)], "d2_over_var"
        )
        s = graph.op("ReduceSum", [scaled, graph.const(np.array([2], np.int64))], "s", keepdims=0)
        log_var_sum = np.log(variance).sum(axis=1)
        half = graph.op(
            "Div",
            [graph.op("Add", [s, graph.const(log_var_sum[None, :])], "s_plus"), graph.const(2.0)],
            "half",
        )
        raw = graph.op("Sub", [graph.const(pi[None, :]), half], "raw")
    else:
        raise NotExportable(f"{name}: unknown modelType")
    probability = graph.op("Softmax", [raw], "probability", axis=1)
    prediction = _predict(graph, model, raw, probability)
    if bad is not None:
        raw, probability, prediction = _refuse_rows(graph, bad, [raw, probability, prediction])
    _set_classes(graph, model, raw, probability, prediction, k)


def multilayer_perceptron(graph: Graph, model: clf.MultilayerPerceptronClassificationModel) -> None:
    """Affine layers with a sigmoid between them; the raw prediction is the
    last affine output, the probability its softmax. Spark keeps each layer's
    weights as a column-major [out, in] matrix, then `out` biases."""
    x, _ = _features(graph, model)
    layers = [int(n) for n in model.getLayers()]
    shapes = list(pairwise(layers))  # (inputs, outputs) of each affine layer
    weights = model.weights.toArray()
    expected = sum(n_in * n_out + n_out for n_in, n_out in shapes)
    if len(weights) != expected or layers[-1] != model.numClasses:
        raise NotExportable(
            f"model MultilayerPerceptron: {len(weights)} weights for layers {layers}"
        )
    offset = 0
    out = x
    for i, (n_in, n_out) in enumerate(shapes):
        # column-major [out, in] read row-major is [in, out]: x @ it is W x
        matrix = weights[offset : offset + n_in * n_out].reshape(n_in, n_out)
        offset += n_in * n_out
        bias = weights[offset : offset + n_out]
        offset += n_out
        out = _linear(graph, out, matrix, bias)
        if i < len(shapes) - 1:
            out = graph.op("Sigmoid", [out], "hidden")
    probability = graph.op("Softmax", [out], "probability", axis=1)
    prediction = _predict(graph, model, out, probability)
    _set_classes(graph, model, out, probability, prediction, model.numClasses)


def _fm_margin(graph: Graph, model: Any) -> str:
    """intercept + w.x + sum_f ((sum_j v_jf x_j)^2 - sum_j (v_jf x_j)^2) / 2"""
    x, _ = _features(graph, model)
    factors = model.factors.toArray()  # [features, factorSize]
    linear = _linear(graph, x, model.linear.toArray()[:, None], np.array([model.intercept]))
    sums = graph.op("MatMul", [x, graph.const(factors)], "vx")
    squares = graph.op(
        "MatMul", [graph.op("Mul", [x, x], "x2"), graph.const(factors * factors)], "v2x2"
    )
    per_factor = graph.op(
        "Sub", [graph.op("Mul", [sums, sums], "vx_sq"), squares], "pairwise_per_factor"
    )
    pairwise = graph.op("ReduceSum", [per_factor, graph.const(_AXIS_1)], "pairwise", keepdims=1)
    half = graph.op("Mul", [pairwise, graph.const(0.5)], "pairwise_half")
    return graph.op("Add", [linear, half], "margin")


def fm_classifier(graph: Graph, model: clf.FMClassificationModel) -> None:
    margin = _fm_margin(graph, model)
    raw = graph.op("Concat", [graph.op("Neg", [margin], "neg"), margin], "raw", axis=1)
    p1 = graph.op("Sigmoid", [margin], "p1")
    p0 = graph.op("Sub", [graph.const(1.0), p1], "p0")
    probability = graph.op("Concat", [p0, p1], "probability", axis=1)
    _set_classes(graph, model, raw, probability, _predict(graph, model, raw, probability), 2)


def fm_regressor(graph: Graph, model: reg.FMRegressionModel) -> None:
    graph.set(model.getPredictionCol(), _fm_margin(graph, model), 1)


CONVERTERS: dict[type[Any], Callable[[Graph, Any], None]] = {
    clf.NaiveBayesModel: naive_bayes,
    clf.MultilayerPerceptronClassificationModel: multilayer_perceptron,
    clf.FMClassificationModel: fm_classifier,
    reg.FMRegressionModel: fm_regressor,
}
