"""The chosen candidate refitted on the whole train split: feature stages and
estimator as one PipelineModel, the single artefact scoring uses."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark import StorageLevel
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.stat import Summarizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.features.stages import FEATURES, PipelineStage
from lakeforge.models.labels import with_classes
from lakeforge.tuning.search import CandidateSpec, Wiring, vector_size


def refit(
    stages: Sequence[PipelineStage], chosen: CandidateSpec, train: DataFrame, wiring: Wiring
) -> tuple[PipelineModel, list[float]]:
    """`chosen` fitted after `stages` on `train` (weighted when `wiring` names
    a weight column), and the standard deviation of each feature slot on those
    rows (to standardise linear coefficients into comparable importances)."""
    train = with_classes(train, wiring.label, wiring.n_classes)
    featurizer = Pipeline(stages=list(stages)).fit(train)
    features = featurizer.transform(train).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        fitted = wiring.estimator(chosen, vector_size(features)).fit(features)
        row = features.select(Summarizer.std(F.col(FEATURES)).alias("std")).first()
        feature_std = [float(v) for v in row["std"].toArray()] if row is not None else []
    finally:
        features.unpersist()
    return PipelineModel(stages=[*featurizer.stages, fitted]), feature_std
