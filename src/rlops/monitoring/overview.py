"""What the monitoring dashboard shows, computed from one home folder: typed models, no HTML.

:func:`build_overview` reads the event log once (decisions and outcomes), joins each deployment's decisions with
their outcomes under its reward spec, and computes, per deployment:

- its **arms** (production, canary, shadow, holdout) with their policy versions, traffic shares and, when a
  version is a registered one, its registry stage;
- **reward over time** per policy version: the mean reward of the decisions made in each time bucket with a
  normal 95% confidence interval ``mean ± 1.96 · sd / sqrt(n)`` (``sd`` with ``n - 1``);
- **canary vs production**: each arm's mean reward and interval over the whole window, and the sequential
  guardrail's verdict (:mod:`rlops.rollout.guardrails`, default config) on the canary against production;
- a **drift heatmap**: the PSI of each context feature in each time bucket against a reference (the registry's
  reference profile of the production version when there is one, else the deployment's earliest decisions);
- the **action distribution** per policy version.

Next to the deployments: **alerts** (from :mod:`rlops.monitoring.alerts` when it is installed), **validation
reports** (``report.json`` files under the home folder and the ones stored with registered versions) and **model
cards** (registered versions: stage, lineage, gates, stage history, and their model cards' intended use, size,
training data, estimates, stress results and known limitations from :mod:`rlops.explain.model_card`).

Every number is recomputable from the event log; ``docs/dashboard.md`` says how for each panel.

Example:
    >>> from rlops.engine import Engine
    >>> with Engine("/tmp/rlops-home") as engine:                    # doctest: +SKIP
    ...     overview = build_overview(engine, window_s=3600)
    ...     overview.deployments[0].rewards[0].points[-1].mean
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
from pydantic import BaseModel, ConfigDict

from rlops.engine import DeploymentSpec, Engine
from rlops.errors import RlopsError
from rlops.events import Mode
from rlops.events.join import join
from rlops.monitoring.drift.config import DriftConfig
from rlops.monitoring.drift.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from rlops.monitoring.drift.statistics import psi
from rlops.registry import ModelRef, Registry, Transition, VersionDetails
from rlops.rollout.operations import Rollout
from rlops.schema import BoolFeature, CategoricalFeature, Schema
from rlops.schema.features import FloatFeature, IntFeature, VectorFeature

#: Most time buckets a chart shows; the bucket width is the smallest of :data:`BUCKET_WIDTHS_S` that fits.
MAX_BUCKETS = 30
#: Bucket widths, seconds: round numbers, so buckets start on the minute, the hour, the day (UTC).
BUCKET_WIDTHS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
                   172800, 604800, 2592000)
#: The normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054
#: Registered versions shown as model cards (the newest ones); each is verified when shown.
MAX_CARDS = 20
#: Rollout changes shown per deployment (the newest ones).
MAX_CHANGES = 10
#: Alerts shown (the newest ones).
MAX_ALERTS = 100
#: How deep under the home folder ``report.json`` files are looked for, and which folders are not searched.
REPORT_DEPTH = 4
_SKIP_FOLDERS = frozenset({"events", "registry", "keys", "deployments", "logs"})
_MAX_REPORTS = 50


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


# ---- the models (the JSON of GET /v1/dashboard) ---------------------------------------------------------------------


class RewardPoint(_Model):
    """One time bucket of one version's rewards.

    Attributes:
        start_us: the bucket's start, microseconds since the epoch (UTC); it lasts ``bucket_us``.
        n: decisions made in the bucket that have a reward.
        mean: their mean reward.
        low: ``mean - 1.96 · sd / sqrt(n)``; ``None`` when ``n < 2``.
        high: ``mean + 1.96 · sd / sqrt(n)``; ``None`` when ``n < 2``.
    """

    start_us: int
    n: int
    mean: float
    low: float | None
    high: float | None


class RewardSeries(_Model):
    """A policy version's reward over time (only buckets with rewards)."""

    policy_version: str
    points: list[RewardPoint]


class Arm(_Model):
    """One arm of a deployment's traffic split.

    Attributes:
        role: ``production``, ``canary``, ``shadow`` or ``holdout``.
        policy_version: the version it serves (or logs, for a shadow).
        fraction: its share of units (0 for a shadow, which serves nobody).
        registry_ref: ``NAME@VERSION`` when the version is a registered one.
        registry_stage: that version's stage in the registry.
        decisions: decisions it made in the window (shadow decisions for a shadow arm, served ones otherwise).
    """

    role: str
    policy_version: str
    fraction: float
    registry_ref: str | None
    registry_stage: str | None
    decisions: int


class ArmReward(_Model):
    """An arm's reward over the whole window: ``mean`` with its 95% interval (``None`` without rewards)."""

    role: str
    policy_version: str
    decisions: int
    rewarded: int
    mean: float | None
    low: float | None
    high: float | None


