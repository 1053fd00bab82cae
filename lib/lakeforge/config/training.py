"""What the train step does, as typed config: the `train:` section of a dataset.

Checked before Spark starts: an unknown estimator, an estimator that does not
fit the task, a parameter the estimator does not have or a value of the wrong
type fails at load time with its key path (the catalogue in
`lakeforge.models.catalogue` knows each estimator's Spark ML Params).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from lakeforge.config.base import Model, SqlExpression
from lakeforge.config.fairness import Fairness

Task = Literal["binary", "multiclass", "regression"]
ParamValue = bool | int | float | str | list[int]

# The metric each task chooses by when `search.metric` is not set, and which
# metrics are better when smaller.
DEFAULT_METRIC: dict[str, str] = {"binary": "roc_auc", "multiclass": "f1", "regression": "rmse"}
METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1", "log_loss"),
    "multiclass": ("accuracy", "precision", "recall", "f1", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
SMALLER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})


class Split(Model):
    """Train / validation / test assignment, derived from the keys (never random
    per run): `hash` keeps a row in its split as the data grows; `stratified`
    gives each class the exact proportions; `time` cuts on a column."""

    method: Literal["hash", "stratified", "time"] = "hash"
    validation: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    test: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    # method time: rows with `column` < validation_from train, < test_from validate
    column: str | None = None
    validation_from: str | None = None
    test_from: str | None = None
    folds: Annotated[int, Field(ge=2, le=20)] = 3
    seed: int = 42

    @model_validator(mode="after")
    def _consistent(self) -> Split:
        if self.method == "time":
            if not (self.column and self.validation_from and self.test_from):
                raise ValueError("method time needs column, validation_from and test_from")
        elif self.validation + self.test >= 1.0:
            raise ValueError("validation + test must leave rows to train on (sum < 1)")
        return self


class Numeric(Model):
    columns: list[str]
    impute: Literal["mean", "median", "mode", "none"] = "median"
    scale: Literal["standard", "minmax", "robust", "none"] = "standard"


class Categorical(Model):
    columns: list[str]
    # an unseen category at scoring time: keep (its own bucket), skip the row, or error
    handle_invalid: Literal["keep", "skip", "error"] = "keep"
    order: Literal["frequencyDesc", "frequencyAsc", "alphabetDesc", "alphabetAsc"] = "frequencyDesc"
    one_hot: bool = True


class Buckets(Model):
    """A numeric column cut into buckets (fixed `splits` or `quantiles` of the
    training rows), one-hot encoded."""

    column: str
    splits: list[float] | None = None
    quantiles: Annotated[int, Field(ge=2)] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Buckets:
        if (self.splits is None) == (self.quantiles is None):
            raise ValueError("give exactly one of splits or quantiles")
        if self.splits is not None and self.splits != sorted(set(self.splits)):
            raise ValueError("splits must be strictly increasing")
        return self


DatePart = Literal["year", "month", "day", "dayofweek", "dayofyear", "weekofyear", "hour", "minute"]


class DateParts(Model):
    """Calendar parts of a date/timestamp column, as categorical features."""

    column: str
    parts: Annotated[list[DatePart], Field(min_length=1)]


class Selection(Model):
    method: Literal["variance", "univariate"]
    # variance: drop features whose training variance is at most `threshold`
    threshold: float = 0.0
    # univariate: keep the best features by a statistical test against the label
    mode: Literal["numTopFeatures", "percentile", "fpr", "fdr", "fwe"] = "numTopFeatures"
    value: float = 50


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Features(Model):
    # new column → Spark SQL expression over silver columns (a SQLTransformer)
    derive: dict[str, SqlExpression] = Field(default_factory=dict)
    dates: list[DateParts] = Field(default_factory=list)
    numeric: Numeric | None = None
    categorical: Categorical | None = None
    buckets: list[Buckets] = Field(default_factory=list)
    select: Selection | None = None

    @model_validator(mode="after")
    def _some_features(self) -> Features:
        if not (self.numeric or self.categorical or self.buckets or self.dates):
            raise ValueError("name at least one numeric, categorical, bucket or date feature")
        odd = [n for n in self.derive if not _IDENTIFIER.match(n)]
        if odd:  # the names go into the SQLTransformer's statement
            raise ValueError(f"derive: column names must be identifiers: {', '.join(odd)}")
        return self

    def input_columns(self) -> list[str]:
        """Silver columns the feature stages read (derived ones excluded)."""
        names = [
            *(self.numeric.columns if self.numeric else []),
            *(self.categorical.columns if self.categorical else []),
            *(b.column for b in self.buckets),
            *(d.column for d in self.dates),
        ]
        return [n for n in dict.fromkeys(names) if n not in self.derive]


class Member(Model):
    """A base model or the meta-learner of a stack: an estimator of the
    catalogue with fixed params."""

    estimator: str
    params: dict[str, ParamValue | list[ParamValue]] = Field(default_factory=dict)


class Candidate(Model):
    """One estimator of the catalogue: fixed `params` and a `grid` to search.

    `stacking` also names its `base` models (two or more) and its `meta`
    learner (default: logistic regression for classification, linear
    regression for regression); its own params (`numFolds`, `passthrough`)
    go in `params` or `grid` like any other estimator's."""

    estimator: str
    params: dict[str, ParamValue | list[ParamValue]] = Field(default_factory=dict)
    grid: dict[str, Annotated[list[ParamValue], Field(min_length=1)]] = Field(default_factory=dict)
    base: list[Member] = Field(default_factory=list)
    meta: Member | None = None


