"""Acting in a Gymnasium environment with an rlops policy: the adapter from ``Policy`` to ``Controller``.

A scenario's controllers see raw observations; an rlops policy sees validated contexts of its schema. The adapter
assumes what training a policy on a scenario with :class:`~rlops.policies.SB3Policy` implies: **the observation is
a flat vector laid out as the schema's encoded context**, i.e. the schema's features in order, each taking
``feature.width`` consecutive entries (a float or int feature one entry, a bool one entry that is true above 0.5, a
vector feature ``size`` entries, a categorical feature one one-hot entry per vocabulary value, decoded by arg-max).
Values outside a feature's declared bounds (a noisy or shocked observation) are clipped to the bounds, so the
policy is asked about the nearest valid context rather than refusing to act; an int feature is rounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlops.errors import ConfigError
from rlops.policies.base import Policy, PolicyInput
from rlops.schema import Schema
from rlops.schema.actions import BoxActions, DiscreteActions
from rlops.schema.features import BoolFeature, CategoricalFeature, FloatFeature, IntFeature, VectorFeature


class ActMode(StrEnum):
    """How a :class:`PolicyController` turns the policy's answer into an action."""

    SAMPLE = "sample"
    """Act as the policy serves: sample from its distribution (a deterministic policy stays deterministic)."""
    GREEDY = "greedy"
    """The most probable action (discrete) or the mean action (box; SB3 policies only)."""


def _clip(value: float, low: float | None, high: float | None) -> float:
    if low is not None and value < low:
        return float(low)
    if high is not None and value > high:
        return float(high)
    return value


def observation_to_context(schema: Schema, observation: Any) -> dict[str, Any]:
    """Read a flat observation as the schema's encoded context (see the module docstring for the layout).

    Raises:
        ValidationError: never for bounds (values are clipped); ConfigError when the observation's size is not the
            schema's encoded width.
    """
    x = np.asarray(observation, dtype=np.float64).reshape(-1)
    if x.shape[0] != schema.width:
        raise ConfigError(f"observation: {x.shape[0]} entries but schema {schema.name!r} encodes to {schema.width} "
                          f"columns; the observation must be the schema's encoded context")
    context: dict[str, Any] = {}
    i = 0
    for feature in schema.features:
        w = feature.width
        block = x[i:i + w]
        i += w
        if isinstance(feature, FloatFeature):
            context[feature.name] = _clip(float(block[0]), feature.min, feature.max)
        elif isinstance(feature, IntFeature):
            context[feature.name] = int(_clip(float(np.rint(block[0])), feature.min, feature.max))
        elif isinstance(feature, BoolFeature):
            context[feature.name] = bool(block[0] > 0.5)
        elif isinstance(feature, VectorFeature):
            context[feature.name] = [_clip(float(v), feature.min, feature.max) for v in block]
        elif isinstance(feature, CategoricalFeature):
            k = int(np.argmax(block))
            context[feature.name] = feature.vocabulary[k] if k < len(feature.vocabulary) else "<other>"
        else:  # pragma: no cover - every feature kind is handled above
            raise ConfigError(f"schema.features.{feature.name}: unsupported feature type")
    return context


def schema_for_env(env: gym.Env[Any, Any], name: str = "") -> Schema:
    """The schema the adapter assumes for ``env``: one float feature per observation entry, the env's actions.

    Features are ``obs_0 .. obs_{n-1}`` with the observation space's finite bounds; a ``Discrete(n)`` action space
    becomes actions ``a0 .. a{n-1}``, a 1-D ``Box`` a box with its bounds. Wrap an SB3 model trained on ``env`` as
    ``SB3Policy(schema_for_env(env), model)`` to save it as an rlops policy folder.

    Raises:
        ConfigError: the observation is not a flat Box, or the actions are neither Discrete nor a bounded 1-D Box.
    """
    obs, act = env.observation_space, env.action_space
    if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
        raise ConfigError(f"observation space {obs}: the adapter needs a flat Box")
    features: list[dict[str, Any]] = []
    for i, (low, high) in enumerate(zip(obs.low.tolist(), obs.high.tolist(), strict=True)):
        feature: dict[str, Any] = {"name": f"obs_{i}", "type": "float"}
        if np.isfinite(low):
            feature["min"] = float(low)
        if np.isfinite(high):
            feature["max"] = float(high)
        features.append(feature)
    actions: dict[str, Any]
    if isinstance(act, gym.spaces.Discrete):
        actions = {"type": "discrete", "names": [f"a{i}" for i in range(int(act.n))]}
    elif isinstance(act, gym.spaces.Box) and len(act.shape) == 1 and np.all(np.isfinite(act.low)) and np.all(
            np.isfinite(act.high)):
        actions = {"type": "box", "low": act.low.astype(float).tolist(), "high": act.high.astype(float).tolist()}
    else:
        raise ConfigError(f"action space {act}: the adapter needs Discrete or a bounded 1-D Box")
    return Schema.model_validate({"name": name, "features": features, "actions": actions})


