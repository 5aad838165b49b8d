"""Transitions rebuilt from decision rows: per unit, in time order, episodes split at gaps."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from rlops.errors import ValidationError
from rlops.schema import Schema
from rlops.training.offline import is_single_step, transitions_from_table
from tests.training.offline.logs import interactions

SCHEMA = Schema.model_validate({"features": [{"name": "s", "type": "float"}],
                                "actions": {"type": "discrete", "names": ["a", "b"]}})
MIN = 60_000_000  # a minute in microseconds
T0 = 1_700_000_000_000_000


def _table() -> pa.Table:
    # Rows deliberately out of order. Unit "x": states 1, 2, 3 a minute apart, then 4 two hours later (a new
    # episode). Unit "y": states 10, 11 a minute apart; two decisions of "y" at the same time are ordered by id.
    rows = [  # (decision_id, unit, minute, state, action, reward)
        ("d05", "y", 0, 10.0, 1, 0.5),
        ("d01", "x", 0, 1.0, 0, 1.0),
        ("d03", "x", 2, 3.0, 0, 3.0),
        ("d07", "x", 120, 4.0, 1, 4.0),
        ("d02", "x", 1, 2.0, 1, 2.0),
        ("d06", "y", 1, 11.0, 0, 0.0),
        ("d08", "z", 5, 20.0, 1, 9.0),
    ]
    table = interactions([{"s": r[3]} for r in rows], [r[4] for r in rows], [0.5] * len(rows), [r[5] for r in rows],
                         action_names=["a", "b"], unit_ids=[r[1] for r in rows], ts_us=[T0 + r[2] * MIN for r in rows])
    return table.set_column(0, "decision_id", pa.array([r[0] for r in rows]))


def test_transitions_follow_each_unit_in_time_and_split_at_gaps() -> None:
    t = transitions_from_table(_table(), SCHEMA, gap_seconds=1800)
    assert t.n == 7 and t.n_episodes == 4
    np.testing.assert_array_equal(t.state[:, 0], [1, 2, 3, 4, 10, 11, 20])
    np.testing.assert_array_equal(t.next_state[:, 0], [2, 3, 3, 4, 11, 11, 20])  # a done step keeps its own state
    np.testing.assert_array_equal(t.done, [False, False, True, True, False, True, True])
    np.testing.assert_array_equal(t.episode, [0, 0, 0, 1, 2, 2, 3])
    np.testing.assert_array_equal(t.step, [0, 1, 2, 0, 0, 1, 0])
    np.testing.assert_array_equal(t.action, [0, 1, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(t.reward, [1, 2, 3, 4, 0.5, 0, 9])
    assert t.unit_id.tolist() == ["x", "x", "x", "x", "y", "y", "z"]
    np.testing.assert_array_equal(t.row, [1, 4, 2, 3, 0, 5, 6])


def test_a_larger_gap_joins_episodes_and_ties_go_by_decision_id() -> None:
    t = transitions_from_table(_table(), SCHEMA, gap_seconds=3 * 3600)
    np.testing.assert_array_equal(t.done, [False, False, False, True, False, True, True])
    np.testing.assert_array_equal(t.next_state[:, 0], [2, 3, 4, 4, 11, 11, 20])
    # same-time decisions: d10 before d11 whatever the row order
    table = interactions([{"s": 2.0}, {"s": 1.0}], [0, 1], [0.5, 0.5], [0.0, 1.0], action_names=["a", "b"],
                         unit_ids=["u", "u"], ts_us=[T0, T0])
    table = table.set_column(0, "decision_id", pa.array(["d11", "d10"]))
    t = transitions_from_table(table, SCHEMA)
    np.testing.assert_array_equal(t.state[:, 0], [1, 2])
    np.testing.assert_array_equal(t.done, [False, True])


def test_single_step_detection() -> None:
    assert not is_single_step(_table(), gap_seconds=1800)
    assert is_single_step(_table(), gap_seconds=30)  # every unit's decisions are at least a minute apart
    spread = interactions([{"s": 0.0}] * 3, [0, 1, 0], [0.5] * 3, [0.0] * 3, action_names=["a", "b"],
                          unit_ids=["u", "v", "u"], ts_us=[T0, T0, T0 + 3600 * 10**6])
    assert is_single_step(spread, gap_seconds=1800)


def test_box_actions_are_read_from_the_action_vectors() -> None:
    schema = Schema.model_validate({"features": [{"name": "s", "type": "float"}],
                                    "actions": {"type": "box", "low": [-1, 0], "high": [1, 5]}})
    table = interactions([{"s": 0.0}, {"s": 1.0}], [[0.5, 2.0], [-1.0, 4.5]], [0.3, 2.0], [1.0, 0.0],
                         unit_ids=["u", "u"], ts_us=[T0, T0 + MIN])
    t = transitions_from_table(table, schema)
    assert t.continuous
    np.testing.assert_array_equal(t.action, [[0.5, 2.0], [-1.0, 4.5]])
    np.testing.assert_array_equal(t.done, [False, True])


def test_missing_columns_and_bad_gaps_are_named() -> None:
    with pytest.raises(ValidationError, match=r"^unit_id: column is missing"):
        transitions_from_table(_table().drop_columns(["unit_id"]), SCHEMA)
    with pytest.raises(ValidationError, match=r"^ts: column is missing"):
        transitions_from_table(_table().drop_columns(["ts"]), SCHEMA)
    with pytest.raises(ValidationError, match=r"^gap_seconds:"):
        transitions_from_table(_table(), SCHEMA, gap_seconds=-1)