class Threshold(Model):
    """The decision threshold of a binary model, tuned on the validation split
    and stored in the model (predict applies it): `f1` maximises F1;
    `precision` with `target` 0.9 takes the threshold of highest recall whose
    precision is at least 0.9 (`recall` the other way round)."""

    optimise: Literal["f1", "precision", "recall"] = "f1"
    target: Annotated[float, Field(gt=0.0, le=1.0)] | None = None

    @model_validator(mode="after")
    def _target_for_a_level(self) -> Threshold:
        if self.optimise == "f1" and self.target is not None:
            raise ValueError("target is for optimise precision or recall; f1 takes none")
        if self.optimise != "f1" and self.target is None:
            raise ValueError(f"optimise {self.optimise} needs a target (e.g. 0.9)")
        return self


class Halving(Model):
    """Successive halving: every candidate on a small sample of each fold's
    training rows, the best 1/factor of them on factor times more rows, and so
    on until the last few run on all rows."""

    factor: Annotated[int, Field(ge=2)] = 3
    # the first round's sample has at least this many rows per fold
    min_rows: Annotated[int, Field(ge=1)] = 2000


class Search(Model):
    strategy: Literal["grid", "random"] = "grid"
    # successive halving over the candidates (off: every candidate on all rows)
    halving: Halving | None = None
    # random: how many grid points to try (all of them when the grid is smaller)
    budget: Annotated[int, Field(ge=1)] | None = None
    metric: str | None = None
    # candidates fitted at once; default: the cluster's cores
    parallelism: Annotated[int, Field(ge=1)] | None = None
    seed: int = 7
    # auto: binary logistic regression candidates scored by roc_auc, pr_auc or
    # log_loss are fitted together, one Spark job per optimiser step for the
    # whole grid (lakeforge.tuning.shared); spark: every candidate by Spark's
    # own estimator (one job per step per candidate and fold)
    solver: Literal["auto", "spark"] = "auto"


class Registry(Model):
    model_name: str | None = None  # default: the dataset name
    # the new model takes the champion alias only if it beats the champion's
    # metric on the same test rows by more than this
    margin: Annotated[float, Field(ge=0.0)] = 0.0


class TrainConfig(Model):
    task: Task
    label: str
    # Spark SQL predicate picking the silver rows to learn from (e.g. earlier months)
    where: SqlExpression | None = None
    features: Features
    split: Split = Field(default_factory=Split)
    models: Annotated[list[Candidate], Field(min_length=1)]
    search: Search = Field(default_factory=Search)
    registry: Registry = Field(default_factory=Registry)
    # balanced: each training row weighs n / (classes x rows of its class),
    # counted on the train split, so a rare class counts as much as a common
    # one (every estimator of the search must take a weightCol)
    class_weight: Literal["none", "balanced"] = "none"
    # binary only: tune the decision threshold on the validation split
    threshold: Threshold | None = None
    # per-group metrics on the test split and the gaps a champion may have
    fairness: Fairness | None = None

    @model_validator(mode="after")
    def _estimators_and_metric(self) -> TrainConfig:
        from lakeforge.models.catalogue import check_candidate

        weighted = self.class_weight != "none"
        for i, candidate in enumerate(self.models):
            problem = check_candidate(candidate, self.task, self.features, weighted=weighted)
            if problem:
                raise ValueError(f"models.{i} ({candidate.estimator}): {problem}")
        if weighted and self.task == "regression":
            raise ValueError("class_weight is for classification tasks")
        if self.threshold is not None:
            if self.task != "binary":
                raise ValueError("threshold is for task binary")
            if self.split.method != "time" and self.split.validation == 0:
                raise ValueError("threshold is tuned on the validation split: set split.validation")
        if self.metric not in METRICS[self.task]:
            raise ValueError(
                f"search.metric {self.metric!r} is not a {self.task} metric; "
                f"use one of {', '.join(METRICS[self.task])}"
            )
        if self.split.method == "stratified" and self.task == "regression":
            raise ValueError("split.method stratified needs a classification task")
        if self.search.strategy == "grid" and self.search.budget is not None:
            raise ValueError("search.budget is for strategy random")
        if self.fairness is not None:
            problem = self.fairness.check(self.task, self.label)
            if problem:
                raise ValueError(f"fairness.{problem}")
        return self

    @property
    def metric(self) -> str:
        return self.search.metric or DEFAULT_METRIC[self.task]

    @property
    def smaller_is_better(self) -> bool:
        return self.metric in SMALLER_IS_BETTER
