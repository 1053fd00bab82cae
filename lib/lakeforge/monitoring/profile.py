"""The reference profile: what monitor compares a batch with, computed once at
training time on exactly the rows the model learnt from (the train split),
and stored with the model.

It summarises every model input (derived columns and date parts included,
as the model's own stages compute them) and the model's output on those rows:
bin edges and counts, a quantile grid, category counts (see `drift`). Monitor
reads it from the model's run; silver's time travel is then only needed to
reproduce the run (the batch's own silver version is still read).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyspark.ml import PipelineModel, Transformer
from pyspark.ml.feature import SQLTransformer
from pyspark.ml.functions import vector_to_array
from pyspark.ml.pipeline import PipelineSharedReadWrite
from pyspark.ml.util import DefaultParamsReader
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge.config.training import TrainConfig
from lakeforge.features.dateparts import DateParts
from lakeforge.monitoring import drift

PREDICTION = "prediction"
ARTIFACT = "reference_profile.json"
FORMAT = 1


@dataclass(frozen=True)
class ReferenceProfile:
    """Profiles of the model's inputs and of its output (subject `prediction`)."""

    rows: int  # the train split's rows it summarises
    silver_version: int
    bins: int
    top_categories: int
    numeric: list[drift.NumericProfile] = field(default_factory=list)
    categorical: list[drift.CategoricalProfile] = field(default_factory=list)

    def inputs(self) -> tuple[list[drift.NumericProfile], list[drift.CategoricalProfile]]:
        return (
            [p for p in self.numeric if p.column != PREDICTION],
            [p for p in self.categorical if p.column != PREDICTION],
        )

    def output(self) -> tuple[list[drift.NumericProfile], list[drift.CategoricalProfile]]:
        return (
            [p for p in self.numeric if p.column == PREDICTION],
            [p for p in self.categorical if p.column == PREDICTION],
        )

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        if data.get("format") != FORMAT:
            raise ValueError(f"reference profile format {data.get('format')!r}, expected {FORMAT}")
        return cls(
            rows=int(data["rows"]),
            silver_version=int(data["silver_version"]),
            bins=int(data["bins"]),
            top_categories=int(data["top_categories"]),
            numeric=[drift.NumericProfile(**p) for p in data["numeric"]],
            categorical=[drift.CategoricalProfile(**p) for p in data["categorical"]],
        )


def subjects(spec: TrainConfig) -> tuple[list[str], list[str]]:
    """The model inputs that drift, as numeric and categorical columns of the
    frame the model's derivation stages produce (derived columns and date
    parts included)."""
    features = spec.features
    numeric = [*(features.numeric.columns if features.numeric else [])]
    numeric += [b.column for b in features.buckets if b.column not in numeric]
    categorical = [*(features.categorical.columns if features.categorical else [])]
    for dates in features.dates:
        stage = DateParts(inputCol=dates.column, parts=list(dates.parts))
        categorical += stage.outputCols()
    return list(dict.fromkeys(numeric)), list(dict.fromkeys(categorical))


def derivation(model: PipelineModel) -> PipelineModel:
    """The model's leading stages that add columns from silver's (derived
    columns, date parts): what turns a silver row into the inputs profiled.
    Indexers, encoders and the estimator are left out: they do not change the
    inputs, and `handle_invalid: skip` would drop rows."""
    leading: list[Transformer] = []
    for stage in model.stages:
        if not isinstance(stage, SQLTransformer | DateParts):
            break
        leading.append(stage)
    return PipelineModel(stages=leading)


# the derivation stages by the class their saved metadata names
_DERIVING: dict[str, type[SQLTransformer] | type[DateParts]] = {
    "org.apache.spark.ml.feature.SQLTransformer": SQLTransformer,
    f"{DateParts.__module__}.{DateParts.__name__}": DateParts,
}


def saved_derivation(path: str) -> PipelineModel:
    """`derivation` of the PipelineModel saved at `path` (a local folder),
    built from the saved stages' metadata alone: derivation stages hold
    nothing but params, so the rest of the model (its fitted indexers,
    encoders and estimator, some twenty Spark jobs to load) is not read.
    Raises OSError or ValueError when `path` holds no saved PipelineModel."""
    root = Path(path)
    uids = list(_metadata(root)["paramMap"]["stageUids"])
    leading: list[Transformer] = []
    for index, uid in enumerate(uids):
        stage_path = PipelineSharedReadWrite.getStagePath(
            uid, index, len(uids), str(root / "stages")
        )
        saved = _metadata(Path(stage_path))
        kind = _DERIVING.get(saved["class"])
        if kind is None:
            break
        stage = kind()
        DefaultParamsReader.getAndSetParams(stage, saved)
        leading.append(stage)
    return PipelineModel(stages=leading)


def _metadata(folder: Path) -> dict[str, Any]:
    """The metadata Spark ML saved for a stage or pipeline (one JSON line)."""
    for part in sorted((folder / "metadata").glob("part-*")):
        text = part.read_text().strip()
        if text:
            found: dict[str, Any] = json.loads(text.splitlines()[0])
            return found
    raise ValueError(f"no saved Spark ML metadata in {folder}")


def model_output(df: DataFrame, spec: TrainConfig) -> Column:
    """The model output that drifts: P(positive) for binary, the class for
    multiclass, the value for regression (`probability` as Spark's vector or
    as gold's array)."""
    if spec.task == "binary" and "probability" in df.columns:
        probability = F.col("probability")
        if isinstance(df.schema["probability"].dataType, T.ArrayType):
            return probability[1]
        return vector_to_array(probability)[1]
    return F.col("prediction")


def build(
    scored: DataFrame, spec: TrainConfig, silver_version: int, bins: int, top: int
) -> ReferenceProfile:
    """The profile of `scored`: the train split's rows as the fitted model
    transformed them (its inputs and its output)."""
    numeric, categorical = subjects(spec)
    output = model_output(scored, spec).alias(PREDICTION)
    narrow = scored.select(*[F.col(c) for c in (*numeric, *categorical)], output).persist()
    try:
        rows = narrow.count()
        if spec.task == "multiclass":
            categorical = [*categorical, PREDICTION]
        else:
            numeric = [*numeric, PREDICTION]
        return ReferenceProfile(
            rows=rows,
            silver_version=silver_version,
            bins=bins,
            top_categories=top,
            numeric=drift.profile_numeric(narrow, numeric, bins),
            categorical=drift.profile_categorical(narrow, categorical, top),
        )
    finally:
        narrow.unpersist()
