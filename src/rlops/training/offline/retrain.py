"""One entry point for ``rlops retrain``: a candidate policy from a deployment's joined interactions.

:func:`retrain_from_table` picks the learner (or takes the one asked for), fits it and returns a servable policy with
typed diagnostics. With ``kind="auto"``:

- the log is **single-step** when no unit has two decisions within ``gap_seconds``
  (:func:`~rlops.training.offline.transitions.is_single_step`): a contextual bandit, fitted by
  :func:`~rlops.training.offline.bandit.fit_bandit_policy` (fixed discrete actions), or cloned for a box;
- otherwise it is **sequential**: discrete CQL (:mod:`~rlops.training.offline.cql`) for fixed discrete actions,
  behaviour cloning (:mod:`~rlops.training.offline.bc`) for a box, where no offline RL algorithm is offered yet.

Fine-tuning (``parent``): bandit kinds continue through the parent's own ``update`` (see
:mod:`rlops.training.offline.bandit`); ``bc`` and ``cql`` start their network from an ``mlp`` parent of the same
layer sizes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa

from rlops.errors import ValidationError
from rlops.events.join import JoinResult
from rlops.policies import BasePolicy
from rlops.policies.mlp import MLPPolicy
from rlops.schema import DiscreteActions, Schema
from rlops.training.offline.bandit import BanditDiagnostics, BanditMethod, fit_bandit_policy
from rlops.training.offline.bc import BCConfig, fit_bc
from rlops.training.offline.cql import CQLConfig, fit_cql
from rlops.training.offline.data import as_table, read_logged
from rlops.training.offline.networks import NetworkFit, Progress
from rlops.training.offline.transitions import DEFAULT_GAP_SECONDS, is_single_step, transitions_from_table


class RetrainKind(StrEnum):
    """Which learner to run."""

    AUTO = "auto"
    BANDIT = "bandit"
    BC = "bc"
    CQL = "cql"


class RetrainMethod(StrEnum):
    """What was actually fitted."""

    BANDIT_DM = "bandit-dm"
    BANDIT_IPS = "bandit-ips"
    BANDIT_DR = "bandit-dr"
    BC = "bc"
    CQL = "cql"


@dataclass(frozen=True)
class SequentialDiagnostics:
    """How a network learner's fit went.

    Attributes:
        n_rows: transitions (logged decisions) trained on.
        n_episodes: episodes among them (``gap_seconds`` apart or per unit).
        losses: mean training loss over each tenth of the steps, first to last.
        warm_start: True when the network started from the parent's weights.
        gap_seconds: the episode gap used.
    """

    n_rows: int
    n_episodes: int
    losses: tuple[float, ...]
    warm_start: bool
    gap_seconds: float


@dataclass(frozen=True)
class RetrainResult:
    """A retrained candidate.

    Attributes:
        policy: the servable candidate (save it with :func:`rlops.policies.save_policy`).
        method: what was fitted.
        reason: one sentence on why this learner ran (the ``auto`` decision, or "asked for").
        diagnostics: :class:`~rlops.training.offline.bandit.BanditDiagnostics` for bandit methods (with the
            off-policy estimate of the candidate), :class:`SequentialDiagnostics` for ``bc`` and ``cql``.
    """

    policy: BasePolicy
    method: RetrainMethod
    reason: str
    diagnostics: BanditDiagnostics | SequentialDiagnostics


def choose_kind(table: pa.Table, schema: Schema,
                gap_seconds: float = DEFAULT_GAP_SECONDS) -> tuple[RetrainKind, str]:
    """The learner ``kind="auto"`` runs on these interactions (see the module docstring), and one sentence on why."""
    discrete = isinstance(schema.actions, DiscreteActions)
    if is_single_step(table, gap_seconds=gap_seconds):
        why = f"no unit has two decisions within {gap_seconds:g} s, so every episode is one step"
        if discrete:
            return RetrainKind.BANDIT, f"{why}: bandit policy learning"
        return RetrainKind.BC, f"{why}, and the actions are a box: behaviour cloning"
    why = f"some unit has decisions within {gap_seconds:g} s of each other, so the log is sequential"
    if discrete:
        return RetrainKind.CQL, f"{why}: conservative Q-learning"
    return RetrainKind.BC, f"{why}, and the actions are a box (no offline RL for boxes yet): behaviour cloning"


def _network_parent(parent: BasePolicy | None) -> MLPPolicy | None:
    if parent is None or isinstance(parent, MLPPolicy):
        return parent
    raise ValidationError("parent", f"bc and cql fine-tune an 'mlp' parent, got kind {parent.kind!r}; fit from "
                                    f"scratch (parent=None) or choose kind='bandit'")


def retrain_from_table(
    interactions: pa.Table | JoinResult,
    schema: Schema,
    *,
    kind: RetrainKind | str = RetrainKind.AUTO,
    method: BanditMethod | str = BanditMethod.DR,
    epsilon: float = 0.05,
    gap_seconds: float = DEFAULT_GAP_SECONDS,
    parent: BasePolicy | None = None,
    holdout: float = 0.0,
    bc: BCConfig | None = None,
    cql: CQLConfig | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> RetrainResult:
    """Retrain a candidate policy from joined interactions.

    Args:
        interactions: ``Engine.interactions(deployment)`` or its Parquet export (columns in
            :mod:`rlops.training.offline.data`; sequential kinds also read ``unit_id`` and ``ts``).
        schema: the deployment's schema.
        kind: ``"auto"`` (default), ``"bandit"``, ``"bc"`` or ``"cql"``; see the module docstring.
        method: bandit targets, ``"dr"`` (default), ``"ips"`` or ``"dm"``.
        epsilon: exploration of the candidate in (0, 1], default 0.05 (bandit and discrete bc/cql; a box policy
            explores with ``bc.noise_std``), so its own logs carry propensities > 0.
        gap_seconds: a unit's decisions further apart start a new episode, default 1800 s.
        parent: the current version to fine-tune instead of fitting from scratch; not modified.
        holdout: bandit: fraction of rows held out for the candidate's off-policy estimate, default 0 (in-sample).
        bc: behaviour-cloning settings, default ``BCConfig()``.
        cql: CQL settings, default ``CQLConfig()``.
        seed: seeds every random choice (replaces the configs' seeds), default 0.
        progress: ``progress(step, steps)`` during network training (the CLI draws a bar with it).

    Raises:
        ValidationError: an unknown kind, a kind that does not fit the action space, a parent that cannot be
            fine-tuned, or bad interactions (the message names the column and row).

    Example:
        >>> result = retrain_from_table(engine.interactions("hvac"), schema, seed=1)  # doctest: +SKIP
        >>> result.method, result.reason  # doctest: +SKIP
    """
    try:
        kind = RetrainKind(kind)
    except ValueError as e:
        raise ValidationError("kind", f"expected one of {[k.value for k in RetrainKind]}, got {kind!r}") from e
    table = as_table(interactions)
    reason = f"kind {kind.value!r} was asked for"
    if kind is RetrainKind.AUTO:
        kind, reason = choose_kind(table, schema, gap_seconds)

    if kind is RetrainKind.BANDIT:
        fit = fit_bandit_policy(table, schema, method=method, epsilon=epsilon, parent=parent, holdout=holdout,
                                seed=seed)
        return RetrainResult(fit.policy, RetrainMethod(f"bandit-{fit.diagnostics.method.value}"), reason,
                             fit.diagnostics)

    net_parent = _network_parent(parent)
    result: NetworkFit
    if kind is RetrainKind.CQL:
        if not isinstance(schema.actions, DiscreteActions):
            raise ValidationError("kind", f"'cql' needs fixed discrete actions, this schema's are "
                                          f"'{schema.actions.type}'; use kind='bc'")
        config = dataclasses.replace(cql or CQLConfig(), seed=seed, epsilon=epsilon)
        transitions = transitions_from_table(table, schema, gap_seconds=gap_seconds)
        result = fit_cql(transitions, schema, config, parent=net_parent, progress=progress)
        out_method = RetrainMethod.CQL
    else:
        bc_config = dataclasses.replace(bc or BCConfig(), seed=seed, epsilon=epsilon)
        if {"unit_id", "ts"} <= set(table.column_names):
            transitions = transitions_from_table(table, schema, gap_seconds=gap_seconds)
            state, action, episodes = transitions.state, transitions.action, transitions.n_episodes
        else:  # cloning needs no order; a log without units still clones (each row its own episode)
            rows = read_logged(table, schema)
            state, action, episodes = rows.inputs.x, rows.action, rows.n
        result = fit_bc(state, action, schema, bc_config, parent=net_parent, n_episodes=episodes,
                        progress=progress)
        out_method = RetrainMethod.BC
    diagnostics = SequentialDiagnostics(n_rows=result.n_rows, n_episodes=result.n_episodes, losses=result.losses,
                                        warm_start=result.warm_start, gap_seconds=gap_seconds)
    return RetrainResult(result.policy, out_method, reason, diagnostics)
