"""Combining several outcomes of one decision: sum, last, max, first, with ties and empty groups."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlops.errors import ValidationError
from rlops.rewards.aggregation import Aggregation, aggregate

NAN = math.nan

# group 0: three rows, two tied at the latest time; group 1: two rows; group 2: empty; group 3: one valid row and one
# invalid (NaN) row that is earlier than it; group 4: empty
REWARDS = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, NAN])
GROUP = np.array([0, 1, 0, 1, 3, 0, 3])
TS = np.array([10, 5, 10, 7, 1, 3, 0], dtype=np.int64)


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("sum", [10.0, 6.0, NAN, 5.0, NAN]),  # 1 + 3 + 6, 2 + 4
        ("max", [6.0, 4.0, NAN, 5.0, NAN]),
        ("first", [6.0, 2.0, NAN, 5.0, NAN]),  # earliest: ts 3 (row 5), ts 5 (row 1); the NaN row is ignored
        ("last", [3.0, 4.0, NAN, 5.0, NAN]),  # latest: ts 10 twice, the later row (row 2) wins; ts 7 (row 3)
    ],
)
def test_aggregations_by_hand(how: str, expected: list[float]) -> None:
    out = aggregate(REWARDS, GROUP, TS, 5, how)
    np.testing.assert_array_equal(out, np.array(expected))
    assert out.dtype == np.float64


@pytest.mark.parametrize(
    ("ts", "first", "last"),
    [
        ([1, 1, 2], 7.0, 9.0),  # tie at the earliest time: the earlier row is first
        ([2, 1, 1], 8.0, 7.0),  # tie at 1: row 1 is first; row 0 is latest
        ([5, 5, 5], 7.0, 9.0),  # all tied: row order decides both
    ],
)
def test_ties_are_broken_by_row_order(ts: list[int], first: float, last: float) -> None:
    rewards = np.array([7.0, 8.0, 9.0])
    group = np.zeros(3, dtype=np.int64)
    assert aggregate(rewards, group, np.array(ts), 1, Aggregation.FIRST).tolist() == [first]
    assert aggregate(rewards, group, np.array(ts), 1, Aggregation.LAST).tolist() == [last]


def test_negative_rewards_and_max() -> None:
    out = aggregate(np.array([-5.0, -2.0, -9.0]), np.array([0, 0, 1]), np.array([1, 2, 3]), 2, "max")
    assert out.tolist() == [-2.0, -9.0]


def test_empty_input_gives_all_nan() -> None:
    empty = np.array([], dtype=np.float64)
    for how in Aggregation:
        out = aggregate(empty, np.array([], dtype=np.int64), np.array([], dtype=np.int64), 3, how)
        assert out.shape == (3,) and np.isnan(out).all()
    assert aggregate(empty, np.array([], dtype=np.int64), np.array([], dtype=np.int64), 0).shape == (0,)


def test_all_rows_invalid_gives_nan() -> None:
    out = aggregate(np.array([NAN, NAN]), np.array([0, 1]), np.array([1, 2]), 2, "sum")
    assert np.isnan(out).all()


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"group": np.array([0, 5])}, "group", "must be in [0, 3)"),
        ({"group": np.array([-1, 0])}, "group", "must be in [0, 3)"),
        ({"group": np.array([0.0, 1.0])}, "group", "integer group codes"),
        ({"group": np.array([0])}, "rewards", "1-D of one length"),
        ({"ts": np.array([1, 2, 3])}, "rewards", "1-D of one length"),
        ({"how": "mean"}, "aggregation", "unknown aggregation 'mean'"),
        ({"n_groups": -1}, "n_groups", "negative"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], field: str, words: str) -> None:
    args: dict[str, object] = {"rewards": np.array([1.0, 2.0]), "group": np.array([0, 1]), "ts": np.array([1, 2]),
                               "n_groups": 3, "how": "sum"}
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        aggregate(**args)  # type: ignore[arg-type]
    assert info.value.field == field
    assert words in info.value.rule


def _reference(rewards: list[float], group: list[int], ts: list[int], n_groups: int, how: str) -> list[float]:
    """Plain loops: what each aggregation means."""
    out = []
    for g in range(n_groups):
        rows = [i for i in range(len(rewards)) if group[i] == g and not math.isnan(rewards[i])]
        if not rows:
            out.append(NAN)
        elif how == "sum":
            out.append(sum(rewards[i] for i in rows))
        elif how == "max":
            out.append(max(rewards[i] for i in rows))
        elif how == "first":
            best = rows[0]
            for i in rows:
                if ts[i] < ts[best]:
                    best = i
            out.append(rewards[best])
        else:
            best = rows[0]
            for i in rows:
                if ts[i] >= ts[best]:
                    best = i
            out.append(rewards[best])
    return out


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.one_of(st.integers(-50, 50).map(float), st.just(NAN)), st.integers(0, 5), st.integers(0, 4)),
        max_size=40,
    ),
    how=st.sampled_from([a.value for a in Aggregation]),
)
def test_matches_loop_reference(data: list[tuple[float, int, int]], how: str) -> None:
    rewards = [d[0] for d in data]
    group = [d[1] for d in data]
    ts = [d[2] for d in data]
    out = aggregate(np.array(rewards, dtype=np.float64), np.array(group, dtype=np.int64),
                    np.array(ts, dtype=np.int64), 6, how)
    np.testing.assert_array_equal(out, np.array(_reference(rewards, group, ts, 6, how)))