class GuardrailState(_Model):
    """The sequential guardrail's verdict on the canary against production (see :mod:`rlops.rollout.guardrails`).

    Attributes:
        decision: ``continue``, ``rollback`` or ``promote``.
        reason: the guardrail's sentence with the numbers.
        n_canary: canary rewards it saw.
        n_production: production rewards it saw.
        difference: canary mean minus production mean.
        low: lower end of the difference's confidence sequence.
        high: its upper end.
        source: how it was obtained.
    """

    decision: str
    reason: str
    n_canary: int
    n_production: int
    difference: float | None
    low: float | None
    high: float | None
    source: str


class Comparison(_Model):
    """Canary vs production (and any other arm): rewards per arm, and the guardrail when there is a canary."""

    arms: list[ArmReward]
    guardrail: GuardrailState | None
    note: str | None


class DriftRow(_Model):
    """One feature's PSI per time bucket (``None``: fewer rows than ``min_rows`` in that bucket)."""

    feature: str
    kind: str
    psi: list[float | None]


class DriftHeatmap(_Model):
    """PSI of each context feature in each time bucket against a reference.

    Attributes:
        reference: what the buckets are compared with, in words.
        reference_rows: rows of the reference.
        reference_start_us: time of the reference's first decision (``None`` for a registry profile).
        reference_end_us: time of its last decision.
        rows: served decisions per bucket (the buckets are the deployment's ``buckets``).
        features: one row per feature (one per element of a vector feature).
        warn: the PSI above which a cell is a warning (the drift config's).
        alert: the PSI above which a cell is an alert.
        min_rows: buckets with fewer rows get no PSI.
        note: why there is no heatmap, when there is none.
    """

    reference: str
    reference_rows: int
    reference_start_us: int | None
    reference_end_us: int | None
    rows: list[int]
    features: list[DriftRow]
    warn: float | None
    alert: float | None
    min_rows: int
    note: str | None


class ActionCount(_Model):
    action: str
    count: int
    share: float


class ActionDistribution(_Model):
    """How often a version chose each action in the window (served and shadow decisions alike)."""

    policy_version: str
    decisions: int
    actions: list[ActionCount]


class ChangeView(_Model):
    """One rollout change of a deployment (``rlops deploy history``): what, which version, who and why."""

    ts_us: int
    revision: int
    action: str
    version: str | None
    actor: str
    reason: str


class DeploymentOverview(_Model):
    """Everything the dashboard shows about one deployment.

    Attributes:
        name: the deployment.
        revision: its live revision.
        policy: the policy's kind, or the folder it was loaded from.
        reward_spec: ``NAME@VERSION`` of its reward spec.
        decisions: decisions in the window (served and shadow).
        rewarded: served decisions in the window with a reward (joined, or the spec's default after the window).
        bucket_us: width of the time buckets, microseconds.
        buckets: start of each bucket, microseconds since the epoch (UTC), oldest first.
        arms: the traffic split.
        rewards: reward over time per policy version.
        comparison: canary vs production.
        drift: the drift heatmap.
        actions: the action distribution per version.
        changes: its latest rollout changes, oldest first.
    """

    name: str
    revision: int
    policy: str
    reward_spec: str
    decisions: int
    rewarded: int
    bucket_us: int
    buckets: list[int]
    arms: list[Arm]
    rewards: list[RewardSeries]
    comparison: Comparison
    drift: DriftHeatmap
    actions: list[ActionDistribution]
    changes: list[ChangeView]


class AlertView(_Model):
    """One stored alert (see :class:`rlops.monitoring.alerts.AlertRecord`).

    Attributes:
        id: the alert's id.
        rule: the rule that fired.
        severity: the rule's severity.
        state: ``firing`` or ``resolved``.
        deployment: its ``deployment`` label.
        message: what happened, in one line.
        value: the signal's value when it fired.
        threshold: the rule's threshold.
        fired_at_us: when it fired, microseconds since the epoch.
        resolved_at_us: when it resolved (``None`` while firing).
    """

    id: int
    rule: str
    severity: str
    state: str
    deployment: str | None
    message: str
    value: float | None
    threshold: float | None
    fired_at_us: int
    resolved_at_us: int | None


class AlertsPanel(_Model):
    """Alerts, newest first; ``available`` is false when no alerts store is installed."""

    available: bool
    note: str | None
    alerts: list[AlertView]


class GateView(_Model):
    name: str
    status: str
    reason: str


class ValidationReportView(_Model):
    """One validation report (what ``rlops validate`` writes as ``report.json``).

    Attributes:
        source: ``file`` (a ``report.json`` under the home folder) or ``registry`` (stored with a version).
        location: its path relative to the home folder, or the version's ``NAME@VERSION``.
        status: the overall verdict (``pass``, ``warn``, ``fail``, ``skip``).
        policy_kind: the validated policy's kind.
        policy_hash: the start of its content hash.
        command: the command that made it, when recorded.
        modified_us: when the file was written (files only).
        gates: each gate's verdict.
    """

    source: str
    location: str
    status: str
    policy_kind: str | None
    policy_hash: str | None
    command: str | None
    modified_us: int | None
    gates: list[GateView]


