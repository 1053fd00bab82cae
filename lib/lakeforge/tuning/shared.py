"""Logistic regression for a whole grid in shared passes over the data.

Spark's `LogisticRegression` launches one Spark job per L-BFGS step, so a
search of K candidates on F folds launches about K x F x iterations jobs. At
search sizes a job costs more in scheduling (~0.1 s on a small cluster) than in
arithmetic, and that, not the data, is where a grid's time goes.

Here each (fold, candidate) problem still runs its own L-BFGS-B (scipy, on the
driver), but a coordinator gathers the points all of them ask about into one
Spark job: every partition of the cached, featurised fold rows returns the loss
and gradient of every problem of its fold at once. The whole search then costs
about as many jobs as its slowest problem has steps.

The objective is Spark's own (binomial log loss averaged over the rows, plus
`regParam` x elastic net on the standardised coefficients when
`standardization`, intercept not penalised; L1 through a split into positive
and negative parts instead of OWL-QN), so the optimum is the one Spark's fit
reaches; the train job refits the chosen candidate with Spark's
`LogisticRegression`. Held-out rows are scored in one more job per round, with
Spark's definitions (exact ROC and PR areas, as `numBins=0`) while the scores
fit a fixed budget on the driver (`EXACT_SCORES`); past it, from a fixed-size
histogram of each candidate's margins per label (a second job), which bounds
the areas' error and says so in the log.

Nothing a pass brings to the driver grows with the rows: every partition sums
its own blocks' answers (one loss, gradient and residual sum per fold, the
moments per fold, the histograms) before they leave the executor.
"""

from __future__ import annotations

import logging
import math
import pickle
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial, reduce
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import RDD, StorageLevel, TaskContext
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy import sparse
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import rankdata

from lakeforge.features.stages import FEATURES
from lakeforge.spark import cores

log = logging.getLogger(__name__)

# metrics computed here exactly as Spark's evaluators do
METRICS = frozenset({"roc_auc", "pr_auc", "log_loss"})
# params that change nothing in the fit or the metrics above
_NEUTRAL = frozenset(
    {"aggregationDepth", "maxBlockSizeInMB", "threshold", "thresholds", "family", "seed"}
)
_SOLVED = frozenset(
    {"regParam", "elasticNetParam", "maxIter", "tol", "fitIntercept", "standardization"}
)
# wider feature vectors go the Spark way (blocks are built densely first)
MAX_FEATURES = 4096
# held-out labels + margins brought to the driver for exact areas: 4M values
# (32 MB); past it, BINS-bin histograms per candidate, whatever the rows
EXACT_SCORES = 4_000_000
BINS = 1 << 15
_FIT, _HELD = 0, 1
# Spark's LogisticRegression defaults
_DEFAULTS = {
    "regParam": 0.0,
    "elasticNetParam": 0.0,
    "maxIter": 100,
    "tol": 1e-6,
    "fitIntercept": True,
    "standardization": True,
}


def solvable(estimator: str, params: dict[str, Any], task: str, metric_name: str) -> bool:
    """Can this candidate be fitted and scored here (else: Spark's own fit)?"""
    if estimator != "logistic_regression" or task != "binary" or metric_name not in METRICS:
        return False
    if params.get("family", "auto") not in ("auto", "binomial"):
        return False
    return set(params) <= _SOLVED | _NEUTRAL


@dataclass(frozen=True)
class Problem:
    """One (fold, candidate) fit: Spark's LogisticRegression params, resolved."""

    fold: int
    key: int  # the candidate's index
    reg: float
    alpha: float
    max_iter: int
    tol: float
    intercept: bool
    standardize: bool

    @classmethod
    def of(cls, fold: int, key: int, params: dict[str, Any]) -> Problem:
        p = {**_DEFAULTS, **{k: v for k, v in params.items() if k in _SOLVED}}
        return cls(
            fold,
            key,
            float(p["regParam"]),
            float(p["elasticNetParam"]),
            int(p["maxIter"]),
            float(p["tol"]),
            bool(p["fitIntercept"]),
            bool(p["standardization"]),
        )


