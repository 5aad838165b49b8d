"""A baseline controller written as a plain Python function, served like any other policy."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rlops.errors import ConfigError, ValidationError
from rlops.policies.base import ActResult, BasePolicy, PolicyInput
from rlops.policies.io import register
from rlops.schema import BoxActions, DiscreteActions, Schema

RuleFunction = Callable[[Mapping[str, Any]], Any]


def _import_target(target: str) -> RuleFunction:
    module_name, _, qualname = target.partition(":")
    if not module_name or not qualname:
        raise ConfigError(f"rule target {target!r} must look like 'package.module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"rule target {target!r} cannot be imported: {e}") from e
    if not callable(obj):
        raise ConfigError(f"rule target {target!r} is not callable")
    return obj  # type: ignore[no-any-return]


def _target_of(fn: RuleFunction) -> str:
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or "<" in qualname or module == "__main__":
        raise ConfigError("a rule function must be importable (a module-level function, not a lambda, a local "
                          "function or one defined in __main__) to be saved; pass target='module:function'")
    return f"{module}:{qualname}"


@register
class RulePolicy(BasePolicy):
    """Wrap ``fn(context) -> action`` (a fixed action's name, or a vector for box actions).

    With ``epsilon > 0`` the rule explores: a uniformly random action with probability ``epsilon``
    (discrete spaces only), so its logged propensities are ``1 - epsilon + epsilon/K`` and ``epsilon/K``.
    A deterministic rule's propensity is 1.0 (for box actions: a point mass, logged as 1.0).

    Args:
        schema: the decision problem; fixed discrete or box actions.
        fn: the rule, called once per context with the validated context dict.
        epsilon: exploration rate in [0, 1); default 0.
        target: ``"module:function"`` to save and reload ``fn``; derived from ``fn`` when omitted.
    """

    kind = "rule"

    def __init__(self, schema: Schema, fn: RuleFunction | None = None, epsilon: float = 0.0,
                 target: str | None = None) -> None:
        super().__init__(schema)
        if isinstance(schema.actions, DiscreteActions):
            self._index = {name: i for i, name in enumerate(schema.actions.names)}
        elif not isinstance(schema.actions, BoxActions):
            raise ConfigError("rule policies need fixed discrete or box actions, not per-request candidates")
        if not 0.0 <= epsilon < 1.0:
            raise ConfigError(f"rule epsilon {epsilon} must be in [0, 1)")
        if epsilon > 0 and isinstance(schema.actions, BoxActions):
            raise ConfigError("rule epsilon exploration needs discrete actions")
        if fn is None and target is None:
            raise ConfigError("a rule policy needs fn or target")
        self.target = target
        self.fn = fn if fn is not None else _import_target(target or "")
        self.epsilon = epsilon

    def _choose(self, context: Mapping[str, Any], i: int) -> Any:
        try:
            return self.fn(context)
        except Exception as e:  # the user's code failed: report which row, keep the cause
            raise ValidationError(f"contexts[{i}]", f"rule {self.target or self.fn!r} raised {e!r}") from e

    def act(self, batch: PolicyInput, rng: np.random.Generator) -> ActResult:
        space = self.schema.actions
        if isinstance(space, BoxActions):
            low, high = np.asarray(space.low), np.asarray(space.high)
            actions = np.array([np.asarray(self._choose(c, i), dtype=np.float64)
                                for i, c in enumerate(batch.contexts)]).reshape(batch.n, space.dim)
            if np.any(~np.isfinite(actions)) or np.any(actions < low) or np.any(actions > high):
                raise ValidationError("action", f"rule returned an action outside the box [{low}, {high}]")
            return ActResult(action=actions, propensity=np.ones(batch.n))
        k = len(self._index)
        greedy = np.empty(batch.n, dtype=np.int64)
        for i, context in enumerate(batch.contexts):
            name = self._choose(context, i)
            if name not in self._index:
                raise ValidationError("action", f"rule returned {name!r}, not one of {list(self._index)[:10]}")
            greedy[i] = self._index[name]
        probs = np.full((batch.n, k), self.epsilon / k)
        probs[np.arange(batch.n), greedy] += 1.0 - self.epsilon
        action = greedy.copy()
        if self.epsilon > 0:
            explore = rng.random(batch.n) < self.epsilon
            action[explore] = rng.integers(0, k, size=int(explore.sum()))
        return ActResult(action=action, propensity=probs[np.arange(batch.n), action], probabilities=probs)

    def config(self) -> dict[str, Any]:
        return {"target": self.target or _target_of(self.fn), "epsilon": self.epsilon}

    @classmethod
    def from_state(cls, schema: Schema, config: dict[str, Any], state: dict[str, np.ndarray]) -> RulePolicy:
        return cls(schema, target=str(config["target"]), epsilon=float(config.get("epsilon", 0.0)))


def constant_rule(action: str | Sequence[float]) -> RuleFunction:
    """A rule that always answers ``action`` (handy for tests and 'do nothing' baselines; not saveable)."""
    return lambda context: action
