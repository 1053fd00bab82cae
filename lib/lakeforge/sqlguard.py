"""The functions config SQL may call, checked with Spark's own parser.

Config expressions (rules, derived columns, `where`, dedupe ordering) run
inside Spark. The config loader's check (`config.base`) refuses text that is
more than one expression; this one parses each expression with Spark's SQL
parser, walks the tree and refuses a subquery or any function that is not one
of Spark's built-in functions, except those that call arbitrary JVM methods
(`reflect`, `java_method`, `try_reflect`). Functions of the user's own (a
UDF registered on the session, a catalog function) pass only when
`sql_functions` in the settings names them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

from lakeforge.clean.transform import ordering_expression
from lakeforge.config import JobConfig
from lakeforge.errors import ConfigError

# built-in, but a door to the JVM: any static method of any class on the classpath
_REFUSED = frozenset({"reflect", "java_method", "try_reflect"})
_checked: set[tuple[int, str]] = set()


def expressions(cfg: JobConfig) -> Iterator[tuple[str, str]]:
    """(config key, SQL expression) for every expression the dataset config holds."""
    ds = cfg.dataset
    for name, text in ds.clean.derive.items():
        yield f"clean.derive.{name}", text
    for i, text in enumerate(ds.clean.dedupe.order_by):
        yield f"clean.dedupe.order_by[{i}]", ordering_expression(text)
    for rule in ds.rules:
        if rule.expression:
            yield f"rules.{rule.name}.expression", rule.expression
    if ds.train is not None:
        if ds.train.where:
            yield "train.where", ds.train.where
        for name, text in ds.train.features.derive.items():
            yield f"train.features.derive.{name}", text
    if ds.predict.where:
        yield "predict.where", ds.predict.where


def check(spark: SparkSession, cfg: JobConfig) -> None:
    """Raise ConfigError naming the key and the function (or subquery) of the
    first expression that calls something not allowed."""
    key = (id(spark), cfg.dataset.model_dump_json() + repr(sorted(cfg.settings.sql_functions)))
    if key in _checked:
        return
    jvm = spark._jvm
    assert jvm is not None
    listed = jvm.org.apache.spark.sql.catalyst.analysis.FunctionRegistry.builtin().listFunction()
    builtin = {str(listed.apply(i).funcName()).lower() for i in range(listed.size())}
    mine = {f.lower() for f in cfg.settings.sql_functions}
    parser = spark._jsparkSession.sessionState().sqlParser()
    for where, text in expressions(cfg):
        try:
            tree = parser.parseExpression(text)
        except PySparkException as exc:
            raise ConfigError(f"{cfg.dataset.name}: {where}: {exc}".splitlines()[0]) from None
        for kind, name in _calls(tree):
            if kind == "identifier":
                raise ConfigError(
                    f"{cfg.dataset.name}: {where}: {text!r} names a function or column with "
                    "IDENTIFIER(...), which is resolved only at run time: write the name itself"
                )
            if kind == "subquery":
                raise ConfigError(
                    f"{cfg.dataset.name}: {where}: {text!r} holds a subquery; an expression "
                    "may read only the row's own columns"
                )
            why = _refusal(name, builtin, mine)
            if why:
                raise ConfigError(
                    f"{cfg.dataset.name}: {where}: function {name}() {why}; only Spark's "
                    "built-in functions (and those named in the settings' sql_functions) "
                    "may be called from config"
                )
    _checked.add(key)


def _refusal(name: str, builtin: set[str], mine: set[str]) -> str | None:
    """Why `name` may not be called, or None when it may."""
    full = name.lower()
    last = full.split(".")[-1]
    if full in mine:
        return None
    if last in _REFUSED:
        return "calls arbitrary JVM methods"
    qualified = "." in full and not full.startswith(("builtin.", "system.builtin."))
    if qualified or last not in builtin:
        return "is not one of Spark's built-in functions"
    return None


def _calls(node: Any) -> Iterator[tuple[str, str]]:
    """("function", name) for each function call in the parsed tree, and
    ("subquery", "") for each subquery."""
    kind = str(node.getClass().getSimpleName())
    if kind == "UnresolvedFunction":
        parts = node.nameParts()
        yield "function", ".".join(str(parts.apply(i)) for i in range(parts.size()))
    elif "Subquery" in kind or kind in ("Exists", "ListQuery"):
        yield "subquery", ""
    elif "UnresolvedIdentifier" in kind:  # IDENTIFIER('java_method')(...)
        yield "identifier", ""
    children = node.children()
    for i in range(children.size()):
        yield from _calls(children.apply(i))
