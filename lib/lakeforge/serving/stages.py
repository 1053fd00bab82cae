"""ONNX converters for the feature stages lakeforge builds (features/stages.py).

Written against what Spark computes, not against onnxmltools' converters,
which differ from Spark in ways a parity check catches too late (measured:
StringIndexer ignores `handleInvalid`, so an unseen category becomes -1; the
OneHotEncoder converter refuses our (`error`, dropLast) encoder; Bucketizer
puts NaN in bucket 0; Imputer ignores nulls). Every rule below mirrors the
Spark source of the stage, and train checks the whole graph against Spark on
every test row before the model is called servable.

A converter reads the stage's input columns from the graph and sets its
output columns; `NotExportable` names what it cannot reproduce.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from onnx import TensorProto
from pyspark.ml import Transformer
from pyspark.ml import feature as ml

from lakeforge.features.dateparts import DateParts
from lakeforge.serving.derive import derive, derived_columns
from lakeforge.serving.graph import Graph, NotExportable
from lakeforge.serving.signature import NULL_STRING

# `coalesce(CAST(`c` AS DOUBLE), double('NaN')) AS `c__value``: the bucket
# preparation features/stages.py writes (missing values become NaN).
_AS_NAN = re.compile(r"coalesce\(CAST\(`([^`]+)` AS DOUBLE\), double\('NaN'\)\) AS `([^`]+)`")
_SELECT = re.compile(r"^SELECT \*, (.+) FROM __THIS__$", re.DOTALL)


def _pairs(stage: Any) -> list[tuple[str, str]]:
    """(input, output) column pairs of a single- or multi-column stage."""
    if stage.isSet("inputCols"):
        return list(zip(stage.getInputCols(), stage.getOutputCols(), strict=True))
    return [(stage.getInputCol(), stage.getOutputCol())]


def sql(graph: Graph, stage: ml.SQLTransformer) -> None:
    """The bucket preparation lakeforge writes itself, or `features.derive`
    expressions in the numeric subset serving/derive.py rebuilds."""
    statement = stage.getStatement()
    body = _SELECT.match(statement.strip())
    items = _AS_NAN.findall(body.group(1)) if body else []
    rebuilt = ", ".join(
        f"coalesce(CAST(`{c}` AS DOUBLE), double('NaN')) AS `{o}`" for c, o in items
    )
    if body and items and rebuilt == body.group(1).strip():
        for source, out in items:
            column = graph.column(source)
            if column.kind == "string":
                raise NotExportable(f"stage SQLTransformer: CAST of string column {source!r}")
            # inputs already carry a missing value as NaN
            graph.set(out, column.tensor, 1, "number")
        return
    try:
        for name, expression in derived_columns(graph, statement):
            try:
                derive(graph, name, expression)
            except NotExportable as exc:
                raise NotExportable(f"derived column {name!r}: {exc}") from None
    except NotExportable as exc:
        raise NotExportable(f"stage SQLTransformer {statement!r}: {exc}") from None


# Days since 1970-01-01 (float64, NaN when missing) to calendar parts, in the
# proleptic Gregorian calendar Spark uses (H. Hinnant's civil_from_days).
_DATE_PARTS = ("year", "month", "day", "dayofweek")


def date_parts(graph: Graph, stage: DateParts) -> None:
    source = graph.column(stage.getInputCol())
    if source.kind != "date":
        raise NotExportable(
            f"stage DateParts on {stage.getInputCol()!r}: only a date column is exported "
            "(a timestamp's parts depend on the session time zone)"
        )
    unsupported = [p for p in stage.getParts() if p not in _DATE_PARTS]
    if unsupported:
        raise NotExportable(
            f"stage DateParts on {stage.getInputCol()!r}: part(s) {unsupported} are not "
            f"exported (only {', '.join(_DATE_PARTS)})"
        )
    days = source.tensor

    def floor_div(a: str, b: float) -> str:
        return graph.op("Floor", [graph.op("Div", [a, graph.const(b)], "div")], "floor")

    def sub(a: str, b: str) -> str:
        return graph.op("Sub", [a, b], "sub")

    def mul(a: str, b: float) -> str:
        return graph.op("Mul", [a, graph.const(b)], "mul")

    def add(a: str, b: float) -> str:
        return graph.op("Add", [a, graph.const(b)], "add")

    z = add(days, 719468.0)
    era = floor_div(z, 146097.0)
    doe = sub(z, mul(era, 146097.0))
    yoe = floor_div(
        graph.op(
            "Add",
            [
                sub(sub(doe, floor_div(doe, 1460.0)), floor_div(doe, 146096.0)),
                floor_div(doe, 36524.0),
            ],
            "add",
        ),
        365.0,
    )
    doy = sub(
        doe,
        sub(graph.op("Add", [mul(yoe, 365.0), floor_div(yoe, 4.0)], "add"), floor_div(yoe, 100.0)),
    )
    mp = floor_div(add(mul(doy, 5.0), 2.0), 153.0)
    day = add(sub(doy, floor_div(add(mul(mp, 153.0), 2.0), 5.0)), 1.0)
    march_based = graph.op("Less", [mp, graph.const(10.0)], "lt")
    month = graph.op("Where", [march_based, add(mp, 3.0), add(mp, -9.0)], "month")
    january_or_february = graph.op("LessOrEqual", [month, graph.const(2.0)], "le")
    year = graph.op(
        "Add",
        [
            graph.op("Add", [yoe, mul(era, 400.0)], "add"),
            graph.op("Cast", [january_or_february], "cast", to=TensorProto.DOUBLE),
        ],
        "year",
    )
    # 1970-01-01 was a Thursday; Spark's dayofweek is 1 = Sunday .. 7 = Saturday
    shifted = add(days, 4.0)
    dayofweek = add(sub(shifted, mul(floor_div(shifted, 7.0), 7.0)), 1.0)
    parts = {"year": year, "month": month, "day": day, "dayofweek": dayofweek}
    for out, part in zip(stage.outputCols(), stage.getParts(), strict=True):
        # NaN days give NaN parts: the null DateParts writes for a null date
        graph.set(out, parts[part], 1, "int")


def string_indexer(graph: Graph, stage: ml.StringIndexerModel) -> None:
    handle = stage.getHandleInvalid()
    for (source, out), labels in zip(_pairs(stage), stage.labelsArray, strict=True):
        if handle != "keep" and graph.column(source).kind != "string":
            # the server refuses an unseen value of a string input (422); for a
            # number or a date part it could not, and would answer where Spark fails
            raise NotExportable(
                f"stage StringIndexer on {source!r}: handle_invalid {handle!r} on a column "
                "that is not a string input (use keep, or index a string column)"
            )
        text = _as_string(graph, source, "StringIndexer")
        # keep: unseen and null get index len(labels), as Spark does; error and
        # skip are refused before scoring (signature.py), -1 is never reached
        default = len(labels) if handle == "keep" else -1
        codes = graph.op(
            "LabelEncoder",
            [text],
            "indexed",
            keys_strings=list(labels),
            values_int64s=list(range(len(labels))),
            default_int64=default,
        )
        graph.set(out, graph.op("Cast", [codes], "index", to=TensorProto.DOUBLE), 1, "index")


def _as_string(graph: Graph, source: str, stage: str) -> str:
    """The column as Spark casts it to string for a StringIndexer: integers
    without a fraction, null as NULL_STRING."""
    column = graph.column(source)
    if column.kind == "string":
        return column.tensor
    if column.kind not in ("int", "index"):
        raise NotExportable(
            f"stage {stage} on {source!r}: a fractional numeric column as a category "
            "(Spark's string form of a double is not reproduced)"
        )
    as_int = graph.op("Cast", [column.tensor], "int", to=TensorProto.INT64)
    text = graph.op("Cast", [as_int], "text", to=TensorProto.STRING)
    missing = graph.op("IsNaN", [column.tensor], "isnan")
    return graph.op("Where", [missing, graph.const([NULL_STRING]), text], "text")


def one_hot(graph: Graph, stage: ml.OneHotEncoderModel) -> None:
    keep = stage.getHandleInvalid() == "keep"
    for (source, out), size in zip(_pairs(stage), stage.categorySizes, strict=True):
        index = graph.column(source).tensor
        valid = graph.op(
            "And",
            [
                graph.op("GreaterOrEqual", [index, graph.const(0.0)], "ge"),
                graph.op("Less", [index, graph.const(float(size))], "lt"),
            ],
            "valid",
        )
        # an invalid index takes the extra slot under keep (Spark's
        # OneHotEncoderModel), else no slot (error mode never gets here)
        slot = graph.op("Where", [valid, index, graph.const(float(size) if keep else -1.0)], "slot")
        width = size + (1 if keep else 0) - (1 if stage.getDropLast() else 0)
        slots = graph.const(np.arange(width, dtype=np.float64).reshape(1, width))
        hot = graph.op("Equal", [slot, slots], "hot")
        graph.set(out, graph.op("Cast", [hot], "onehot", to=TensorProto.DOUBLE), width)


def imputer(graph: Graph, stage: ml.ImputerModel) -> None:
    surrogates = stage.surrogateDF.collect()[0].asDict()
    missing_value = stage.getMissingValue()
    for source, out in _pairs(stage):
        x = _number(graph, source, "Imputer")
        integral = graph.column(source).kind == "int"
        surrogate = float(surrogates[source])
        if integral:  # Spark casts the surrogate to the column's type: toward zero
            surrogate = float(math.trunc(surrogate))
        missing = graph.op("IsNaN", [x], "isnan")
        if not math.isnan(missing_value):
            equal = graph.op("Equal", [x, graph.const(float(missing_value))], "eq")
            missing = graph.op("Or", [missing, equal], "missing")
        filled = graph.op("Where", [missing, graph.const(surrogate), x], "imputed")
        graph.set(out, filled, 1, "int" if integral else "number")


def _number(graph: Graph, source: str, stage: str) -> str:
    column = graph.column(source)
    if column.kind == "string":
        raise NotExportable(f"stage {stage} on string column {source!r}")
    return column.tensor


def assembler(graph: Graph, stage: ml.VectorAssembler) -> None:
    parts = [graph.column(c) for c in stage.getInputCols()]
    strings = [c for c, p in zip(stage.getInputCols(), parts, strict=True) if p.kind == "string"]
    if strings:
        raise NotExportable(f"stage VectorAssembler: string column(s) {strings}")
    # keep: a null stays NaN, which is what the inputs already hold
    tensors = [p.tensor for p in parts]
    joined = tensors[0] if len(tensors) == 1 else graph.op("Concat", tensors, "assembled", axis=1)
    graph.set(stage.getOutputCol(), joined, sum(p.width for p in parts))


def _scaled(graph: Graph, x: str, shift: Any | None, factor: Any | None) -> str:
    """(x - shift) * factor, either step skipped when None."""
    if shift is not None:
        x = graph.op("Sub", [x, graph.const(np.asarray(shift, dtype=np.float64)[None, :])], "sub")
    if factor is not None:
        x = graph.op("Mul", [x, graph.const(np.asarray(factor, dtype=np.float64)[None, :])], "mul")
    return x


def _inverse(values: Any) -> np.ndarray:
    """1/v, and 0 where v is 0: Spark's scalers map a constant feature to 0."""
    array = np.asarray(values, dtype=np.float64)
    return np.divide(1.0, array, out=np.zeros_like(array), where=array != 0)


