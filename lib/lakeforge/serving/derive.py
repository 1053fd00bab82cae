"""ONNX for `features.derive`: the numeric subset of Spark SQL a derived
feature can use online.

The SQLTransformer's statement is parsed by Spark's own parser (the tree
Spark will evaluate, not a second grammar of ours), and each derived column
is rebuilt from: column references, numeric literals, `+ - * /`, unary minus,
`abs`, `sqrt`, `exp`, `ln`/`log` (one or two arguments), `log10`, `log2`,
`pow`/`power`, and CASTs to a numeric type. A null is NaN in the graph, as
the VectorAssembler after it makes it. Where Spark gives null (a log of a
number <= 0, a division by zero with ANSI mode off) the graph gives NaN.
Anything else is NotExportable, naming the expression.
"""

from __future__ import annotations

import math
from typing import Any

from onnx import TensorProto
from pyspark.sql import SparkSession

from lakeforge.serving.graph import Graph, NotExportable

_NUMERIC_CASTS = {"double", "float", "integer", "long", "short", "byte"}
_INTEGRAL_CASTS = {"integer", "long", "short", "byte"}
_NAN = math.nan


def derived_columns(graph: Graph, statement: str) -> list[tuple[str, Any]]:
    """The (name, Catalyst expression) pairs `SELECT *, ... FROM __THIS__`
    adds, parsed by the active session's SQL parser."""
    spark = SparkSession.getActiveSession()
    if spark is None:
        raise NotExportable("no active SparkSession to parse the statement with")
    plan = spark._jsparkSession.sessionState().sqlParser().parsePlan(statement)
    if _kind(plan) != "Project":
        raise NotExportable("the statement is not a plain SELECT")
    items = plan.projectList()
    pairs: list[tuple[str, Any]] = []
    for i in range(items.size()):
        item = items.apply(i)
        kind = _kind(item)
        if kind == "UnresolvedStar":
            continue
        if kind != "Alias":
            raise NotExportable(f"a select item {item.sql()!r} without a name")
        pairs.append((str(item.name()), item.child()))
    return pairs


def derive(graph: Graph, name: str, expression: Any) -> None:
    """Add column `name` computed as the parsed `expression`."""
    tensor, integral = _build(graph, expression)
    graph.set(name, tensor, 1, "int" if integral else "number")


def _kind(node: Any) -> str:
    return str(node.getClass().getSimpleName())


def _children(node: Any) -> list[Any]:
    children = node.children()
    return [children.apply(i) for i in range(children.size())]


def _build(graph: Graph, node: Any) -> tuple[str, bool]:
    """(tensor, whether the value is an integer in Spark) for `node`."""
    kind = _kind(node)
    if kind == "UnresolvedAttribute":
        column = graph.column(str(node.name()))
        if column.kind == "string" or column.width != 1:
            raise NotExportable(f"{node.sql()} is not a numeric column")
        return column.tensor, column.kind in ("int", "index")
    if kind == "Literal":
        return _literal(graph, node)
    if kind in ("Add", "Subtract", "Multiply", "Divide"):
        (left, left_int), (right, right_int) = (_build(graph, c) for c in _children(node))
        if kind == "Divide":  # always a double in Spark; x / 0 is null (or an error)
            zero = graph.op("Equal", [right, graph.const(0.0)], "zero")
            quotient = graph.op("Div", [left, right], "div")
            return graph.op("Where", [zero, graph.const(_NAN), quotient], "quotient"), False
        op = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul"}[kind]
        return graph.op(op, [left, right], op.lower()), left_int and right_int
    if kind == "UnaryMinus":
        value, integral = _build(graph, _children(node)[0])
        return graph.op("Neg", [value], "neg"), integral
    if kind == "UnaryPositive":
        return _build(graph, _children(node)[0])
    if kind == "Cast":
        return _cast(graph, node)
    if kind == "UnresolvedFunction":
        return _function(graph, node)
    raise NotExportable(f"{node.sql()} ({kind}) is outside the exported subset")


