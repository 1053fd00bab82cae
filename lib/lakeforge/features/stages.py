"""The feature stages of the training Pipeline, built from `train.features`.

Order: derived columns (SQLTransformer), date parts (DateParts), imputation
of numeric columns, scaling of the numeric block only (one-hot columns are
left 0/1, as in scikit-learn's usual ColumnTransformer), string indexing and
one-hot encoding of categories, buckets, one VectorAssembler into `features`,
then optional feature selection. The estimator goes after these, so the
fitted PipelineModel carries features and model as one artefact.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from pyspark.ml import Estimator, Transformer
from pyspark.ml import feature as ml

from lakeforge.config.training import Features, Task
from lakeforge.features.dateparts import DateParts

FEATURES = "features"
_NUMERIC = "__numeric"
_ASSEMBLED = "__assembled"

# What a Pipeline takes as a stage (pyspark names this only for type checkers).
PipelineStage: TypeAlias = Estimator[Any] | Transformer


def build_stages(spec: Features, task: Task, label: str) -> list[PipelineStage]:
    """Unfitted stages turning silver columns into a `features` vector."""
    stages: list[PipelineStage] = []
    if spec.derive:
        derived = ", ".join(f"{expr} AS `{name}`" for name, expr in spec.derive.items())
        stages.append(ml.SQLTransformer(statement=f"SELECT *, {derived} FROM __THIS__"))
    categorical = list(spec.categorical.columns) if spec.categorical else []
    for dates in spec.dates:
        part_stage = DateParts(inputCol=dates.column, parts=list(dates.parts))
        stages.append(part_stage)
        categorical.extend(part_stage.outputCols())
    vectors: list[str] = []
    if spec.numeric and spec.numeric.columns:
        vectors.append(_numeric_block(spec, stages))
    if categorical:
        handle = spec.categorical.handle_invalid if spec.categorical else "keep"
        order = spec.categorical.order if spec.categorical else "frequencyDesc"
        one_hot = spec.categorical.one_hot if spec.categorical else True
        indexed = [f"{c}__idx" for c in categorical]
        stages.append(
            ml.StringIndexer(
                inputCols=categorical,
                outputCols=indexed,
                handleInvalid=handle,
                stringOrderType=order,
            )
        )
        if one_hot:
            encoded = [f"{c}__ohe" for c in categorical]
            stages.append(ml.OneHotEncoder(inputCols=indexed, outputCols=encoded))
            vectors.extend(encoded)
        else:
            vectors.extend(indexed)
    if spec.buckets:
        # Missing values become NaN, which handleInvalid="keep" puts in a bucket
        # of their own (a null would turn the whole vector into NaN).
        missing_as_nan = ", ".join(
            f"coalesce(CAST(`{b.column}` AS DOUBLE), double('NaN')) AS `{b.column}__value`"
            for b in spec.buckets
        )
        stages.append(ml.SQLTransformer(statement=f"SELECT *, {missing_as_nan} FROM __THIS__"))
    for bucket in spec.buckets:
        index = f"{bucket.column}__bucket"
        if bucket.splits is not None:
            edges = [float("-inf"), *bucket.splits, float("inf")]
            stages.append(
                ml.Bucketizer(
                    inputCol=f"{bucket.column}__value",
                    outputCol=index,
                    splits=edges,
                    handleInvalid="keep",
                )
            )
        else:
            assert bucket.quantiles is not None
            stages.append(
                ml.QuantileDiscretizer(
                    inputCol=f"{bucket.column}__value",
                    outputCol=index,
                    numBuckets=bucket.quantiles,
                    handleInvalid="keep",
                    relativeError=0.0,
                )
            )
        # keep: the missing-value bucket (and values past the last split) get a slot
        stages.append(
            ml.OneHotEncoder(inputCol=index, outputCol=f"{index}__ohe", handleInvalid="keep")
        )
        vectors.append(f"{index}__ohe")
    out = _ASSEMBLED if spec.select else FEATURES
    stages.append(ml.VectorAssembler(inputCols=vectors, outputCol=out, handleInvalid="keep"))
    if spec.select:
        stages.append(_selector(spec, task, label))
    return stages


def _numeric_block(spec: Features, stages: list[PipelineStage]) -> str:
    assert spec.numeric is not None
    columns = list(spec.numeric.columns)
    if spec.numeric.impute != "none":
        imputed = [f"{c}__imputed" for c in columns]
        stages.append(
            ml.Imputer(inputCols=columns, outputCols=imputed, strategy=spec.numeric.impute)
        )
        columns = imputed
    # keep: a null left in a column that is not imputed becomes NaN, not a failed batch
    stages.append(ml.VectorAssembler(inputCols=columns, outputCol=_NUMERIC, handleInvalid="keep"))
    scaler: Any
    if spec.numeric.scale == "standard":
        scaler = ml.StandardScaler(withMean=True, withStd=True)
    elif spec.numeric.scale == "minmax":
        scaler = ml.MinMaxScaler()
    elif spec.numeric.scale == "robust":
        scaler = ml.RobustScaler(withCentering=True, withScaling=True)
    else:
        return _NUMERIC
    scaler.setInputCol(_NUMERIC).setOutputCol(f"{_NUMERIC}_scaled")
    stages.append(scaler)
    return f"{_NUMERIC}_scaled"


def _selector(spec: Features, task: Task, label: str) -> PipelineStage:
    assert spec.select is not None
    if spec.select.method == "variance":
        return ml.VarianceThresholdSelector(
            featuresCol=_ASSEMBLED, outputCol=FEATURES, varianceThreshold=spec.select.threshold
        )
    selector = ml.UnivariateFeatureSelector(
        featuresCol=_ASSEMBLED, outputCol=FEATURES, labelCol=label, selectionMode=spec.select.mode
    )
    selector.setFeatureType("continuous")
    selector.setLabelType("continuous" if task == "regression" else "categorical")
    selector.setSelectionThreshold(spec.select.value)
    return selector
