"""The poisoning guard: outcomes whose reporting key behaves unlike the others are quarantined (stored, never
learned from or evaluated on).

A client that may report outcomes can try to steer a learning policy: report a flood of high rewards for the
decisions where one action was chosen, and the policy learns to prefer it. The guard watches each reporting key
of a deployment, per action, and quarantines a key's outcomes when

- **rate**: the key reports more than ``max_rate`` outcomes per second over ``rate_window_s`` (off by default:
  one backend may legitimately report every outcome of an application; set it where keys are per client), or
- **reward distribution**: after at least ``min_samples`` outcomes for an action, the key's mean reward for that
  action lies more than ``z`` standard errors from the mean of every other key's outcomes for it (a two-sample test
  with the pooled variance of both, so that rare events — one click among many no-clicks — do not look alarming).

A flagged key stays quarantined on that deployment for ``hold``; its quarantined outcomes never enter the
statistics, so a flood cannot drag the reference towards itself. Outcomes reported in-process (no key) are trusted.
At most ``min_samples`` outcomes of a forging key get through before it is caught. The guard cannot tell anything
when one key reports everything (there are no others to compare with): scope keys with ``own-outcomes`` and give
each client its own key.

State is per server process (each worker of ``rlops serve --workers N`` watches what it receives).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Pooled variance below which both groups count as constant.
_MIN_VARIANCE = 1e-12


def _z(key: _Moments, others: _Moments) -> float:
    """The difference of the means in standard errors, with the pooled variance of both groups (two constant
    groups that differ are infinitely far apart; two that agree are not apart at all)."""
    diff = key.mean - others.mean
    pooled = (key.m2 + others.m2) / max(key.n + others.n - 2, 1)
    if pooled < _MIN_VARIANCE:
        return 0.0 if abs(diff) < 1e-12 * max(1.0, abs(others.mean)) else math.copysign(math.inf, diff)
    return diff / math.sqrt(pooled * (1.0 / key.n + 1.0 / others.n))


class OutcomeGuardConfig(BaseModel):
    """How a deployment's outcomes are screened (the ``outcome_guard`` section of a deployment file).

    Attributes:
        enabled: screen outcomes at all (default ``True``).
        z: standard errors between a key's mean reward for an action and the other keys' mean beyond which the key
            is quarantined (default 6: a false alarm is very unlikely for honest keys that see the same users).
        min_samples: outcomes a key must have reported for an action, and the other keys together, before its
            mean is judged (default 30).
        max_rate: outcomes per second one key may report, averaged over ``rate_window_s``; ``None`` (default) for
            no limit.
        rate_window_s: the rate's averaging window, seconds (default 10).
        hold: how long a flagged key stays quarantined on the deployment, a duration (default ``"1h"``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    z: float = Field(default=6.0, gt=0.0, le=1000.0)
    min_samples: int = Field(default=30, ge=2, le=1_000_000)
    max_rate: float | None = Field(default=None, gt=0.0)
    rate_window_s: float = Field(default=10.0, gt=0.0, le=86400.0)
    hold: str | float = "1h"

    @field_validator("hold")
    @classmethod
    def _hold_is_a_duration(cls, value: Any) -> Any:
        from rlops.rewards import parse_duration

        parse_duration(value)  # raises ValueError naming the problem
        return value

    @property
    def hold_s(self) -> float:
        from rlops.rewards import parse_duration

        return parse_duration(self.hold)


@dataclass
class _Moments:
    """Count, mean and sum of squared deviations (Welford: exact for rewards with a large offset too), mergeable and
    separable (the other keys' moments are everyone's minus this key's)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def plus(self, x: float) -> _Moments:
        out = _Moments(self.n, self.mean, self.m2)
        out.add(x)
        return out

    def minus(self, part: _Moments) -> _Moments:
        """The moments of everything but ``part`` (Chan et al.'s combination, inverted)."""
        n = self.n - part.n
        if n <= 0:
            return _Moments()
        mean = (self.n * self.mean - part.n * part.mean) / n
        delta = part.mean - mean
        m2 = self.m2 - part.m2 - delta * delta * part.n * n / self.n
        return _Moments(n, mean, max(0.0, m2))


@dataclass
class _Key:
    times: deque[float] = field(default_factory=deque)
    by_action: dict[int, _Moments] = field(default_factory=dict)
    flagged_until: float = -math.inf
    reason: str = ""


class PoisoningGuard:
    """Screens one deployment's outcomes (see the module docstring).

    Example:
        >>> guard = PoisoningGuard(OutcomeGuardConfig(min_samples=3, z=3))
        >>> [guard.check("honest", 0, r, now_s=0.0) for r in (0.0, 1.0, 0.0, 1.0)]
        [None, None, None, None]
    """

    def __init__(self, config: OutcomeGuardConfig | None = None) -> None:
        self.config = config or OutcomeGuardConfig()
        self._keys: dict[str, _Key] = {}
        self._all: dict[int, _Moments] = {}
        self.quarantined = 0

    def check(self, key: str | None, action: int, reward: float | None, *, now_s: float) -> str | None:
        """Judge one outcome before it is stored: the quarantine reason, or ``None`` to trust it.

        Args:
            key: the reporting key's id (``None``: reported in-process, trusted).
            action: the index of the action the decision chose (-1 for box actions: judged as one action).
            reward: the reward the outcome gives under the deployment's reward spec, or ``None`` if it gives none
                (it will be dead-lettered anyway; it still counts towards the rate).
            now_s: the time, seconds (monotonic or wall clock, used consistently).
        """
        config = self.config
        if not config.enabled or key is None:
            return None
        state = self._keys.setdefault(key, _Key())
        if now_s < state.flagged_until:
            self.quarantined += 1
            return state.reason
        if config.max_rate is not None:
            times = state.times
            times.append(now_s)
            while times and times[0] <= now_s - config.rate_window_s:
                times.popleft()
            limit = config.max_rate * config.rate_window_s
            if len(times) > limit:
                return self._flag(state, now_s, f"key {key} reported {len(times)} outcomes in "
                                                f"{config.rate_window_s:g} s, more than {limit:g}")
        if reward is None or not math.isfinite(reward):
            return None
        mine = state.by_action.setdefault(action, _Moments())
        every = self._all.setdefault(action, _Moments())
        others = every.minus(mine)
        candidate = mine.plus(reward)
        if candidate.n >= config.min_samples and others.n >= config.min_samples:
            z = _z(candidate, others)
            if abs(z) > config.z:
                return self._flag(state, now_s, f"key {key}'s mean reward for action {action} is "
                                                f"{candidate.mean:.4g} over {candidate.n} outcomes, {z:+.1f} "
                                                f"standard errors from the other keys' {others.mean:.4g}")
        mine.add(reward)
        every.add(reward)
        return None

    def _flag(self, state: _Key, now_s: float, reason: str) -> str:
        state.flagged_until = now_s + self.config.hold_s
        state.reason = f"quarantined: {reason}"
        self.quarantined += 1
        return state.reason
