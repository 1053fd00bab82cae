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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from pyspark import StorageLevel
from pyspark.ml import Estimator, Pipeline
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.config.training import Candidate, Halving, Member, ParamValue, Search
from lakeforge.evaluation.metrics import better, metric
from lakeforge.features.stages import FEATURES, PipelineStage
from lakeforge.models.catalogue import build
from lakeforge.models.labels import with_classes
from lakeforge.split.assign import FOLD
from lakeforge.tuning import shared

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CandidateSpec:
    """One point of the search: an estimator and all its params."""

    index: int
    estimator: str
    params: dict[str, ParamValue | list[ParamValue]]
    searched: dict[str, ParamValue]  # the grid part, for display
    # stacking: its base models and meta-learner
    base: tuple[Member, ...] = ()
    meta: Member | None = None

    @property
    def label(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.searched.items())
        members = ""
        if self.base:
            meta = self.meta.estimator if self.meta else "default meta"
            members = f"[{' + '.join(m.estimator for m in self.base)} -> {meta}]"
        return f"{self.estimator}{members}({shown})"


@dataclass(frozen=True)
class Wiring:
    """What every fit of one training shares: task, label, classes, seed, the
    row-weight column and xgboost's workers."""

    task: str
    label: str
    n_classes: int
    seed: int
    weight_col: str | None = None
    workers: int = 1

    def estimator(self, spec: CandidateSpec, n_features: int) -> Estimator[Any]:
        """`spec`'s unfitted estimator, reading vectors of `n_features`."""
        return build(
            spec.estimator,
            self.task,
            spec.params,
            label=self.label,
            n_features=n_features,
            n_classes=self.n_classes,
            seed=self.seed,
            workers=self.workers,
            weight_col=self.weight_col,
            base=spec.base,
            meta=spec.meta,
        )


@dataclass(frozen=True)
class CandidateScore:
    spec: CandidateSpec
    fold_metrics: tuple[float, ...]
    fit_seconds: float
    # share of each fold's training rows it was last scored on (< 1: halving
    # dropped it after an earlier round)
    fraction: float = 1.0

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
    points: list[CandidateSpec] = []
    for model in models:
        names = list(model.grid)
        for values in itertools.product(*(model.grid[n] for n in names)):
            searched = dict(zip(names, values, strict=True))
            params = {**model.params, **searched}
            points.append(
                CandidateSpec(0, model.estimator, params, searched, tuple(model.base), model.meta)
            )
    if search.strategy == "random" and search.budget is not None and search.budget < len(points):
        points = random.Random(search.seed).sample(points, search.budget)
    return [replace(p, index=i) for i, p in enumerate(points)]


@dataclass(frozen=True)
class Round:
    """One round of the search: these candidates on this share of each fold's rows."""

    number: int
    candidates: int
    fraction: float