def standard_scaler(graph: Graph, stage: ml.StandardScalerModel) -> None:
    x = graph.column(stage.getInputCol())
    shift = stage.mean.toArray() if stage.getWithMean() else None
    factor = _inverse(stage.std.toArray()) if stage.getWithStd() else None
    graph.set(stage.getOutputCol(), _scaled(graph, x.tensor, shift, factor), x.width)


def robust_scaler(graph: Graph, stage: ml.RobustScalerModel) -> None:
    x = graph.column(stage.getInputCol())
    shift = stage.median.toArray() if stage.getWithCentering() else None
    factor = _inverse(stage.range.toArray()) if stage.getWithScaling() else None
    graph.set(stage.getOutputCol(), _scaled(graph, x.tensor, shift, factor), x.width)


def min_max_scaler(graph: Graph, stage: ml.MinMaxScalerModel) -> None:
    x = graph.column(stage.getInputCol())
    low, high = stage.originalMin.toArray(), stage.originalMax.toArray()
    spread = high - low
    target = stage.getMax() - stage.getMin()
    # Spark: (x - min) / range * (max - min) + min; a constant feature is 0.5 of the range
    unit = _scaled(graph, x.tensor, low, _inverse(spread))
    constant = graph.const((spread == 0)[None, :])
    unit = graph.op("Where", [constant, graph.const(np.full((1, x.width), 0.5)), unit], "unit")
    out = graph.op(
        "Add",
        [graph.op("Mul", [unit, graph.const(target)], "mul"), graph.const(stage.getMin())],
        "mm",
    )
    graph.set(stage.getOutputCol(), out, x.width)


