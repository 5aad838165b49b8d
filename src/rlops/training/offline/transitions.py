"""Transitions ``(s, a, r, s', done)`` rebuilt from logged decisions, for sequential offline learning.

A deployment logs one decision per step of a subject (``unit_id``): a thermostat's zone, a patient, a machine. Its
decisions, in time order, are that unit's trajectory:

- rows are grouped by ``unit_id`` and ordered by ``ts`` (ties by ``decision_id``, which is time-ordered);
- the next state of a decision is the context of the unit's next decision;
- an episode ends where the unit's next decision comes more than ``gap_seconds`` later, and at the unit's last
  decision; there ``done`` is true and nothing is bootstrapped after the step. The log cannot tell a true end from
  a unit that simply stopped being served, so both count as ends (as in :class:`rlops.evaluation.ope.EpisodeData`).

The reward of a step is the joined reward of its decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rlops.errors import ValidationError
from rlops.events.join import JoinResult
from rlops.schema import Schema
from rlops.training.offline.data import as_table, column, read_logged, timestamps_us

#: Default largest gap between two decisions of one unit inside an episode, seconds (30 minutes).
DEFAULT_GAP_SECONDS = 1800.0


@dataclass(frozen=True, eq=False)
class Transitions:
    """Logged steps, sorted by episode and step.

    Attributes:
        state: ``(n, d)`` encoded contexts.
        action: ``(n,)`` int64 action indices, or ``(n, dim)`` float64 box actions.
        reward: ``(n,)`` rewards.
        next_state: ``(n, d)`` the unit's next encoded context (the state itself where ``done``; never used there).
        done: ``(n,)`` True at an episode's last step.
        propensity: ``(n,)`` the logging policy's probability (density, for boxes) of the logged action.
        episode: ``(n,)`` int64 episode number, 0-based, in order of (unit, first decision).
        step: ``(n,)`` int64 step within the episode, 0-based.
        unit_id: ``(n,)`` the unit of each step (object array of str).
        row: ``(n,)`` each step's row in the input table.
    """

    state: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_state: np.ndarray
    done: np.ndarray
    propensity: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    unit_id: np.ndarray
    row: np.ndarray

    @property
    def n(self) -> int:
        """Number of transitions."""
        return int(self.reward.shape[0])

    @property
    def n_episodes(self) -> int:
        """Number of episodes."""
        return int(self.episode.max()) + 1 if self.n else 0

    @property
    def continuous(self) -> bool:
        """True for box actions."""
        return self.action.ndim == 2

    def select_episodes(self, keep: np.ndarray) -> Transitions:
        """The transitions of the episodes where ``keep`` (``(n_episodes,)`` booleans) is True, whole, with the
        episodes renumbered ``0, 1, ...`` in their order here (a held-out split keeps every next state valid)."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (self.n_episodes,):
            raise ValidationError("keep", f"expected {self.n_episodes} booleans (one per episode), got {keep.shape}")
        rows = keep[self.episode]
        renumber = np.cumsum(keep) - 1
        return Transitions(state=self.state[rows], action=self.action[rows], reward=self.reward[rows],
                           next_state=self.next_state[rows], done=self.done[rows], propensity=self.propensity[rows],
                           episode=renumber[self.episode[rows]].astype(np.int64), step=self.step[rows],
                           unit_id=self.unit_id[rows], row=self.row[rows])


def _check_gap(gap_seconds: float) -> int:
    if not (gap_seconds >= 0 and np.isfinite(gap_seconds)):
        raise ValidationError("gap_seconds", f"must be a finite number >= 0, got {gap_seconds!r}")
    return int(gap_seconds * 1e6)


def _order(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(order, unit codes, ts, unit ids)`` with ``order`` sorting rows by unit, time and decision id."""
    units_col = column(table, "unit_id")
    if units_col.null_count:
        raise ValidationError("unit_id", "is missing in some rows; sequential retraining groups decisions by unit")
    units = np.asarray(units_col.to_pylist(), dtype=object)
    ts = timestamps_us(table)
    ids = (np.asarray(table["decision_id"].to_pylist(), dtype=object) if "decision_id" in table.column_names
           else np.arange(table.num_rows).astype(str).astype(object))
    _, code = np.unique(units.astype(str), return_inverse=True)
    _, id_code = np.unique(ids.astype(str), return_inverse=True)
    order = np.lexsort((id_code, ts, code))
    return order, code, ts, units


def _episode_starts(code: np.ndarray, ts: np.ndarray, gap_us: int) -> np.ndarray:
    """True where a sorted row starts an episode: a new unit, or a gap larger than ``gap_us``."""
    start = np.ones(code.shape[0], dtype=bool)
    start[1:] = (code[1:] != code[:-1]) | (np.diff(ts) > gap_us)
    return start


def is_single_step(interactions: pa.Table | JoinResult, *, gap_seconds: float = DEFAULT_GAP_SECONDS) -> bool:
    """True when no unit has two decisions within ``gap_seconds``: every episode is one step (a bandit).

    Reads only ``unit_id``, ``ts`` and ``decision_id``.
    """
    table = as_table(interactions)
    if table.num_rows == 0:
        return True
    order, code, ts, _ = _order(table)
    starts = _episode_starts(code[order], ts[order], _check_gap(gap_seconds))
    return bool(starts.all())


def transitions_from_table(interactions: pa.Table | JoinResult, schema: Schema, *,
                           gap_seconds: float = DEFAULT_GAP_SECONDS, min_rows: int = 1) -> Transitions:
    """Rebuild transitions from joined interactions (see the module docstring).

    Args:
        interactions: joined interactions with ``unit_id`` and ``ts`` besides the columns of
            :func:`rlops.training.offline.data.read_logged`.
        schema: the deployment's schema.
        gap_seconds: a unit's decisions further apart than this belong to different episodes; default 1800 s.
        min_rows: fewest rows accepted, default 1.

    Raises:
        ValidationError: a missing column (``unit_id``, ``ts``, ...), a bad row (named), or a bad ``gap_seconds``.
    """
    table = as_table(interactions)
    gap_us = _check_gap(gap_seconds)
    column(table, "unit_id")
    column(table, "ts")
    rows = read_logged(table, schema, min_rows=min_rows)
    order, code, ts, units = _order(table)
    starts = _episode_starts(code[order], ts[order], gap_us)
    episode = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    step = np.arange(order.shape[0]) - first[episode]
    done = np.ones(order.shape[0], dtype=bool)
    done[:-1] = starts[1:]
    state = rows.inputs.x[order]
    next_state = state.copy()
    next_state[:-1][~done[:-1]] = state[1:][~done[:-1]]
    return Transitions(state=state, action=rows.action[order], reward=rows.reward[order], next_state=next_state,
                       done=done, propensity=rows.propensity[order], episode=episode.astype(np.int64),
                       step=step.astype(np.int64), unit_id=units[order], row=order.astype(np.int64))
