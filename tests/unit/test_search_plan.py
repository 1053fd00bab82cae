"""The search plan: every grid point, or a seeded random draw of them."""

from __future__ import annotations

import math

from lakeforge.config.training import Candidate, Search
from lakeforge.tuning.search import CandidateScore, CandidateSpec, candidates, rank

MODELS = [
    Candidate(
        estimator="logistic_regression",
        params={"maxIter": 30},
        grid={"regParam": [0.0, 0.01, 0.1], "elasticNetParam": [0.0, 0.5]},
    ),
    Candidate(estimator="random_forest", grid={"maxDepth": [4, 8]}),
]


def test_grid_search_tries_every_point_with_the_fixed_params() -> None:
    plan = candidates(MODELS, Search())
    assert len(plan) == 3 * 2 + 2
    assert [c.index for c in plan] == list(range(8))
    assert all(c.params["maxIter"] == 30 for c in plan if c.estimator == "logistic_regression")
    assert plan[-1].label == "random_forest(maxDepth=8)"


def test_random_search_draws_the_budget_the_same_way_every_time() -> None:
    search = Search(strategy="random", budget=4, seed=11)
    first = candidates(MODELS, search)
    assert len(first) == 4
    assert [c.params for c in first] == [c.params for c in candidates(MODELS, search)]
    every = [c.params for c in candidates(MODELS, Search())]
    assert all(c.params in every for c in first)
    other = candidates(MODELS, Search(strategy="random", budget=4, seed=12))
    assert [c.params for c in other] != [c.params for c in first]


def test_random_search_with_a_budget_above_the_grid_tries_it_all() -> None:
    assert len(candidates(MODELS, Search(strategy="random", budget=50))) == 8


def _score(index: int, *folds: float) -> CandidateScore:
    spec = CandidateSpec(index, "logistic_regression", {}, {})
    return CandidateScore(spec, tuple(folds), 0.0)


def test_halving_ranks_a_nan_candidate_last_whichever_way_is_better() -> None:
    """A candidate whose folds could not be scored (NaN mean) must not
    survive a round in place of a good one: plain sorting leaves NaN where
    it happens to be."""
    scores = [_score(0, 0.7), _score(1, math.nan), _score(2, 0.9), _score(3, 0.8, 0.8)]
    assert [s.spec.index for s in rank(scores, smaller_is_better=False)] == [2, 3, 0, 1]
    assert [s.spec.index for s in rank(scores, smaller_is_better=True)] == [0, 3, 2, 1]
    tied = [_score(0, 0.5), _score(1, 0.5)]
    assert [s.spec.index for s in rank(tied, smaller_is_better=False)] == [0, 1]
