"""Discrete conservative Q-learning (Kumar, Zhou, Tucker & Levine 2020, "Conservative Q-Learning for Offline RL").

Offline Q-learning overestimates actions the log rarely shows: their values come from extrapolation, and the
arg-max seeks out exactly those errors. CQL adds to the temporal-difference loss a term that pushes all actions'
values down (a soft maximum) and the logged action's value up::

    loss = 1/2 * mean((Q(s, a) - y)^2) + alpha * mean(logsumexp_b Q(s, b) - Q(s, a))
    y    = r + gamma * (1 - done) * Q_target(s', argmax_b Q(s', b))      (double DQN target)

This is the CQL(H) variant with the DQN backbone of the paper's discrete experiments. ``alpha`` is in reward units:
in the tabular limit the fixed point is ``Q = B Q - alpha * (pi(a|s) / mu(a|s) - 1)`` with ``pi`` the softmax of
``Q`` and ``mu`` the logging policy, so an action the behaviour takes rarely must beat a frequent one by about
``alpha / mu`` to be preferred. Scale ``alpha`` with the reward's gaps between actions; ``alpha = 0`` is plain
offline double DQN.

The learned greedy policy is served as an ``mlp`` policy with epsilon exploration (:class:`MLPPolicy`).
Transitions come from :func:`rlops.training.offline.transitions.transitions_from_table`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch

from rlops.errors import ValidationError
from rlops.policies.mlp import Head, MLPPolicy
from rlops.schema import DiscreteActions, Schema
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
from rlops.training.offline.transitions import Transitions


@dataclass(frozen=True)
class CQLConfig:
    """How to run discrete CQL.

    Attributes:
        hidden: hidden-layer widths of the Q-network (ReLU MLP), default ``(64, 64)``.
        steps: gradient steps, default 5000.
        batch_size: transitions per step (sampled with replacement), default 256.
        learning_rate: Adam's step size, default 1e-3.
        gamma: discount per decision in [0, 1), default 0.99.
        alpha: weight of the conservative term, >= 0, in reward units; default 1.0 (see the module docstring).
        target_update: steps between copies of the network into the target network, default 100.
        epsilon: exploration of the served greedy policy, in (0, 1], default 0.05.
        seed: seeds the initial weights and the minibatches, default 0.
        threads: torch intra-op threads while fitting, default 1 (bit-identical results).
    """

    hidden: tuple[int, ...] = (64, 64)
    steps: int = 5000
    batch_size: int = 256
    learning_rate: float = 1e-3
    gamma: float = 0.99
    alpha: float = 1.0
    target_update: int = 100
    epsilon: float = 0.05
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        check_common(self.hidden, self.steps, self.batch_size, self.learning_rate, self.threads)
        if not 0.0 <= self.gamma < 1.0:
            raise ValidationError("gamma", f"must be in [0, 1), got {self.gamma!r}")
        if not (self.alpha >= 0 and math.isfinite(self.alpha)):
            raise ValidationError("alpha", f"must be a finite number >= 0, got {self.alpha!r}")
        if self.target_update < 1:
            raise ValidationError("target_update", f"must be >= 1, got {self.target_update!r}")
        if not 0.0 < self.epsilon <= 1.0:
            raise ValidationError("epsilon", f"must be in (0, 1] so every action keeps a propensity > 0, got "
                                             f"{self.epsilon!r}")


def fit_cql(transitions: Transitions, schema: Schema, config: CQLConfig | None = None, *,
            parent: MLPPolicy | None = None, progress: Progress | None = None) -> NetworkFit:
    """Learn a greedy policy from logged transitions with discrete CQL.

    Args:
        transitions: logged transitions over the schema's fixed discrete actions.
        schema: the deployment's schema.
        config: :class:`CQLConfig`, default ``CQLConfig()``.
        parent: an ``mlp`` policy whose network (Q-values, same layer sizes) the fit starts from, e.g. the
            previous CQL version; its input standardisation is kept.
        progress: ``progress(step, steps)``, called every 50 steps and at the end.

    Returns:
        The served policy (greedy in the learned Q-values, epsilon exploration) and the loss curve.

    Raises:
        ValidationError: box or candidate actions, no transitions, or a parent of another architecture.
    """
    config = config or CQLConfig()
    if not isinstance(schema.actions, DiscreteActions):
        raise ValidationError("schema.actions", f"CQL here needs fixed discrete actions, this schema's are "
                                                f"'{schema.actions.type}' (use behaviour cloning for a box)")
    if transitions.continuous:
        raise ValidationError("action", "transitions hold box actions; CQL needs discrete action indices")
    n = transitions.n
    if n < 1:
        raise ValidationError("interactions", "are empty: no transitions to learn from")
    k = schema.actions.n
    scaler = (Standardiser(parent.x_mean, parent.x_scale) if parent is not None
              else Standardiser.fit(transitions.state))
    net = build(schema.width, k, config.hidden, config.seed)
    if parent is not None:
        load_arrays(net, parent.weights, parent.biases)
    target_net = copy.deepcopy(net)
    state, next_state = scaler.tensor(transitions.state), scaler.tensor(transitions.next_state)
    action = torch.as_tensor(transitions.action.astype(np.int64))[:, None]
    reward = torch.as_tensor(transitions.reward, dtype=torch.float32)
    alive = torch.as_tensor(~transitions.done, dtype=torch.float32)
    generator = torch.Generator().manual_seed(config.seed)
    adam = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    losses: list[float] = []
    with torch_threads(config.threads):
        for step in range(1, config.steps + 1):  # a loop over gradient steps; each is vectorised over a minibatch
            rows = torch.randint(n, (min(config.batch_size, n),), generator=generator)
            with torch.no_grad():
                best = net(next_state[rows]).argmax(dim=1, keepdim=True)
                bootstrap = target_net(next_state[rows]).gather(1, best)[:, 0]
                y = reward[rows] + config.gamma * alive[rows] * bootstrap
            q_all = net(state[rows])
            q = q_all.gather(1, action[rows])[:, 0]
            td = 0.5 * torch.mean((q - y) ** 2)
            conservative = torch.mean(torch.logsumexp(q_all, dim=1) - q)
            loss = td + config.alpha * conservative
            adam.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            adam.step()
            losses.append(float(loss.detach()))
            if step % config.target_update == 0:
                target_net.load_state_dict(net.state_dict())
            report(progress, step, config.steps)
    weights, biases = to_arrays(net)
    policy = MLPPolicy(schema, weights, biases, x_mean=scaler.mean, x_scale=scaler.scale, head=Head.GREEDY,
                       epsilon=config.epsilon)
    return NetworkFit(policy=policy, losses=loss_curve(losses), n_rows=n, n_episodes=transitions.n_episodes,
                      warm_start=parent is not None)
