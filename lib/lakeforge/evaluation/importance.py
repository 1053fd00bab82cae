"""Which inputs a fitted model leans on, named by silver column (not vector index)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pyspark.ml import PipelineModel
from pyspark.sql.types import StructType

from lakeforge.features.stages import FEATURES

_NUMERIC = re.compile(r"^__numeric(?:_scaled)?_(\d+)$")


def feature_names(schema: StructType, numeric_columns: Sequence[str]) -> list[str]:
    """The name of each slot of the `features` vector, from Spark ML's attribute
    metadata: `dep_delay`, `carrier=UA`, `distance bucket -Infinity, 500.0`."""
    meta = schema[FEATURES].metadata.get("ml_attr", {})
    size = int(meta.get("num_attrs", 0))
    names = [f"f{i}" for i in range(size)]
    for group in meta.get("attrs", {}).values():
        for attr in group:
            names[int(attr["idx"])] = _readable(str(attr.get("name", "")), numeric_columns)
    return names


def _readable(name: str, numeric_columns: Sequence[str]) -> str:
    match = _NUMERIC.match(name)
    if match and int(match.group(1)) < len(numeric_columns):
        return numeric_columns[int(match.group(1))]
    for prefix in ("__numeric_scaled_", "__numeric_"):  # an unscaled block keeps names
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if "__bucket__ohe_" in name:
        column, _, edges = name.partition("__bucket__ohe_")
        return f"{column} bucket [{edges})"
    if "__ohe_" in name:
        column, _, value = name.partition("__ohe_")
        return f"{column}={value}"
    return name.replace("__imputed", "").replace("__idx", "")


def importances(model: PipelineModel, names: Sequence[str]) -> list[tuple[str, float]]:
    """(feature name, weight), largest magnitude first: tree importances, or the
    coefficients of a linear model (on scaled inputs, so comparable); empty for
    models with neither (naive Bayes, MLP, FM)."""
    fitted = model.stages[-1]
    values: list[float]
    if hasattr(fitted, "featureImportances"):
        values = [float(v) for v in fitted.featureImportances.toArray()]
    elif hasattr(fitted, "coefficientMatrix") and fitted.coefficientMatrix.numRows > 1:
        matrix = fitted.coefficientMatrix.toArray()
        values = [float(max(abs(matrix[:, j]))) for j in range(matrix.shape[1])]
    elif hasattr(fitted, "coefficients"):
        values = [float(v) for v in fitted.coefficients.toArray()]
    else:
        return []
    pairs = [(names[i] if i < len(names) else f"f{i}", v) for i, v in enumerate(values)]
    return sorted(pairs, key=lambda p: abs(p[1]), reverse=True)