class TransitionView(_Model):
    from_stage: str | None
    to_stage: str
    actor: str
    reason: str
    at_us: int


class CardEstimate(_Model):
    """One off-policy estimate of a version's value on its validation data, with its interval (``level``: e.g.
    0.95; ``None`` when the report does not say)."""

    name: str
    value: float | None
    low: float | None
    high: float | None
    level: float | None


class CardStress(_Model):
    """One stress variation of a version's validation: its mean episode return and interval, the baseline's, the
    difference (candidate minus baseline) with its interval, and its constraint violations per step."""

    variation: str
    mean_return: float | None
    low: float | None
    high: float | None
    baseline: float | None
    difference: float | None
    difference_low: float | None
    difference_high: float | None
    violation_rate: float | None


class ModelCard(_Model):
    """A registered version: what it is, where it came from, what its gates said, how it moved, and the content of its
    model card (:mod:`rlops.explain.model_card`; ``rlops models card NAME@VERSION`` writes the whole card).

    Attributes:
        ref: ``NAME@VERSION``.
        stage: its current stage.
        kind: the policy kind.
        content_hash: the start of its content hash.
        created_at_us: when it was registered.
        actor: who registered it.
        verified: its signature and files check out (the report and gates are shown only then).
        problem: why it did not verify.
        lineage: training data, reward spec, scenario, parent, rlops version and commit.
        report_status: its validation report's verdict (``None``: registered without one).
        gates: the report's gates.
        history: its stage changes, oldest first.
        intended_use: what it is for (declared in its ``card.yaml``, else derived); ``intended_use_declared``.
        owners: the registering user, then the declared owners.
        architecture: one line: kind, actions, features, parameter count, files and bytes.
        training_data: one line: source, period, size, reward spec.
        estimates: the off-policy estimates of its report, then the logging policy's own value.
        stress: the stress variations of its report.
        limitations: its known limitations, declared ones first.
        card_problem: why the card's content could not be computed (the rest is still shown).
    """

    ref: str
    stage: str
    kind: str
    content_hash: str
    created_at_us: int
    actor: str
    verified: bool
    problem: str | None
    lineage: dict[str, str | int | None]
    report_status: str | None
    gates: list[GateView]
    history: list[TransitionView]
    intended_use: str | None = None
    intended_use_declared: bool = False
    owners: list[str] = []
    architecture: str | None = None
    training_data: str | None = None
    estimates: list[CardEstimate] = []
    stress: list[CardStress] = []
    limitations: list[str] = []
    card_problem: str | None = None


class Overview(_Model):
    """The whole dashboard.

    Attributes:
        generated_at_us: when it was computed ("now" for the reward join), microseconds since the epoch.
        window_s: how far back it looks, seconds (``None``: the whole log).
        deployments: one entry per deployment shown.
        alerts: the alerts panel.
        validation_reports: report files under the home folder, then reports stored in the registry.
        model_cards: registered versions, newest first.
        compute_ms: how long computing it took.
    """

    generated_at_us: int
    window_s: float | None
    deployments: list[DeploymentOverview]
    alerts: AlertsPanel
    validation_reports: list[ValidationReportView]
    model_cards: list[ModelCard]
    compute_ms: float

    def visible_to(self, covers: Callable[[str], bool]) -> Overview:
        """What a caller restricted to some deployments may see: those deployments and their alerts; no
        validation reports or model cards (the registry is not about one deployment)."""
        shown = [a for a in self.alerts.alerts if a.deployment is not None and covers(a.deployment)]
        alerts = self.alerts.model_copy(update={"alerts": shown})
        return self.model_copy(update={"deployments": [d for d in self.deployments if covers(d.name)],
                                       "alerts": alerts, "validation_reports": [], "model_cards": []})


# ---- arms ---------------------------------------------------------------------------------------------------------


def deployment_arms(engine: Engine, name: str) -> list[tuple[str, str, float]]:
    """``(role, policy_version, fraction)`` of each arm of ``name``, production first.

    What this process serves (:meth:`Engine.arms`); when the deployment's policies do not load here, the arms its
    live revision declares.
    """
    try:
        return [(str(a.role), a.policy_version, a.fraction) for a in engine.arms(name)]
    except RlopsError:
        return [(str(a["role"]), str(a["version"]), float(a["fraction"])) for a in engine.store.latest(name).arms]


