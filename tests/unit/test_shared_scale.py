"""The shared passes at scale: nothing a pass brings to the driver grows with
the rows. Each partition sums its blocks' gradients and moments; past a fixed
budget, held-out scores come back as fixed-size histograms, whose areas stay
within the bound they report of the exact ones (and equal them when every
distinct score has a bin of its own)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from pyspark.sql import SparkSession
from scipy import sparse

from lakeforge.features.stages import FEATURES
from lakeforge.tuning.shared import (
    _FIT,
    _HELD,
    Folds,
    Problem,
    _block_gradients,
    _block_moments,
    _partition_gradients,
    _partition_histograms,
    _partition_moments,
    _spread,
    binary_metric,
    binned_metric,
    fit_all,
    margin_bins,
    score_all,
)


def _blocks(rng: np.random.Generator, rows: int, per_block: int = 100) -> list[tuple]:
    """(fold, role, y, x, draw) blocks over two folds, dense and CSR."""
    out = []
    for start in range(0, rows, per_block):
        for fold in (0, 1):
            for role in (_FIT, _HELD):
                x = rng.normal(size=(per_block, 4)) * (rng.random((per_block, 4)) < 0.5)
                y = (rng.random(per_block) < 0.4).astype(float)
                block_x = sparse.csr_matrix(x) if start % 200 else x
                out.append((fold, role, y, block_x, rng.random(per_block)))
    return out


def _points() -> dict[int, tuple[np.ndarray, np.ndarray]]:
    coef = np.array([[0.5, -1.0, 0.0], [0.2, 0.3, 1.0], [-0.7, 0.0, 0.4], [0.1, 0.1, -2.0]])
    return {0: (coef, np.array([0.1, -0.2, 0.0])), 1: (coef * 2, np.array([0.0, 0.3, -0.1]))}


def test_a_partition_sends_one_gradient_sum_per_fold_equal_to_its_blocks() -> None:
    blocks = _blocks(np.random.default_rng(1), 1000)
    points = _points()
    out = list(_partition_gradients(iter(blocks), points=points, fraction=0.7))
    assert sorted(o[0] for o in out) == [0, 1]  # one per fold, not one per block
    for fold, loss, xr, r in out:
        parts = [_block_gradients(b, points=points, fraction=0.7) for b in blocks]
        parts = [p for p in parts if p and p[0] == fold]
        assert len(parts) == 10
        np.testing.assert_allclose(loss, sum(p[1] for p in parts), rtol=1e-12)
        np.testing.assert_allclose(xr, sum(p[2] for p in parts), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(r, sum(p[3] for p in parts), rtol=1e-12, atol=1e-12)


def test_partition_moments_are_those_of_all_its_drawn_rows() -> None:
    blocks = _blocks(np.random.default_rng(2), 1000)
    out = {(fold, role): m for fold, role, m in _partition_moments(iter(blocks), fraction=0.5)}
    for fold in (0, 1):
        fit = [b for b in blocks if b[0] == fold and b[1] == _FIT]
        keep = [b[4] < 0.5 for b in fit]
        x = np.vstack(
            [
                np.asarray(b[3].todense() if sparse.issparse(b[3]) else b[3])[k]
                for b, k in zip(fit, keep, strict=True)
            ]
        )
        y = np.concatenate([b[2][k] for b, k in zip(fit, keep, strict=True)])
        m = out[(fold, _FIT)]
        assert m.n == len(x)
        assert m.positives == y.sum()
        np.testing.assert_allclose(m.mean, x.mean(axis=0), rtol=1e-10)
        np.testing.assert_allclose(m.m2, ((x - x.mean(axis=0)) ** 2).sum(axis=0), rtol=1e-9)
        assert out[(fold, _HELD)].n == 1000  # held-out rows counted, all of them
    assert _block_moments(blocks[1], fraction=1.0) == ()  # held-out rows are not moments


def test_histograms_have_the_same_size_whatever_the_rows() -> None:
    points = _points()
    bounds = {fold: (np.full(3, -10.0), np.full(3, 10.0)) for fold in (0, 1)}
    sizes = []
    for rows in (200, 2000):
        blocks = _blocks(np.random.default_rng(3), rows)
        out = dict(_partition_histograms(iter(blocks), points=points, bounds=bounds, bins=64))
        assert out[0].shape == (3, 2, 64)
        assert out[0].sum() == 3 * rows  # every held-out row in one bin per candidate
        sizes.append(len(pickle.dumps(out)))
    assert sizes[0] == sizes[1]


def test_binned_areas_stay_within_their_bound_of_the_exact_ones() -> None:
    rng = np.random.default_rng(4)
    n = 200_000
    y = (rng.random(n) < 0.3).astype(float)
    margin = rng.normal(size=n) + 1.2 * y
    lo, hi = np.array([margin.min()]), np.array([margin.max()])
    place = margin_bins(margin[:, None], lo, hi, 1 << 15)[:, 0]
    pos = np.bincount(place[y > 0.5], minlength=1 << 15)
    neg = np.bincount(place[y < 0.5], minlength=1 << 15)
    for name, tolerance in (("roc_auc", None), ("pr_auc", 1e-4)):
        got, bound = binned_metric(name, pos, neg)
        exact = binary_metric(name, y, margin)
        assert bound < 5e-5
        assert abs(got - exact) <= (bound if tolerance is None else tolerance), name
    # a coarse histogram is far off, and says so: the bound is not decoration
    coarse = margin_bins(margin[:, None], lo, hi, 8)[:, 0]
    got, bound = binned_metric(
        "roc_auc",
        np.bincount(coarse[y > 0.5], minlength=8),
        np.bincount(coarse[y < 0.5], minlength=8),
    )
    exact = binary_metric("roc_auc", y, margin)
    assert 1e-3 < abs(got - exact) <= bound


def test_an_outlying_margin_does_not_crush_the_bins() -> None:
    """One margin of 1e5 (an unscaled value in the held-out rows): equal bins
    over the raw margins would put nearly every row in a few bins (ROC area
    0.67 for 0.80); binned on their asinh the area stays within 5e-4."""
    rng = np.random.default_rng(8)
    n = 200_000
    y = (rng.random(n) < 0.3).astype(float)
    margin = rng.normal(size=n) + 1.2 * y
    margin[0] = 1e5
    margin[1] = -np.inf
    spread = _spread(margin[:, None])
    lo, hi = spread[1:].min(axis=0), spread[1:].max(axis=0)  # the finite ones
    place = margin_bins(spread, lo, hi, 1 << 15)[:, 0]
    got, bound = binned_metric(
        "roc_auc",
        np.bincount(place[y > 0.5], minlength=1 << 15),
        np.bincount(place[y < 0.5], minlength=1 << 15),
    )
    assert bound < 5e-4
    assert abs(got - binary_metric("roc_auc", y, margin)) <= bound
    # the same bins over the raw margins: most rows in a handful of bins
    finite = np.isfinite(margin)  # the 1e5 included
    kept, labels = margin[finite], y[finite]
    raw = margin_bins(kept[:, None], kept.min(), kept.max(), 1 << 15)[:, 0]
    _, raw_bound = binned_metric(
        "roc_auc",
        np.bincount(raw[labels > 0.5], minlength=1 << 15),
        np.bincount(raw[labels < 0.5], minlength=1 << 15),
    )
    assert raw_bound > 0.1


def test_few_distinct_scores_give_exactly_sparks_areas_ties_included() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(5000) < 0.4).astype(float)
    margin = rng.choice([-2.0, -0.5, 0.25, 3.0], size=5000)
    margin[y > 0.5] = rng.choice([-0.5, 0.25, 3.0], size=int((y > 0.5).sum()))
    lo, hi = np.array([margin.min()]), np.array([margin.max()])
    place = margin_bins(margin[:, None], lo, hi, 1024)[:, 0]
    pos = np.bincount(place[y > 0.5], minlength=1024)
    neg = np.bincount(place[y < 0.5], minlength=1024)
    for name in ("roc_auc", "pr_auc"):
        got, _ = binned_metric(name, pos, neg)
        assert got == pytest.approx(binary_metric(name, y, margin), abs=1e-12), name


def test_score_all_past_its_budget_agrees_with_the_exact_scores(spark: SparkSession) -> None:
    """The same fits scored exactly and from histograms (a budget of 0):
    within the bound for the areas, equal for the log loss (a sum either way)."""
    rng = np.random.default_rng(6)
    n = 3000
    x = rng.normal(size=(n, 3))
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ [1.0, -0.5, 0.2])))).astype(float)
    fit = spark.createDataFrame(
        [(Vectors.dense(r.tolist()), float(v)) for r, v in zip(x[:2000], y[:2000], strict=True)],
        [FEATURES, "y"],
    )
    held = spark.createDataFrame(
        [(Vectors.dense(r.tolist()), float(v)) for r, v in zip(x[2000:], y[2000:], strict=True)],
        [FEATURES, "y"],
    )
    folds = Folds([(fit, held)], "y", seed=6)
    try:
        assert folds.held_rows() == {0: 1000}
        problems = [Problem.of(0, k, {"regParam": reg}) for k, reg in enumerate((0.0, 0.5))]
        fitted = fit_all(folds, problems, fraction=1.0)
        for name in ("roc_auc", "pr_auc", "log_loss"):
            exact = score_all(folds, fitted, name)
            binned = score_all(folds, fitted, name, exact_limit=0, bins=4096)
            for p in problems:
                assert binned[p] == pytest.approx(exact[p], abs=1e-3), name
        # each path against Spark's metric definitions on the margins computed
        # here (log loss is summed in the executors whatever the budget)
        for f in fitted:
            margins = x[2000:] @ f.coefficients + f.intercept
            for name in ("roc_auc", "log_loss"):
                assert score_all(folds, fitted, name)[f.problem] == pytest.approx(
                    binary_metric(name, y[2000:], margins), abs=1e-9
                ), name
    finally:
        folds.release()
