"""The shared-pass solver reaches Spark's own logistic regression, coefficient
by coefficient: L2, elastic net and L1, with and without standardisation and an
intercept, on dense and on one-hot (CSR) blocks. Its objective is Spark's
penalised loss, and its gradient is that loss's (central differences)."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.linalg import Vectors
from pyspark.sql import DataFrame, SparkSession
from scipy import sparse

from lakeforge.features.stages import FEATURES
from lakeforge.tuning.shared import (
    _FIT,
    Folds,
    Problem,
    _block_gradients,
    _Exchange,
    _Objective,
    _Space,
    fit_all,
    solvable,
)

# (regParam, elasticNetParam): strong enough that L1 zeroes the feature with
# no effect of its own, weak enough that the others stay
PENALTIES = {"l2": (0.05, 0.0), "elastic-net": (0.03, 0.5), "l1": (0.02, 1.0)}
# both optimisers run to convergence: what is left is their stopping error
CONVERGED = {"tol": 1e-12, "maxIter": 1000}
# Coefficients and intercept agree to 1e-5 (absolute + relative). With the
# relative change of the loss below 1e-12 and the curvature of these
# problems, each optimiser stops within ~1e-6 of the optimum (measured: at
# most 4e-6, on L1 where Spark's OWL-QN and our bounded split differ most).
# The subtlest break tried, n for n - 1 in the standard deviations, moved
# coefficients by 3e-4 to 3e-3: a 1e-3 tolerance would have let most through.
TOLERANCE = 1e-5


def _case(penalty: str, standardization: bool, intercept: bool) -> tuple[str, dict[str, Any]]:
    reg, alpha = PENALTIES[penalty]
    name = penalty + ("" if standardization else "-unstandardised")
    name += "" if intercept else "-no-intercept"
    params = {
        "regParam": reg,
        "elasticNetParam": alpha,
        "standardization": standardization,
        "fitIntercept": intercept,
        **CONVERGED,
    }
    return name, params


CASES = dict(_case(*c) for c in itertools.product(PENALTIES, [True, False], [True, False]))
# the one-hot fold: fewer cases (each is one more Spark fit), the CSR arithmetic
# of both standardisation and centring
SPARSE_CASES = ["l2", "elastic-net-unstandardised-no-intercept"]

Coefficients = np.ndarray  # the coefficients, then the intercept


def _dense_rows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Features of unlike means and scales (so standardisation matters): a
    binary one, one with no effect of its own but correlated with the first
    (L1 drops it), and a constant one (Spark fixes its coefficient at 0)."""
    x = np.column_stack(
        [
            rng.normal(0.0, 1.0, n),
            rng.normal(3.0, 5.0, n),
            rng.normal(-2.0, 0.1, n),
            (rng.random(n) < 0.3).astype(float),
            rng.normal(0.0, 1.0, n),
            np.full(n, 2.0),
        ]
    )
    x[:, 4] = 0.6 * x[:, 0] + 0.8 * x[:, 4]
    margin = 0.5 + 1.2 * x[:, 0] - 0.15 * x[:, 1] + 4.0 * (x[:, 2] + 2.0) + 0.8 * x[:, 3]
    return x, (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(float)


def _one_hot_rows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A 5-level category one-hot, a rare flag and an amount only flagged rows
    have: under a fifth of the values are non-zero, so the blocks are CSR."""
    level = rng.choice(5, size=n, p=[0.4, 0.25, 0.15, 0.12, 0.08])
    flag = (rng.random(n) < 0.15).astype(float)
    amount = np.where(rng.random(n) < 0.1, rng.normal(4.0, 2.0, n), 0.0)
    x = np.column_stack([np.eye(5)[level], flag, amount])
    margin = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])[level] + 1.5 * flag - 0.3 * amount
    return x, (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(float)


def _frame(spark: SparkSession, x: np.ndarray, y: np.ndarray) -> DataFrame:
    rows = [(Vectors.dense(r.tolist()), float(label)) for r, label in zip(x, y, strict=True)]
    return spark.createDataFrame(rows, [FEATURES, "y"]).cache()


@dataclass(frozen=True)
class Pair:
    ours: Coefficients
    theirs: Coefficients
    converged: bool  # ours met the tolerance before maxIter


@dataclass(frozen=True)
class Fits:
    """Per (fold, case): the shared solver's fit and Spark's, and which folds'
    training blocks were CSR."""

    pairs: dict[tuple[int, str], Pair]
    sparse_folds: set[int]


@pytest.fixture(scope="module")
def fits(spark: SparkSession) -> Fits:
    """Every case on fold 0 (dense rows), `SPARSE_CASES` on fold 1 (one-hot
    rows), all in the same shared passes; Spark's fit of each on the same
    rows, run beside them (the passes are latency, not arithmetic)."""
    rng = np.random.default_rng(18)
    frames = [_frame(spark, *_dense_rows(rng, 400)), _frame(spark, *_one_hot_rows(rng, 300))]
    wanted = [(0, name) for name in CASES] + [(1, name) for name in SPARSE_CASES]
    problems = [Problem.of(fold, key, CASES[name]) for key, (fold, name) in enumerate(wanted)]
    folds = Folds([(frame, frame) for frame in frames], "y", seed=18)

    def spark_fit(fold: int, name: str) -> Coefficients:
        lr = LogisticRegression(featuresCol=FEATURES, labelCol="y", **CASES[name])
        model = lr.fit(frames[fold])
        return np.append(model.coefficients.toArray(), model.intercept)

    try:
        with ThreadPoolExecutor(3, thread_name_prefix="test-spark-fit") as pool:
            theirs = [pool.submit(spark_fit, fold, name) for fold, name in wanted]
            ours = fit_all(folds, problems, fraction=1.0)
            pairs = {
                place: Pair(np.append(f.coefficients, f.intercept), future.result(), f.converged)
                for place, f, future in zip(wanted, ours, theirs, strict=True)
            }
        kinds = folds.blocks.map(lambda b: (b[0], b[1], sparse.issparse(b[3]))).collect()
    finally:
        folds.release()
        for frame in frames:
            frame.unpersist()
    return Fits(pairs, {fold for fold, role, csr in kinds if role == _FIT and csr})


@pytest.mark.parametrize("name", list(CASES))
def test_shared_fit_has_sparks_coefficients_and_intercept(fits: Fits, name: str) -> None:
    assert solvable("logistic_regression", CASES[name], "binary", "roc_auc")  # search sends it here
    pair = fits.pairs[(0, name)]
    np.testing.assert_allclose(pair.ours, pair.theirs, rtol=TOLERANCE, atol=TOLERANCE)
    assert pair.ours[5] == 0.0  # the constant feature, as Spark (and glmnet) leave it
    assert pair.converged


@pytest.mark.parametrize("name", SPARSE_CASES)
def test_shared_fit_on_one_hot_blocks_has_sparks_coefficients(fits: Fits, name: str) -> None:
    assert fits.sparse_folds == {1}  # fold 1's rows really went the CSR way
    pair = fits.pairs[(1, name)]
    np.testing.assert_allclose(pair.ours, pair.theirs, rtol=TOLERANCE, atol=TOLERANCE)
    assert pair.converged


def test_the_cases_are_far_apart_beyond_the_tolerance(fits: Fits) -> None:
    """Standardisation, the intercept and each penalty move Spark's optimum by
    far more than the tolerance, so a solver ignoring one of them cannot pass
    the comparison; L1 really zeroes the feature with no effect of its own."""
    spark_fits = {name: fits.pairs[(0, name)].theirs for name in CASES}
    for a, b in itertools.combinations(CASES, 2):
        assert np.max(np.abs(spark_fits[a] - spark_fits[b])) > 100 * TOLERANCE, (a, b)
    assert spark_fits["l1-unstandardised"][4] == 0.0
    assert spark_fits["l2-unstandardised"][4] != 0.0


def test_params_the_shared_passes_do_not_solve_go_to_sparks_fit() -> None:
    lr = "logistic_regression"
    assert not solvable(lr, {"family": "multinomial"}, "binary", "roc_auc")
    assert not solvable(lr, {"lowerBoundsOnIntercepts": [[0.0]]}, "binary", "roc_auc")
    assert not solvable(lr, CASES["l2"], "multiclass", "f1")
    assert not solvable(lr, CASES["l2"], "binary", "f1")


# --- the objective and its gradient, without Spark -------------------------


def _objective(name: str, layout: str) -> tuple[_Objective, np.ndarray, np.ndarray]:
    """The optimiser's objective for case `name` over 300 rows held in one
    block (dense, or CSR with 80% zeros), its asks answered by the same block
    arithmetic a shared pass runs."""
    rng = np.random.default_rng(7)
    x, y = _dense_rows(rng, 300)
    if layout == "csr":
        x = x * (rng.random(x.shape) < 0.2)
        x[:, 5] = 0.0  # a one-hot slot these rows never use
    rows = sparse.csr_matrix(x) if layout == "csr" else x
    block = (0, _FIT, y, rows, np.zeros(len(y)))
    space = _Space(float(len(y)), x.mean(axis=0), x.std(axis=0, ddof=1), float(y.mean()))
    problem = Problem.of(0, 0, CASES[name])

    def answer(asked: dict[Problem, np.ndarray]) -> dict[Problem, Any]:
        point = asked[problem]
        _, loss, xr, r = _block_gradients(
            block, points={0: (point[:-1, None], point[-1:])}, fraction=1.0
        )
        return {problem: (float(loss[0]), xr[:, 0], float(r[0]))}

    return _Objective(problem, space, _Exchange(answer, 1)), x, y


def _random_point(objective: _Objective, rng: np.random.Generator) -> np.ndarray:
    """A point away from the optimum; with an L1 part, both halves of every
    coefficient positive (inside the bounds, where the split is smooth)."""
    v = objective.start(0.5) + rng.normal(0.0, 0.5, len(objective.start(0.5)))
    if objective.split:
        v[: 2 * objective.d] = np.abs(v[: 2 * objective.d]) + 0.05
    return v


FD_CASES = [(name, layout) for name in CASES for layout in ("dense", "csr")]


@pytest.mark.parametrize(("name", "layout"), FD_CASES)
def test_gradient_matches_central_differences(name: str, layout: str) -> None:
    objective, _, _ = _objective(name, layout)
    v = _random_point(objective, np.random.default_rng(3))
    _, grad = objective(v)
    h = 1e-6
    numeric = np.array(
        [(objective(v + h * e)[0] - objective(v - h * e)[0]) / (2 * h) for e in np.eye(len(v))]
    )
    # central differences err by ~h^2 (curvature) + 1e-16/h (rounding): measured
    # at most 7e-10 of the gradient's norm over these cases
    assert np.linalg.norm(grad - numeric) <= 1e-8 * np.linalg.norm(grad), (grad, numeric)


@pytest.mark.parametrize(("name", "layout"), FD_CASES)
def test_objective_is_sparks_penalised_loss_in_raw_coefficients(name: str, layout: str) -> None:
    """Written out independently, at the raw model the optimiser's variables
    stand for (coefficients c / std, intercept centred on the feature means):
    mean log loss plus regParam x elastic net on the std-scaled coefficients
    (the raw ones without standardisation), the intercept not penalised."""
    objective, x, y = _objective(name, layout)
    rng = np.random.default_rng(5)
    c = rng.normal(0.0, 0.5, objective.d)
    a = 0.3 if objective.problem.intercept else 0.0
    v = np.concatenate([np.maximum(c, 0), np.maximum(-c, 0)]) if objective.split else c
    v = np.append(v, a) if objective.problem.intercept else v
    value, _ = objective(v)

    std = x.std(axis=0, ddof=1)
    active = std > 0
    beta = np.zeros(x.shape[1])
    beta[active] = c / std[active]
    b0 = a - float(beta @ x.mean(axis=0)) if objective.problem.intercept else 0.0
    margin = x @ beta + b0
    loss = float(np.mean(np.logaddexp(0.0, margin) - y * margin))
    p = CASES[name]
    scaled = beta * std if p["standardization"] else beta
    penalty = p["regParam"] * (
        (1 - p["elasticNetParam"]) / 2 * float(scaled @ scaled)
        + p["elasticNetParam"] * float(np.abs(scaled).sum())
    )
    assert value == pytest.approx(loss + penalty, rel=1e-12)
