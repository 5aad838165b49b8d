"""The key numbers of every deployment and policy version, for ``rlops monitor``: computed, typed, not rendered.

One :func:`snapshot` reads the event log once, joins every deployment under its own reward spec
(:func:`rlops.events.join.join`, the join ``Engine.join_all`` does) and summarises per deployment and policy
version:

- **traffic**: served decisions in all and in the last ``window_s`` seconds, and their rate per second;
- **outcomes**: decisions joined with an outcome, given the spec's default reward (window closed without one),
  still pending (window open, no usable outcome yet), and outcomes dead-lettered (expired, backdated, unusable);
- **reward**: mean over every decision with a reward (joined or defaulted, and open ones that already have an
  outcome), with a normal-approximation 95% interval ``mean +- 1.96 * sd / sqrt(n)`` (``sd`` with ``n - 1``);
- **propensities**: the smallest logged propensity and the Kish effective sample size of the inverse-propensity
  weights ``w = 1 / p``, ``(sum w)**2 / sum w**2``, also as a fraction of the decisions (1 when every propensity
  is equal; small when a few rare explorations dominate: off-policy estimates get noisy);
- **actions**: the most chosen actions and their shares;
- **drift**: when the policy version has a registered reference profile, the feature with the largest PSI in the
  last ``window_s`` seconds (the most recent ``drift_rows`` decisions at most; no domain classifier).

Every number is recomputable from the log: ``rlops events stats`` (counts per deployment), ``rlops events export``
(the rows themselves), ``rlops drift report`` (drift).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from rlops.errors import ConfigError, NotFoundError, ValidationError
from rlops.events.join import RewardSource, join
from rlops.events.records import Mode
from rlops.monitoring.drift import DomainClassifier, DriftConfig, Metric, Severity, batch_drift
from rlops.monitoring.reference import RegisteredReference, encode_logged, registered_reference

if TYPE_CHECKING:
    from rlops.engine import Engine
    from rlops.registry import Registry

#: z of a two-sided 95% normal interval.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class RewardStats:
    """Mean reward with a 95% normal-approximation interval (``low``/``high`` are NaN below 2 rewards)."""

    n: int
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class DriftNumbers:
    """The most drifted feature of a recent window against the version's registered reference profile.

    Attributes:
        reference: the registry version whose profile was used (``NAME@VERSION``).
        feature: the feature with the largest PSI.
        psi: its PSI.
        severity: the worst severity over all features (and the actions).
        rows: live decisions compared.
        features: ``(feature, PSI)`` of every feature, in schema order.
    """

    reference: str
    feature: str
    psi: float
    severity: Severity
    rows: int
    features: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class VersionNumbers:
    """One deployment's numbers for one policy version (see the module docstring for each definition).

    Attributes:
        deployment: the deployment.
        policy_version: the version decisions were attributed to (``NAME@rN``).
        live: it is the deployment's live revision.
        decisions: served decisions of this version.
        recent: those made in the last ``window_s`` seconds.
        rate_per_s: ``recent / window_s``.
        joined: decisions with a usable outcome.
        defaulted: decisions whose window closed without one (given the spec's default reward).
        pending: decisions whose window is open and that have no usable outcome yet.
        dead_letters: outcomes of this version's decisions that could not count.
        reward: mean reward and its 95% interval (``None`` with no reward yet).
        min_propensity: smallest logged propensity (``None`` with no decisions).
        ess: Kish effective sample size of the weights ``1 / propensity``.
        ess_fraction: ``ess / decisions``.
        top_actions: up to three ``(action, share of decisions)``, most chosen first.
        drift: the top drift against the registered reference, when there is one and enough recent decisions.
    """

    deployment: str
    policy_version: str
    live: bool
    decisions: int
    recent: int
    rate_per_s: float
    joined: int
    defaulted: int
    pending: int
    dead_letters: int
    reward: RewardStats | None
    min_propensity: float | None
    ess: float | None
    ess_fraction: float | None
    top_actions: tuple[tuple[str, float], ...]
    drift: DriftNumbers | None


@dataclass(frozen=True)
class MonitorSnapshot:
    """Every deployment's numbers at one moment.

    Attributes:
        as_of_us: the moment, microseconds since the epoch.
        window_s: the recent window, seconds.
        rows: per deployment, per policy version (live revision first, then newest first).
    """

    as_of_us: int
    window_s: float
    rows: tuple[VersionNumbers, ...]


def reward_stats(rewards: npt.NDArray[np.float64]) -> RewardStats | None:
    """Mean and 95% normal interval of ``rewards`` (``None`` when empty)."""
    n = int(rewards.size)
    if n == 0:
        return None
    mean = float(rewards.mean())
    if n < 2:
        return RewardStats(n, mean, math.nan, math.nan)
    half = Z95 * float(rewards.std(ddof=1)) / math.sqrt(n)
    return RewardStats(n, mean, mean - half, mean + half)


def effective_sample_size(propensities: npt.NDArray[np.float64]) -> float:
    """Kish effective sample size of the weights ``1 / p``: ``(sum w)**2 / sum w**2``."""
    weights = 1.0 / propensities
    return float(weights.sum() ** 2 / (weights**2).sum())


class ReferenceCache:
    """Registered reference profiles per policy version, looked up once (a refreshing monitor asks every time).

    Args:
        registry: the home's registry (``None``: drift is not computed).
    """

    def __init__(self, registry: Registry | None) -> None:
        self.registry = registry
        self._found: dict[tuple[str, str], RegisteredReference | None] = {}

    def get(self, engine: Engine, deployment: str, policy_version: str) -> RegisteredReference | None:
        """The profile registered with the policy ``policy_version`` of ``deployment`` served, if any."""
        if self.registry is None:
            return None
        key = (deployment, policy_version)
        if key not in self._found:
            folder = None
            for revision in engine.store.history(deployment):
                # Revisions with several arms list each arm's version and folder; older ones have one policy.
                arms = revision.spec.get("arms") or [{"version": revision.policy_version,
                                                      "folder": revision.spec.get("policy_folder")}]
                for arm in arms:
                    if arm.get("version") == policy_version and arm.get("folder"):
                        folder = arm["folder"]
            try:
                self._found[key] = registered_reference(self.registry, folder, policy_version)
            except (ConfigError, NotFoundError):
                self._found[key] = None  # a tampered or vanished version is no reference; `rlops models verify`
        return self._found[key]


def snapshot(engine: Engine, deployments: Sequence[str] | None = None, *, window_s: float = 60.0,
             as_of_us: int | None = None, references: ReferenceCache | None = None,
             drift_rows: int = 5000, config: DriftConfig | None = None,
             tables: tuple[pa.Table, pa.Table] | None = None) -> MonitorSnapshot:
    """The key numbers of ``deployments`` (default: all), per policy version.

    Args:
        engine: an engine on the home folder.
        deployments: names to show (default: every deployment).
        window_s: the recent window for traffic and drift, seconds (> 0, default 60).
        as_of_us: "now", microseconds since the epoch (default: the clock); decides which attribution windows
            have closed and what is recent.
        references: registered profiles to compute drift against (default: none, no drift).
        drift_rows: most recent decisions of the window compared for drift, >= 1 (default 5000).
        config: drift thresholds (default :class:`DriftConfig()`; the domain classifier is never run here).
        tables: the log's decisions and outcomes, when the caller has read them already (default: read now).

    Raises:
        NotFoundError: an unknown deployment.
        ValidationError: a bad ``window_s`` or ``drift_rows``.
    """
    from rlops.engine.engine import now_us

    if not (isinstance(window_s, int | float) and math.isfinite(window_s) and window_s > 0):
        raise ValidationError("window", f"must be a positive number of seconds, got {window_s!r}")
    if isinstance(drift_rows, bool) or not isinstance(drift_rows, int) or drift_rows < 1:
        raise ValidationError("drift_rows", f"must be an integer >= 1, got {drift_rows!r}")
    names = list(engine.store.names() if deployments is None else deployments)
    revisions = {name: engine.store.latest(name) for name in names}  # NotFoundError names an unknown one
    specs = {name: revision.deployment_spec() for name, revision in revisions.items()}
    now = now_us() if as_of_us is None else as_of_us
    decisions, outcomes = tables if tables is not None else (engine.log.read_decisions(), engine.log.read_outcomes())
    quick = (config or DriftConfig()).model_copy(update={"domain_classifier": DomainClassifier.NONE})
    rows: list[VersionNumbers] = []
    for name in names:
        spec = specs[name]
        result = join(decisions, outcomes, spec.reward, deployment=name, window_seconds=spec.window_seconds,
                      as_of_us=now, include_pending=True)
        mask = pc.and_(pc.equal(decisions["deployment"], name), pc.equal(decisions["mode"], Mode.SERVED.value))
        served = decisions.filter(mask)
        versions = _by_version(served)
        window_us = round(spec.window_seconds * 1e6)
        dead_version = _dead_letter_versions(served, result.dead_letters)
        inter = result.interactions
        inter_version = np.asarray(inter["policy_version"].to_pylist(), dtype=object)
        inter_source = np.asarray(inter["reward_source"].to_pylist(), dtype=object)
        inter_open = ~np.asarray(inter["window_closed"].to_numpy(zero_copy_only=False), dtype=bool)
        inter_reward = np.asarray(inter["reward"].to_numpy(zero_copy_only=False), dtype=np.float64)
        live_version = revisions[name].policy_version
        order = sorted(versions, key=lambda v: (v != live_version, -versions[v]["last_ts"]))
        if live_version not in versions:
            order.insert(0, live_version)
        for version in order:
            pick = versions.get(version)
            mine = inter_version == version
            if pick is None:
                rows.append(VersionNumbers(name, version, True, 0, 0, 0.0, 0, 0, 0, 0, None, None, None, None, (),
                                           None))
                continue
            ts, propensity, actions = pick["ts"], pick["propensity"], pick["actions"]
            recent_mask = ts >= now - round(window_s * 1e6)
            recent = int(recent_mask.sum())
            open_now = int((ts + window_us > now).sum())
            ess = effective_sample_size(propensity)
            counts = Counter(actions.tolist())
            n = int(ts.size)
            drift = None
            if references is not None and recent >= quick.min_rows:
                found = references.get(engine, name, version)
                if found is not None:
                    table = pick["table"].filter(pa.array(recent_mask))
                    table = table.slice(max(0, table.num_rows - drift_rows))
                    drift = _top_drift(found, table, spec.schema_, quick)
            rows.append(VersionNumbers(
                deployment=name, policy_version=version, live=version == live_version, decisions=n, recent=recent,
                rate_per_s=recent / window_s,
                joined=int((mine & (inter_source == RewardSource.OUTCOME.value)).sum()),
                defaulted=int((mine & (inter_source == RewardSource.DEFAULT.value)).sum()),
                pending=open_now - int((mine & inter_open).sum()),
                dead_letters=int(dead_version.get(version, 0)),
                reward=reward_stats(inter_reward[mine]),
                min_propensity=float(propensity.min()), ess=ess, ess_fraction=ess / n,
                top_actions=tuple((str(a), c / n) for a, c in counts.most_common(3)), drift=drift))
    return MonitorSnapshot(now, float(window_s), tuple(rows))


def _by_version(served: pa.Table) -> dict[str, dict[str, Any]]:
    """Per policy version: its rows, decision times, propensities, actions and latest time."""
    out: dict[str, dict[str, Any]] = {}
    if served.num_rows == 0:
        return out
    version = served["policy_version"].combine_chunks()
    for v in pc.unique(version).to_pylist():
        table = served.filter(pc.equal(version, v))
        ts = np.asarray(pc.cast(table["ts"], pa.int64()).to_numpy(), dtype=np.int64)
        out[str(v)] = {"table": table, "ts": ts, "last_ts": int(ts.max()),
                       "propensity": np.asarray(table["propensity"].to_numpy(zero_copy_only=False), dtype=np.float64),
                       "actions": np.asarray(table["action"].to_pylist(), dtype=object)}
    return out


def _dead_letter_versions(served: pa.Table, dead: pa.Table) -> Counter[str]:
    """Dead-lettered outcomes per policy version of their decision."""
    if dead.num_rows == 0:
        return Counter()
    version_of = dict(zip(served["decision_id"].to_pylist(), served["policy_version"].to_pylist(), strict=True))
    return Counter(version_of[d] for d in dead["decision_id"].to_pylist() if d in version_of)


def _top_drift(found: RegisteredReference, table: pa.Table, schema: Any, config: DriftConfig) -> DriftNumbers | None:
    profile = found.profile
    if tuple(profile.columns) != tuple(schema.column_names):
        return None
    try:
        report = batch_drift(profile, encode_logged(table, schema), config=config)
    except ValidationError:
        return None
    top = max(report.features, key=lambda f: f.value(Metric.PSI), default=None)
    if top is None:
        return None
    return DriftNumbers(str(found.ref), top.name, top.value(Metric.PSI), report.severity, report.n_live,
                        tuple((f.name, f.value(Metric.PSI)) for f in report.features))