class Folds:
    """Every fold's featurised fit and held-out rows as cached numpy blocks.

    Each row carries a seeded uniform draw, so a round of successive halving
    trains on `draw < fraction` without caching a sample."""

    def __init__(self, prepared: Sequence[tuple[DataFrame, DataFrame]], label: str, seed: int):
        frames = [
            frame.select(
                F.lit(fold).alias("fold"),
                F.lit(role).alias("role"),
                vector_to_array(F.col(FEATURES)).alias("x"),
                F.col(label).cast("double").alias("y"),
            )
            for fold, (fit_rows, held_rows) in enumerate(prepared)
            for role, frame in ((_FIT, fit_rows), (_HELD, held_rows))
        ]
        rows = reduce(DataFrame.unionAll, frames)
        # Arrow hands each batch's vectors over as one buffer (no Python object
        # per row); one partition per core, since a pass is a Python task per
        # partition and at search sizes a task's start-up costs more than its
        # arithmetic
        self.blocks: RDD[Any] = (
            rows.mapInArrow(partial(_arrow_blocks, seed=seed), "block binary")
            .rdd.map(_unpack)
            .coalesce(cores(prepared[0][0].sparkSession))
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        self.folds = len(prepared)
        self._stats: dict[float, dict[int, _Space]] = {}
        self._held: dict[int, int] | None = None

    def release(self) -> None:
        self.blocks.unpersist()

    def held_rows(self) -> dict[int, int]:
        """Each fold's held-out rows (counted in the first moments pass)."""
        if self._held is None:
            self.stats(1.0)
        assert self._held is not None
        return self._held

    def rows(self) -> list[int]:
        """Each fold's training rows (the first call builds the blocks)."""
        stats = self.stats(1.0)
        return [int(stats[fold].rows) for fold in range(self.folds)]

    def stats(self, fraction: float) -> dict[int, _Space]:
        """Per fold, over the rows drawn below `fraction` (one pass): training
        rows, feature means, (unbiased, as Spark's summariser) standard
        deviations and the share of positive labels."""
        if fraction not in self._stats:
            self._stats[fraction] = self._moments(fraction)
        return self._stats[fraction]

    def _moments(self, fraction: float) -> dict[int, _Space]:
        held: dict[int, int] = {}
        merged: dict[int, _Moments] = {}
        for fold, role, moments in self.blocks.mapPartitions(
            partial(_partition_moments, fraction=fraction)
        ).collect():
            if role == _HELD:
                held[fold] = held.get(fold, 0) + int(moments.n)
            else:
                merged[fold] = merged[fold].merge(moments) if fold in merged else moments
        if self._held is None:
            self._held = {fold: held.get(fold, 0) for fold in range(self.folds)}
        out: dict[int, _Space] = {}
        for fold in range(self.folds):
            m = merged.get(fold, _Moments.empty())
            n = m.n
            std = np.sqrt(m.m2 / (n - 1)) if n > 1 else np.zeros_like(m.mean)
            out[fold] = _Space(n, m.mean, std, m.positives / n if n else 0.5)
        return out


@dataclass(frozen=True)
class _Moments:
    """Rows, positive labels, feature means and summed squared deviations."""

    n: float
    positives: float
    mean: np.ndarray
    m2: np.ndarray

    @staticmethod
    def empty() -> _Moments:
        return _Moments(0.0, 0.0, np.zeros(0), np.zeros(0))

    def merge(self, other: _Moments) -> _Moments:
        """Chan et al.'s pairwise update: exact whatever the order of merging."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        total = self.n + other.n
        delta = other.mean - self.mean
        return _Moments(
            total,
            self.positives + other.positives,
            self.mean + delta * (other.n / total),
            self.m2 + other.m2 + delta**2 * (self.n * other.n / total),
        )


def _partition_moments(
    blocks: Iterable[Any], *, fraction: float
) -> Iterator[tuple[int, int, _Moments]]:
    """Per fold of a partition: the merged moments of its training rows drawn
    below `fraction`, and its held-out row count (as `n`)."""
    fit: dict[int, _Moments] = {}
    held: dict[int, int] = {}
    for block in blocks:
        fold, role, y, _, _ = block
        if role == _HELD:
            held[fold] = held.get(fold, 0) + len(y)
            continue
        found = _block_moments(block, fraction=fraction)
        if not found:
            continue
        _, n, positives, mean, m2 = found
        moments = _Moments(n, positives, mean, m2)
        fit[fold] = fit[fold].merge(moments) if fold in fit else moments
    for fold, moments in fit.items():
        yield fold, _FIT, moments
    for fold, rows in held.items():
        yield fold, _HELD, _Moments(float(rows), 0.0, np.zeros(0), np.zeros(0))


def _arrow_blocks(batches: Iterable[pa.RecordBatch], *, seed: int) -> Iterator[pa.RecordBatch]:
    """Each Arrow batch as pickled (fold, role, labels, features, draws)
    blocks: features dense, or CSR when mostly zeros (one-hot columns)."""
    task = TaskContext.get()
    partition = task.partitionId() if task is not None else 0
    for number, batch in enumerate(batches):
        if batch.num_rows == 0:
            continue
        folds = batch.column("fold").to_numpy()
        roles = batch.column("role").to_numpy()
        vectors = batch.column("x")
        y = batch.column("y").to_numpy(zero_copy_only=False)
        out = []
        for fold in np.unique(folds):
            for role in np.unique(roles):
                rows = (folds == fold) & (roles == role)
                if not rows.any():
                    continue
                # each fold's featurisation has its own width (a category its
                # training rows lack has no slot), so a batch that mixes folds
                # is reshaped fold by fold
                part = np.ascontiguousarray(_matrix(vectors.filter(pa.array(rows))))
                dense = np.count_nonzero(part) > 0.25 * part.size
                draws = np.random.default_rng([seed, fold, role, partition, number]).random(
                    int(rows.sum())
                )
                block = (
                    int(fold),
                    int(role),
                    y[rows].astype(np.float64),
                    part if dense else sparse.csr_matrix(part),
                    draws,
                )
                out.append(pickle.dumps(block, protocol=5))
        yield pa.RecordBatch.from_arrays([pa.array(out, type=pa.binary())], names=["block"])


def _matrix(vectors: pa.Array) -> np.ndarray:
    """Equal-length list rows as a float64 matrix (one row per vector)."""
    widths = set(pc.list_value_length(vectors).to_numpy(zero_copy_only=False).tolist())
    if len(widths) > 1:
        raise ValueError(f"feature vectors of one fold differ in length: {sorted(widths)}")
    width = widths.pop() if widths else 0
    flat = vectors.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float64).reshape(len(vectors), width)


def _unpack(row: Any) -> Any:
    return pickle.loads(row[0])


def _block_moments(block: Any, *, fraction: float) -> tuple[Any, ...]:
    fold, role, y, x, draw = block
    if role != _FIT:
        return ()
    keep = draw < fraction
    rows = x[keep]
    n = rows.shape[0]
    if n == 0:
        return ()
    positives = float(y[keep].sum())
    if sparse.issparse(rows):
        mean = np.asarray(rows.mean(axis=0)).ravel()
        m2 = np.asarray(rows.multiply(rows).sum(axis=0)).ravel() - n * mean**2
        return fold, float(n), positives, mean, np.maximum(m2, 0.0)
    mean = rows.mean(axis=0)
    return fold, float(n), positives, mean, ((rows - mean) ** 2).sum(axis=0)


def _block_gradients(
    block: Any, *, points: dict[int, tuple[np.ndarray, np.ndarray]], fraction: float
) -> tuple[Any, ...]:
    """Loss sums, X'r and sum(r) of every asked-for coefficient set of the block's fold."""
    fold, role, y, x, draw = block
    if role != _FIT or fold not in points:
        return ()
    keep = draw < fraction
    x, y = x[keep], y[keep]
    coef, intercept = points[fold]  # features x problems, problems
    margin = x @ coef + intercept
    loss = (np.logaddexp(0.0, margin) - y[:, None] * margin).sum(axis=0)
    residual = expit(margin) - y[:, None]
    return fold, loss, np.asarray(x.T @ residual), residual.sum(axis=0)


def _partition_gradients(
    blocks: Iterable[Any], *, points: dict[int, tuple[np.ndarray, np.ndarray]], fraction: float
) -> Iterator[tuple[Any, ...]]:
    """The partition's gradient sums, one per fold: what leaves the executor
    is as big as the coefficients, whatever the rows."""
    sums: dict[int, list[np.ndarray]] = {}
    for block in blocks:
        found = _block_gradients(block, points=points, fraction=fraction)
        if not found:
            continue
        fold, *parts = found
        if fold in sums:
            sums[fold] = [total + part for total, part in zip(sums[fold], parts, strict=True)]
        else:
            sums[fold] = list(parts)
    for fold, (loss, xr, r) in sums.items():
        yield fold, loss, xr, r


def _block_scores(
    block: Any, *, points: dict[int, tuple[np.ndarray, np.ndarray]]
) -> tuple[Any, ...]:
    fold, role, y, x, _ = block
    if role != _HELD or fold not in points:
        return ()
    coef, intercept = points[fold]
    return fold, y, x @ coef + intercept


class _Exchange:
    """Collects every running problem's next point; the last to ask runs the
    one Spark job that answers them all."""

    def __init__(self, answer: Callable[[dict[Problem, np.ndarray]], dict[Problem, Any]], n: int):
        self._answer = answer
        self._cond = threading.Condition()
        self._asked: dict[Problem, np.ndarray] = {}
        self._answers: dict[Problem, Any] = {}
        self._running = n
        self.error: BaseException | None = None
        self.passes = 0

    def ask(self, problem: Problem, point: np.ndarray) -> Any:
        with self._cond:
            self._asked[problem] = point
            self._maybe_run()
            while problem not in self._answers and self.error is None:
                self._cond.wait()
            if self.error is not None:
                raise RuntimeError("search pass failed") from self.error
            return self._answers.pop(problem)

    def leave(self) -> None:
        with self._cond:
            self._running -= 1
            self._maybe_run()

    def _maybe_run(self) -> None:
        if not self._asked or len(self._asked) < self._running or self.error is not None:
            return
        asked, self._asked = self._asked, {}
        try:
            self._answers.update(self._answer(asked))
            self.passes += 1
        except BaseException as exc:  # every waiting problem re-raises it
            self.error = exc
        self._cond.notify_all()


@dataclass
class _Space:
    """A fold's standardisation: where its coefficients live for the optimiser."""

    rows: float
    mean: np.ndarray
    std: np.ndarray
    positive_share: float  # where Spark starts the intercept

    @property
    def active(self) -> np.ndarray:
        return self.std > 0  # constant features keep coefficient 0, as in Spark


def _to_raw(problem: Problem, space: _Space, c: np.ndarray, a: float) -> tuple[np.ndarray, float]:
    """Standardised (centred when there is an intercept) coefficients to raw ones."""
    beta = np.zeros_like(space.std)
    beta[space.active] = c / space.std[space.active]
    if not problem.intercept:
        return beta, 0.0
    return beta, a - float(beta @ space.mean)


class _Objective:
    """Spark's penalised loss of one problem in the optimiser's variables:
    [c] or, with an L1 part, [c+, c-] (both >= 0), then the intercept."""

    def __init__(self, problem: Problem, space: _Space, exchange: _Exchange):
        self.problem, self.space, self.exchange = problem, space, exchange
        std = space.std[space.active]
        self.l2 = (
            problem.reg
            * (1 - problem.alpha)
            * (np.ones_like(std) if problem.standardize else 1 / std**2)
        )
        self.l1 = (
            problem.reg * problem.alpha * (np.ones_like(std) if problem.standardize else 1 / std)
        )
        self.split = bool(np.any(self.l1 > 0))
        self.d = len(std)
        self.iterations = 0

    def start(self, positive_share: float) -> np.ndarray:
        n = 2 * self.d if self.split else self.d
        start = np.zeros(n + (1 if self.problem.intercept else 0))
        if self.problem.intercept:
            # Spark starts the intercept at the log odds of the label
            p = min(max(positive_share, 1e-12), 1 - 1e-12)
            start[-1] = math.log(p / (1 - p))
        return start

    def bounds(self) -> list[tuple[float | None, float | None]] | None:
        if not self.split:
            return None
        return [(0.0, None)] * (2 * self.d) + [(None, None)] * int(self.problem.intercept)

    def unpack(self, v: np.ndarray) -> tuple[np.ndarray, float]:
        c = v[: self.d] - v[self.d : 2 * self.d] if self.split else v[: self.d]
        return c, float(v[-1]) if self.problem.intercept else 0.0

    def __call__(self, v: np.ndarray) -> tuple[float, np.ndarray]:
        c, a = self.unpack(v)
        beta, b0 = _to_raw(self.problem, self.space, c, a)
        loss, xr, r = self.exchange.ask(self.problem, np.append(beta, b0))
        std, active = self.space.std, self.space.active
        mean = self.space.mean if self.problem.intercept else np.zeros_like(std)
        grad_c = (xr[active] - mean[active] * r) / std[active] / self.space.rows
        value = loss / self.space.rows + 0.5 * float(self.l2 @ c**2)
        grad_c = grad_c + self.l2 * c
        if self.split:
            value += float(self.l1 @ (v[: self.d] + v[self.d : 2 * self.d]))
            grad = np.concatenate([grad_c + self.l1, -grad_c + self.l1])
        else:
            grad = grad_c
        if self.problem.intercept:
            grad = np.append(grad, r / self.space.rows)
        return value, grad


@dataclass(frozen=True)
class Fitted:
    problem: Problem
    coefficients: np.ndarray
    intercept: float
    iterations: int
    converged: bool


def fit_all(
    data: Folds,
    problems: Sequence[Problem],
    *,
    fraction: float,
    on_pass: Callable[[int, int], None] | None = None,
) -> list[Fitted]:
    """Fit every problem on its fold's rows drawn below `fraction`, all of them
    in the same passes."""
    spaces = data.stats(fraction)
    finished: list[Fitted] = []
    lock = threading.Lock()

    def answer(asked: dict[Problem, np.ndarray]) -> dict[Problem, Any]:
        order: dict[int, list[Problem]] = {}
        for problem in asked:
            order.setdefault(problem.fold, []).append(problem)
        points = {
            fold: (
                np.stack([asked[p][:-1] for p in ps], axis=1),
                np.array([asked[p][-1] for p in ps]),
            )
            for fold, ps in order.items()
        }
        sums: dict[int, list[np.ndarray]] = {}
        for fold, loss, xr, r in data.blocks.mapPartitions(
            partial(_partition_gradients, points=points, fraction=fraction)
        ).collect():
            if fold in sums:
                for i, part in enumerate((loss, xr, r)):
                    sums[fold][i] = sums[fold][i] + part
            else:
                sums[fold] = [loss, xr, r]
        out: dict[Problem, Any] = {}
        for fold, ps in order.items():
            loss, xr, r = sums[fold]
            for j, p in enumerate(ps):
                out[p] = (float(loss[j]), xr[:, j], float(r[j]))
        if on_pass is not None:
            on_pass(exchange.passes + 1, len(asked))
        return out

    exchange = _Exchange(answer, len(problems))

    errors: list[BaseException] = []

    def solve(problem: Problem) -> None:
        # everything a problem does is inside the try: a problem that failed
        # without leaving would keep the others waiting for its ask for ever
        try:
            space = spaces[problem.fold]
            objective = _Objective(problem, space, exchange)
            found = minimize(
                objective,
                objective.start(space.positive_share),
                jac=True,
                method="L-BFGS-B",
                bounds=objective.bounds(),
                options={
                    "maxiter": problem.max_iter,
                    "ftol": problem.tol,
                    "gtol": 1e-9,
                    "maxcor": 10,
                },
            )
            c, a = objective.unpack(found.x)
            beta, b0 = _to_raw(problem, space, c, a)
            with lock:
                finished.append(Fitted(problem, beta, b0, int(found.nit), bool(found.success)))
        except BaseException as exc:  # re-raised by the caller's thread below
            with lock:
                errors.append(exc)
        finally:
            exchange.leave()

    threads = [
        threading.Thread(
            target=solve, args=(p,), name=f"lakeforge-lr-{p.fold}-{p.key}", daemon=True
        )
        for p in problems
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if exchange.error is not None:
        raise exchange.error  # the failed pass itself, not a waiting problem's report of it
    if errors:
        raise errors[0]
    by_problem = {f.problem: f for f in finished}
    return [by_problem[p] for p in problems]


def score_all(
    data: Folds,
    fitted: Sequence[Fitted],
    metric_name: str,
    *,
    exact_limit: int = EXACT_SCORES,
    bins: int = BINS,
) -> dict[Problem, float]:
    """Every fitted problem's metric on its fold's held-out rows (all of them,
    whatever fraction it was fitted on).

    Log loss is a sum, taken in the executors. The areas are exact (one job
    bringing labels and margins to the driver) while the held-out rows times
    the candidates plus one stay within `exact_limit`; past it they come from
    `bins` equal bins between each candidate's lowest and highest margin
    (on their asinh: see `_spread`) (one
    job for the bounds, one for the per-label counts), so the driver holds
    `bins` counts per candidate at any size, and the log says how far from
    exact the areas can be."""
    order: dict[int, list[Fitted]] = {}
    for f in fitted:
        order.setdefault(f.problem.fold, []).append(f)
    points = {
        fold: (np.stack([f.coefficients for f in fs], axis=1), np.array([f.intercept for f in fs]))
        for fold, fs in order.items()
    }
    if metric_name == "log_loss":
        return _summed_log_loss(data, order, points)
    held = data.held_rows()
    if sum(held.get(fold, 0) * (len(fs) + 1) for fold, fs in order.items()) > exact_limit:
        return _binned(data, order, points, metric_name, bins)
    labels: dict[int, list[np.ndarray]] = {}
    margins: dict[int, list[np.ndarray]] = {}
    for fold, y, m in data.blocks.map(partial(_block_scores, points=points)).filter(bool).collect():
        labels.setdefault(fold, []).append(y)
        margins.setdefault(fold, []).append(m)
    out: dict[Problem, float] = {}
    for fold, fs in order.items():
        y = np.concatenate(labels[fold]) if fold in labels else np.zeros(0)
        m = np.concatenate(margins[fold]) if fold in margins else np.zeros((0, len(fs)))
        for j, f in enumerate(fs):
            out[f.problem] = binary_metric(metric_name, y, m[:, j])
    return out


Points = dict[int, tuple[np.ndarray, np.ndarray]]


def _summed_log_loss(
    data: Folds, order: dict[int, list[Fitted]], points: Points
) -> dict[Problem, float]:
    totals: dict[int, tuple[np.ndarray, int]] = {}
    for fold, loss, n in data.blocks.mapPartitions(
        partial(_partition_log_loss, points=points)
    ).collect():
        got, rows = totals.get(fold, (0.0, 0))
        totals[fold] = (got + loss, rows + n)
    out: dict[Problem, float] = {}
    for fold, fs in order.items():
        loss, rows = totals.get(fold, (np.zeros(len(fs)), 0))
        for j, f in enumerate(fs):
            out[f.problem] = float(loss[j] / rows) if rows else math.nan
    return out


def _partition_log_loss(blocks: Iterable[Any], *, points: Points) -> Iterator[tuple[Any, ...]]:
    sums: dict[int, tuple[np.ndarray, int]] = {}
    for block in blocks:
        found = _block_scores(block, points=points)
        if not found:
            continue
        fold, y, m = found
        p = np.where(y[:, None] > 0.5, expit(m), expit(-m))
        loss = -np.log(np.clip(p, 1e-15, None)).sum(axis=0)
        got, rows = sums.get(fold, (0.0, 0))
        sums[fold] = (got + loss, rows + len(y))
    for fold, (loss, rows) in sums.items():
        yield fold, loss, rows


def _binned(
    data: Folds, order: dict[int, list[Fitted]], points: Points, metric_name: str, bins: int
) -> dict[Problem, float]:
    """The areas from per-label histograms of each candidate's margins."""
    lows: dict[int, np.ndarray] = {}
    highs: dict[int, np.ndarray] = {}
    for fold, lo, hi in data.blocks.mapPartitions(
        partial(_partition_bounds, points=points)
    ).collect():
        lows[fold] = np.fmin(lows[fold], lo) if fold in lows else lo
        highs[fold] = np.fmax(highs[fold], hi) if fold in highs else hi
    # NaN: a candidate with no finite margin, all its rows in one bin
    bounds = {fold: (np.nan_to_num(lows[fold]), np.nan_to_num(highs[fold])) for fold in lows}
    # summed in a tree: the driver receives one histogram per fold, however
    # many partitions (cores) the blocks are cut in
    counts: dict[int, np.ndarray] = data.blocks.mapPartitions(
        lambda blocks: [
            dict(_partition_histograms(blocks, points=points, bounds=bounds, bins=bins))
        ]
    ).treeReduce(_add_histograms)
    out: dict[Problem, float] = {}
    worst = 0.0
    for fold, fs in order.items():
        hist = counts.get(fold, np.zeros((len(fs), 2, bins), dtype=np.int64))
        for j, f in enumerate(fs):
            value, error = binned_metric(metric_name, hist[j, 1], hist[j, 0])
            out[f.problem] = value
            worst = max(worst, error) if not math.isnan(error) else worst
    log.info(
        "search: %s from %d-bin margin histograms (%d held-out rows): the ROC area within "
        "%.1e of exact%s",
        metric_name,
        bins,
        sum(data.held_rows().values()),
        worst,
        " (the PR area has no such bound: rows sharing a bin count as one point)"
        if metric_name == "pr_auc"
        else "",
    )
    if worst > 1e-3:
        log.warning(
            "search: the binned ROC area may be %.1e from exact (many rows share a bin)", worst
        )
    return out


def _add_histograms(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    out = dict(a)
    for fold, hist in b.items():
        out[fold] = out[fold] + hist if fold in out else hist
    return out


def _partition_bounds(blocks: Iterable[Any], *, points: Points) -> Iterator[tuple[Any, ...]]:
    found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for block in blocks:
        scored = _block_scores(block, points=points)
        if not scored or len(scored[1]) == 0:
            continue
        fold, _, m = scored
        # the finite margins set the range; +-inf land in the end bins
        spread = np.where(np.isfinite(m), _spread(m), np.nan)
        lo, hi = np.fmin.reduce(spread, axis=0), np.fmax.reduce(spread, axis=0)
        if fold in found:
            lo, hi = np.fmin(found[fold][0], lo), np.fmax(found[fold][1], hi)
        found[fold] = (lo, hi)
    for fold, (lo, hi) in found.items():
        yield fold, lo, hi


def _partition_histograms(
    blocks: Iterable[Any],
    *,
    points: Points,
    bounds: dict[int, tuple[np.ndarray, np.ndarray]],
    bins: int,
) -> Iterator[tuple[int, np.ndarray]]:
    """Per fold: counts[candidate, label, bin], bins equal between the
    candidate's lowest and highest margin over the whole fold."""
    found: dict[int, np.ndarray] = {}
    for block in blocks:
        scored = _block_scores(block, points=points)
        if not scored:
            continue
        fold, y, m = scored
        lo, hi = bounds[fold]
        place = margin_bins(_spread(m), lo, hi, bins)
        k = m.shape[1]
        positive = (y > 0.5).astype(np.int64)
        # one bincount for every (candidate, label, bin) of the block
        flat = (np.arange(k)[None, :] * 2 + positive[:, None]) * bins + place
        hist = np.bincount(flat.ravel(), minlength=k * 2 * bins).reshape(k, 2, bins)
        found[fold] = found[fold] + hist if fold in found else hist
    yield from found.items()


# asinh of the margins: +-50 is +-2.6e21, past any finite fit's scores
_REACH = 50.0


def _spread(m: np.ndarray) -> np.ndarray:
    """Margins on the scale they are binned on: asinh keeps their order (so
    the areas) and keeps the bulk near zero linear while an outlier of 1e5
    costs it only a factor ~3 of the range, where equal bins over the raw
    margins would put nearly every row in a few bins. A margin that is NaN
    (a diverged fit) counts as the lowest, +-inf as the ends."""
    return np.nan_to_num(np.clip(np.arcsinh(m), -_REACH, _REACH), nan=-_REACH)


def margin_bins(m: np.ndarray, lo: np.ndarray, hi: np.ndarray, bins: int) -> np.ndarray:
    """Each margin's bin: equal bins from `lo` to `hi` (per column), the
    highest margin in the last bin."""
    width = np.where(hi > lo, hi - lo, 1.0)
    place = np.floor((m - lo) / width * bins).astype(np.int64)
    return np.clip(place, 0, bins - 1)


def binned_metric(name: str, positives: np.ndarray, negatives: np.ndarray) -> tuple[float, float]:
    """ROC or PR area from per-bin label counts (bins ascending by score), and
    the most the ROC area can differ from the exact one: the rows sharing a
    bin count as ties (half), as if their scores were equal.

    Each non-empty bin is one point of the curve, as one distinct score is in
    Spark's exact curve, so scores that are few and far apart (each in a bin
    of its own) give exactly Spark's areas."""
    pos_total, neg_total = float(positives.sum()), float(negatives.sum())
    if pos_total == 0 or neg_total == 0:
        return math.nan, math.nan
    ties = float(np.dot(positives.astype(np.float64), negatives)) / (pos_total * neg_total) / 2
    if name == "roc_auc":
        below = np.cumsum(negatives) - negatives
        area = float(np.dot(positives, below + negatives / 2)) / (pos_total * neg_total)
        return area, ties
    if name == "pr_auc":
        used = (positives + negatives) > 0
        tp = np.cumsum(positives[used][::-1]).astype(np.float64)
        fp = np.cumsum(negatives[used][::-1]).astype(np.float64)
        recall = np.r_[0.0, tp / pos_total]
        precision = tp / (tp + fp)
        precision = np.r_[precision[0], precision]
        area = float(np.sum((recall[1:] - recall[:-1]) * (precision[1:] + precision[:-1]) / 2))
        return area, ties
    raise ValueError(f"metric {name} is not computed by the shared-pass solver")


def binary_metric(name: str, y: np.ndarray, margin: np.ndarray) -> float:
    """Spark's BinaryClassificationEvaluator (numBins=0) / logLoss of a binary
    model's margins."""
    positives = float(y.sum())
    negatives = float(len(y) - positives)
    if name == "log_loss":
        p = np.clip(np.where(y > 0.5, expit(margin), expit(-margin)), 1e-15, None)
        return float(-np.log(p).mean())
    if positives == 0 or negatives == 0:
        return math.nan
    if name == "roc_auc":  # Mann-Whitney: tied scores count half, as the exact ROC curve does
        ranks = rankdata(margin)
        return float(
            (ranks[y > 0.5].sum() - positives * (positives + 1) / 2) / (positives * negatives)
        )
    if name == "pr_auc":
        # Spark's curve: one point per distinct score (descending), starting at
        # (recall 0, precision of the first point), trapezoids between points
        order = np.argsort(-margin, kind="mergesort")
        scores, hits = margin[order], y[order]
        last = np.r_[np.flatnonzero(np.diff(scores) != 0), len(scores) - 1]
        tp = np.cumsum(hits)[last]
        fp = (last + 1) - tp
        recall = np.r_[0.0, tp / positives]
        precision = tp / (tp + fp)
        precision = np.r_[precision[0], precision]
        return float(np.sum((recall[1:] - recall[:-1]) * (precision[1:] + precision[:-1]) / 2))
    raise ValueError(f"metric {name} is not computed by the shared-pass solver")


def search_round(
    data: Folds,
    specs: Sequence[Any],
    *,
    fraction: float,
    metric_name: str,
) -> dict[int, tuple[list[float], float]]:
    """One round for the logistic-regression candidates: per candidate index,
    its fold metrics and the round's seconds (shared, split evenly)."""
    start = time.perf_counter()
    problems = [Problem.of(fold, s.index, s.params) for s in specs for fold in range(data.folds)]
    last_log = [time.perf_counter()]

    def on_pass(number: int, running: int) -> None:
        if time.perf_counter() - last_log[0] >= 10 or number == 1:
            last_log[0] = time.perf_counter()
            log.info(
                "search: shared pass %d, %d/%d logistic fits still iterating (%.0fs)",
                number,
                running,
                len(problems),
                time.perf_counter() - start,
            )

    fitted = fit_all(data, problems, fraction=fraction, on_pass=on_pass)
    values = score_all(data, fitted, metric_name)
    seconds = (time.perf_counter() - start) / max(len(specs), 1)
    out: dict[int, tuple[list[float], float]] = {}
    for s in specs:
        per_fold = [values[p] for p in problems if p.key == s.index]
        out[s.index] = (per_fold, seconds)
    not_converged = [f for f in fitted if not f.converged]
    if not_converged:
        log.info(
            "search: %d logistic fits stopped at maxIter before the tolerance was met",
            len(not_converged),
        )
    return out