# ---- small numeric helpers -------------------------------------------------------------------------------------------


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _ts_us(column: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.int64]:
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def mean_interval(values: npt.NDArray[np.float64]) -> tuple[float, float | None, float | None]:
    """``(mean, low, high)``: the mean with the normal 95% interval ``mean ± 1.96 · sd / sqrt(n)`` (``sd`` with
    ``n - 1``); no interval for fewer than two values."""
    n = values.size
    mean = float(values.mean())
    if n < 2:
        return mean, None, None
    half = Z95 * float(values.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def bucket_width_us(start_us: int, end_us: int) -> int:
    """The smallest of :data:`BUCKET_WIDTHS_S` that covers ``[start_us, end_us]`` in at most :data:`MAX_BUCKETS`
    aligned buckets, microseconds."""
    for seconds in BUCKET_WIDTHS_S:
        width = seconds * 1_000_000
        if end_us // width - start_us // width + 1 <= MAX_BUCKETS:
            return width
    return BUCKET_WIDTHS_S[-1] * 1_000_000


# ---- contexts --------------------------------------------------------------------------------------------------------


def _arrow_type(feature: Any) -> pa.DataType:
    if isinstance(feature, FloatFeature | IntFeature):
        return pa.float64()
    if isinstance(feature, BoolFeature):
        return pa.bool_()
    if isinstance(feature, CategoricalFeature):
        return pa.string()
    if isinstance(feature, VectorFeature):
        return pa.list_(pa.float64())
    raise TypeError(f"no columnar encoding for {type(feature).__name__}")


def _encode_columnar(schema: Schema, contexts: Sequence[str]) -> npt.NDArray[np.float64]:
    n = len(contexts)
    fields = [pa.field(f.name, _arrow_type(f)) for f in schema.features]
    options = pa_json.ParseOptions(explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore")
    table = pa_json.read_json(pa.BufferReader("\n".join(contexts).encode()), parse_options=options)
    if table.num_rows != n:
        raise ValueError(f"parsed {table.num_rows} contexts out of {n}")
    out = np.empty((n, schema.width), dtype=np.float64)
    column = 0
    for feature in schema.features:
        values = table[feature.name]
        if values.null_count:
            raise ValueError(f"{feature.name}: missing in some contexts")
        if isinstance(feature, CategoricalFeature):
            index = pc.index_in(values, value_set=pa.array(feature.vocabulary, pa.string()))
            if index.null_count:
                if feature.unknown != "other":
                    raise ValueError(f"{feature.name}: a value outside the vocabulary")
                index = pc.fill_null(index, len(feature.vocabulary))
            block = np.zeros((n, feature.width))
            block[np.arange(n), np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int64)] = 1.0
            out[:, column:column + feature.width] = block
        elif isinstance(feature, VectorFeature):
            lengths = pc.list_value_length(values)
            if pc.min(lengths).as_py() != feature.size or pc.max(lengths).as_py() != feature.size:
                raise ValueError(f"{feature.name}: a vector of another size")
            flat = pc.list_flatten(values).to_numpy(zero_copy_only=False)
            out[:, column:column + feature.size] = np.asarray(flat, dtype=np.float64).reshape(n, feature.size)
        else:
            out[:, column] = np.asarray(pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False))
        column += feature.width
    return out


def encode_contexts(schema: Schema, contexts: Sequence[str]) -> npt.NDArray[np.float64]:
    """The log's JSON contexts encoded as :meth:`Schema.encode` encodes them, ``(n, schema.width)``.

    Parses all of them at once with Arrow (fast); contexts Arrow cannot take column by column are decoded one by
    one and encoded by the schema itself.

    Raises:
        KeyError, ValueError, TypeError: a context does not fit the schema (it was logged under another one).
    """
    if not contexts:
        return np.empty((0, schema.width), dtype=np.float64)
    try:
        return _encode_columnar(schema, contexts)
    except (pa.ArrowException, ValueError, TypeError):
        return schema.encode([orjson.loads(c) for c in contexts])


# ---- drift -----------------------------------------------------------------------------------------------------------


def _bucket_psi(profile: ReferenceProfile, matrix: npt.NDArray[np.float64], bucket: npt.NDArray[np.int64],
                n_buckets: int, config: DriftConfig) -> list[DriftRow]:
    """PSI of every feature of ``profile`` in every bucket, binned as :func:`batch_drift` bins."""
    rows_per = np.bincount(bucket, minlength=n_buckets)
    enough = rows_per >= config.min_rows
    out: list[DriftRow] = []
    for feature in profile.features:
        if isinstance(feature, NumericProfile):
            bins = np.searchsorted(feature.edges, matrix[:, feature.column], side="left")
            width = feature.edges.size + 1
            counts = np.bincount(bucket * width + bins, minlength=n_buckets * width).reshape(n_buckets, width)
            reference = feature.counts
        else:
            assert isinstance(feature, CategoricalProfile)
            if feature.is_bool:
                true = np.bincount(bucket, weights=matrix[:, feature.columns[0]], minlength=n_buckets)
                counts = np.rint(np.stack([rows_per - true, true], axis=1)).astype(np.int64)
            else:
                counts = np.rint(np.stack([np.bincount(bucket, weights=matrix[:, c], minlength=n_buckets)
                                           for c in feature.columns], axis=1)).astype(np.int64)
            reference = feature.counts
        values: list[float | None] = [
            _finite(psi(reference, counts[b], config.psi_epsilon)) if enough[b] and counts[b].sum() > 0 else None
            for b in range(n_buckets)]
        out.append(DriftRow(feature=feature.name, kind=feature.kind.value, psi=values))
    return out


