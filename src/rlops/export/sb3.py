"""ONNX heads of Stable-Baselines3 policies, exported with torch's TorchScript-based exporter (``dynamo=False``).

Each head wraps the part of the SB3 policy that :class:`~rlops.policies.SB3Policy` calls, so the graph computes
the same float32 numbers (measured error around 1e-7):

============  =======================  ============================================  =====================
algorithm     actions                  graph outputs                                 rule (edge runtime)
============  =======================  ============================================  =====================
PPO, A2C      discrete                 ``probabilities`` (``get_distribution``)      categorical / greedy
DQN           discrete                 ``scores`` (``q_net``, the Q-values)           epsilon-greedy / greedy
PPO, A2C      box                      ``mean``, ``std`` of the diagonal Gaussian     gaussian
SAC           box                      ``mean``, ``log_std`` (``get_action_dist_params``) squashed_gaussian
TD3, DDPG     box                      ``mean``: the actor's tanh output in [-1, 1]   actor_noise
============  =======================  ============================================  =====================

With ``deterministic`` only the mean (or the probabilities, used as scores) is exported.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import onnx

from rlops.edge.continuous import ActorNoise, Gaussian, SquashedGaussian
from rlops.edge.discrete import Categorical, EpsilonGreedy, Greedy
from rlops.edge.manifest import RuleSpec
from rlops.edge.rules import LOG_STD, MEAN, PROBABILITIES, SCORES, STD
from rlops.policies import SB3Policy
from rlops.schema import BoxActions

OPSET = 17


def _rule(policy: SB3Policy) -> RuleSpec:
    algo, deterministic = policy.algo, policy.deterministic
    if not isinstance(policy.schema.actions, BoxActions):
        if algo == "DQN":
            epsilon = 0.0 if deterministic else policy.epsilon
            return EpsilonGreedy(epsilon=epsilon) if epsilon > 0 else Greedy()
        return Greedy() if deterministic else Categorical()
    space = policy.model.action_space
    bounds: dict[str, Any] = {"low": np.asarray(space.low, dtype=np.float64).tolist(),
                              "high": np.asarray(space.high, dtype=np.float64).tolist(),
                              "deterministic": deterministic}
    if algo in ("PPO", "A2C"):
        return Gaussian(**bounds)
    if algo == "SAC":
        return SquashedGaussian(**bounds)
    return ActorNoise(noise_std=policy.noise_std, **bounds)


def _network(policy: SB3Policy, outputs: tuple[str, ...]) -> Any:
    """A torch module from the encoded matrix (float32) to the graph outputs, in ``outputs`` order."""
    import torch

    model, algo = policy.model, policy.algo
    shape = tuple(int(d) for d in model.observation_space.shape)

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = model.policy

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            obs = x if len(shape) == 1 else x.reshape((-1, *shape))  # no reshape nodes for flat observations
            values: dict[str, torch.Tensor] = {}
            if algo == "DQN":
                values[SCORES] = self.policy.q_net(obs)
            elif algo in ("PPO", "A2C"):
                distribution = self.policy.get_distribution(obs).distribution
                if isinstance(policy.schema.actions, BoxActions):
                    values[MEAN], values[STD] = distribution.mean, distribution.stddev
                else:
                    values[PROBABILITIES] = values[SCORES] = distribution.probs
            elif algo == "SAC":
                values[MEAN], values[LOG_STD], _ = self.policy.actor.get_action_dist_params(obs)
            else:
                values[MEAN] = self.policy.actor(obs)
            return tuple(v if v.dim() == 2 else v.reshape(obs.shape[0], -1) for v in (values[n] for n in outputs))

    return Head()


def sb3_head(policy: SB3Policy) -> tuple[onnx.ModelProto, RuleSpec]:
    """The head of an SB3 policy (input ``x``, float32 ``(n, schema.width)``) and the rule that acts on it."""
    import torch

    rule = _rule(policy)
    outputs = rule.outputs
    network = _network(policy, outputs)
    network.eval()
    example = torch.zeros((2, policy.schema.width), dtype=torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation on every call
        torch.onnx.export(
            network, (example,), buffer,  # type: ignore[arg-type]  # a file object is accepted too
            dynamo=False, input_names=["x"], output_names=list(outputs),
            dynamic_axes={name: {0: "n"} for name in ("x", *outputs)}, opset_version=OPSET, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue()), rule
