"""Which inputs a fitted model leans on, named by silver column (not vector index).

Per model family: tree ensembles and trees give Spark's impurity
importances; xgboost its total gain; linear models their standardised
coefficients (coefficient x the feature's standard deviation, so a one-hot
slot and a scaled number are comparable); stacking the bases' importances
weighted by how much the meta-learner leans on each base. Each slot of the
`features` vector is named (`carrier=UA`), and the slots are summed per
silver column (`carrier`) for the per-column table and plot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pyspark.ml import PipelineModel, Transformer
from pyspark.sql.types import StructType

from lakeforge.config.training import Features
from lakeforge.features.stages import FEATURES
from lakeforge.models.stacking import StackingModel
from lakeforge.models.threshold import DecisionThreshold

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


def estimator_stage(model: PipelineModel) -> Transformer:
    """The fitted estimator of a training PipelineModel (a tuned decision
    threshold may follow it)."""
    stages = [s for s in model.stages if not isinstance(s, DecisionThreshold)]
    return stages[-1]


def importances(
    model: PipelineModel, names: Sequence[str], feature_std: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """(feature slot name, weight), largest magnitude first; empty for models
    with no global importance (naive Bayes, MLP, FM). `feature_std` (one per
    slot) standardises linear coefficients."""
    values = _weights(estimator_stage(model), len(names), feature_std)
    if values is None:
        return []
    pairs = [(names[i] if i < len(names) else f"f{i}", v) for i, v in enumerate(values)]
    return sorted(pairs, key=lambda p: abs(p[1]), reverse=True)


def _weights(fitted: Any, size: int, feature_std: Sequence[float] | None) -> list[float] | None:
    if isinstance(fitted, StackingModel):
        return _stacking_weights(fitted, size, feature_std)
    if hasattr(fitted, "featureImportances"):
        return [float(v) for v in fitted.featureImportances.toArray()]
    if hasattr(fitted, "get_feature_importances"):  # xgboost.spark
        gains = fitted.get_feature_importances(importance_type="total_gain")
        total = sum(gains.values()) or 1.0
        found = [0.0] * size
        for key, gain in gains.items():
            index = int(key[1:]) if key.startswith("f") and key[1:].isdigit() else -1
            if 0 <= index < size:
                found[index] = float(gain) / total
        return found
    raw: list[float]
    if hasattr(fitted, "coefficientMatrix") and fitted.coefficientMatrix.numRows > 1:
        matrix = fitted.coefficientMatrix.toArray()
        raw = [float(max(abs(matrix[:, j]))) for j in range(matrix.shape[1])]
    elif hasattr(fitted, "coefficients"):
        raw = [float(v) for v in fitted.coefficients.toArray()]
    else:
        return None
    if feature_std is None or len(feature_std) != len(raw):
        return raw
    return [c * float(s) for c, s in zip(raw, feature_std, strict=True)]


def _stacking_weights(
    model: StackingModel, size: int, feature_std: Sequence[float] | None
) -> list[float] | None:
    """Each base's importances (scaled to sum 1 in magnitude) weighted by the
    meta-learner's share on that base's meta features."""
    per_base = [_weights(b, size, feature_std) for b in model.baseModels]
    meta = _weights(model.metaModel, len(model.baseModels) * model.slots() + size, None)
    if meta is None or any(b is None for b in per_base):
        return None
    slots = model.slots()
    shares = [sum(abs(v) for v in meta[i * slots : (i + 1) * slots]) for i in range(len(per_base))]
    total_share = sum(shares) or 1.0
    combined = [0.0] * size
    for share, weights in zip(shares, per_base, strict=True):
        assert weights is not None
        norm = sum(abs(w) for w in weights) or 1.0
        for j, w in enumerate(weights[:size]):
            combined[j] += share / total_share * abs(w) / norm
    if model.getPassthrough():  # the meta-learner's own weights on the raw features
        own = meta[len(per_base) * slots :]
        norm = sum(abs(v) for v in own) or 1.0
        combined = [c + abs(v) / norm for c, v in zip(combined, own, strict=False)]
    return combined


def slot_column(slot: str, features: Features) -> str:
    """The silver (or derived) column a feature slot comes from: `carrier=UA`
    is `carrier`, `flight_date_month=10` is `flight_date`, a bucket of
    `sched_dep_time` is `sched_dep_time`."""
    column = re.split(r"=| bucket \[", slot, maxsplit=1)[0]
    for dates in features.dates:
        if any(column == f"{dates.column}_{part}" for part in dates.parts):
            return dates.column
    return column


def by_column(pairs: Sequence[tuple[str, float]], features: Features) -> list[tuple[str, float]]:
    """Slot weights summed in magnitude per source column, largest first."""
    totals: dict[str, float] = {}
    for slot, weight in pairs:
        column = slot_column(slot, features)
        totals[column] = totals.get(column, 0.0) + abs(weight)
    return sorted(totals.items(), key=lambda p: p[1], reverse=True)
