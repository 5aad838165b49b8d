"""Reward summaries and their text histogram."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlops.rewards.preview import QUANTILES, RewardSummary, summarize, text_histogram


def test_summary_known_values() -> None:
    s = summarize(np.array([1.0, 2.0, 3.0, 4.0]), bins=3)
    assert (s.count, s.invalid) == (4, 0)
    assert s.mean == 2.5
    assert s.std == pytest.approx(math.sqrt(1.25))  # population std: mean of (2.25, 0.25, 0.25, 2.25)
    assert (s.min, s.max) == (1.0, 4.0)
    # linear interpolation between order statistics: position q * (n - 1)
    assert s.quantiles[0.5] == 2.5
    assert s.quantiles[0.25] == pytest.approx(1.75)
    assert s.quantiles[0.01] == pytest.approx(1.03)
    assert s.quantiles[0.99] == pytest.approx(3.97)
    assert list(s.quantiles) == list(QUANTILES)
    assert s.edges == (1.0, 2.0, 3.0, 4.0)
    assert s.counts == (1, 1, 2)  # the last bin is closed: [3, 4] holds 3 and 4


def test_non_finite_values_are_counted_as_invalid() -> None:
    s = summarize(np.array([np.nan, 0.0, np.inf, 10.0, -np.inf]), bins=2)
    assert (s.count, s.invalid) == (2, 3)
    assert (s.mean, s.min, s.max) == (5.0, 0.0, 10.0)
    assert s.edges == (0.0, 5.0, 10.0) and s.counts == (1, 1)


@pytest.mark.parametrize("values", [np.array([]), np.array([np.nan, np.nan]), np.array([np.inf])])
def test_empty(values: np.ndarray) -> None:
    s = summarize(values)
    assert s.count == 0
    assert s.invalid == values.size
    assert all(math.isnan(v) for v in (s.mean, s.std, s.min, s.max))
    assert set(s.quantiles) == set(QUANTILES) and all(math.isnan(v) for v in s.quantiles.values())
    assert s.edges == () and s.counts == ()
    assert text_histogram(s) == ["  (no rewards)"]


def test_constant_rewards() -> None:
    s = summarize(np.array([2.0, 2.0, 2.0]), bins=2)
    assert (s.mean, s.std, s.min, s.max) == (2.0, 0.0, 2.0, 2.0)
    assert s.edges == (1.5, 2.0, 2.5)
    assert s.counts == (0, 3)


def test_bins_must_be_positive() -> None:
    with pytest.raises(ValueError, match="bins: must be at least 1, got 0"):
        summarize(np.array([1.0]), bins=0)
    with pytest.raises(ValueError, match="width: must be at least 1, got 0"):
        text_histogram(summarize(np.array([1.0])), width=0)


def test_text_histogram_exact_lines() -> None:
    s = summarize(np.array([0.0, 0.25, 0.75, 1.0, 1.0]), bins=2)
    assert s.counts == (2, 3)
    assert text_histogram(s, width=6) == [
        "  [ 0.00,  0.50)  ####    2",  # 2 / 3 of the longest bar, rounded
        "  [ 0.50,  1.00]  ######  3",
    ]


def test_text_histogram_negative_and_wide_counts() -> None:
    values = np.concatenate([np.full(1000, -12.5), np.full(5, 7.5)])
    lines = text_histogram(summarize(values, bins=2), width=10)
    assert lines == [
        "  [ -12.50,   -2.50)  ##########  1000",
        "  [  -2.50,    7.50]" + " " * 14 + "   5",  # 5 / 1000 of 10 characters rounds to no bar
    ]


def test_text_histogram_large_values_use_short_format() -> None:
    lines = text_histogram(summarize(np.array([0.0, 2e6]), bins=1), width=4)
    assert lines == ["  [     0,  2e+06]  ####  2"]


def test_summary_is_frozen() -> None:
    s = summarize(np.array([1.0]))
    with pytest.raises(AttributeError):
        s.count = 3  # type: ignore[misc]
    assert isinstance(s, RewardSummary)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(math.nan)), max_size=200),
    bins=st.integers(1, 30),
    width=st.integers(1, 60),
)
def test_summary_properties(values: list[float], bins: int, width: int) -> None:
    s = summarize(np.array(values, dtype=np.float64), bins=bins)
    finite = [v for v in values if math.isfinite(v)]
    assert s.count == len(finite) and s.invalid == len(values) - len(finite)
    lines = text_histogram(s, width=width)
    if not finite:
        assert lines == ["  (no rewards)"]
        return
    assert s.min == min(finite) and s.max == max(finite)
    assert s.mean == pytest.approx(math.fsum(finite) / len(finite), rel=1e-9, abs=1e-6)
    assert s.min <= s.quantiles[0.01] <= s.quantiles[0.5] <= s.quantiles[0.99] <= s.max
    assert len(s.counts) == bins and len(s.edges) == bins + 1
    assert sum(s.counts) == s.count
    assert all(a < b for a, b in zip(s.edges, s.edges[1:], strict=False)) or s.max - s.min < 1e-300
    assert s.edges[0] == s.min or s.min == s.max
    # each value lies in the bin it was counted in: recount with plain comparisons
    recount = [0] * bins
    for v in finite:
        i = max(k for k in range(bins) if s.edges[k] <= v) if v < s.edges[-1] else bins - 1
        recount[i] += 1
    assert recount == list(s.counts)
    assert len(lines) == bins
    bars = [line.count("#") for line in lines]
    assert max(bars) == width  # the fullest bin gets the full width
    assert [int(line.split()[-1]) for line in lines] == list(s.counts)
    assert len({len(line) for line in lines}) == 1  # columns line up


@pytest.mark.parametrize("values", [[1e300, 1e300], [0.0, 5e-324], [-1.7e308, 1.7e308], [1e300, 1e300 * (1 + 1e-15)]])
def test_extreme_spans_do_not_fail(values: list[float]) -> None:
    s = summarize(np.array(values), bins=3)
    assert s.count == 2 and sum(s.counts) == 2
    assert s.edges[0] <= s.min and s.edges[-1] >= s.max
    assert len(text_histogram(s)) == 3
