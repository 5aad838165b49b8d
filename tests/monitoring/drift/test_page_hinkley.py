"""Page-Hinkley: a hand-checked example, and the same detections as river's PageHinkley where river is installed."""

from __future__ import annotations

import numpy as np
import pytest

from rlops.monitoring.drift import Direction, PageHinkley


def test_detects_where_the_statistic_first_exceeds_the_threshold() -> None:
    # 10 zeros then ones, delta 0, no forgetting: at t >= 10 the running mean is (t - 9) / (t + 1), so x - mean is
    # 10/11, 10/12, 10/13, ... and up - min(up) = 0.909, 1.742, 2.511: it passes 2.0 at t = 12.
    detector = PageHinkley(delta=0.0, threshold=2.0, alpha=1.0, min_instances=1)
    stream = np.r_[np.zeros(10), np.ones(10)]
    assert detector.update_many(stream).tolist() == [12]
    assert PageHinkley(delta=0.0, threshold=2.6, alpha=1.0, min_instances=1).update_many(stream).tolist() == [13]


def test_direction_up_ignores_decreases() -> None:
    stream = np.r_[np.zeros(200), -np.ones(200)]
    assert PageHinkley(threshold=10.0, direction=Direction.UP).update_many(stream).size == 0
    assert PageHinkley(threshold=10.0, direction=Direction.DOWN).update_many(stream).size > 0


def test_min_instances_delays_the_first_detection() -> None:
    stream = np.r_[np.zeros(3), np.full(50, 100.0)]
    assert PageHinkley(threshold=1.0, min_instances=30).update_many(stream)[0] == 29
    assert PageHinkley(threshold=1.0, min_instances=1).update_many(stream)[0] == 3


@pytest.mark.parametrize("alpha", [1 - 1e-4, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_detections_as_river(alpha: float, seed: int) -> None:
    drift = pytest.importorskip("river.drift", reason="river is not installed: pip install river to compare")
    rng = np.random.default_rng(seed)
    stream = np.r_[rng.normal(0, 1, 4000), rng.normal(0.8, 1, 4000), rng.normal(-0.5, 2, 4000)]
    ours = PageHinkley(threshold=30.0, alpha=alpha).update_many(stream).tolist()
    theirs = drift.PageHinkley(threshold=30.0, alpha=alpha)
    expected = []
    for i, value in enumerate(stream.tolist()):
        theirs.update(value)
        if theirs.drift_detected:
            expected.append(i)
    assert ours == expected
    assert len(expected) > 3
