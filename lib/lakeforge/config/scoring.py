"""What predict and monitor do, as typed config: `predict:` and `monitor:` of a dataset."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from lakeforge.config.base import Model, SqlExpression


class PredictConfig(Model):
    # Spark SQL predicate picking the silver rows of the batch to score
    where: SqlExpression | None = None
    # a registered version to score with; default: the `champion` alias
    model_version: Annotated[int, Field(ge=1)] | None = None


class MonitorConfig(Model):
    # PSI above this for any feature or the prediction is drift (0.1 notable, 0.25 major)
    psi_threshold: Annotated[float, Field(gt=0.0)] = 0.2
    # bins of the numeric histograms (quantiles of the train split, fixed at training)
    bins: Annotated[int, Field(ge=2, le=100)] = 10
    # categories kept by name per feature; rarer ones are pooled as "other"
    top_categories: Annotated[int, Field(ge=1)] = 30