def _registry_profile(registry: Registry | None, ref: ModelRef | None) -> ReferenceProfile | None:
    """The registry's reference profile of ``ref``, when the registry stores them (``Registry.reference``)."""
    reference: Callable[[str, int], ReferenceProfile | None] | None = getattr(registry, "reference", None)
    if reference is None or ref is None or ref.version is None:
        return None
    try:
        return reference(ref.name, ref.version)
    except (RlopsError, OSError, ValueError):
        return None


def _drift(schema: Schema, mine: pa.Table, mine_ts: npt.NDArray[np.int64], shown: npt.NDArray[np.bool_],
           origin: int, width: int, n_buckets: int, profile: ReferenceProfile | None, profile_label: str,
           config: DriftConfig) -> DriftHeatmap:
    warn, alert = config.psi.warn, config.psi.alert

    def empty(note: str, rows: list[int] | None = None) -> DriftHeatmap:
        return DriftHeatmap(reference="", reference_rows=0, reference_start_us=None, reference_end_us=None,
                            rows=rows or [0] * n_buckets, features=[], warn=warn,
                            alert=alert, min_rows=config.min_rows, note=note)

    served = pc.equal(mine["mode"], Mode.SERVED.value).to_numpy(zero_copy_only=False)
    window_rows = np.flatnonzero(served & shown)
    if window_rows.size == 0:
        return empty("no data yet")
    contexts = mine["context"]
    try:
        matrix = encode_contexts(schema, contexts.take(pa.array(window_rows)).to_pylist())
    except (KeyError, ValueError, TypeError):
        return empty("the logged contexts do not fit the deployment's current schema")
    bucket = (mine_ts[window_rows] - origin) // width
    rows = np.bincount(bucket, minlength=n_buckets).tolist()
    reference_text, first, end = profile_label, None, None
    if profile is None or list(profile.columns) != schema.column_names:
        # The deployment's earliest served decisions: its first bucket's worth, and at least min_rows of them.
        all_served = np.flatnonzero(served)
        order = all_served[np.argsort(mine_ts[all_served], kind="stable")]
        first = int(mine_ts[order[0]])
        take = max(int(np.searchsorted(mine_ts[order], first + width, side="left")), config.min_rows)
        picked = order[:take]
        if picked.size < 2:
            return empty("too few decisions for a reference", rows)
        try:
            reference_matrix = encode_contexts(schema, contexts.take(pa.array(picked)).to_pylist())
        except (KeyError, ValueError, TypeError):
            return empty("the earliest contexts do not fit the deployment's current schema", rows)
        profile = ReferenceProfile.build(schema, reference_matrix, row_sample_size=0)
        end = int(mine_ts[picked].max())
        reference_text = f"the earliest {picked.size} served decisions"
    features = _bucket_psi(profile, matrix, bucket, n_buckets, config)
    return DriftHeatmap(reference=reference_text, reference_rows=profile.n_rows, reference_start_us=first,
                        reference_end_us=end, rows=rows, features=features,
                        warn=warn, alert=alert, min_rows=config.min_rows, note=None)


# ---- one deployment -----------------------------------------------------------------------------------------------


def registry_ref(version: str) -> ModelRef | None:
    """The registered version a policy version names (``MODEL@N``), or ``None`` (``NAME@rN``: not registered)."""
    _, sep, number = version.partition("@")
    if not sep or not number.isdigit():
        return None
    try:
        return ModelRef.parse(version)
    except RlopsError:
        return None


def _stage(registry: Registry | None, ref: ModelRef | None) -> str | None:
    if registry is None or ref is None:
        return None
    try:
        return registry.get(ref.name, ref.version).stage.value
    except RlopsError:
        return None


def _guardrail(engine: Engine, name: str) -> tuple[GuardrailState | None, str | None]:
    """The guardrail's verdict on the canary, as ``rlops deploy check`` reaches it (without acting on it)."""
    try:
        canary, _, result = Rollout(engine).judge(name)
    except RlopsError as e:
        return None, f"the guardrail could not judge the canary: {e}"
    if canary is None or result is None:
        return None, "no canary arm: production serves every unit"
    reward = next((m for m in result.metrics if m.metric == "reward"), result.metrics[0])
    return GuardrailState(decision=result.decision.value, reason=result.reason, n_canary=reward.n_canary,
                          n_production=reward.n_production, difference=_finite(reward.difference.estimate),
                          low=_finite(reward.difference.lower), high=_finite(reward.difference.upper),
                          source="the canary's interactions since it started, replayed to the deployment's "
                                 "guardrail (rlops.rollout.Rollout.judge)"), None


