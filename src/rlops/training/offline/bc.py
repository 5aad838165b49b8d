"""Behaviour cloning: a small MLP that imitates the logged actions, for discrete actions and boxes.

- **discrete**: the network's outputs are logits trained with cross-entropy on the logged actions; served greedily
  (the behaviour's most likely action in each state) with epsilon exploration, or, with ``head=softmax``, as the
  cloned distribution itself (with a probability floor).
- **box**: the network's outputs pass through ``tanh`` and are rescaled to the box; trained with mean squared error
  on the logged actions (in units of half the action range); served with Gaussian exploration noise.

Cloning copies the behaviour, mistakes included: it is the baseline offline RL (:mod:`.cql`) must beat, and the
fallback for box actions, where no offline RL algorithm is offered yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from rlops.errors import ValidationError
from rlops.events.join import JoinResult
from rlops.policies.mlp import Head, MLPPolicy
from rlops.schema import BoxActions, DiscreteActions, Schema
from rlops.training.offline.data import read_logged
from rlops.training.offline.networks import (
    NetworkFit,
    Progress,
    Standardiser,
    build,
    check_common,
    load_arrays,
    loss_curve,
    report,
    to_arrays,
    torch_threads,
)


@dataclass(frozen=True)
class BCConfig:
    """How to clone a behaviour.

    Attributes:
        hidden: hidden-layer widths of the ReLU MLP, default ``(64, 64)``; ``()`` is a linear model.
        steps: Adam steps, default 2000.
        batch_size: rows per step (sampled with replacement), default 256.
        learning_rate: Adam's step size, default 1e-3.
        weight_decay: Adam's L2 penalty, default 0.
        head: discrete actions: serve greedily (``greedy``, default) or the cloned distribution (``softmax``).
        epsilon: greedy head: uniform exploration in (0, 1], default 0.05.
        min_probability: softmax head: probability floor per action in (0, 1/K], default 0.01.
        noise_std: box: exploration noise in units of half the action range, > 0, default 0.1.
        seed: seeds the initial weights and the minibatches, default 0.
        threads: torch intra-op threads while fitting, default 1 (bit-identical results).
    """

    hidden: tuple[int, ...] = (64, 64)
    steps: int = 2000
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    head: Head = Head.GREEDY
    epsilon: float = 0.05
    min_probability: float = 0.01
    noise_std: float = 0.1
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        check_common(self.hidden, self.steps, self.batch_size, self.learning_rate, self.threads)
        if not self.weight_decay >= 0:
            raise ValidationError("weight_decay", f"must be >= 0, got {self.weight_decay!r}")
        try:
            Head(self.head)
        except ValueError as e:
            raise ValidationError("head", f"expected one of {[h.value for h in Head]}, got {self.head!r}") from e
        if not 0.0 < self.epsilon <= 1.0:
            raise ValidationError("epsilon", f"must be in (0, 1] so every action keeps a propensity > 0, got "
                                             f"{self.epsilon!r}")
        if not 0.0 < self.min_probability <= 1.0:
            raise ValidationError("min_probability", f"must be in (0, 1/K], got {self.min_probability!r}")
        if not (self.noise_std > 0 and math.isfinite(self.noise_std)):
            raise ValidationError("noise_std", f"must be a finite number > 0 (a density needs noise), got "
                                               f"{self.noise_std!r}")


def fit_bc(state: np.ndarray, action: np.ndarray, schema: Schema, config: BCConfig | None = None, *,
           parent: MLPPolicy | None = None, n_episodes: int | None = None,
           progress: Progress | None = None) -> NetworkFit:
    """Clone the behaviour behind ``(state, action)`` pairs.

    Args:
        state: ``(n, schema.width)`` encoded contexts.
        action: ``(n,)`` action indices, or ``(n, dim)`` box actions.
        schema: the deployment's schema (fixed discrete actions or a box).
        config: :class:`BCConfig`, default ``BCConfig()``.
        parent: an ``mlp`` policy to start from (same layer sizes); its input standardisation is kept.
        n_episodes: reported in the result, default ``n``.
        progress: ``progress(step, steps)``, called every 50 steps and at the end.

    Raises:
        ValidationError: no rows, shapes that do not fit the schema, or a parent of another architecture.
    """
    config = config or BCConfig()
    space = schema.actions
    n = int(state.shape[0])
    if n < 1:
        raise ValidationError("interactions", "are empty: nothing to clone")
    if state.ndim != 2 or state.shape[1] != schema.width:
        raise ValidationError("state", f"expected shape (n, {schema.width}), got {state.shape}")
    if isinstance(space, DiscreteActions):
        n_out = space.n
    elif isinstance(space, BoxActions):
        n_out = space.dim
    else:
        raise ValidationError("schema.actions", "behaviour cloning needs fixed discrete actions or a box")
    scaler = Standardiser(parent.x_mean, parent.x_scale) if parent is not None else Standardiser.fit(state)
    net = build(schema.width, n_out, config.hidden, config.seed)
    if parent is not None:
        load_arrays(net, parent.weights, parent.biases)
    inputs = scaler.tensor(state)
    if isinstance(space, BoxActions):
        low, high = np.asarray(space.low), np.asarray(space.high)
        if action.shape != (n, space.dim):
            raise ValidationError("action", f"expected shape ({n}, {space.dim}), got {action.shape}")
        target = torch.as_tensor(np.clip(2.0 * (action - low) / (high - low) - 1.0, -1.0, 1.0), dtype=torch.float32)
    else:
        target = torch.as_tensor(np.array(action, dtype=np.int64))
    generator = torch.Generator().manual_seed(config.seed)
    adam = torch.optim.Adam(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    losses: list[float] = []
    with torch_threads(config.threads):
        for step in range(1, config.steps + 1):  # a loop over Adam steps; each is vectorised over a minibatch
            rows = torch.randint(n, (min(config.batch_size, n),), generator=generator)
            out = net(inputs[rows])
            if isinstance(space, BoxActions):
                loss = torch.mean((torch.tanh(out) - target[rows]) ** 2)
            else:
                loss = torch.nn.functional.cross_entropy(out, target[rows])
            adam.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            adam.step()
            losses.append(float(loss.detach()))
            report(progress, step, config.steps)
    weights, biases = to_arrays(net)
    floor = min(config.min_probability, 1.0 / (schema.n_actions or 1))
    policy = MLPPolicy(schema, weights, biases, x_mean=scaler.mean, x_scale=scaler.scale, head=Head(config.head),
                       epsilon=config.epsilon, min_probability=floor, noise_std=config.noise_std)
    return NetworkFit(policy=policy, losses=loss_curve(losses), n_rows=n,
                      n_episodes=n if n_episodes is None else n_episodes, warm_start=parent is not None)


def behaviour_cloning(interactions: pa.Table | JoinResult, schema: Schema, config: BCConfig | None = None, *,
                      parent: MLPPolicy | None = None, progress: Progress | None = None) -> NetworkFit:
    """Clone the logging policy of joined interactions (see :func:`fit_bc`; rewards are not used).

    Raises:
        ValidationError: as :func:`rlops.training.offline.data.read_logged`, and as :func:`fit_bc`.
    """
    rows = read_logged(interactions, schema)
    return fit_bc(rows.inputs.x, rows.action, schema, config, parent=parent, progress=progress)
