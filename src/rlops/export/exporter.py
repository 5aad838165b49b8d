"""Export a policy to one ``.onnx`` file and its manifest, for the edge runtime (:mod:`rlops.edge`).

Which policies export, and how:

- ``linucb``: scores ``mean + alpha * sqrt(x' A^-1 x)`` in the graph (the full UCB, not only the mean), then
  greedy or epsilon-greedy as configured;
- ``linear_thompson``: the posterior ``mean`` and ``variance`` in the graph, sampling in the runtime;
- ``epsilon_greedy`` and ``softmax`` over a ``linear`` or ``ridge`` scorer: the scores in the graph, the
  exploration rule in the runtime;
- ``uniform`` (fixed discrete actions): zero scores and a softmax, i.e. ``1/K`` each;
- ``sb3``: PPO, A2C, DQN, SAC, TD3, DDPG networks (see :mod:`rlops.export.sb3`).

All of them need fixed discrete actions (or a box, for SB3). Per-request candidate sets (the shared linear model,
VW's ADF) and ``vw_cb_adf``/``rule`` policies do not export: a :class:`ValidationError` says what does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from rlops.edge.discrete import EpsilonGreedy as EpsilonGreedyRule
from rlops.edge.discrete import Greedy, Thompson
from rlops.edge.discrete import Softmax as SoftmaxRule
from rlops.edge.layout import RawLayout
from rlops.edge.manifest import (
    EdgeManifest,
    ExportedFrom,
    ModelFile,
    Preprocessing,
    RuleSpec,
    manifest_path,
)
from rlops.errors import ValidationError
from rlops.export.fitted import prepend_fitted
from rlops.export.linear import affine_head, mean_head, moments_head, ucb_head
from rlops.export.preprocess import attach_preprocessing
from rlops.export.sb3 import sb3_head
from rlops.files import sha256_file, write_atomic
from rlops.policies import (
    BasePolicy,
    EpsilonGreedy,
    LinearScorer,
    LinearThompson,
    LinUCB,
    RidgeScorer,
    SB3Policy,
    Softmax,
    UniformRandom,
)
from rlops.policies.preprocessed import unwrap
from rlops.schema import BoxActions, DiscreteActions

SUPPORTED = ("linucb, linear_thompson, epsilon_greedy and softmax over a linear or ridge scorer, uniform, and sb3 "
             "(PPO, A2C, DQN, SAC, TD3, DDPG), with fixed discrete actions (sb3 also box actions)")

Head = tuple[onnx.ModelProto, RuleSpec]


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_policy` wrote.

    Attributes:
        model_path: the ``.onnx`` file.
        manifest_path: the manifest next to it (``NAME.manifest.json``).
        manifest: its content.
    """

    model_path: Path
    manifest_path: Path
    manifest: EdgeManifest


def _unsupported(policy: BasePolicy, why: str) -> ValidationError:
    return ValidationError("policy.kind", f"'{policy.kind}' {why}; exportable to ONNX: {SUPPORTED}")


def _scorer_head(policy: EpsilonGreedy | Softmax, width: int) -> onnx.ModelProto:
    scorer = policy.scorer
    if isinstance(scorer, LinearScorer):
        return affine_head(width, scorer.weights, scorer.bias)
    if isinstance(scorer, RidgeScorer):
        return mean_head(width, scorer.model.theta)
    raise _unsupported(policy, f"with a '{scorer.kind}' scorer cannot be exported")


def _linear_head(policy: BasePolicy) -> Head:
    width = policy.schema.width
    if isinstance(policy, LinUCB):
        rule: RuleSpec = EpsilonGreedyRule(epsilon=policy.epsilon) if policy.epsilon > 0 else Greedy()
        return ucb_head(width, policy.model.theta, policy.model.A_inv, policy.alpha), rule
    if isinstance(policy, LinearThompson):
        return moments_head(width, policy.model.theta, policy.model.A_inv), Thompson(v=policy.v,
                                                                                      n_samples=policy.n_samples)
    if isinstance(policy, EpsilonGreedy):
        return _scorer_head(policy, width), EpsilonGreedyRule(epsilon=policy.epsilon)
    if isinstance(policy, Softmax):
        return _scorer_head(policy, width), SoftmaxRule(temperature=policy.temperature,
                                                        min_probability=policy.min_probability)
    if isinstance(policy, UniformRandom):
        k = int(policy.schema.n_actions or 0)
        return affine_head(width, np.zeros((k, width)), np.zeros(k)), SoftmaxRule(temperature=1.0)
    raise _unsupported(policy, "cannot be exported")


def policy_head(policy: BasePolicy) -> Head:
    """The graph (input ``x``: the encoded matrix) and exploration rule of ``policy``.

    Raises:
        ValidationError: the policy's kind or action space cannot be exported (the message lists what can).
    """
    actions = policy.schema.actions
    if isinstance(policy, SB3Policy):
        return sb3_head(policy)
    if isinstance(actions, BoxActions):
        raise _unsupported(policy, "with box actions cannot be exported (only sb3 policies export box actions)")
    if not isinstance(actions, DiscreteActions):
        raise _unsupported(policy, f"with '{actions.type}' actions cannot be exported (per-request candidate sets "
                                   f"change the graph's shape with every request)")
    return _linear_head(policy)


def export_policy(policy: BasePolicy, out: str | os.PathLike[str], *, policy_version: str,
                  deployment: str | None = None, content_hash: str | None = None) -> ExportResult:
    """Write ``policy`` as one ONNX graph (preprocessing included) at ``out`` and its manifest next to it.

    Args:
        policy: the policy to export (see the module docstring for the supported kinds).
        out: the ``.onnx`` file to write (replaced atomically if it exists); the manifest goes to
            ``NAME.manifest.json`` in the same folder.
        policy_version: the version decisions made by the export are attributed to (``DEPLOYMENT@rN``).
        deployment: the deployment it was exported from, if any.
        content_hash: the hash of the policy's saved folder, if it came from one.

    Raises:
        ValidationError: ``out`` does not end in ``.onnx``, or the policy cannot be exported.
    """
    out = Path(out)
    if out.suffix != ".onnx":
        raise ValidationError("onnx", f"the output file must end in .onnx, got {out.name!r}")
    policy, fitted = unwrap(policy)  # a fitted preprocessor goes into the graph, in front of the policy's head
    layout = RawLayout.from_schema(policy.schema)
    head, rule = policy_head(policy)
    if fitted is not None:
        head = prepend_fitted(head, fitted)
    model = attach_preprocessing(head, layout)
    write_atomic(out, model.SerializeToString())
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    manifest = EdgeManifest(
        deployment=deployment, policy_version=policy_version,
        source=ExportedFrom(kind=policy.kind, config=policy.config(), content_hash=content_hash),
        model=ModelFile(file=out.name, sha256=sha256_file(out), opset=opset),
        schema=policy.schema, actions=policy.schema.action_names(),
        preprocessing=Preprocessing(columns=layout), exploration=rule,
    )
    where = manifest_path(out)
    write_atomic(where, manifest.to_json().encode())
    return ExportResult(out, where, manifest)