def rounds(n_candidates: int, halving: Halving | None, fold_rows: int) -> list[Round]:
    """The plan: one round on all rows, or successive halving's rounds.

    Halving keeps ceil(n / factor) candidates per round until a round would
    keep fewer than two; the last round uses every row and earlier ones
    1/factor of the next, but never fewer than `min_rows` rows per fold."""
    if halving is None or n_candidates < 2:
        return [Round(1, n_candidates, 1.0)]
    sizes = [n_candidates]
    while sizes[-1] > halving.factor and math.ceil(sizes[-1] / halving.factor) >= 2:
        sizes.append(math.ceil(sizes[-1] / halving.factor))
    floor = min(1.0, halving.min_rows / max(fold_rows, 1))
    last = len(sizes) - 1
    return [
        Round(i + 1, size, max(floor, float(halving.factor) ** (i - last)))
        for i, size in enumerate(sizes)
    ]


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
    halving: Halving | None = None,
    solver: str = "auto",
    weight_col: str | None = None,
    workers: int = 1,
) -> SearchResult:
    """k-fold scores of every candidate on `train` (rows with `_fold`, and
    `weight_col` when the rows carry class weights).

    Each fold's featurisation is fitted once and its output cached for the
    whole search; every round then fits its candidates on (a seeded sample of)
    those cached rows, `parallelism` fits at a time, and scores them on the
    whole held-out fold. Candidates the shared-pass solver takes (`solver`
    auto) are fitted together instead, from blocks of the same rows cached
    once (see `lakeforge.tuning.shared`); when it takes them all, the frames
    themselves are never cached. Everything cached is released before
    returning."""
    wiring = Wiring(task, label, n_classes, seed, weight_col, workers)
    # every fit gets all the classes' slots, even on a fold that lacks one
    train = with_classes(train, label, n_classes)
    prepared: list[tuple[DataFrame, DataFrame]] = []
    cached: list[DataFrame] = []  # released in `finally`, even after a failed fold
    fold_rows: list[int] = []
    widths: list[int] = []  # each fold's feature-vector width
    blocks: shared.Folds | None = None
    try:
        together: set[int] = set()
        for fold in range(folds):
            rest, held = train.where(F.col(FOLD) != fold), train.where(F.col(FOLD) == fold)
            featurizer = Pipeline(stages=list(feature_stages)).fit(rest)
            weights = [weight_col] if weight_col else []
            fit_rows = featurizer.transform(rest).select(FEATURES, label, *weights)
            held_rows = featurizer.transform(held).select(FEATURES, label)
            # A category only the held-out fold has gets no slot: each fold's
            # vectors have their own width, and each fit is built for its fold's.
            widths.append(vector_size(fit_rows))
            if fold == 0:
                together = {
                    s.index
                    for s in specs
                    if solver == "auto"
                    and weight_col is None  # the shared passes weigh rows equally
                    and shared.solvable(s.estimator, s.params, task, metric_name)
                }
            if widths[-1] > shared.MAX_FEATURES:
                together = set()
            if len(together) < len(specs):  # Spark's own fits read cached frames
                fit_rows, rows = _features(fit_rows)
                held_rows, _ = _features(held_rows)
                cached += [fit_rows, held_rows]
                fold_rows.append(rows)
            prepared.append((fit_rows, held_rows))
        if together:
            # the shared passes read their own cached blocks, built in one job
            blocks = shared.Folds(prepared, label, seed)
            fold_rows = fold_rows or blocks.rows()
        plan = rounds(len(specs), halving, min(fold_rows))
        fits = sum(r.candidates for r in plan) * folds
        log.info(
            "search: %d folds x %s = %d fits by %s; %s",
            folds,
            " -> ".join(f"{r.candidates} candidates on {r.fraction:.0%}" for r in plan),
            fits,
            metric_name,
            _passes(specs, together, parallelism),
        )
        progress = _Progress(fits, folds, len(specs), smaller_is_better, metric_name)
        alive = list(specs)
        scores: dict[int, CandidateScore] = {}
        for step in plan:
            alive = alive[: step.candidates]
            round_scores = _run_round(
                prepared,
                [s for s in alive if s.index not in together],
                step,
                progress,
                parallelism=parallelism,
                fit=partial(_fit_and_score, wiring=wiring, metric_name=metric_name),
                widths=widths,
                seed=seed,
            )
            if blocks is not None:
                round_scores += _shared_round(
                    blocks, [s for s in alive if s.index in together], step, progress, metric_name
                )
            scores.update({score.spec.index: score for score in round_scores})
            ranked = rank(round_scores, smaller_is_better)
            alive = [sc.spec for sc in ranked]
            if len(plan) > 1:
                log.info(
                    "search: round %d/%d done (%d candidates on %.0f%% of the rows): best %s %.4f",
                    step.number,
                    len(plan),
                    step.candidates,
                    100 * step.fraction,
                    metric_name,
                    ranked[0].mean,
                )
    finally:
        if blocks is not None:
            blocks.release()
        for frame in cached:
            frame.unpersist()
    ordered = [scores[s.index] for s in specs]
    best: CandidateScore | None = None
    for score in ordered:  # in candidate order, so ties go to the first listed
        if score.fraction < 1.0:
            continue  # left in an earlier round of halving
        if best is None or better(score.mean, best.mean, smaller_is_better):
            best = score
    return SearchResult(metric=metric_name, scores=ordered, best=best)


def rank(scores: list[CandidateScore], smaller_is_better: bool) -> list[CandidateScore]:
    """Best first; a NaN mean (a fold that could not be scored) last, so it
    never outlives a good candidate in a round of halving; ties keep the
    candidates' order."""
    return sorted(scores, key=partial(_rank_key, smaller_is_better))


def _rank_key(smaller_is_better: bool, score: CandidateScore) -> float:
    """Sort key, best first (sorted() is stable: ties keep candidate order)."""
    if math.isnan(score.mean):
        return math.inf
    return score.mean if smaller_is_better else -score.mean


