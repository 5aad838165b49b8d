"""CUSUM against the textbook recursion, run observation by observation."""

from __future__ import annotations

import numpy as np
import pytest

from rlops.monitoring.drift import CUSUM, Direction


def _textbook(stream: np.ndarray, target: float, sigma: float, k: float, h: float) -> list[int]:
    high = low = 0.0
    found = []
    for i, x in enumerate(stream.tolist()):
        high = max(0.0, high + x - target - k * sigma)
        low = max(0.0, low + target - k * sigma - x)
        if high > h * sigma or low > h * sigma:
            found.append(i)
            high = low = 0.0
    return found


@pytest.mark.parametrize("seed", [0, 1])
def test_known_target_matches_the_recursion(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stream = np.r_[rng.normal(10, 2, 3000), rng.normal(11.5, 2, 3000), rng.normal(9, 2, 3000)]
    expected = _textbook(stream, 10.0, 2.0, 0.5, 5.0)
    assert CUSUM(target=10.0, sigma=2.0).update_many(stream).tolist() == expected
    assert len(expected) > 5


def test_estimates_target_and_sigma_from_the_burn_in() -> None:
    rng = np.random.default_rng(2)
    burn = rng.normal(5, 0.5, 50)
    rest = np.r_[rng.normal(5, 0.5, 500), rng.normal(6, 0.5, 500)]
    detector = CUSUM(burn_in=50)
    found = detector.update_many(np.r_[burn, rest]).tolist()
    expected = [50 + i for i in _textbook(rest, float(burn.mean()), float(burn.std(ddof=1)), 0.5, 5.0)]
    assert expected
    assert found[0] == expected[0]  # after it, the baseline is estimated again from the next 50


def test_statistics_and_direction() -> None:
    detector = CUSUM(target=0.0, sigma=1.0, direction=Direction.UP)
    assert detector.update_many(np.full(100, -3.0)).size == 0
    assert detector.statistics[0] == 0.0
    assert detector.statistics[1] == pytest.approx(250.0)  # 100 * (3 - 0.5), tracked but not reported
    assert detector.update_many(np.full(20, 1.0)).tolist() == [10]  # 0.5 per step passes 5 at the 11th
