"""A small multilayer perceptron served in numpy: the policy kind ``mlp`` that offline training produces.

The network maps the schema's encoded context (standardised with the mean and scale stored beside the weights) to
one output per discrete action, or to one output per dimension of a box:

- **discrete, greedy head** (Q-values from CQL, or a cloned policy's logits): the arg-max action (first on ties)
  with probability ``1 - epsilon + epsilon/K``, every other action with ``epsilon/K``;
- **discrete, softmax head** (a cloned policy's logits): ``softmax(outputs / temperature)`` mixed with a floor of
  ``min_probability`` per action, so the served distribution is the cloned one;
- **box**: the mean action ``low + (tanh(out) + 1) * (high - low) / 2`` plus Gaussian noise with standard deviation
  ``noise_std * (high - low) / 2`` per dimension, clipped to the box. The propensity is the noise density at the
  unclipped sample, in action units (the convention of :class:`rlops.policies.SB3Policy` for TD3); with
  ``noise_std = 0`` the mean action is served with propensity 1.0 (a point mass, useless for off-policy evaluation).

Every logged propensity is the probability (or density) the policy really sampled from. Inference is a numpy
forward pass; torch is needed only to train.

This module depends on :mod:`rlops.policies` only, so the kind can move there unchanged; until then, import it (or
:mod:`rlops.training.offline`) before :func:`rlops.policies.load_policy` reads an ``mlp`` folder.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import numpy as np

from rlops.errors import ConfigError
from rlops.policies.base import ActResult, BasePolicy, PolicyInput, discrete_result
from rlops.policies.io import register
from rlops.schema import BoxActions, CandidateActions, Schema

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class Head(StrEnum):
    """How a discrete network's outputs become an action distribution."""

    GREEDY = "greedy"  # epsilon-greedy over the outputs (Q-values or logits)
    SOFTMAX = "softmax"  # softmax of the outputs with a probability floor


