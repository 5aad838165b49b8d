"""Retraining sweeps: several candidates fitted on the same logged interactions, each scored on held-out logs, the
best one kept.

:func:`sweep_retrain` resolves the learner once (as :func:`~rlops.training.offline.retrain.retrain_from_table`
does), holds out a seeded ``holdout`` fraction of the log, fits one candidate per point of a small grid on the rest,
scores every candidate on the held-out part and returns the winner with a table of every candidate's settings and
score.

**What is swept** (:func:`sweep_grid`; point 0 is always the settings a fit without a sweep uses):

==========  ==============================================================================  ======================
kind        grid, in order                                                                  score on held-out logs
==========  ==============================================================================  ======================
``bandit``  the regression targets (``method`` first, then the others of dr, ips, dm) at     ``dr``
            each ridge penalty of :data:`BANDIT_L2`; at most 12 points. The seed is not
            swept: a ridge fit depends on it only through DR's cross-fitting folds.
``cql``     ``alpha`` times each of :data:`CQL_ALPHA_FACTORS` at seed ``seed``, then at     ``wpdis``
            ``seed + 1``, ...
``bc``      ``learning_rate`` times each of :data:`BC_LEARNING_RATE_FACTORS` at seed         ``imitation``
            ``seed``, then at ``seed + 1``, ...
==========  ==============================================================================  ======================

``epsilon`` is not swept: more exploration always costs estimated value, so a value-based choice would always take
the least; it is a safety setting, chosen by the operator.

**Scores** (:class:`SweepScore`), each with a standard error over independent units (rows or episodes):

- ``dr``: the doubly robust estimate of the candidate's value per decision on the held-out rows, the estimate
  :class:`~rlops.training.offline.bandit.BanditDiagnostics` carries (its reward model is cross-fitted on the held-out
  rows themselves, so no candidate is scored with anything it was fitted on).
- ``wpdis``: weighted per-decision importance sampling over the held-out episodes
  (:class:`~rlops.evaluation.ope.WPDIS`) with the fit's own discount ``gamma``: an estimate of the discounted return
  per episode the candidate (greedy with its ``epsilon``) would earn from the logged start states. It needs no model
  of its own (fitted-Q evaluation would need a network fit per candidate, with its own hyperparameters to choose),
  is consistent, and has far less variance than plain PDIS; its bias is shared by candidates scored on the same
  episodes. The held-out TD or CQL loss is not used: it says how well the network fits its own targets, not how good
  its policy is. Long episodes make the weights degenerate; the interval then widens and the rule below notices.
- ``imitation``: minus the held-out cloning loss per decision, the loss behaviour cloning minimises (cross-entropy
  of the logged action in nats for discrete actions, mean squared error in units of half the action range for a
  box). Cloning does not use rewards, so neither does its score: the winner is the best imitator of the behaviour.
  The standard error treats episodes as the independent units.

**The winner** (:func:`pick_best`) has the highest lower end of the ``level`` normal interval ``value - z * se``:
a candidate whose high estimate rests on few effective samples does not win on luck (pessimism in the face of
uncertainty). Ties go to the higher point estimate, then to the lower grid index (the base settings first).

It is the candidate as fitted on the training part, so the score in the table is the score of the policy returned.

**Backends**: ``local`` fits one candidate after another in this process; ``ray`` runs one task per grid point on a
pool of Ray actors (:func:`rlops.scale.actor_map`), each of which receives the prepared training data once (read,
checked and split here first, so a bad log or setting fails before any worker starts). Every task carries its own
seed and runs with the same torch and BLAS thread counts, so both give the same scores, the same winner and the
same weights.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import Any

import numpy as np
import pyarrow as pa

from rlops.errors import ValidationError
from rlops.evaluation.ope import WPDIS, EpisodeData
from rlops.events.join import JoinResult
from rlops.policies.mlp import MLPPolicy
from rlops.scale.backend import Backend
from rlops.schema import BoxActions, DiscreteActions, Schema
from rlops.training.offline.bandit import MIN_ROWS, BanditMethod, fit_bandit_policy, holdout_split
from rlops.training.offline.bc import BCConfig, fit_bc
from rlops.training.offline.cql import CQLConfig, fit_cql
from rlops.training.offline.data import LoggedRows, as_table, read_logged
from rlops.training.offline.networks import torch_threads
from rlops.training.offline.retrain import (
    RetrainKind,
    RetrainMethod,
    RetrainResult,
    SequentialDiagnostics,
    choose_kind,
)
from rlops.training.offline.transitions import DEFAULT_GAP_SECONDS, Transitions, transitions_from_table

#: Bandit: the target methods, in the order tried after the base ``method``.
BANDIT_METHODS = (BanditMethod.DR, BanditMethod.IPS, BanditMethod.DM)
#: Bandit: ridge penalties tried with every target method, in this order (the fit's default first).
BANDIT_L2 = (1.0, 10.0, 100.0, 0.1)
#: CQL: multiples of the config's ``alpha`` tried at each seed, in this order.
CQL_ALPHA_FACTORS = (1.0, 0.3, 3.0)
#: Behaviour cloning: multiples of the config's ``learning_rate`` tried at each seed, in this order.
BC_LEARNING_RATE_FACTORS = (1.0, 0.3, 3.0)
#: Fewest held-out episodes (or rows) a sequential score accepts: a standard error needs two.
MIN_EVAL_EPISODES = 2


class SweepScore(StrEnum):
    """What a sweep scores its candidates by (see the module docstring); higher is better."""

    DR = "dr"
    WPDIS = "wpdis"
    IMITATION = "imitation"


@dataclass(frozen=True)
class SweepPoint:
    """One candidate's settings. Fields a kind does not sweep are ``None``.

    Attributes:
        index: position in the grid; 0 is the settings a fit without a sweep uses.
        seed: seeds the fit (bandit: the cross-fitting folds, the same for every point).
        method: bandit: the regression targets.
        l2: bandit: the ridge penalty.
        alpha: cql: the conservative term's weight, in reward units.
        learning_rate: bc: Adam's step size.
    """

    index: int
    seed: int
    method: BanditMethod | None = None
    l2: float | None = None
    alpha: float | None = None
    learning_rate: float | None = None

    def settings(self) -> dict[str, Any]:
        """The swept settings by name (``seed`` and the kind's own), JSON-ready."""
        out: dict[str, Any] = {"seed": self.seed}
        for name in ("method", "l2", "alpha", "learning_rate"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.value if isinstance(value, BanditMethod) else value
        return out

    def label(self) -> str:
        """``#1 method=ips l2=1``: the index and what this point sets."""
        parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.settings().items()
                 if k != "seed" or self.method is None]
        return f"#{self.index} " + " ".join(parts)


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's held-out score.

    Attributes:
        point: its settings.
        value: the score (see :class:`SweepScore` for units); higher is better.
        std_error: the score's standard error.
        low: lower end of the ``level`` normal interval, ``value - z * std_error`` (what the winner is chosen by).
        high: upper end.
        n_eval: held-out units the score averages: rows (``dr``) or episodes (``wpdis``, ``imitation``).
        ess: ``dr`` and ``wpdis``: effective sample size of the importance weights (``nan`` for ``imitation``).
    """

    point: SweepPoint
    value: float
    std_error: float
    low: float
    high: float
    n_eval: int
    ess: float


@dataclass(frozen=True)
class SweepResult:
    """What a sweep tried and what it kept.

    Attributes:
        best: the winning candidate, as :func:`retrain_from_table` returns one (fitted on the training part).
        winner: the winner's index in ``candidates``.
        candidates: every candidate's settings and score, in grid order.
        kind: the learner every candidate ran.
        score: what they were scored by.
        level: the confidence level of the intervals.
        holdout: the fraction of the log (rows, or episodes for sequential kinds) held out for scoring.
        reason: one sentence on why the winner won.
    """

    best: RetrainResult
    winner: int
    candidates: tuple[CandidateScore, ...]
    kind: RetrainKind
    score: SweepScore
    level: float
    holdout: float
    reason: str

    def summary(self) -> str:
        """One short line: how many were tried, by what, and which won."""
        c = self.candidates[self.winner]
        return (f"best of {len(self.candidates)} by held-out {self.score.value} lower bound: {c.point.label()} "
                f"({c.low:.4g})")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record: the settings, the rule's outcome and one row per candidate."""
        return {"kind": self.kind.value, "score": self.score.value, "level": self.level, "holdout": self.holdout,
                "winner": self.winner, "reason": self.reason,
                "candidates": [{**c.point.settings(), "index": c.point.index, "value": c.value,
                                "std_error": c.std_error, "low": c.low, "high": c.high, "n_eval": c.n_eval,
                                "ess": c.ess} for c in self.candidates]}


#: ``on_candidate(score, done, total)``: called as each candidate is scored, in any order.
OnCandidate = Callable[[CandidateScore, int, int], None]


def sweep_grid(kind: RetrainKind | str, n: int, *, method: BanditMethod | str = BanditMethod.DR,
               bc: BCConfig | None = None, cql: CQLConfig | None = None, seed: int = 0) -> list[SweepPoint]:
    """The first ``n`` points of a kind's grid (see the module docstring).

    Raises:
        ValidationError: ``n`` < 1, more points than a bandit grid has, ``kind`` auto or unknown, or an unknown
            ``method``.
    """
    kind = _kind(kind)
    if kind is RetrainKind.AUTO:
        raise ValidationError("kind", "the grid needs a resolved kind: bandit, bc or cql")
    if n < 1:
        raise ValidationError("sweep", f"must be >= 1 (the number of candidates), got {n!r}")
    if kind is RetrainKind.BANDIT:
        first = _method(method)
        methods = [first, *(m for m in BANDIT_METHODS if m is not first)]
        grid = [(m, l2) for l2 in BANDIT_L2 for m in methods]
        if n > len(grid):
            raise ValidationError("sweep", f"a bandit sweep has {len(grid)} distinct candidates ({len(methods)} "
                                           f"target methods x {len(BANDIT_L2)} ridge penalties), got {n}")
        return [SweepPoint(i, seed, method=m, l2=l2) for i, (m, l2) in enumerate(grid[:n])]
    if kind is RetrainKind.CQL:
        alpha = (cql or CQLConfig()).alpha
        k = len(CQL_ALPHA_FACTORS)
        return [SweepPoint(i, seed + i // k, alpha=alpha * CQL_ALPHA_FACTORS[i % k]) for i in range(n)]
    rate = (bc or BCConfig()).learning_rate
    k = len(BC_LEARNING_RATE_FACTORS)
    return [SweepPoint(i, seed + i // k, learning_rate=rate * BC_LEARNING_RATE_FACTORS[i % k]) for i in range(n)]


def pick_best(candidates: Sequence[CandidateScore]) -> int:
    """The index of the winner: the highest lower bound, then the highest value, then the lowest grid index.

    A score that is not a number (a candidate that could not be scored) ranks last.

    Raises:
        ValidationError: no candidates.
    """
    if not candidates:
        raise ValidationError("candidates", "are empty: nothing to choose from")

    def key(i: int) -> tuple[float, float, int]:
        c = candidates[i]
        return (c.low if not math.isnan(c.low) else -math.inf, c.value if not math.isnan(c.value) else -math.inf,
                -c.point.index)

    return max(range(len(candidates)), key=key)


def sweep_retrain(
    interactions: pa.Table | JoinResult,
    schema: Schema,
    *,
    sweep: int = 3,
    kind: RetrainKind | str = RetrainKind.AUTO,
    method: BanditMethod | str = BanditMethod.DR,
    epsilon: float = 0.05,
    gap_seconds: float = DEFAULT_GAP_SECONDS,
    holdout: float = 0.3,
    bc: BCConfig | None = None,
    cql: CQLConfig | None = None,
    seed: int = 0,
    level: float = 0.95,
    backend: Backend = Backend.LOCAL,
    workers: int | None = None,
    on_candidate: OnCandidate | None = None,
) -> SweepResult:
    """Fit ``sweep`` candidates on the same interactions, score each on held-out logs, keep the best.

    Args:
        interactions: as :func:`~rlops.training.offline.retrain.retrain_from_table` reads them.
        schema: the deployment's schema.
        sweep: how many grid points to try, >= 1 (bandit: at most 12); default 3.
        kind: ``"auto"`` (default), ``"bandit"``, ``"bc"`` or ``"cql"``, resolved once for every candidate.
        method: bandit: the targets of grid point 0, default ``"dr"`` (the others follow).
        epsilon: exploration of every candidate, in (0, 1], default 0.05 (not swept).
        gap_seconds: the episode gap for sequential kinds, default 1800 s.
        holdout: fraction held out for scoring, in (0, 0.9]: rows (bandit) or episodes (bc, cql); default 0.3.
        bc: the base behaviour-cloning settings (its ``learning_rate`` is swept), default ``BCConfig()``.
        cql: the base CQL settings (its ``alpha`` is swept), default ``CQLConfig()``.
        seed: the base seed: the held-out split, grid point 0's fit, and the first seed of the grid; default 0.
        level: confidence level of the intervals the winner is chosen by, in (0, 1); default 0.95.
        backend: ``local`` (one candidate after another here) or ``ray`` (one task per candidate on Ray actors: a
            private local instance, or the cluster ``$RLOPS_RAY_ADDRESS`` names); the same results either way.
        workers: ``ray``: actors, default the cluster's CPUs (at most one per candidate).
        on_candidate: ``on_candidate(score, done, total)`` as each candidate is scored.

    Raises:
        ValidationError: a setting out of range (named), a kind that does not fit the action space, a holdout that
            leaves too little on either side, or bad interactions.
        DependencyNotInstalled: the Ray backend without Ray installed.
        StorageError: Ray could not start, or one of its actors died.

    Example:
        >>> result = sweep_retrain(engine.interactions("news"), schema, sweep=3, seed=1)  # doctest: +SKIP
        >>> result.summary()  # doctest: +SKIP
        'best of 3 by held-out dr lower bound: #1 method=ips l2=1 (0.4123)'
    """
    if not 0.0 < holdout <= 0.9:
        raise ValidationError("holdout", f"must be in (0, 0.9] (a sweep scores on held-out logs), got {holdout!r}")
    if not 0.0 < level < 1.0:
        raise ValidationError("level", f"must be in (0, 1), got {level!r}")
    table = as_table(interactions)
    kind = _kind(kind)
    reason = f"kind {kind.value!r} was asked for"
    if kind is RetrainKind.AUTO:
        kind, reason = choose_kind(table, schema, gap_seconds)
    points = sweep_grid(kind, sweep, method=method, bc=bc, cql=cql, seed=seed)
    job = _prepare(table, schema, kind, reason, epsilon=epsilon, gap_seconds=gap_seconds, holdout=holdout,
                   bc=bc or BCConfig(), cql=cql or CQLConfig(), seed=seed, level=level)
    results: dict[int, tuple[RetrainResult, CandidateScore]] = {}

    def done(_: int, value: tuple[RetrainResult, CandidateScore]) -> None:
        results[value[1].point.index] = value
        if on_candidate is not None:
            on_candidate(value[1], len(results), len(points))

    if backend is Backend.RAY:
        from rlops.scale import actor_map, ray_session

        with ray_session():
            actor_map(functools.partial(_Trainer, job), "fit", [(p,) for p in points], on_result=done,
                      workers=workers)
    else:
        trainer = _Trainer(job)
        for i, point in enumerate(points):
            done(i, trainer.fit(point))
    candidates = tuple(results[p.index][1] for p in points)
    winner = pick_best(candidates)
    return SweepResult(best=results[winner][0], winner=winner, candidates=candidates, kind=kind,
                       score=job.score, level=level, holdout=holdout,
                       reason=_why(candidates, winner, job.score, level))


# ---- the work of one candidate ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Job:
    """What every candidate trains and is scored on: prepared once, shipped once to each Ray actor."""

    kind: RetrainKind
    reason: str
    schema: Schema
    score: SweepScore
    epsilon: float
    gap_seconds: float
    holdout: float
    seed: int
    z: float
    bc: BCConfig
    cql: CQLConfig
    rows: LoggedRows | None = None  # bandit: every row (each fit holds out the same rows, by ``seed``)
    train: Transitions | None = None  # bc, cql
    test: Transitions | None = None

    @property
    def threads(self) -> int:
        return self.cql.threads if self.kind is RetrainKind.CQL else self.bc.threads


class _Trainer:
    """Fits and scores candidates of one job; one per Ray actor (or one for the local backend)."""

    def __init__(self, job: _Job) -> None:
        self.job = job

    def fit(self, point: SweepPoint) -> tuple[RetrainResult, CandidateScore]:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        # The same thread counts wherever the task runs (a Ray worker's defaults differ from this process's), so
        # the floating-point sums, and with them the weights and scores, are the same on every backend.
        with threadpool_limits(limits=1), torch_threads(self.job.threads):
            if self.job.kind is RetrainKind.BANDIT:
                return self._bandit(point)
            return self._network(point)

    def _bandit(self, point: SweepPoint) -> tuple[RetrainResult, CandidateScore]:
        job = self.job
        assert job.rows is not None and point.method is not None and point.l2 is not None  # built so by _prepare
        fit = fit_bandit_policy(job.rows, job.schema, method=point.method, l2=point.l2, epsilon=job.epsilon,
                                holdout=job.holdout, seed=job.seed)
        d = fit.diagnostics
        assert d.estimate is not None  # evaluate=True
        result = RetrainResult(fit.policy, RetrainMethod(f"bandit-{d.method.value}"), job.reason, d)
        return result, _score(point, d.estimate.value, d.estimate.std_error, d.n_eval_rows, d.ess, job.z)

    def _network(self, point: SweepPoint) -> tuple[RetrainResult, CandidateScore]:
        job = self.job
        assert job.train is not None and job.test is not None  # built so by _prepare
        if job.kind is RetrainKind.CQL:
            assert point.alpha is not None  # a cql grid point
            config = dataclasses.replace(job.cql, seed=point.seed, alpha=point.alpha, epsilon=job.epsilon)
            fit = fit_cql(job.train, job.schema, config)
            value, se, ess = _wpdis(fit.policy, job.test, config.gamma)
            method = RetrainMethod.CQL
        else:
            assert point.learning_rate is not None  # a bc grid point
            bc = dataclasses.replace(job.bc, seed=point.seed, learning_rate=point.learning_rate, epsilon=job.epsilon)
            fit = fit_bc(job.train.state, job.train.action, job.schema, bc, n_episodes=job.train.n_episodes)
            value, se = _imitation(fit.policy, job.test)
            ess, method = math.nan, RetrainMethod.BC
        diagnostics = SequentialDiagnostics(n_rows=fit.n_rows, n_episodes=fit.n_episodes, losses=fit.losses,
                                            warm_start=False, gap_seconds=job.gap_seconds)
        result = RetrainResult(fit.policy, method, job.reason, diagnostics)
        return result, _score(point, value, se, job.test.n_episodes, ess, job.z)


def _score(point: SweepPoint, value: float, se: float, n_eval: int, ess: float, z: float) -> CandidateScore:
    return CandidateScore(point=point, value=float(value), std_error=float(se), low=float(value - z * se),
                          high=float(value + z * se), n_eval=int(n_eval), ess=float(ess))


def _wpdis(policy: MLPPolicy, test: Transitions, gamma: float) -> tuple[float, float, float]:
    """WPDIS of the candidate on the held-out episodes, discounted by the fit's own ``gamma``."""
    data = EpisodeData(episode=test.episode, step=test.step, state=test.state, action=test.action,
                       reward=test.reward, propensity=test.propensity, pi_e=policy.probabilities(test.state))
    # gamma = 0 (a myopic fit) values the first decision's reward only; WPDIS needs a discount > 0, and 1e-12 makes
    # every later step's share vanish.
    estimate = WPDIS(discount=gamma if gamma > 0 else 1e-12).estimate(data)
    return estimate.value, estimate.std_error, estimate.ess


def _imitation(policy: MLPPolicy, test: Transitions) -> tuple[float, float]:
    """Minus the held-out cloning loss per decision, and its standard error over episodes (a ratio estimator)."""
    out = policy.outputs(test.state)
    space = policy.schema.actions
    if isinstance(space, BoxActions):
        low, high = np.asarray(space.low), np.asarray(space.high)
        target = np.clip(2.0 * (test.action - low) / (high - low) - 1.0, -1.0, 1.0)
        loss = np.mean((np.tanh(out) - target) ** 2, axis=1)
    else:
        top = out.max(axis=1)
        log_sum = top + np.log(np.exp(out - top[:, None]).sum(axis=1))
        loss = log_sum - out[np.arange(test.n), test.action.astype(np.int64)]
    per_episode = np.bincount(test.episode, weights=loss)
    steps = np.bincount(test.episode).astype(np.float64)
    mean = float(per_episode.sum() / steps.sum())
    influence = (per_episode - mean * steps) / steps.mean()
    se = float(np.std(influence, ddof=1) / math.sqrt(influence.shape[0])) if influence.shape[0] > 1 else math.inf
    return -mean, se


# ---- preparing the data -----------------------------------------------------------------------------------------


def _kind(kind: RetrainKind | str) -> RetrainKind:
    try:
        return RetrainKind(kind)
    except ValueError as e:
        raise ValidationError("kind", f"expected one of {[k.value for k in RetrainKind]}, got {kind!r}") from e


def _method(method: BanditMethod | str) -> BanditMethod:
    try:
        return BanditMethod(method)
    except ValueError as e:
        raise ValidationError("method", f"expected one of {[m.value for m in BanditMethod]}, got {method!r}") from e


def _prepare(table: pa.Table, schema: Schema, kind: RetrainKind, reason: str, *, epsilon: float, gap_seconds: float,
             holdout: float, bc: BCConfig, cql: CQLConfig, seed: int, level: float) -> _Job:
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    common: dict[str, Any] = {"kind": kind, "reason": reason, "schema": schema, "epsilon": epsilon,
                              "gap_seconds": gap_seconds, "holdout": holdout, "seed": seed, "z": z, "bc": bc,
                              "cql": cql}
    if kind is RetrainKind.BANDIT:  # read and checked here, once: a bad log fails before any worker starts
        if not isinstance(schema.actions, DiscreteActions):
            raise ValidationError("kind", f"'bandit' needs fixed discrete actions, this schema's are "
                                          f"'{schema.actions.type}'; use kind='bc'")
        rows = read_logged(table, schema, min_rows=MIN_ROWS)
        holdout_split(rows.n, holdout, seed)
        return _Job(score=SweepScore.DR, rows=rows, **common)
    if kind is RetrainKind.CQL:
        if not isinstance(schema.actions, DiscreteActions):
            raise ValidationError("kind", f"'cql' needs fixed discrete actions, this schema's are "
                                          f"'{schema.actions.type}'; use kind='bc'")
        steps = transitions_from_table(table, schema, gap_seconds=gap_seconds)
        score = SweepScore.WPDIS
    else:
        if {"unit_id", "ts"} <= set(table.column_names):
            steps = transitions_from_table(table, schema, gap_seconds=gap_seconds)
        else:  # cloning needs no order; a log without units still clones (each row its own episode)
            steps = _rows_as_episodes(table, schema)
        score = SweepScore.IMITATION
    train, test = _split_episodes(steps, holdout, seed)
    return _Job(score=score, train=train, test=test, **common)


def _rows_as_episodes(table: pa.Table, schema: Schema) -> Transitions:
    rows = read_logged(table, schema)
    n = rows.n
    index = np.arange(n, dtype=np.int64)
    return Transitions(state=rows.inputs.x, action=rows.action, reward=rows.reward, next_state=rows.inputs.x,
                       done=np.ones(n, dtype=bool), propensity=rows.propensity, episode=index,
                       step=np.zeros(n, dtype=np.int64), unit_id=index.astype(str).astype(object), row=index)


def _split_episodes(steps: Transitions, holdout: float, seed: int) -> tuple[Transitions, Transitions]:
    """Whole episodes, a seeded ``holdout`` fraction of them held out."""
    n = steps.n_episodes
    n_test = max(1, round(holdout * n))
    if n_test < MIN_EVAL_EPISODES or n - n_test < 1:
        raise ValidationError("holdout", f"leaves {n - n_test} of {n} episodes to fit and {n_test} to score; a "
                                         f"sweep needs at least 1 and {MIN_EVAL_EPISODES}")
    held = np.zeros(n, dtype=bool)
    held[np.random.default_rng(seed).permutation(n)[:n_test]] = True
    return steps.select_episodes(~held), steps.select_episodes(held)


def _why(candidates: Sequence[CandidateScore], winner: int, score: SweepScore, level: float) -> str:
    best = candidates[winner]
    text = (f"{best.point.label()} has the highest {level:.0%} lower bound of its held-out {score.value} score: "
            f"{best.low:.4g} (estimate {best.value:.4g} +- {best.std_error:.2g})")
    others = [c for i, c in enumerate(candidates) if i != winner]
    if not others:
        return text
    second = others[pick_best(others)]
    return f"{text}; next best {second.point.label()}: {second.low:.4g}"