@dataclass
class _Progress:
    """The running count and the "fit 7/48 ..., best so far" lines."""

    total: int
    folds: int
    candidates: int
    smaller_is_better: bool
    metric_name: str
    done: int = 0
    best: float = math.nan

    def record(self, fold: int, spec: CandidateSpec, value: float, spent: float) -> None:
        self.done += 1
        if better(value, self.best, self.smaller_is_better):
            self.best = value
        log.info(
            "search: fit %d/%d (fold %d/%d, candidate %d/%d %s): %s %.4f, best so far %.4f (%.1fs)",
            self.done,
            self.total,
            fold + 1,
            self.folds,
            spec.index + 1,
            self.candidates,
            spec.label,
            self.metric_name,
            value,
            self.best,
            spent,
        )


def _run_round(
    prepared: list[tuple[DataFrame, DataFrame]],
    specs: Sequence[CandidateSpec],
    step: Round,
    progress: _Progress,
    *,
    parallelism: int,
    fit: Callable[..., tuple[CandidateSpec, float, float]],
    widths: Sequence[int],
    seed: int,
) -> list[CandidateScore]:
    """Every (fold, candidate) fit of one round, `parallelism` at a time."""
    per_candidate: dict[int, list[float]] = {s.index: [0.0] * len(prepared) for s in specs}
    seconds: dict[int, float] = {s.index: 0.0 for s in specs}
    samples = [
        fit_rows if step.fraction >= 1.0 else fit_rows.sample(False, step.fraction, seed + i)
        for i, (fit_rows, _) in enumerate(prepared)
    ]
    with ThreadPoolExecutor(parallelism, thread_name_prefix="lakeforge-fit") as pool:
        futures = {
            pool.submit(
                fit, spec, fit_rows=samples[fold], held_rows=held, n_features=widths[fold]
            ): fold
            for fold, (_, held) in enumerate(prepared)
            for spec in specs
        }
        for future in as_completed(futures):
            spec, value, spent = future.result()
            fold = futures[future]
            per_candidate[spec.index][fold] = value
            seconds[spec.index] += spent
            progress.record(fold, spec, value, spent)
    return [
        CandidateScore(s, tuple(per_candidate[s.index]), seconds[s.index], step.fraction)
        for s in specs
    ]


def _passes(specs: Sequence[CandidateSpec], together: set[int], parallelism: int) -> str:
    """How the fits run: the shared-pass share and its bound on Spark jobs."""
    own = len(specs) - len(together)
    parts = []
    if together:
        steps = max(
            shared.Problem.of(0, s.index, s.params).max_iter for s in specs if s.index in together
        )
        parts.append(
            f"{len(together)} logistic regression candidates in shared passes "
            f"(one Spark job per optimiser step for all of them, at most ~{steps} steps a round)"
        )
    if own:
        parts.append(f"{own} candidates by Spark's own fit, {parallelism} at a time")
    return "; ".join(parts)


def _shared_round(
    blocks: shared.Folds,
    specs: Sequence[CandidateSpec],
    step: Round,
    progress: _Progress,
    metric_name: str,
) -> list[CandidateScore]:
    """The round's logistic-regression candidates, fitted in shared passes."""
    if not specs:
        return []
    found = shared.search_round(blocks, specs, fraction=step.fraction, metric_name=metric_name)
    out = []
    for spec in specs:
        per_fold, seconds = found[spec.index]
        for fold, value in enumerate(per_fold):
            progress.record(fold, spec, value, seconds / len(per_fold))
        out.append(CandidateScore(spec, tuple(per_fold), seconds, step.fraction))
    return out


def _fit_and_score(
    spec: CandidateSpec,
    *,
    fit_rows: DataFrame,
    held_rows: DataFrame,
    wiring: Wiring,
    metric_name: str,
    n_features: int,
) -> tuple[CandidateSpec, float, float]:
    """Fit one candidate on the fold's training rows; its metric on the held-out fold."""
    start = time.perf_counter()
    model = wiring.estimator(spec, n_features).fit(fit_rows)
    value = metric(model.transform(held_rows), wiring.task, wiring.label, metric_name)
    return spec, value, time.perf_counter() - start


def _features(df: DataFrame) -> tuple[DataFrame, int]:
    """`df` cached now (the count fills the cache)."""
    narrow = df.persist(StorageLevel.MEMORY_AND_DISK)
    return narrow, narrow.count()


def vector_size(df: DataFrame) -> int:
    """Length of the `features` vectors of `df` (from Spark ML's metadata when
    the stages wrote it, else from a row): the input size an MLP needs."""
    meta = df.schema[FEATURES].metadata.get("ml_attr", {})
    if "num_attrs" in meta:
        return int(meta["num_attrs"])
    row = df.select(FEATURES).first()
    return 0 if row is None else int(row[0].size)