def bucketizer(graph: Graph, stage: ml.Bucketizer) -> None:
    splits_list = stage.getSplitsArray() if stage.isSet("splitsArray") else [stage.getSplits()]
    for (source, out), splits in zip(_pairs(stage), splits_list, strict=True):
        if splits[0] != float("-inf") or splits[-1] != float("inf"):
            raise NotExportable(
                f"stage Bucketizer on {source!r}: splits without -inf/+inf ends (Spark fails "
                "a batch with a value outside them)"
            )
        x = _number(graph, source, "Bucketizer")
        inner = graph.const(np.asarray(splits[1:-1], dtype=np.float64)[None, :])
        passed = graph.op(
            "Cast", [graph.op("GreaterOrEqual", [x, inner], "ge")], "passed", to=TensorProto.DOUBLE
        )
        index = graph.op(
            "ReduceSum", [passed, graph.const(np.array([1], dtype=np.int64))], "bucket", keepdims=1
        )
        # keep: NaN in a bucket of its own after the last (error/skip never get here)
        nan_bucket = float(len(splits) - 1) if stage.getHandleInvalid() == "keep" else -1.0
        missing = graph.op("IsNaN", [x], "isnan")
        graph.set(
            out, graph.op("Where", [missing, graph.const(nan_bucket), index], "bucket"), 1, "index"
        )


def selector(graph: Graph, stage: Any) -> None:
    x = graph.column(stage.getFeaturesCol())
    chosen = sorted(int(i) for i in stage.selectedFeatures)
    picked = graph.op(
        "Gather", [x.tensor, graph.const(np.asarray(chosen, dtype=np.int64))], "selected", axis=1
    )
    graph.set(stage.getOutputCol(), picked, len(chosen))


CONVERTERS: dict[type[Any], Callable[[Graph, Any], None]] = {
    ml.SQLTransformer: sql,
    DateParts: date_parts,
    ml.StringIndexerModel: string_indexer,
    ml.OneHotEncoderModel: one_hot,
    ml.ImputerModel: imputer,
    ml.VectorAssembler: assembler,
    ml.StandardScalerModel: standard_scaler,
    ml.RobustScalerModel: robust_scaler,
    ml.MinMaxScalerModel: min_max_scaler,
    ml.Bucketizer: bucketizer,
    ml.VarianceThresholdSelectorModel: selector,
    ml.UnivariateFeatureSelectorModel: selector,
}


def converter(stage: Transformer) -> Callable[[Graph, Any], None] | None:
    return CONVERTERS.get(type(stage))
