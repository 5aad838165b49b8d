"""The vectorised ADWIN2 against a plain loop-by-loop one written from the paper, and its bucket layout."""

from __future__ import annotations

import numpy as np
import pytest

from rlops.monitoring.drift import ADWIN
from tests.monitoring.drift.slow_adwin import SlowADWIN

SETTINGS = [
    {},
    {"clock": 1},
    {"clock": 7, "max_buckets": 2, "min_window_length": 2, "grace_period": 3},
    {"delta": 0.1, "max_buckets": 3},
]


def _stream(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(0, 1, 2500), rng.normal(1, 1, 1500), rng.normal(0, 3, 2000),
                 np.linspace(0, 2, 1500) + rng.normal(0, 0.5, 1500)]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "defaults")
def test_same_detections_and_window_as_the_plain_algorithm(settings: dict[str, float]) -> None:
    stream = _stream(3)
    plain = SlowADWIN(**settings)
    expected = [i for i, value in enumerate(stream.tolist()) if plain.update(value)]
    fast = ADWIN(**settings)
    rng = np.random.default_rng(0)
    found, offset = [], 0
    for part in np.split(stream, np.sort(rng.choice(np.arange(1, stream.size), 60, replace=False))):
        found.extend((fast.update_many(part) + offset).tolist())
        offset += part.size
    assert found == expected
    assert len(expected) >= 2
    assert fast.width == plain.width
    window = stream[stream.size - fast.width:]
    assert fast.estimation == pytest.approx(window.mean(), abs=1e-9)
    assert fast.variance == pytest.approx(window.var(), abs=1e-9)


def test_a_cut_keeps_the_recent_part_of_the_window() -> None:
    rng = np.random.default_rng(1)
    detector = ADWIN()
    found = detector.update_many(np.r_[rng.normal(0, 1, 5000), rng.normal(3, 1, 200)])
    assert found.size and found[0] >= 5000
    assert 0 < detector.width < 400  # the old regime is gone, the new one kept
    assert detector.estimation == pytest.approx(3.0, abs=0.3)


@pytest.mark.parametrize("max_buckets", [2, 5])
def test_closed_form_bucket_counts_match_inserting_one_at_a_time(max_buckets: int) -> None:
    detector = ADWIN(max_buckets=max_buckets)
    detector._counts = np.array([max_buckets - 1, max_buckets, 1], dtype=np.int64)  # any resting state
    arrivals = np.arange(0, 300, dtype=np.int64)
    counts, _ = detector._rows_after(arrivals)
    assert all(detector._counts_after(int(n)).tolist() == np.trim_zeros(counts[n], "b").tolist() for n in arrivals)
    rows = detector._counts.tolist()
    for n in arrivals.tolist():
        expect = np.zeros(counts.shape[1], dtype=np.int64)
        expect[: len(rows)] = rows
        assert counts[n].tolist() == expect.tolist()
        rows[0] += 1  # insert one observation, then merge the two oldest buckets of any row that overflows
        i = 0
        while rows[i] == max_buckets + 1:
            rows[i] -= 2
            if i + 1 == len(rows):
                rows.append(0)
            rows[i + 1] += 1
            i += 1


def test_no_detection_without_change_over_a_long_stream() -> None:
    detector = ADWIN(delta=0.002)
    found = detector.update_many(np.random.default_rng(8).normal(size=200_000))
    assert found.size <= 2  # delta bounds the false alarm rate per check
    assert detector.width >= 100_000


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_first_detection_is_rivers(seed: int) -> None:
    drift = pytest.importorskip("river.drift", reason="river is not installed: pip install river to compare")
    rng = np.random.default_rng(seed)
    stream = np.r_[rng.normal(0, 1, 3000), rng.normal(0.6, 1, 3000)]
    ours = ADWIN().update_many(stream)
    theirs = drift.ADWIN()
    first = next(i for i, value in enumerate(stream.tolist()) if (theirs.update(value), theirs.drift_detected)[1])
    # river empties its window after a detection and rlops keeps the recent part, so only the first is comparable
    assert ours[0] == first
