"""The sticky split: a unit always lands in the same arm, and arms get their fractions of units."""

from __future__ import annotations

import numpy as np

from rlops.rollout.split import Slot, Split, unit_position


def test_a_unit_always_sees_the_same_arm() -> None:
    split = Split("pricing", holdout=0.05, canary=0.2)
    units = [f"user-{i}" for i in range(2000)]
    first = split.slots(units)
    assert np.array_equal(first, split.slots(units))
    assert np.array_equal(first, Split("pricing", holdout=0.05, canary=0.2).slots(list(reversed(units)))[::-1])
    assert [split.slot(u) for u in units[:50]] == first[:50].tolist()


def test_fractions_hold_over_100k_units() -> None:
    units = [f"u{i}" for i in range(100_000)]
    slots = Split("news", holdout=0.05, canary=0.1).slots(units)
    shares = np.bincount(slots, minlength=3) / len(units)
    # Binomial standard errors are ~0.0007-0.0012 here: 0.004 is over 3 of them.
    assert abs(shares[Slot.HOLDOUT] - 0.05) < 0.004
    assert abs(shares[Slot.CANARY] - 0.10) < 0.004
    assert abs(shares[Slot.PRODUCTION] - 0.85) < 0.004


def test_raising_the_canary_only_adds_units() -> None:
    units = [f"u{i}" for i in range(20_000)]
    small = Split("news", holdout=0.05, canary=0.05).slots(units)
    large = Split("news", holdout=0.05, canary=0.25).slots(units)
    assert np.all(large[small == Slot.CANARY] == Slot.CANARY)
    assert np.array_equal(large == Slot.HOLDOUT, small == Slot.HOLDOUT)
    assert (large == Slot.CANARY).sum() > 4 * (small == Slot.CANARY).sum()
    # adding or removing the holdout moves no canary unit
    for holdout in (0.0, 0.2):
        moved = Split("news", holdout=holdout, canary=0.25).slots(units)
        assert np.array_equal(moved == Slot.CANARY, large == Slot.CANARY)


def test_salts_split_independently() -> None:
    units = [f"u{i}" for i in range(20_000)]
    a = Split("a", canary=0.5).slots(units) == Slot.CANARY
    b = Split("b", canary=0.5).slots(units) == Slot.CANARY
    overlap = (a & b).mean()
    assert abs(overlap - 0.25) < 0.02  # independent halves overlap on a quarter
    assert 0.0 <= unit_position("a", "u1") < 1.0
    assert unit_position("a", "u1") != unit_position("b", "u1")


def test_without_canary_or_holdout_everyone_is_production() -> None:
    split = Split("x")
    assert split.trivial
    assert split.slots(["a", "b"]).tolist() == [Slot.PRODUCTION, Slot.PRODUCTION]