class PolicyController:
    """A :class:`~rlops.scenarios.base.Controller` that acts with an rlops policy over a flat Box observation.

    Args:
        policy: a policy whose schema has fixed discrete or box actions (per-request candidates are refused).
        mode: ``sample`` (default: as the policy serves) or ``greedy``.

    Raises:
        ConfigError: candidate action spaces, or greedy box actions for a policy other than SB3.

    Example:
        >>> controller = PolicyController(load_policy("policies/hvac-ppo"), ActMode.GREEDY)  # doctest: +SKIP
        >>> controller.reset(seed=0); controller.act(observation)  # doctest: +SKIP
    """

    def __init__(self, policy: Policy, mode: ActMode = ActMode.SAMPLE) -> None:
        self.schema = policy.schema
        self.mode = ActMode(mode)
        actions = self.schema.actions
        if not isinstance(actions, DiscreteActions | BoxActions):
            raise ConfigError(f"schema.actions: a controller needs fixed discrete or box actions, got "
                              f"{actions.type!r}")
        if self.mode is ActMode.GREEDY and isinstance(actions, BoxActions):
            policy = _deterministic(policy)
        self.policy = policy
        self._rng = np.random.default_rng()

    def check_env(self, env: gym.Env[Any, Any]) -> None:
        """Refuse an environment whose spaces do not match the policy's schema."""
        obs, act = env.observation_space, env.action_space
        if not isinstance(obs, gym.spaces.Box) or int(np.prod(obs.shape)) != self.schema.width:
            raise ConfigError(f"observation space {obs} does not match schema {self.schema.name!r}: the observation "
                              f"must be a flat Box of {self.schema.width} entries")
        actions = self.schema.actions
        if isinstance(actions, DiscreteActions):
            if not isinstance(act, gym.spaces.Discrete) or int(act.n) != actions.n:
                raise ConfigError(f"action space {act} does not match the schema's {actions.n} discrete actions")
        elif isinstance(actions, BoxActions) and (not isinstance(act, gym.spaces.Box)
                                                  or tuple(act.shape) != (actions.dim,)):
            raise ConfigError(f"action space {act} does not match the schema's box of dimension {actions.dim}")

    def reset(self, seed: int | None = None) -> None:
        """Reseed the generator every sampled action is drawn from."""
        self._rng = np.random.default_rng(seed)

    def act(self, observation: Any) -> Any:
        """The action for one observation: an ``int`` (discrete) or a float32 vector (box)."""
        context = observation_to_context(self.schema, observation)
        batch = PolicyInput.from_contexts(self.schema, [context])
        result = self.policy.act(batch, self._rng)
        if isinstance(self.schema.actions, DiscreteActions):
            if self.mode is ActMode.GREEDY:
                probabilities = result.row_probabilities(0)
                if probabilities is None:
                    raise ConfigError(f"policy {self.policy.kind!r} gives no probabilities: it cannot act greedily")
                return int(np.argmax(probabilities))
            return int(result.action[0])
        return np.asarray(result.action[0], dtype=np.float32)


def _deterministic(policy: Policy) -> Policy:
    from rlops.policies.sb3 import SB3Policy

    if isinstance(policy, SB3Policy):
        if policy.deterministic:
            return policy
        return SB3Policy.wrap(policy.schema, policy.model, deterministic=True)
    raise ConfigError(f"mode: greedy box actions need a policy with a mean action (SB3); {policy.kind!r} has none, "
                      f"use mode 'sample'")


@dataclass(frozen=True)
class PolicyFolderController:
    """Builds a :class:`PolicyController` from a saved policy folder, inside whichever process calls it.

    Picklable (it carries only the path), so each of the stress suite's worker processes loads its own copy.

    Attributes:
        folder: a folder written by :func:`rlops.policies.save_policy`.
        mode: ``sample`` (default) or ``greedy``.
    """

    folder: Path
    mode: ActMode = ActMode.SAMPLE

    def __call__(self, env: gym.Env[Any, Any]) -> PolicyController:
        """Load the policy and check it against ``env``'s spaces."""
        from rlops.policies.io import load_policy

        controller = PolicyController(load_policy(self.folder), self.mode)
        controller.check_env(env)
        return controller
