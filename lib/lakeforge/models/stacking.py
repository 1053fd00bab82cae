"""Stacking: base models fitted on folds, a meta-learner fitted on their
out-of-fold predictions, as one Spark ML Estimator.

Why out-of-fold: a meta-learner trained on the bases' predictions for rows
they were fitted on learns to trust whichever base overfits most. Each row's
meta features come instead from base models that never saw it (k folds from a
hash of the row, so the same rows give the same folds on any cluster); the
meta-learner is fitted on those, and the bases are then refitted on every
row for scoring.

`StackingClassifier` / `StackingRegressor` take any Spark ML (or
`xgboost.spark`) estimators as `baseEstimators` and `metaEstimator`, the way
`Pipeline` takes `stages`. The fitted `StackingModel` saves and loads itself
with its members in sub-folders (as `PipelineModel` does), so it is one stage
of the training PipelineModel: MLflow logs it, predict loads and applies it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from typing import Any, ClassVar

from pyspark import StorageLevel, keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import (
    HasFeaturesCol,
    HasLabelCol,
    HasPredictionCol,
    HasProbabilityCol,
    HasRawPredictionCol,
    HasSeed,
    HasWeightCol,
)
from pyspark.ml.util import MLReadable, MLReader, MLWritable, MLWriter
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeforge.models.labels import classes_of, with_classes
from lakeforge.models.persistence import MembersReader, MembersWriter

META_FEATURES = "__stack_features"
_FOLD = "__stack_fold"
# a base model's probabilities are clipped to [CLIP, 1 - CLIP] before log-odds
CLIP = 1e-6
# Members are Params of the estimator (as Pipeline's stages are) but not JSON:
# they are saved as sub-folders, never in the metadata.
_MEMBERS = ("baseEstimators", "metaEstimator")


def member_column(index: int, what: str) -> str:
    """The column base model `index` writes its `what` (prediction,
    probability, raw) to; the ONNX export reads the same names."""
    return f"__stack{index}_{what}"


class _StackingParams(
    HasFeaturesCol,
    HasLabelCol,
    HasPredictionCol,
    HasProbabilityCol,
    HasRawPredictionCol,
    HasWeightCol,
    HasSeed,
):
    numFolds: Param[int] = Param(
        Params._dummy(),
        "numFolds",
        "folds of the out-of-fold predictions the meta-learner is fitted on (>= 2)",
        typeConverter=TypeConverters.toInt,
    )
    passthrough: Param[bool] = Param(
        Params._dummy(),
        "passthrough",
        "whether the meta-learner also sees the original features",
        typeConverter=TypeConverters.toBoolean,
    )
    parallelism: Param[int] = Param(
        Params._dummy(),
        "parallelism",
        "base models fitted at once (Spark runs jobs of several threads side by side)",
        typeConverter=TypeConverters.toInt,
    )
    numClasses: Param[int] = Param(
        Params._dummy(),
        "numClasses",
        "classes of the label (0: regression); counted when fitting unless set",
        typeConverter=TypeConverters.toInt,
    )

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._setDefault(
            numFolds=3,
            passthrough=False,
            parallelism=1,
            numClasses=0,
            seed=7,
            probabilityCol="probability",
            rawPredictionCol="rawPrediction",
        )

    def getNumFolds(self) -> int:
        return self.getOrDefault(self.numFolds)

    def getPassthrough(self) -> bool:
        return self.getOrDefault(self.passthrough)

    def getParallelism(self) -> int:
        return self.getOrDefault(self.parallelism)

    def getNumClasses(self) -> int:
        return self.getOrDefault(self.numClasses)

    def slots(self) -> int:
        """Meta features each base model gives: the probabilities of classes
        1..k-1 (they sum to one with class 0's), or the prediction."""
        return max(1, self.getNumClasses() - 1)


def _wire(stage: Params, **columns: str | None) -> Params:
    """A copy of `stage` reading and writing the given columns (those it has;
    a weight only where the stage takes one)."""
    wired = stage.copy()
    for name, value in columns.items():
        if value and wired.hasParam(name):
            wired.set(wired.getParam(name), value)
    return wired


def _score_slots(model: Params, index: int, n_classes: int) -> list[Column]:
    """The meta features of base model `index` from its output columns: the
    prediction (regression); the log-odds of classes 1..k-1 against class 0
    (probabilities clipped to [1e-6, 1 - 1e-6]), so that a linear
    meta-learner weighs the bases' evidence on the scale their own links use;
    or the raw margin of a classifier without probabilities."""
    if n_classes == 0:
        return [F.col(member_column(index, "prediction")).cast("double")]
    if not (model.hasParam("probabilityCol") and model.isDefined("probabilityCol")):
        raw = vector_to_array(F.col(member_column(index, "raw")))
        return [raw[c] for c in range(1, n_classes)]
    p = vector_to_array(F.col(member_column(index, "probability")))

    def clipped(c: int) -> Column:
        return F.least(F.greatest(p[c], F.lit(CLIP)), F.lit(1.0 - CLIP))

    return [F.log(clipped(c)) - F.log(clipped(0)) for c in range(1, n_classes)]


class _Stacking(Estimator["StackingModel"], _StackingParams, MLReadable[Any], MLWritable):
    """Shared by the classifier and the regressor (`_classifier` tells which)."""

    _classifier: ClassVar[bool] = True

    baseEstimators: Param[list[Estimator[Any]]] = Param(
        Params._dummy(), "baseEstimators", "the base estimators (two or more)"
    )
    metaEstimator: Param[Estimator[Any]] = Param(
        Params._dummy(), "metaEstimator", "the estimator fitted on the base models' predictions"
    )

    @keyword_only
    def __init__(
        self,
        *,
        baseEstimators: list[Estimator[Any]] | None = None,
        metaEstimator: Estimator[Any] | None = None,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        weightCol: str | None = None,
        numFolds: int = 3,
        passthrough: bool = False,
        parallelism: int = 1,
        seed: int = 7,
    ) -> None:
        super().__init__()
        kwargs: dict[str, Any] = self._input_kwargs  # type: ignore[attr-defined]  # set by @keyword_only
        self._set(**kwargs)

    def getBaseEstimators(self) -> list[Estimator[Any]]:
        members: list[Estimator[Any]] = self.getOrDefault("baseEstimators")
        return list(members)

    def getMetaEstimator(self) -> Estimator[Any]:
        return self.getOrDefault(self.metaEstimator)

    def setBaseEstimators(self, value: list[Estimator[Any]]) -> _Stacking:
        return self._set(baseEstimators=value)

    def setMetaEstimator(self, value: Estimator[Any]) -> _Stacking:
        return self._set(metaEstimator=value)

    def setNumFolds(self, value: int) -> _Stacking:
        return self._set(numFolds=value)

    def setPassthrough(self, value: bool) -> _Stacking:
        return self._set(passthrough=value)

    def copy(self, extra: dict[Param[Any], Any] | None = None) -> _Stacking:
        """A copy whose members are copies too (Pipeline.copy does the same)."""
        that = super().copy(extra)
        that._set(
            baseEstimators=[b.copy() for b in self.getBaseEstimators()],
            metaEstimator=self.getMetaEstimator().copy(),
        )
        return that

    def _fit(self, dataset: DataFrame) -> StackingModel:
        bases = self.getBaseEstimators()
        if len(bases) < 2:
            raise ValueError("stacking needs two or more base estimators")
        if self.getNumFolds() < 2:
            raise ValueError("stacking needs numFolds >= 2")
        label, features = self.getLabelCol(), self.getFeaturesCol()
        weight = (
            self.getOrDefault(self.weightCol) if self.isDefined(self.weightCol) else None
        ) or None
        columns = [features, label, *([weight] if weight else [])]
        # The fold of a row comes from its values, not from partitioning or order.
        fold = F.pmod(
            F.xxhash64(F.lit(self.getSeed()), vector_to_array(F.col(features)), F.col(label)),
            F.lit(self.getNumFolds()),
        )
        n_classes = self.getNumClasses() if self._classifier else 0
        if self._classifier and n_classes < 2:  # not given: labels are 0..k-1
            n_classes = classes_of(dataset, label) or 0
            if n_classes < 2:
                top = dataset.agg(F.max(label)).first()
                n_classes = int(top[0]) + 1 if top is not None and top[0] is not None else 2
        # an inner fold may lack a class: every base still gets all k slots
        dataset = with_classes(dataset, label, n_classes)
        data = dataset.select(*columns, fold.alias(_FOLD)).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            # an empty model with this estimator's settings builds the meta features
            shape = self._copyValues(StackingModel())._set(numClasses=n_classes)
            parts = []
            for k in range(self.getNumFolds()):
                fitted = self._fit_bases(bases, data.where(F.col(_FOLD) != k), weight)
                held = data.where(F.col(_FOLD) == k)
                meta_rows = shape._with_meta_features(fitted, held)
                parts.append(meta_rows.select(META_FEATURES, *columns[1:]))
            out_of_fold = reduce(DataFrame.unionByName, parts).persist(StorageLevel.MEMORY_AND_DISK)
            try:
                meta = _wire(
                    self.getMetaEstimator(),
                    featuresCol=META_FEATURES,
                    labelCol=label,
                    weightCol=weight,
                    predictionCol=self.getPredictionCol(),
                    probabilityCol=self.getProbabilityCol(),
                    rawPredictionCol=self.getRawPredictionCol(),
                )
                meta_model = meta.fit(out_of_fold)  # type: ignore[attr-defined]
            finally:
                out_of_fold.unpersist()
            final = self._fit_bases(bases, data, weight)
        finally:
            data.unpersist()
        model = StackingModel(baseModels=final, metaModel=meta_model)
        return self._copyValues(model)._set(numClasses=n_classes)

    def _fit_bases(
        self, bases: list[Estimator[Any]], rows: DataFrame, weight: str | None
    ) -> list[Model]:
        def fit(item: tuple[int, Estimator[Any]]) -> Model:
            index, base = item
            wired = _wire(
                base,
                featuresCol=self.getFeaturesCol(),
                labelCol=self.getLabelCol(),
                weightCol=weight,
                predictionCol=member_column(index, "prediction"),
                probabilityCol=member_column(index, "probability"),
                rawPredictionCol=member_column(index, "raw"),
            )
            fitted: Model = wired.fit(rows)  # type: ignore[attr-defined]
            return fitted

        with ThreadPoolExecutor(max(1, self.getParallelism())) as pool:
            return list(pool.map(fit, enumerate(bases)))

    def write(self) -> MLWriter:
        return MembersWriter(self, [*self.getBaseEstimators(), self.getMetaEstimator()], _MEMBERS)

    @classmethod
    def read(cls) -> MLReader[Any]:
        return MembersReader(cls._from_members)

    @classmethod
    def _from_members(cls, members: list[Any]) -> _Stacking:
        return cls(baseEstimators=members[:-1], metaEstimator=members[-1])


class StackingClassifier(_Stacking):
    """Stacking for binary and multiclass labels (0..k-1): the meta-learner
    sees each base model's log-odds of classes 1..k-1 against class 0 (or its
    raw margin when it has no probabilities)."""

    _classifier = True


class StackingRegressor(_Stacking):
    """Stacking for a numeric label: the meta-learner sees each base's prediction."""

    _classifier = False


class StackingModel(Model, _StackingParams, MLReadable["StackingModel"], MLWritable):
    """The refitted base models and the meta-learner; `transform` adds the
    meta-learner's prediction (and probability / rawPrediction for a classifier)."""

    @keyword_only
    def __init__(
        self,
        *,
        baseModels: list[Model] | None = None,
        metaModel: Model | None = None,
        numClasses: int = 0,
        passthrough: bool = False,
    ) -> None:
        super().__init__()
        self.baseModels: list[Model] = list(baseModels or [])
        self.metaModel: Model | None = metaModel
        self._set(numClasses=numClasses, passthrough=passthrough)

    def copy(self, extra: dict[Param[Any], Any] | None = None) -> StackingModel:
        that = super().copy(extra)
        that.baseModels = [m.copy() for m in self.baseModels]
        that.metaModel = self.metaModel.copy() if self.metaModel is not None else None
        return that

    def _with_meta_features(self, models: list[Model], dataset: DataFrame) -> DataFrame:
        """`dataset` with each model's outputs and their meta feature vector."""
        out = dataset
        for model in models:
            out = model.transform(out)
        n_classes = self.getNumClasses()
        slots = [s for i, m in enumerate(models) for s in _score_slots(m, i, n_classes)]
        scores = F.array(*slots)
        if self.getPassthrough():  # the original features after the scores
            scores = F.concat(scores, vector_to_array(F.col(self.getFeaturesCol())))
        out = out.withColumn(META_FEATURES, array_to_vector(scores))
        temporary = [
            member_column(i, what)
            for i in range(len(models))
            for what in ("prediction", "probability", "raw")
        ]
        return out.drop(*[c for c in temporary if c in out.columns])

    def _transform(self, dataset: DataFrame) -> DataFrame:
        if self.metaModel is None or not self.baseModels:
            raise ValueError("StackingModel has no fitted members")
        scored = self.metaModel.transform(self._with_meta_features(self.baseModels, dataset))
        return scored.drop(META_FEATURES)

    def write(self) -> MLWriter:
        assert self.metaModel is not None
        return MembersWriter(self, [*self.baseModels, self.metaModel], _MEMBERS)

    @classmethod
    def read(cls) -> MLReader[StackingModel]:
        return MembersReader(cls._from_members)

    @classmethod
    def _from_members(cls, members: list[Any]) -> StackingModel:
        return cls(baseModels=members[:-1], metaModel=members[-1])
