"""sample_rows: the single-row fast path draws exactly what the batch path draws, and frequencies match."""

from __future__ import annotations

import numpy as np

from rlops.policies.base import sample_rows


def _batch_path(p: np.ndarray, seed: int) -> int:
    cumulative = np.cumsum(p[None, :], axis=1)
    u = np.random.default_rng(seed).random(1) * cumulative[:, -1]
    return min(int((cumulative <= u[:, None]).sum()), len(p) - 1)


def test_single_row_path_equals_batch_path() -> None:
    rng = np.random.default_rng(0)
    for trial in range(3000):
        k = int(rng.integers(1, 12))
        p = np.eye(k)[int(rng.integers(0, k))] if trial % 7 == 0 else rng.dirichlet(np.ones(k))
        seed = int(rng.integers(0, 2**32))
        assert sample_rows(p[None, :], np.random.default_rng(seed))[0] == _batch_path(p, seed)


def test_zero_probability_actions_are_never_drawn() -> None:
    p = np.array([[0.0, 0.5, 0.0, 0.5]])
    rng = np.random.default_rng(1)
    drawn = {int(sample_rows(p, rng)[0]) for _ in range(2000)}
    assert drawn == {1, 3}


def test_batch_frequencies_match() -> None:
    p = np.tile([0.1, 0.2, 0.7], (30_000, 1))
    counts = np.bincount(sample_rows(p, np.random.default_rng(2)), minlength=3) / 30_000
    np.testing.assert_allclose(counts, [0.1, 0.2, 0.7], atol=0.01)