def _literal(graph: Graph, node: Any) -> tuple[str, bool]:
    type_name = str(node.dataType().typeName())
    value = node.value()
    if value is None:
        raise NotExportable("a NULL literal")
    if type_name in _INTEGRAL_CASTS:
        return graph.const(float(value)), True
    if type_name in ("double", "float"):
        return graph.const(float(value)), False
    if type_name.startswith("decimal"):
        return graph.const(float(value.toDouble())), False
    raise NotExportable(f"literal {node.sql()} of type {type_name}")


def _cast(graph: Graph, node: Any) -> tuple[str, bool]:
    target = str(node.dataType().typeName())
    if target not in _NUMERIC_CASTS:
        raise NotExportable(f"{node.sql()}: a CAST to {target}")
    value, integral = _build(graph, _children(node)[0])
    if target in _INTEGRAL_CASTS and not integral:
        # Spark truncates toward zero
        negative = graph.op("Less", [value, graph.const(0.0)], "neg")
        truncated = graph.op(
            "Where",
            [negative, graph.op("Ceil", [value], "ceil"), graph.op("Floor", [value], "floor")],
            "trunc",
        )
        return truncated, True
    if target == "float":  # a float32 value, as Spark holds it
        as_float = graph.op("Cast", [value], "f32", to=TensorProto.FLOAT)
        return graph.op("Cast", [as_float], "f64", to=TensorProto.DOUBLE), False
    return value, integral and target in _INTEGRAL_CASTS


def _function(graph: Graph, node: Any) -> tuple[str, bool]:
    parts = node.nameParts()
    name = ".".join(str(parts.apply(i)) for i in range(parts.size())).lower()
    arguments = node.arguments()
    args = [_build(graph, arguments.apply(i)) for i in range(arguments.size())]
    if node.isDistinct() or (name, len(args)) not in _FUNCTIONS:
        raise NotExportable(f"function {node.sql()} is outside the exported subset")
    return _FUNCTIONS[name, len(args)](graph, args)


def _positive_log(graph: Graph, x: str) -> str:
    """ln(x); NaN (Spark's null) where x <= 0."""
    invalid = graph.op("LessOrEqual", [x, graph.const(0.0)], "le")
    return graph.op("Where", [invalid, graph.const(_NAN), graph.op("Log", [x], "ln")], "log")


def _scaled_log(base: float) -> Any:
    def build(graph: Graph, args: list[tuple[str, bool]]) -> tuple[str, bool]:
        ln = _positive_log(graph, args[0][0])
        return graph.op("Div", [ln, graph.const(math.log(base))], "log"), False

    return build


def _log_base(graph: Graph, args: list[tuple[str, bool]]) -> tuple[str, bool]:
    (base, _), (x, _) = args
    return graph.op("Div", [_positive_log(graph, x), _positive_log(graph, base)], "log"), False


def _unary(op: str, keeps_integer: bool = False) -> Any:
    def build(graph: Graph, args: list[tuple[str, bool]]) -> tuple[str, bool]:
        value, integral = args[0]
        return graph.op(op, [value], op.lower()), integral and keeps_integer

    return build


def _power(graph: Graph, args: list[tuple[str, bool]]) -> tuple[str, bool]:
    (x, _), (y, _) = args
    return graph.op("Pow", [x, y], "pow"), False


def _ln(graph: Graph, args: list[tuple[str, bool]]) -> tuple[str, bool]:
    return _positive_log(graph, args[0][0]), False


_FUNCTIONS: dict[tuple[str, int], Any] = {
    ("abs", 1): _unary("Abs", keeps_integer=True),
    ("sqrt", 1): _unary("Sqrt"),
    ("exp", 1): _unary("Exp"),
    ("ln", 1): _ln,
    ("log", 1): _ln,
    ("log", 2): _log_base,
    ("log10", 1): _scaled_log(10.0),
    ("log2", 1): _scaled_log(2.0),
    ("pow", 2): _power,
    ("power", 2): _power,
}
