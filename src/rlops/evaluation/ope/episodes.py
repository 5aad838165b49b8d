"""Logged episodes (sequential decisions) and the target policy's view of them, validated once.

Rows are steps in the interaction table's long format (``episode_id``, ``step``, DESIGN.md "Data contracts"). Each
episode must hold steps ``0, 1, ..., L-1`` exactly once; rows may come in any order and are sorted by episode and
step. Episodes are complete: after an episode's last logged step nothing more is earned (it terminated, or its
horizon ended). Estimators see terminated episodes as staying in an absorbing state with reward 0 and importance
ratio 1, so episodes of different lengths line up on a common horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from rlops.errors import ValidationError
from rlops.evaluation.ope.data import (
    _first_row,
    as_float,
    as_index,
    check_distribution,
    check_finite,
    check_propensity,
)


@dataclass(frozen=True, eq=False)  # arrays: compare the fields, not the holder
class EpisodeData:
    """Logged episodes, and what the target policy does in their states.

    Args:
        episode: ``(N,)`` episode ids (integers or strings).
        step: ``(N,)`` 0-based step within the episode.
        state: ``(N, d)`` state features.
        action: ``(N,)`` action indices (discrete) or ``(N, m)`` action vectors (continuous).
        reward: ``(N,)`` rewards, finite.
        propensity: ``(N,)`` the logging policy's probability of the logged action (discrete, in (0, 1]) or its
            density there (continuous, > 0).
        pi_e: discrete only, required: ``(N, K)`` the target's action distribution in each logged state.
        target_density: continuous only: ``(N,)`` the target's density at the logged action; needed by the
            importance-sampling estimators (PDIS, WPDIS, PDDR), not by FQE.
        target_action: continuous only: ``(N, S, m)`` ``S`` actions drawn from the target policy in each logged state
            (``S = 1`` for a deterministic target); needed by FQE.
        q_hat: ``(N,)`` a model's ``Q(s_t, a_t)`` for PDDR (with ``v_hat``); if absent PDDR fits FQE itself.
        v_hat: ``(N,)`` the model's ``V(s_t) = E_{a ~ pi_e} Q(s_t, a)``.
        reward_bounds: ``(low, high)`` known bounds on a step's reward (for empirical-Bernstein bounds).
    """

    episode: np.ndarray
    step: np.ndarray
    state: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray
    pi_e: np.ndarray | None = None
    target_density: np.ndarray | None = None
    target_action: np.ndarray | None = None
    q_hat: np.ndarray | None = None
    v_hat: np.ndarray | None = None
    reward_bounds: tuple[float, float] | None = None
    _code: np.ndarray = field(init=False, repr=False, compare=False)
    _lengths: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.episode is None:
            raise ValidationError("episode", "is missing")
        episode = np.asarray(self.episode)
        if episode.ndim != 1 or episode.shape[0] < 1:
            raise ValidationError("episode", f"expected a non-empty 1-d array, got shape {episode.shape}")
        n = episode.shape[0]
        step = np.asarray(self.step) if self.step is not None else None
        if step is None or step.ndim != 1 or step.shape[0] != n or (n and not np.issubdtype(step.dtype, np.integer)):
            raise ValidationError("step", f"expected {n} integer steps (as episode)")
        state = as_float("state", self.state, 2)
        if state.shape[0] != n:
            raise ValidationError("state", f"expected {n} rows (as episode), got {state.shape[0]}")
        check_finite("state", state)
        reward = as_float("reward", self.reward, 1)
        if reward.shape[0] != n:
            raise ValidationError("reward", f"expected {n} rows (as episode), got {reward.shape[0]}")
        check_finite("reward", reward)
        raw_action = np.asarray(self.action) if self.action is not None else None
        if raw_action is None:
            raise ValidationError("action", "is missing")
        continuous = raw_action.ndim == 2
        pi_e = target_density = target_action = None
        if continuous:
            action = as_float("action", raw_action, 2)
            check_finite("action", action)
            if self.pi_e is not None:
                raise ValidationError("pi_e", "is for discrete actions; continuous actions use target_density and "
                                              "target_action")
            if self.target_density is not None:
                target_density = as_float("target_density", self.target_density, 1)
                if target_density.shape[0] != n:
                    raise ValidationError("target_density", f"expected {n} rows (as episode)")
                if not (np.isfinite(target_density).all() and target_density.min() >= 0):
                    raise ValidationError("target_density", "must be finite and >= 0")
            if self.target_action is not None:
                target_action = as_float("target_action", self.target_action, 3)
                if target_action.shape[0] != n or target_action.shape[2] != action.shape[1]:
                    raise ValidationError("target_action", f"expected shape ({n}, S, {action.shape[1]}), got "
                                                           f"{target_action.shape}")
                check_finite("target_action", target_action)
            if target_density is None and target_action is None:
                raise ValidationError("target_density", "is missing: continuous actions need target_density "
                                                        "(importance sampling) or target_action (FQE)")
        else:
            if self.pi_e is None:
                raise ValidationError("pi_e", "is missing: discrete actions need the target's distribution")
            pi_e = as_float("pi_e", self.pi_e, 2)
            if pi_e.shape[0] != n:
                raise ValidationError("pi_e", f"expected {n} rows (as episode), got {pi_e.shape[0]}")
            check_distribution("pi_e", pi_e)
            action = as_index("action", raw_action, pi_e.shape[1])
            if action.shape[0] != n:
                raise ValidationError("action", f"expected {n} rows (as episode), got {action.shape[0]}")
        if action.shape[0] != n:
            raise ValidationError("action", f"expected {n} rows (as episode), got {action.shape[0]}")
        propensity = check_propensity("propensity", self.propensity, n, discrete=not continuous)
        extra = {}
        for name in ("q_hat", "v_hat"):
            value = getattr(self, name)
            if value is not None:
                arr = as_float(name, value, 1)
                if arr.shape[0] != n:
                    raise ValidationError(name, f"expected {n} rows (as episode), got {arr.shape[0]}")
                check_finite(name, arr)
                extra[name] = arr
        if ("q_hat" in extra) != ("v_hat" in extra):
            raise ValidationError("v_hat" if "q_hat" in extra else "q_hat", "q_hat and v_hat go together")
        bounds = None
        if self.reward_bounds is not None:
            try:
                low, high = (float(b) for b in self.reward_bounds)
            except (TypeError, ValueError) as e:
                raise ValidationError("reward_bounds", "expected (low, high)") from e
            if not (np.isfinite(low) and np.isfinite(high) and low < high):
                raise ValidationError("reward_bounds", f"expected finite low < high, got {(low, high)}")
            outside = (reward < low) | (reward > high)
            if outside.any():
                raise ValidationError("reward", f"row {_first_row(outside)} is outside reward_bounds {(low, high)}")
            bounds = (low, high)

        # sort by (episode, step) and check that every episode has steps 0..L-1 exactly once
        _, code = np.unique(episode, return_inverse=True)
        code = code.reshape(-1)
        step = step.astype(np.int64)
        order = np.lexsort((step, code))
        code, step = code[order], step[order]
        starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
        lengths = np.diff(np.r_[starts, n])
        rank = np.arange(n) - np.repeat(starts, lengths)
        if not np.array_equal(step, rank):
            row = int(order[np.flatnonzero(step != rank)[0]])
            raise ValidationError("step", f"each episode needs steps 0, 1, ... exactly once; row {row} (episode "
                                          f"{episode[row]!r}, step {np.asarray(self.step)[row]}) breaks that")
        fields = {"episode": episode[order], "step": step, "state": state[order], "action": action[order],
                  "reward": reward[order], "propensity": propensity[order], "reward_bounds": bounds,
                  "pi_e": None if pi_e is None else pi_e[order],
                  "target_density": None if target_density is None else target_density[order],
                  "target_action": None if target_action is None else target_action[order],
                  "q_hat": extra["q_hat"][order] if "q_hat" in extra else None,
                  "v_hat": extra["v_hat"][order] if "v_hat" in extra else None}
        for name, value in fields.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_code", code)
        object.__setattr__(self, "_lengths", lengths)

    @property
    def n(self) -> int:
        """Number of logged steps (rows)."""
        return int(self.reward.shape[0])

    @property
    def n_episodes(self) -> int:
        return int(self._lengths.shape[0])

    @property
    def horizon(self) -> int:
        """Length of the longest episode."""
        return int(self._lengths.max())

    @property
    def lengths(self) -> np.ndarray:
        """``(E,)`` number of steps of each episode."""
        return self._lengths

    @property
    def episode_index(self) -> np.ndarray:
        """``(N,)`` 0-based episode number of each (sorted) row."""
        return self._code

    @property
    def continuous(self) -> bool:
        return bool(self.action.ndim == 2)

    @property
    def is_last(self) -> np.ndarray:
        """``(N,)`` whether a row is its episode's last step."""
        return np.r_[self.episode_index[1:] != self.episode_index[:-1], True]

    @cached_property
    def ratio(self) -> np.ndarray | None:
        """Per-step importance ratios ``pi_e(a_t | s_t) / pi_b(a_t | s_t)``, or ``None`` without target densities."""
        if self.pi_e is not None:
            return self.pi_e[np.arange(self.n), self.action] / self.propensity
        if self.target_density is not None:
            return self.target_density / self.propensity
        return None

    def pad(self, values: np.ndarray, fill: float) -> np.ndarray:
        """Per-row ``values`` as an ``(E, T)`` matrix, steps past an episode's end set to ``fill``."""
        out = np.full((self.n_episodes, self.horizon), fill, dtype=np.float64)
        out[self.episode_index, self.step] = values
        return out
