"""The shared-pass coordinator: one answer per round of asks, and a failed
pass (a Spark job that died) reaches every waiting problem instead of leaving
the search hung."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from pyspark.sql import SparkSession

from lakeforge.features.stages import FEATURES
from lakeforge.tuning.shared import Folds, Problem, _Exchange, fit_all


def _problems(n: int) -> list[Problem]:
    return [Problem.of(0, i, {"regParam": 0.1 * i}) for i in range(n)]


def _run(exchange: _Exchange, problems: list[Problem], steps: list[int]) -> dict[int, Any]:
    """Each problem asks `steps[i]` times, then leaves; what each one saw."""
    seen: dict[int, Any] = {}

    def solve(i: int, problem: Problem) -> None:
        try:
            seen[i] = [exchange.ask(problem, np.array([float(k)])) for k in range(steps[i])]
        except RuntimeError as exc:
            seen[i] = exc
        finally:
            exchange.leave()

    threads = [threading.Thread(target=solve, args=(i, p)) for i, p in enumerate(problems)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive(), "a problem is still waiting: the exchange hung"
    return seen


def test_one_pass_answers_every_running_problem() -> None:
    batches: list[int] = []

    def answer(asked: dict[Problem, np.ndarray]) -> dict[Problem, Any]:
        batches.append(len(asked))
        return {p: (p.key, float(x[0])) for p, x in asked.items()}

    problems = _problems(3)
    exchange = _Exchange(answer, len(problems))
    seen = _run(exchange, problems, [2, 4, 1])
    # passes shrink as problems finish: 3 ask, then 2, then the last one alone
    assert batches == [3, 2, 1, 1]
    assert exchange.passes == 4
    assert seen[1] == [(1, 0.0), (1, 1.0), (1, 2.0), (1, 3.0)]  # its own answers


def test_a_failed_pass_reaches_every_waiting_problem() -> None:
    def answer(asked: dict[Problem, np.ndarray]) -> dict[Problem, Any]:
        if any(x[0] >= 1 for x in asked.values()):
            raise OSError("executor lost")
        return {p: None for p in asked}

    problems = _problems(4)
    seen = _run(_Exchange(answer, len(problems)), problems, [3, 3, 3, 3])
    for outcome in seen.values():
        assert isinstance(outcome, RuntimeError)
        assert isinstance(outcome.__cause__, OSError)
    with pytest.raises(RuntimeError):
        exchange = _Exchange(answer, 1)
        exchange.ask(problems[0], np.array([5.0]))


def test_a_problem_failing_before_its_first_ask_ends_the_search(spark: SparkSession) -> None:
    """A problem that cannot even be set up (here: a fold with no rows, so no
    standardisation) must leave the exchange; else the others wait for its
    ask for ever and the search hangs instead of failing."""
    rows = spark.createDataFrame(
        [(Vectors.dense([float(i % 5), float(i % 3)]), float(i % 2)) for i in range(40)],
        [FEATURES, "y"],
    )
    folds = Folds([(rows, rows)], "y", seed=1)
    problems = [Problem.of(0, 0, {"regParam": 0.1}), Problem.of(3, 1, {"regParam": 0.1})]
    outcome: list[BaseException | object] = []

    def search() -> None:
        try:
            outcome.append(fit_all(folds, problems, fraction=1.0))
        except BaseException as exc:
            outcome.append(exc)

    try:
        worker = threading.Thread(target=search, daemon=True)
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), "the search hung on a problem that never asked"
        assert isinstance(outcome[0], KeyError)
    finally:
        folds.release()