def _overview_of(engine: Engine, name: str, decisions: pa.Table, outcomes: pa.Table, since_us: int | None,
                 now_us: int, registry: Registry | None, config: DriftConfig) -> DeploymentOverview:
    revision = engine.store.latest(name)
    spec: DeploymentSpec = revision.deployment_spec()  # no policy load: a broken policy still gets its dashboard
    mine = decisions.filter(pc.equal(decisions["deployment"], name))
    mine_ts = _ts_us(mine["ts"])
    shown = np.ones(mine.num_rows, dtype=bool) if since_us is None else mine_ts >= since_us
    recent = mine.filter(pa.array(shown))
    recent_ts = mine_ts[shown]

    start = since_us if since_us is not None else (int(recent_ts.min()) if recent_ts.size else now_us)
    end = now_us if since_us is not None else (int(recent_ts.max()) if recent_ts.size else now_us)
    if recent_ts.size:  # a decision stamped after "now" (another clock) still gets a bucket
        end = max(end, int(recent_ts.max()))
    width = bucket_width_us(start, end)
    origin = start // width * width
    n_buckets = int((end - origin) // width + 1)
    buckets = [origin + i * width for i in range(n_buckets)]

    joined = join(recent, outcomes, spec.reward, deployment=name, window_seconds=spec.window_seconds,
                  as_of_us=now_us, include_pending=True).interactions
    j_version = np.asarray(joined["policy_version"].to_numpy(zero_copy_only=False), dtype=object)
    j_reward = np.asarray(joined["reward"].to_numpy(zero_copy_only=False), dtype=np.float64)
    j_bucket = (_ts_us(joined["ts"]) - origin) // width

    rewards: list[RewardSeries] = []
    for version in sorted(set(j_version.tolist())):
        mask = j_version == version
        b, r = j_bucket[mask], j_reward[mask]
        order = np.argsort(b, kind="stable")
        b, r = b[order], r[order]
        starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        points = []
        for index, group in zip(b[starts].tolist(), np.split(r, starts[1:]), strict=True):
            mean, low, high = mean_interval(group)
            points.append(RewardPoint(start_us=buckets[index], n=int(group.size), mean=mean, low=low, high=high))
        rewards.append(RewardSeries(policy_version=str(version), points=points))

    versions = np.asarray(recent["policy_version"].to_numpy(zero_copy_only=False), dtype=object)
    modes = np.asarray(recent["mode"].to_numpy(zero_copy_only=False), dtype=object)
    arms: list[Arm] = []
    arm_rewards: list[ArmReward] = []
    by_role: dict[str, npt.NDArray[np.float64]] = {}
    for role, version, fraction in deployment_arms(engine, name):
        mode = Mode.SHADOW.value if role == "shadow" else Mode.SERVED.value
        count = int(((versions == version) & (modes == mode)).sum())
        ref = registry_ref(version)
        arms.append(Arm(role=role, policy_version=version, fraction=fraction,
                        registry_ref=None if ref is None else str(ref), registry_stage=_stage(registry, ref),
                        decisions=count))
        values = j_reward[j_version == version] if mode == Mode.SERVED.value else np.empty(0)
        by_role.setdefault(role, values)
        mean, low, high = mean_interval(values) if values.size else (math.nan, None, None)
        arm_rewards.append(ArmReward(role=role, policy_version=version, decisions=count, rewarded=int(values.size),
                                     mean=_finite(mean), low=low, high=high))
    if "canary" in by_role:
        guardrail, note = _guardrail(engine, name)
    else:
        guardrail, note = None, "no canary arm: production serves every unit"

    actions: list[ActionDistribution] = []
    discrete = recent.filter(pc.greater_equal(recent["action_index"], 0))
    if discrete.num_rows:
        grouped = discrete.group_by(["policy_version", "action"]).aggregate([("decision_id", "count")])
        rank = {a: i for i, a in enumerate(spec.schema_.action_names())}
        counts: dict[str, list[tuple[str, int]]] = {}
        for version, action, count in zip(grouped["policy_version"].to_pylist(), grouped["action"].to_pylist(),
                                          grouped["decision_id_count"].to_pylist(), strict=True):
            counts.setdefault(version, []).append((action, count))
        for version in sorted(counts):
            total = sum(c for _, c in counts[version])
            pairs = sorted(counts[version], key=lambda p: (rank.get(p[0], len(rank)), p[0]))
            actions.append(ActionDistribution(policy_version=version, decisions=total, actions=[
                ActionCount(action=a, count=c, share=c / total) for a, c in pairs]))

    primary = next((a for a in arms if a.role == "production"), arms[0] if arms else None)
    profile_ref = ModelRef.parse(primary.registry_ref) if primary and primary.registry_ref else None
    profile = _registry_profile(registry, profile_ref)
    drift = _drift(spec.schema_, mine, mine_ts, shown, origin, width, n_buckets, profile,
                   f"registry reference profile of {profile_ref}", config)

    policy = spec.policy.describe()
    return DeploymentOverview(name=name, revision=revision.revision, policy=policy, reward_spec=spec.reward.ref,
                              decisions=recent.num_rows, rewarded=joined.num_rows, bucket_us=width, buckets=buckets,
                              arms=arms, rewards=rewards, comparison=Comparison(arms=arm_rewards,
                                                                                guardrail=guardrail, note=note),
                              drift=drift, actions=actions, changes=[
                                  ChangeView(ts_us=c.ts_us, revision=c.revision, action=c.action, version=c.version,
                                             actor=c.actor, reason=c.reason)
                                  for c in engine.store.changes(name, MAX_CHANGES)])


# ---- alerts, reports, model cards ---------------------------------------------------------------------------------


def _text(value: Any, default: str = "") -> str:
    if value is None:
        return default
    return str(getattr(value, "value", value))


def alerts_panel(engine: Engine, deployment: str | None = None) -> AlertsPanel:
    """The newest :data:`MAX_ALERTS` alerts of the home's alerts store (of ``deployment`` only, when given)."""
    try:
        from rlops.monitoring.alerts import AlertStore
    except ImportError:
        return AlertsPanel(available=False, note="no alerts store", alerts=[])
    try:
        with AlertStore.for_home(engine.home) as store:
            records = store.list_alerts(deployment=deployment, limit=MAX_ALERTS)
    except RlopsError as e:
        return AlertsPanel(available=False, note=f"the alerts store could not be read: {e}", alerts=[])
    views = [AlertView(id=r.id, rule=r.rule, severity=r.severity.value, state=r.state.value, deployment=r.deployment,
                       message=r.message, value=_finite(r.value), threshold=_finite(r.threshold),
                       fired_at_us=r.fired_at_us, resolved_at_us=r.resolved_at_us) for r in records]
    return AlertsPanel(available=True, note=None if views else "no alerts", alerts=views)


def _gates(report: Mapping[str, Any]) -> list[GateView]:
    gates = []
    for gate in report.get("gates") or []:
        if not isinstance(gate, Mapping):
            continue
        spec = gate.get("gate")
        name = spec.get("name", "?") if isinstance(spec, Mapping) else "?"
        gates.append(GateView(name=str(name), status=_text(gate.get("status"), "?"), reason=_text(gate.get("reason"))))
    return gates


def _report_view(report: Mapping[str, Any], source: str, location: str, modified_us: int | None) -> \
        ValidationReportView:
    policy = report.get("policy") if isinstance(report.get("policy"), Mapping) else {}
    assert isinstance(policy, Mapping)
    digest = policy.get("hash")
    return ValidationReportView(source=source, location=location, status=_text(report.get("status"), "skip"),
                                policy_kind=_text(policy.get("kind")) or None,
                                policy_hash=str(digest)[:12] if digest else None,
                                command=_text(report.get("command")) or None, modified_us=modified_us,
                                gates=_gates(report))


def _report_files(root: Path) -> Iterator[Path]:
    """``report.json`` files under ``root``, at most :data:`REPORT_DEPTH` folders deep, skipping the home
    folder's own stores."""
    for folder, subfolders, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and not (
            depth == 0 and d in _SKIP_FOLDERS) and depth < REPORT_DEPTH)
        if "report.json" in files:
            yield Path(folder) / "report.json"


