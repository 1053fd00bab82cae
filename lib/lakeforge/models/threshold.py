"""`DecisionThreshold`: the last stage of a binary model whose threshold was
tuned, so that the saved PipelineModel predicts with it.

Spark's own `threshold` param exists on a few classifiers only (logistic
regression, trees) and not on stacking or xgboost; a stage of its own works
after any of them, and predict applies it because it is part of the one
fitted artefact.
"""

from __future__ import annotations

from typing import Any

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.functions import vector_to_array
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasPredictionCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


class DecisionThreshold(
    Transformer,
    HasPredictionCol,
    DefaultParamsReadable["DecisionThreshold"],
    DefaultParamsWritable,
):
    """Sets `prediction` to 1.0 where the positive class's score (element 1 of
    `scoreCol`, the probability vector or else the raw prediction) is at least
    `threshold`, else 0.0."""

    threshold: Param[float] = Param(
        Params._dummy(),
        "threshold",
        "positive when the score of class 1 is at least this",
        typeConverter=TypeConverters.toFloat,
    )
    scoreCol: Param[str] = Param(
        Params._dummy(),
        "scoreCol",
        "vector column whose element 1 is the positive score",
        typeConverter=TypeConverters.toString,
    )

    @keyword_only
    def __init__(
        self,
        *,
        threshold: float | None = None,
        scoreCol: str | None = None,
        predictionCol: str | None = None,
    ) -> None:
        super().__init__()
        self._setDefault(threshold=0.5, scoreCol="probability", predictionCol="prediction")
        kwargs: dict[str, Any] = self._input_kwargs  # type: ignore[attr-defined]  # set by @keyword_only
        self._set(**{k: v for k, v in kwargs.items() if v is not None})

    def getThreshold(self) -> float:
        return self.getOrDefault(self.threshold)

    def getScoreCol(self) -> str:
        return self.getOrDefault(self.scoreCol)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        score = vector_to_array(F.col(self.getScoreCol()))[1]
        positive = (score >= F.lit(self.getThreshold())).cast("double")
        return dataset.withColumn(self.getPredictionCol(), positive)
