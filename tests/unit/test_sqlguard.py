"""Config SQL may call Spark's built-in functions, not the ones that reach
into the JVM (`reflect`, `java_method`, `try_reflect`), not a subquery, and
not a function of its own unless the settings name it; checked by Spark's own
parser, wherever in the config the expression sits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from lakeforge.errors import ConfigError
from lakeforge.sqlguard import check
from lakeforge.steps import clean
from tests.helpers import job_config, write_dataset

RUNTIME = "'java.lang.Runtime', 'getRuntime'"


def _cfg(tmp_path: Path, extra: dict[str, object], functions: list[str] | None = None):  # type: ignore[no-untyped-def]
    dataset = write_dataset(tmp_path / "conf", tmp_path / "in.csv", extra=extra)
    if functions is not None:
        base = tmp_path / "conf" / "base.yaml"
        settings = yaml.safe_load(base.read_text()) or {}
        base.write_text(yaml.safe_dump({**settings, "sql_functions": functions}))
    return job_config(dataset)


@pytest.mark.parametrize("function", ["reflect", "java_method", "try_reflect"])
@pytest.mark.parametrize(
    "place, key",
    [
        ("derive", "clean.derive.d"),
        ("rule", "rules.r.expression"),
        ("order", "clean.dedupe.order_by[0]"),
    ],
)
def test_a_function_that_calls_the_jvm_is_refused(
    spark: SparkSession, tmp_path: Path, function: str, place: str, key: str
) -> None:
    call = f"{function}({RUNTIME})"
    extra: dict[str, object] = {
        "derive": {"clean": {"derive": {"d": f"upper(carrier) || {call}"}}},
        "rule": {"rules": [{"name": "r", "type": "sql", "expression": f"{call} IS NOT NULL"}]},
        "order": {"clean": {"dedupe": {"order_by": [f"{call} DESC"]}}},
    }[place]
    cfg = _cfg(tmp_path, extra)
    with pytest.raises(
        ConfigError, match=rf"{re.escape(key)}: function {function}\(\) calls arbitrary JVM"
    ):
        check(spark, cfg)
    with pytest.raises(ConfigError, match=function):  # the step refuses it before any work
        clean.run(spark, cfg)


def test_built_in_functions_pass_and_others_only_when_listed(
    spark: SparkSession, tmp_path: Path
) -> None:
    fine = {
        "d": "coalesce(upper(carrier), 'x') || "
        "CAST(size(filter(array(delay), v -> v > 0)) AS STRING)"
    }
    check(spark, _cfg(tmp_path / "a", {"clean": {"derive": fine}}))
    mine = {"clean": {"derive": {"d": "my_udf(carrier)"}}}
    with pytest.raises(ConfigError, match=r"my_udf\(\) is not one of Spark's built-in"):
        check(spark, _cfg(tmp_path / "b", mine))
    check(spark, _cfg(tmp_path / "c", mine, functions=["my_udf"]))
    # a listed name does not open the JVM functions under another qualifier
    qualified = {"clean": {"derive": {"d": f"system.builtin.reflect({RUNTIME})"}}}
    with pytest.raises(ConfigError, match="calls arbitrary JVM"):
        check(spark, _cfg(tmp_path / "d", qualified, functions=["my_udf"]))
    # a name given as a string is resolved only at run time: refused
    hidden = {"clean": {"derive": {"d": f"IDENTIFIER('java_method')({RUNTIME})"}}}
    with pytest.raises(ConfigError, match=r"IDENTIFIER\(\.\.\.\), which is resolved only"):
        check(spark, _cfg(tmp_path / "e", hidden))