def report_files(root: Path) -> list[ValidationReportView]:
    """The validation reports written under the home folder (e.g. ``HOME/reports/v1/report.json``), newest first."""
    views = []
    for path in _report_files(root):
        try:
            data = orjson.loads(path.read_bytes())
            modified = path.stat().st_mtime_ns // 1000
        except (OSError, orjson.JSONDecodeError):
            continue
        if isinstance(data, dict) and ("gates" in data or "status" in data):
            views.append(_report_view(data, "file", str(path.relative_to(root)), modified))
    views.sort(key=lambda v: v.modified_us or 0, reverse=True)
    return views[:_MAX_REPORTS]


def _card_content(registry: Registry, details: VersionDetails, history: Sequence[Transition]) -> dict[str, Any]:
    """The model card's fields of :class:`ModelCard` for a verified version (``card_problem`` if it cannot be built)."""
    from rlops.explain.model_card import architecture_summary, card_from_details, training_summary

    try:
        card = card_from_details(registry, details, history=history)
    except RlopsError as e:
        return {"card_problem": str(e)}
    estimates, stress = [], []
    ope = card.validation.ope if card.validation is not None else None
    if ope is not None:
        estimates = [CardEstimate(name=e.estimator, value=e.value, low=e.interval.low, high=e.interval.high,
                                  level=e.interval.level) for e in ope.estimates]
        estimates.append(CardEstimate(name="logging policy (on-policy)", value=ope.logging_value,
                                      low=ope.logging_interval.low, high=ope.logging_interval.high,
                                      level=ope.logging_interval.level))
    suite = card.validation.stress if card.validation is not None else None
    if suite is not None:
        stress = [CardStress(variation=v.name, mean_return=v.candidate.mean_return, low=v.candidate.interval.low,
                             high=v.candidate.interval.high, baseline=v.baseline.mean_return,
                             difference=v.difference, difference_low=v.difference_interval.low,
                             difference_high=v.difference_interval.high,
                             violation_rate=v.candidate.violation_rate) for v in suite.variations]
    return {"intended_use": card.intended_use, "intended_use_declared": card.intended_use_declared,
            "owners": card.owners, "architecture": architecture_summary(card), "training_data": training_summary(card),
            "estimates": estimates, "stress": stress, "limitations": [x.text for x in card.limitations]}


