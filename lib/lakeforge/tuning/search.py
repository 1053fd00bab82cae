"""Cross-validated search: grid or random, featurisation fitted once per fold,
candidates fitted side by side.

Folds are the `_fold` column (see `lakeforge.split`), so the same config and
data give the same folds on any cluster. For each fold the feature stages are
fitted once on the other folds and their output cached; every candidate
estimator then fits on that cached frame, several at a time from a bounded
thread pool (Spark runs jobs from several driver threads concurrently, so a
small fit does not leave the cluster's cores idle).
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import partial

from pyspark import StorageLevel
from pyspark.ml import Pipeline
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.config.training import Candidate, ParamValue, Search
from lakeforge.evaluation.metrics import better, metric
from lakeforge.features.stages import FEATURES, PipelineStage
from lakeforge.models.catalogue import build
from lakeforge.split.assign import FOLD

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CandidateSpec:
    """One point of the search: an estimator and all its params."""

    index: int
    estimator: str
    params: dict[str, ParamValue | list[ParamValue]]
    searched: dict[str, ParamValue]  # the grid part, for display

    @property
    def label(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.searched.items())
        return f"{self.estimator}({shown})"


@dataclass(frozen=True)
class CandidateScore:
    spec: CandidateSpec
    fold_metrics: tuple[float, ...]
    fit_seconds: float

    @property
    def mean(self) -> float:
        return statistics.fmean(self.fold_metrics) if self.fold_metrics else math.nan

    @property
    def std(self) -> float:
        return statistics.pstdev(self.fold_metrics) if len(self.fold_metrics) > 1 else 0.0


@dataclass(frozen=True)
class SearchResult:
    metric: str
    scores: list[CandidateScore] = field(default_factory=list)
    best: CandidateScore | None = None


def candidates(models: Sequence[Candidate], search: Search) -> list[CandidateSpec]:
    """Every grid point of every model (grid), or `budget` of them drawn with
    the search seed (random)."""
    points: list[tuple[str, dict[str, ParamValue | list[ParamValue]], dict[str, ParamValue]]] = []
    for model in models:
        names = list(model.grid)
        for values in itertools.product(*(model.grid[n] for n in names)):
            searched = dict(zip(names, values, strict=True))
            points.append((model.estimator, {**model.params, **searched}, searched))
    if search.strategy == "random" and search.budget is not None and search.budget < len(points):
        points = random.Random(search.seed).sample(points, search.budget)
    return [CandidateSpec(i, est, params, s) for i, (est, params, s) in enumerate(points)]


def cross_validate(
    train: DataFrame,
    feature_stages: Sequence[PipelineStage],
    specs: Sequence[CandidateSpec],
    *,
    task: str,
    label: str,
    metric_name: str,
    smaller_is_better: bool,
    folds: int,
    parallelism: int,
    seed: int,
    n_classes: int,
) -> SearchResult:
    """k-fold scores of every candidate on `train` (rows with `_fold`)."""
    plan = f"{folds} folds x {len(specs)} candidates = {folds * len(specs)} fits"
    log.info("search: %s, %d at a time, by %s", plan, parallelism, metric_name)
    per_candidate: dict[int, list[float]] = {s.index: [] for s in specs}
    seconds: dict[int, float] = {s.index: 0.0 for s in specs}
    best_so_far = math.nan
    done = 0
    for fold in range(folds):
        featurizer = Pipeline(stages=list(feature_stages)).fit(train.where(F.col(FOLD) != fold))
        fit_rows = _features(featurizer.transform(train.where(F.col(FOLD) != fold)), label)
        held_rows = _features(featurizer.transform(train.where(F.col(FOLD) == fold)), label)
        n_features = vector_size(fit_rows)

        fit_and_score = partial(
            _fit_and_score,
            fit_rows=fit_rows,
            held_rows=held_rows,
            task=task,
            label=label,
            metric_name=metric_name,
            n_features=n_features,
            n_classes=n_classes,
            seed=seed,
        )
        try:
            with ThreadPoolExecutor(parallelism, thread_name_prefix="lakeforge-fit") as pool:
                for future in as_completed([pool.submit(fit_and_score, s) for s in specs]):
                    spec, value, spent = future.result()
                    per_candidate[spec.index].append(value)
                    seconds[spec.index] += spent
                    done += 1
                    if better(value, best_so_far, smaller_is_better):
                        best_so_far = value
                    log.info(
                        "search: fit %d/%d (fold %d/%d, candidate %d/%d %s): %s %.4f, "
                        "best so far %.4f (%.1fs)",
                        done,
                        folds * len(specs),
                        fold + 1,
                        folds,
                        spec.index + 1,
                        len(specs),
                        spec.label,
                        metric_name,
                        value,
                        best_so_far,
                        spent,
                    )
        finally:
            fit_rows.unpersist()
            held_rows.unpersist()
    scores = [
        CandidateScore(spec, tuple(per_candidate[spec.index]), seconds[spec.index])
        for spec in specs
    ]
    best: CandidateScore | None = None
    for score in scores:  # in candidate order, so ties go to the first listed
        if best is None or better(score.mean, best.mean, smaller_is_better):
            best = score
    return SearchResult(metric=metric_name, scores=scores, best=best)


def _fit_and_score(
    spec: CandidateSpec,
    *,
    fit_rows: DataFrame,
    held_rows: DataFrame,
    task: str,
    label: str,
    metric_name: str,
    n_features: int,
    n_classes: int,
    seed: int,
) -> tuple[CandidateSpec, float, float]:
    """Fit one candidate on the fold's training rows; its metric on the held-out fold."""
    start = time.perf_counter()
    estimator = build(
        spec.estimator,
        task,
        spec.params,
        label=label,
        n_features=n_features,
        n_classes=n_classes,
        seed=seed,
    )
    model = estimator.fit(fit_rows)
    value = metric(model.transform(held_rows), task, label, metric_name)
    return spec, value, time.perf_counter() - start


def _features(df: DataFrame, label: str) -> DataFrame:
    narrow = df.select(FEATURES, label).persist(StorageLevel.MEMORY_AND_DISK)
    narrow.count()
    return narrow


def vector_size(df: DataFrame) -> int:
    """Length of the `features` vectors of `df` (from Spark ML's metadata when
    the stages wrote it, else from a row): the input size an MLP needs."""
    meta = df.schema[FEATURES].metadata.get("ml_attr", {})
    if "num_attrs" in meta:
        return int(meta["num_attrs"])
    row = df.select(FEATURES).first()
    return 0 if row is None else int(row[0].size)
