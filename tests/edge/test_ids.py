"""Edge decision ids: the event log's layout, strictly increasing, unique, minted a batch at a time."""

from __future__ import annotations

import time

import pytest

import rlops.edge.ids as edge_ids
from rlops.edge.ids import new_ids
from rlops.events.ids import _encode, id_time_ms, looks_like_id, new_id


def test_ids_look_like_the_event_logs_and_carry_the_time() -> None:
    before = time.time_ns() // 1_000_000
    ids = new_ids(1000) + new_ids(3)
    after = time.time_ns() // 1_000_000
    assert all(looks_like_id(i) for i in ids)
    assert all(before <= id_time_ms(i) <= after for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert new_ids(0) == [] and new_id() > ids[0][:10]  # sorts with the service's ids by millisecond


@pytest.mark.parametrize("n", [1, 7, 8, 100])
@pytest.mark.parametrize("first", [12_345, (1 << 20) - 3, (1 << 64) - 2, (1 << 79) - 200])
def test_every_digit_matches_the_reference_encoding(n: int, first: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counters that carry across the 20-bit and 64-bit boundaries encode exactly as rlops.events.ids does."""
    ms = 1_900_000_000_000
    monkeypatch.setattr(edge_ids, "_last_ms", ms)  # same millisecond: the counter continues from `first`
    monkeypatch.setattr(edge_ids, "_next_rand", first)
    assert new_ids(n) == [_encode((ms << 80) | (first + i), 26) for i in range(n)]


def test_a_batch_larger_than_one_pass_stays_increasing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge_ids, "_CHUNK", 64)
    ids = new_ids(300)
    assert ids == sorted(ids) and len(set(ids)) == 300