@register
class MLPPolicy(BasePolicy):
    """A ReLU MLP over standardised encoded contexts (see the module docstring for how it acts).

    Args:
        schema: fixed discrete actions or a box (per-request candidates are not supported).
        weights: one ``(out, in)`` matrix per layer, first layer first; ReLU between layers, none after the last.
        biases: one ``(out,)`` vector per layer.
        x_mean: ``(schema.width,)`` subtracted from every encoded context, default zeros.
        x_scale: ``(schema.width,)`` positive divisors applied after the mean, default ones.
        head: :class:`Head` for discrete actions, default ``GREEDY``; ignored for boxes.
        epsilon: greedy head: uniform exploration in [0, 1], default 0.05.
        temperature: softmax head: > 0, default 1.0.
        min_probability: softmax head: probability floor per action in [0, 1/K], default 0.01.
        noise_std: box: Gaussian noise in units of half the action range, >= 0, default 0.1.

    Raises:
        ConfigError: shapes that do not chain, or do not fit the schema, or a setting out of range.
    """

    kind = "mlp"

    def __init__(self, schema: Schema, weights: list[np.ndarray], biases: list[np.ndarray], *,
                 x_mean: np.ndarray | None = None, x_scale: np.ndarray | None = None, head: Head = Head.GREEDY,
                 epsilon: float = 0.05, temperature: float = 1.0, min_probability: float = 0.01,
                 noise_std: float = 0.1) -> None:
        super().__init__(schema)
        if isinstance(schema.actions, CandidateActions):
            raise ConfigError("mlp: per-request candidates are not supported; use fixed discrete actions or a box")
        self.weights = [np.asarray(w, dtype=np.float64) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float64) for b in biases]
        width = schema.width
        self.x_mean = np.zeros(width) if x_mean is None else np.asarray(x_mean, dtype=np.float64)
        self.x_scale = np.ones(width) if x_scale is None else np.asarray(x_scale, dtype=np.float64)
        self._check_shapes()
        self.head = Head(head)
        if not 0.0 <= epsilon <= 1.0:
            raise ConfigError(f"mlp: epsilon must be in [0, 1], got {epsilon}")
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ConfigError(f"mlp: temperature must be a finite number > 0, got {temperature}")
        k = schema.n_actions or 1
        if not 0.0 <= min_probability <= 1.0 / k:
            raise ConfigError(f"mlp: min_probability must be in [0, 1/K] = [0, {1.0 / k:.4g}], got {min_probability}")
        if not (noise_std >= 0 and math.isfinite(noise_std)):
            raise ConfigError(f"mlp: noise_std must be a finite number >= 0, got {noise_std}")
        self.epsilon, self.temperature = float(epsilon), float(temperature)
        self.min_probability, self.noise_std = float(min_probability), float(noise_std)

    def _check_shapes(self) -> None:
        if not self.weights or len(self.weights) != len(self.biases):
            raise ConfigError(f"mlp: needs as many bias vectors as weight matrices (at least one), got "
                              f"{len(self.weights)} and {len(self.biases)}")
        width = self.schema.width
        if self.x_mean.shape != (width,) or self.x_scale.shape != (width,) or not np.all(self.x_scale > 0):
            raise ConfigError(f"mlp: x_mean and x_scale must have shape ({width},) (the schema's encoded width) "
                              f"and x_scale must be > 0")
        n_in = width
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if w.ndim != 2 or w.shape[1] != n_in or b.shape != (w.shape[0],):
                raise ConfigError(f"mlp: layer {i} has weights {w.shape} and bias {b.shape}; expected "
                                  f"(out, {n_in}) and (out,)")
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise ConfigError(f"mlp: layer {i} holds NaN or infinite values")
            n_in = w.shape[0]
        expected = self.schema.actions.dim if isinstance(self.schema.actions, BoxActions) else self.schema.n_actions
        if n_in != expected:
            raise ConfigError(f"mlp: the network has {n_in} outputs but the schema's action space needs {expected}")

    # ---- inference ------------------------------------------------------------------------------------------------

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """Raw network outputs ``(n, K)`` or ``(n, dim)`` for encoded contexts ``x`` ``(n, schema.width)``."""
        h = (x - self.x_mean) / self.x_scale
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w.T + b
            if i < last:
                np.maximum(h, 0.0, out=h)
        return h

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """The ``(n, K)`` action distribution on encoded contexts (discrete actions only)."""
        out = self.outputs(x)
        k = out.shape[1]
        if self.head is Head.GREEDY:
            probs = np.full(out.shape, self.epsilon / k)
            probs[np.arange(out.shape[0]), np.argmax(out, axis=1)] += 1.0 - self.epsilon
            return probs
        z = out / self.temperature
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        return (1.0 - self.min_probability * k) * p + self.min_probability

    def mean_action(self, x: np.ndarray) -> np.ndarray:
        """The noiseless ``(n, dim)`` action in box units (box actions only)."""
        space = self.schema.actions
        assert isinstance(space, BoxActions)  # callers check the space
        low, high = np.asarray(space.low), np.asarray(space.high)
        return low + (np.tanh(self.outputs(x)) + 1.0) * (high - low) / 2.0

    def act(self, batch: PolicyInput, rng: np.random.Generator) -> ActResult:
        if batch.candidates is not None:
            raise ConfigError("mlp: per-request candidates are not supported")
        space = self.schema.actions
        if not isinstance(space, BoxActions):
            return discrete_result(self.probabilities(batch.x), rng)
        mean = self.mean_action(batch.x)
        if self.noise_std == 0.0:
            return ActResult(action=mean, propensity=np.ones(batch.n))
        low, high = np.asarray(space.low), np.asarray(space.high)
        std = self.noise_std * (high - low) / 2.0
        z = rng.standard_normal(mean.shape)
        action = np.clip(mean + std * z, low, high)
        log_density = np.sum(-0.5 * z**2 - np.log(std) - _LOG_SQRT_2PI, axis=1)
        return ActResult(action=action, propensity=np.exp(log_density))

    # ---- saving ---------------------------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {"layers": len(self.weights), "head": self.head.value, "epsilon": self.epsilon,
                "temperature": self.temperature, "min_probability": self.min_probability,
                "noise_std": self.noise_std}

    def state(self) -> dict[str, np.ndarray]:
        arrays = {"x_mean": self.x_mean, "x_scale": self.x_scale}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        return arrays

    @classmethod
    def from_state(cls, schema: Schema, config: dict[str, Any], state: dict[str, np.ndarray]) -> MLPPolicy:
        layers = int(config["layers"])
        return cls(schema, [state[f"w{i}"] for i in range(layers)], [state[f"b{i}"] for i in range(layers)],
                   x_mean=state["x_mean"], x_scale=state["x_scale"], head=Head(config["head"]),
                   epsilon=float(config["epsilon"]), temperature=float(config["temperature"]),
                   min_probability=float(config["min_probability"]), noise_std=float(config["noise_std"]))

    def with_exploration(self, *, epsilon: float | None = None, noise_std: float | None = None,
                         head: Head | None = None) -> MLPPolicy:
        """The same network with other exploration settings (weights are shared, not copied)."""
        return MLPPolicy(self.schema, self.weights, self.biases, x_mean=self.x_mean, x_scale=self.x_scale,
                         head=self.head if head is None else head,
                         epsilon=self.epsilon if epsilon is None else epsilon, temperature=self.temperature,
                         min_probability=self.min_probability,
                         noise_std=self.noise_std if noise_std is None else noise_std)

