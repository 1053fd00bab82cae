"""ONNX converters for the models built of other models: lakeforge's
StackingModel (its members' converters, then the meta-learner's), and
xgboost's Spark models (serving/boosted.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pyspark.ml import Transformer

from lakeforge.models.stacking import CLIP, META_FEATURES, StackingModel, member_column
from lakeforge.serving import boosted, models, neural
from lakeforge.serving.graph import Graph, NotExportable

Converter = Callable[[Graph, Any], None]


def converter(stage: Transformer) -> Converter | None:
    """The converter for a fitted model (a stack, a Spark ML model, naive
    Bayes / MLP / FM, xgboost): the one lookup for export and stack members."""
    if isinstance(stage, StackingModel):
        return stacking
    return (
        models.CONVERTERS.get(type(stage))
        or neural.CONVERTERS.get(type(stage))
        or boosted.converter(stage)
    )


def stacking(graph: Graph, stage: StackingModel) -> None:
    """The base models' converters (each writes its own `__stack{i}_*`
    columns, as `_wire` set them at fit), the meta features as
    `StackingModel._with_meta_features` builds them, then the meta-learner's
    converter, which writes the stack's prediction (and probability /
    rawPrediction)."""
    where = f"stage StackingModel {stage.uid!r}"
    if stage.metaModel is None or not stage.baseModels:
        raise NotExportable(f"{where}: no fitted members")
    n_classes = stage.getNumClasses()
    slots: list[tuple[str, int]] = []
    for index, member in enumerate(stage.baseModels):
        _convert_member(graph, member, f"{where}: base model {index}")
        try:
            slots.extend(_score_slots(graph, member, index, n_classes))
        except NotExportable as exc:
            raise NotExportable(f"{where}: base model {index}: {exc}") from None
    if stage.getPassthrough():  # the original features after the scores
        features = graph.column(stage.getFeaturesCol())
        slots.append((features.tensor, features.width))
    meta = graph.op("Concat", [tensor for tensor, _ in slots], "meta_features", axis=1)
    graph.set(META_FEATURES, meta, sum(width for _, width in slots))
    _convert_member(graph, stage.metaModel, f"{where}: meta model")


def _convert_member(graph: Graph, member: Any, where: str) -> None:
    convert_member = converter(member)
    if convert_member is None:
        raise NotExportable(f"{where} {type(member).__name__}: no ONNX converter")
    try:
        convert_member(graph, member)
    except NotExportable as exc:
        raise NotExportable(f"{where} {type(member).__name__}: {exc}") from None


def _score_slots(graph: Graph, member: Any, index: int, n_classes: int) -> list[tuple[str, int]]:
    """stacking._score_slots as (tensor, width) pieces: the prediction
    (regression); the log-odds of classes 1..k-1 against class 0 of the
    probabilities clipped to [eps, 1 - eps]; or raw margins 1..k-1."""
    if n_classes == 0:
        return [(graph.column(member_column(index, "prediction")).tensor, 1)]
    if not (member.hasParam("probabilityCol") and member.isDefined("probabilityCol")):
        raw = graph.column(member_column(index, "raw"))
        _check_width(raw.width, n_classes)
        return [(_columns(graph, raw.tensor, 1, n_classes), n_classes - 1)]
    p = graph.column(member_column(index, "probability"))
    _check_width(p.width, n_classes)
    # Spark's least(greatest(p, eps), 1 - eps): NaN is above every number, so
    # greatest keeps it and least turns it into 1 - eps
    clipped = graph.op(
        "Where",
        [
            graph.op("IsNaN", [p.tensor], "isnan"),
            graph.const(1.0 - CLIP),
            graph.op("Clip", [p.tensor, graph.const(CLIP), graph.const(1.0 - CLIP)], "clip"),
        ],
        "clipped",
    )
    logs = graph.op("Log", [clipped], "log")
    odds = graph.op(
        "Sub",
        [_columns(graph, logs, 1, n_classes), _columns(graph, logs, 0, 1)],
        "log_odds",
    )
    return [(odds, n_classes - 1)]


def _check_width(width: int, n_classes: int) -> None:
    if width != n_classes:
        raise NotExportable(f"{width} class scores for a {n_classes}-class stack")


def _columns(graph: Graph, tensor: str, start: int, end: int) -> str:
    """Columns start..end-1 of a `[N, width]` tensor."""
    return graph.op(
        "Slice",
        [
            tensor,
            graph.const(np.array([start], np.int64)),
            graph.const(np.array([end], np.int64)),
            graph.const(np.array([1], np.int64)),
        ],
        "columns",
    )