def model_cards(registry: Registry) -> tuple[list[ModelCard], list[ValidationReportView]]:
    """The newest :data:`MAX_CARDS` registered versions, verified, with their model cards' content, and the
    validation reports stored with them."""
    newest = sorted(registry.versions(), key=lambda v: v.created_at_us, reverse=True)[:MAX_CARDS]
    cards, reports = [], []
    for record in newest:
        ref = str(record.ref)
        problem, details = None, None
        try:
            details = registry.details(record.name, record.version)
        except RlopsError as e:
            problem = str(e)
        report = None if details is None else details.report
        if report is not None:
            reports.append(_report_view(report, "registry", ref, None))
        transitions = registry.history(record.name, record.version)
        history = [TransitionView(from_stage=None if t.from_stage is None else t.from_stage.value,
                                  to_stage=t.to_stage.value, actor=t.actor, reason=t.reason, at_us=t.at_us)
                   for t in transitions]
        lineage = {k: v if v is None or isinstance(v, int | str) else str(v)
                   for k, v in record.lineage.flat().items()}
        content = {} if details is None else _card_content(registry, details, transitions)
        cards.append(ModelCard(ref=ref, stage=record.stage.value, kind=record.kind,
                               content_hash=record.content_hash[:12], created_at_us=record.created_at_us,
                               actor=record.actor, verified=problem is None, problem=problem, lineage=lineage,
                               report_status=None if report is None else _text(report.get("status"), "skip"),
                               gates=[] if report is None else _gates(report), history=history, **content))
    return cards, reports


# ---- the whole overview -----------------------------------------------------------------------------------------


def build_overview(engine: Engine, *, deployment: str | None = None, window_s: float | None = None,
                   now_us: int | None = None, registry: Registry | None = None,
                   drift_config: DriftConfig | None = None) -> Overview:
    """Compute everything the dashboard shows.

    Args:
        engine: the engine of the home folder.
        deployment: only this deployment (default: every one).
        window_s: only decisions of the last ``window_s`` seconds (default: the whole log).
        now_us: "now", microseconds since the epoch: the end of the window and the time the reward join closes
            attribution windows at (default: the clock).
        registry: the home folder's registry, for stages, model cards and stored reports (default: none shown).
        drift_config: PSI thresholds and the fewest rows a bucket needs (default :class:`DriftConfig()`).

    Raises:
        NotFoundError: ``deployment`` does not exist.
        StorageError: the event log could not be read.
    """
    started = time.perf_counter()
    now = time.time_ns() // 1000 if now_us is None else now_us
    config = drift_config or DriftConfig()
    names = [engine.store.latest(deployment).name] if deployment is not None else engine.store.names()
    since = None if window_s is None else now - int(window_s * 1_000_000)
    decisions = engine.log.read_decisions()
    outcomes = engine.log.read_outcomes()
    deployments = [_overview_of(engine, name, decisions, outcomes, since, now, registry, config) for name in names]
    cards: list[ModelCard] = []
    stored: list[ValidationReportView] = []
    if registry is not None:
        cards, stored = model_cards(registry)
    return Overview(generated_at_us=now, window_s=window_s, deployments=deployments,
                    alerts=alerts_panel(engine, deployment), validation_reports=report_files(engine.home.root) + stored,
                    model_cards=cards, compute_ms=round((time.perf_counter() - started) * 1000, 1))


__all__ = [
    "ActionCount",
    "ActionDistribution",
    "AlertView",
    "AlertsPanel",
    "Arm",
    "ArmReward",
    "CardEstimate",
    "CardStress",
    "ChangeView",
    "Comparison",
    "DeploymentOverview",
    "DriftHeatmap",
    "DriftRow",
    "GateView",
    "GuardrailState",
    "ModelCard",
    "Overview",
    "RewardPoint",
    "RewardSeries",
    "TransitionView",
    "ValidationReportView",
    "alerts_panel",
    "bucket_width_us",
    "build_overview",
    "deployment_arms",
    "encode_contexts",
    "mean_interval",
    "model_cards",
    "registry_ref",
    "report_files",
]
