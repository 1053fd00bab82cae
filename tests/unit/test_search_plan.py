"""The search plan: every grid point, or a seeded random draw of them."""

from __future__ import annotations

from lakeforge.config.training import Candidate, Search
from lakeforge.tuning.search import candidates

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
