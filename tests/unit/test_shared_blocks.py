"""The shared passes' Arrow blocks: a batch that mixes folds whose feature
vectors differ in width (a category only one fold's training rows lack) is
cut into one block per fold and role, each of its own width."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest

from lakeforge.tuning.shared import _arrow_blocks


def _batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [
            pa.array([0, 1, 0, 1, 1], type=pa.int32()),
            pa.array([0, 0, 0, 1, 0], type=pa.int32()),
            pa.array([[1.0, 2.0, 3.0], [4.0, 5.0], [6.0, 7.0, 8.0], [9.0, 1.0], [2.0, 3.0]]),
            pa.array([1.0, 0.0, 0.0, 1.0, 1.0]),
        ],
        names=["fold", "role", "x", "y"],
    )


def test_a_batch_mixing_folds_of_two_widths_gives_a_block_per_fold_and_role() -> None:
    out = list(_arrow_blocks([_batch()], seed=1))
    blocks = [pickle.loads(b) for b in out[0].column("block").to_pylist()]
    by_place = {(fold, role): (y, x) for fold, role, y, x, _ in blocks}
    assert set(by_place) == {(0, 0), (1, 0), (1, 1)}
    y, x = by_place[(0, 0)]
    np.testing.assert_array_equal(
        np.asarray(x.todense() if hasattr(x, "todense") else x), [[1.0, 2.0, 3.0], [6.0, 7.0, 8.0]]
    )
    np.testing.assert_array_equal(y, [1.0, 0.0])
    _, x = by_place[(1, 0)]
    np.testing.assert_array_equal(np.asarray(x), [[4.0, 5.0], [2.0, 3.0]])


def test_vectors_of_one_fold_that_differ_in_width_are_an_error_not_a_silent_reshape() -> None:
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array([0, 0], type=pa.int32()),
            pa.array([0, 0], type=pa.int32()),
            pa.array([[1.0, 2.0], [3.0]]),
            pa.array([1.0, 0.0]),
        ],
        names=["fold", "role", "x", "y"],
    )
    with pytest.raises(ValueError, match="differ in length"):
        list(_arrow_blocks([batch], seed=1))
