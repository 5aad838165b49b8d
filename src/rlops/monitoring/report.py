"""The drift report of a deployment: its live window of served decisions against a reference, as typed numbers
(:func:`window_drift`) and as one self-contained HTML file with inline SVG plots (:func:`render_html`).

Compute: the window's contexts, actions and rewards from the event log go through
:func:`~rlops.monitoring.drift.batch_drift` against the reference profile: the one registered with the policy
version the deployment serves, a named registry version, or else an earlier window of the same log. The window is
also cut into equal sub-windows, each compared on its own, for a time heatmap of PSI per feature. Judge: the
thresholds of :class:`~rlops.monitoring.drift.DriftConfig`. Present: :meth:`WindowDriftReport.to_dict` and
:func:`render_html` (no scripts, nothing loaded from elsewhere: the file can be mailed or archived).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow.compute as pc

from rlops.errors import ValidationError
from rlops.events.tables import served_in
from rlops.files import write_atomic
from rlops.monitoring.drift import (
    BatchDriftReport,
    CategoricalProfile,
    DomainClassifier,
    DriftConfig,
    FeatureDrift,
    FeatureKind,
    Metric,
    NumericProfile,
    ReferenceProfile,
    Severity,
    batch_drift,
    worst,
)
from rlops.monitoring.reference import (
    encode_logged,
    logged_rewards,
    profile_interactions,
    registered_reference,
)
from rlops.schema import Schema
from rlops.schema.actions import BoxActions, DiscreteActions

if TYPE_CHECKING:
    import pyarrow as pa

    from rlops.home import Home
    from rlops.registry import ModelRef

#: Fewest decisions a sub-window of the heatmap needs for its PSI to be shown.
MIN_SUB_WINDOW_ROWS = 20
#: Bins of the reference-vs-live histograms of numeric columns.
HISTOGRAM_BINS = 20

Progress = Callable[[str], None]


class ReferenceKind(StrEnum):
    """Where a drift report's reference came from."""

    REGISTRY = "registry"  #: the reference profile registered with a policy version
    BASELINE = "baseline"  #: an earlier window of the deployment's own event log


@dataclass(frozen=True)
class ReferenceInfo:
    """Which reference a report compares with.

    Attributes:
        kind: registry version or baseline window.
        description: ``pricing@3`` or the baseline window's times.
        n_rows: rows the reference profile was built from.
        start_us: the baseline window's start, microseconds since the epoch (``None`` for a registry version).
        end_us: its end (excluded).
    """

    kind: ReferenceKind
    description: str
    n_rows: int
    start_us: int | None = None
    end_us: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "description": self.description, "n_rows": self.n_rows,
                "start_us": self.start_us, "end_us": self.end_us}


@dataclass(frozen=True)
class Histogram:
    """Reference and live distributions of one column on the same bins, as proportions (each sums to 1).

    Attributes:
        name: feature, ``action`` / ``action[d]``, or ``reward``.
        kind: numeric (equal-width bins, ``edges`` set) or categorical (one bin per category).
        labels: one label per bin (its range, or the category).
        edges: the bin edges of a numeric column, ``len(labels) + 1`` of them (values beyond are counted in the
            first or last bin); ``None`` for a categorical one.
        reference: reference proportion per bin.
        live: live proportion per bin.
    """

    name: str
    kind: FeatureKind
    labels: tuple[str, ...]
    edges: tuple[float, ...] | None
    reference: tuple[float, ...]
    live: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind.value, "labels": list(self.labels),
                "edges": None if self.edges is None else list(self.edges), "reference": list(self.reference),
                "live": list(self.live)}


@dataclass(frozen=True)
class PsiHeatmap:
    """PSI per feature over consecutive, equally long sub-windows of the live window.

    Attributes:
        features: row names (features, then the actions when the reference has them).
        starts_us: start of each sub-window, microseconds since the epoch.
        rows: live decisions in each sub-window.
        psi: ``psi[feature][sub_window]``; NaN where a sub-window has fewer than :data:`MIN_SUB_WINDOW_ROWS`.
    """

    features: tuple[str, ...]
    starts_us: tuple[int, ...]
    rows: tuple[int, ...]
    psi: tuple[tuple[float, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "starts_us": list(self.starts_us), "rows": list(self.rows),
                "psi": [[None if math.isnan(v) else v for v in row] for row in self.psi]}


@dataclass(frozen=True)
class WindowDriftReport:
    """Drift of a deployment's live window against its reference.

    Attributes:
        deployment: the deployment.
        start_us: the live window's start, microseconds since the epoch (included).
        end_us: its end (excluded).
        reference: which reference was used.
        batch: drift of the contexts, the action distribution and the domain classifier, over every served
            decision of the window.
        rewards: drift of the reward distribution over the window's decisions that have a reward, when the
            reference has rewards and at least ``config.min_rows`` decisions have one.
        n_rewarded: decisions of the window with a reward.
        histograms: reference vs live, per feature, then actions and reward.
        heatmap: PSI per feature over sub-windows.
        command: the command that recomputes this report from the event log.
    """

    deployment: str
    start_us: int
    end_us: int
    reference: ReferenceInfo
    batch: BatchDriftReport
    rewards: FeatureDrift | None
    n_rewarded: int
    histograms: tuple[Histogram, ...]
    heatmap: PsiHeatmap
    command: str

    @property
    def severity(self) -> Severity:
        """The worst severity of the batch report and the reward distribution."""
        return worst([self.batch.severity] + ([self.rewards.severity] if self.rewards else []))

    @property
    def rows(self) -> tuple[FeatureDrift, ...]:
        """Every judged column: features, actions, reward."""
        return (*self.batch.features, *self.batch.actions, *(() if self.rewards is None else (self.rewards,)))

    def to_dict(self) -> dict[str, Any]:
        batch = self.batch.to_dict()
        batch["rewards"] = None if self.rewards is None else self.rewards.to_dict()
        return {"deployment": self.deployment, "start_us": self.start_us, "end_us": self.end_us,
                "severity": self.severity.value, "reference": self.reference.to_dict(), "drift": batch,
                "n_rewarded": self.n_rewarded, "histograms": [h.to_dict() for h in self.histograms],
                "heatmap": self.heatmap.to_dict(), "command": self.command}


# ---- compute ------------------------------------------------------------------------------------------------------


def iso(us: int) -> str:
    """Microseconds since the epoch as ``2024-06-01T12:00:00Z``."""
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def window_drift(home: Home, deployment: str, *, window_s: float, end_us: int | None = None,
                 reference: ModelRef | None = None, baseline_s: float | None = None, sub_windows: int = 12,
                 config: DriftConfig | None = None, progress: Progress | None = None) -> WindowDriftReport:
    """Compare a deployment's last window of served decisions with its reference.

    Args:
        home: the home folder.
        deployment: the deployment.
        window_s: length of the live window, seconds (> 0); it ends at ``end_us``.
        end_us: end of the live window (excluded), microseconds since the epoch (default: now).
        reference: a registry version whose reference profile to use. Default: the version registered with the
            policy the deployment's live revision serves (found by content hash), else a baseline window.
        baseline_s: use the ``baseline_s`` seconds of the log just before the live window as the reference
            (default: only when no registered profile is found, with the live window's length).
        sub_windows: sub-windows of the PSI heatmap, 1-200 (default 12).
        config: thresholds (default :class:`DriftConfig()`, with the logistic domain classifier).
        progress: called with a short description of each step.

    Raises:
        NotFoundError: no such deployment or registry version.
        ValidationError: naming the option: an empty or too small window (``window``), a registry version without
            a profile or with other columns (``reference``), a baseline window with too few decisions
            (``baseline_window``).
    """
    from rlops.engine import Engine
    from rlops.engine.engine import now_us

    say = progress or (lambda _: None)
    if not (isinstance(window_s, int | float) and math.isfinite(window_s) and window_s > 0):
        raise ValidationError("window", f"must be a positive duration, got {window_s!r}")
    if baseline_s is not None and not (math.isfinite(baseline_s) and baseline_s > 0):
        raise ValidationError("baseline_window", f"must be a positive duration, got {baseline_s!r}")
    if isinstance(sub_windows, bool) or not isinstance(sub_windows, int) or not 1 <= sub_windows <= 200:
        raise ValidationError("sub_windows", f"must be an integer in 1..200, got {sub_windows!r}")
    config = config or DriftConfig()
    end = now_us() if end_us is None else end_us
    start = end - round(window_s * 1e6)
    with Engine(home) as engine:
        revision = engine.store.latest(deployment)  # NotFoundError names the deployment
        schema = revision.deployment_spec().schema_
        say("reading the event log")
        decisions = engine.log.read_decisions()
        live = served_in(decisions, deployment, start, end)
        if live.num_rows == 0:
            everything = served_in(decisions, deployment)
            latest = "it has no served decisions at all" if everything.num_rows == 0 else (
                f"its latest is from {iso(int(np.max(everything['ts'].cast('int64').to_numpy())))}")
            raise ValidationError("window", f"no served decisions of {deployment!r} in the last "
                                            f"{_duration(window_s)} ({iso(start)} .. {iso(end)}); {latest}: widen "
                                            "--window or move --end")
        if live.num_rows < config.min_rows:
            raise ValidationError("window", f"the last {_duration(window_s)} holds {live.num_rows} served decisions "
                                            f"of {deployment!r}; drift needs at least {config.min_rows}: widen "
                                            "--window")
        say("joining rewards")
        interactions = engine.interactions(deployment, include_pending=True).interactions
    rewarded = served_in(interactions, deployment, start, end)

    say("finding the reference")
    info, profile = _reference(home, deployment, revision.spec.get("policy_folder"), revision.policy_version,
                               schema, interactions, reference, baseline_s, window_s, start)
    if tuple(profile.columns) != tuple(schema.column_names):
        raise ValidationError("reference", f"{info.description}: its profile's columns {list(profile.columns)[:6]} "
                                           f"are not deployment {deployment!r}'s {schema.column_names[:6]}")

    say(f"encoding {live.num_rows:,} live contexts")
    matrix = encode_logged(live, schema)
    actions = _live_actions(live, schema, profile)
    ts = np.asarray(live["ts"].cast("int64").to_numpy(), dtype=np.int64)
    say(f"drift of {live.num_rows:,} decisions against {info.description}")
    batch = batch_drift(profile, matrix, actions=actions, config=config)
    rewards = logged_rewards(rewarded)
    reward_drift = None
    if profile.rewards is not None and rewards is not None and rewards.size >= config.min_rows:
        quick = config.model_copy(update={"domain_classifier": DomainClassifier.NONE})
        at = np.asarray(pc.index_in(rewarded["decision_id"], value_set=live["decision_id"].combine_chunks())
                        .to_numpy(zero_copy_only=False), dtype=np.int64)  # every rewarded row is a live one
        reward_drift = batch_drift(profile, matrix[at], rewards=rewards, config=quick).rewards
    say("histograms and the heatmap")
    histograms = _histograms(profile, matrix, actions, rewards)
    heatmap = _heatmap(profile, matrix, actions, ts, start, end, sub_windows, config)
    command = (f"rlops drift report {deployment} --window {_duration(window_s)} --end {iso(end)}"
               + (f" --reference {reference}" if reference is not None else "")
               + (f" --baseline-window {_duration(baseline_s)}" if baseline_s is not None else "")
               + f" --home {home.root}")
    return WindowDriftReport(deployment=deployment, start_us=start, end_us=end, reference=info, batch=batch,
                             rewards=reward_drift, n_rewarded=0 if rewards is None else int(rewards.size),
                             histograms=histograms, heatmap=heatmap, command=command)


def _reference(home: Home, deployment: str, policy_folder: Any, policy_version: str, schema: Schema,
               interactions: pa.Table, reference: ModelRef | None, baseline_s: float | None, window_s: float,
               start: int) -> tuple[ReferenceInfo, ReferenceProfile]:
    from rlops.registry import Registry

    if reference is not None:
        with Registry(home) as registry:
            record = registry.get(reference.name, reference.version)
            profile = registry.reference(record.name, record.version)
        if profile is None:
            raise ValidationError("reference", f"{record.ref} has no reference profile; register one with "
                                               "'rlops models register ... --reference'")
        return ReferenceInfo(ReferenceKind.REGISTRY, str(record.ref), profile.n_rows), profile
    if baseline_s is None:
        with Registry(home) as registry:
            found = registered_reference(registry, policy_folder, policy_version)
        if found is not None:
            return ReferenceInfo(ReferenceKind.REGISTRY, str(found.ref), found.profile.n_rows), found.profile
    length = window_s if baseline_s is None else baseline_s
    base_start = start - round(length * 1e6)
    baseline = served_in(interactions, deployment, base_start, start)
    if baseline.num_rows < 2:
        why = "" if baseline_s is not None else (f"the policy of {deployment!r} has no registered reference profile, "
                                                  "and ")
        raise ValidationError("baseline_window", f"{why}the {_duration(length)} before the window ({iso(base_start)} "
                                                 f".. {iso(start)}) holds {baseline.num_rows} interactions: pass "
                                                 "--reference NAME@VERSION or a longer --baseline-window")
    profile = profile_interactions(baseline, schema)
    return ReferenceInfo(ReferenceKind.BASELINE, f"baseline {iso(base_start)} .. {iso(start)}", profile.n_rows,
                         base_start, start), profile


def _live_actions(live: pa.Table, schema: Schema, profile: ReferenceProfile) -> npt.NDArray[Any] | None:
    """The window's actions in the profile's terms (indices into its categories, or vectors), if comparable."""
    if not profile.actions:
        return None
    first = profile.actions[0]
    if isinstance(first, CategoricalProfile) and isinstance(schema.actions, DiscreteActions):
        index = {c: i for i, c in enumerate(first.categories)}
        chosen = live["action"].to_pylist()
        out = np.fromiter((index.get(a, -1) for a in chosen), dtype=np.int64, count=len(chosen))
        if (out < 0).any():
            bad = chosen[int(np.argmax(out < 0))]
            raise ValidationError("reference", f"the live action {bad!r} is not one of the reference's actions "
                                               f"{list(first.categories)[:10]}")
        return out
    if isinstance(schema.actions, BoxActions) and len(profile.actions) == schema.actions.dim:
        from rlops.monitoring.reference import logged_actions

        return logged_actions(live, schema)
    return None


def _numeric_histogram(name: str, reference: npt.NDArray[np.float64], live: npt.NDArray[np.float64]) -> Histogram:
    lo = float(min(np.quantile(reference, 0.005), np.quantile(live, 0.005)))
    hi = float(max(np.quantile(reference, 0.995), np.quantile(live, 0.995)))
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
    ref = np.histogram(np.clip(reference, lo, hi), edges)[0].astype(np.float64)
    new = np.histogram(np.clip(live, lo, hi), edges)[0].astype(np.float64)
    labels = tuple(f"{a:.4g} .. {b:.4g}" for a, b in pairwise(edges))
    return Histogram(name, FeatureKind.NUMERIC, labels, tuple(float(e) for e in edges),
                     tuple((ref / max(ref.sum(), 1)).tolist()), tuple((new / max(new.sum(), 1)).tolist()))


def _categorical_histogram(profile: CategoricalProfile, live: npt.NDArray[np.int64]) -> Histogram:
    ref = profile.counts.astype(np.float64)
    new = live.astype(np.float64)
    return Histogram(profile.name, FeatureKind.CATEGORICAL, tuple(profile.categories), None,
                     tuple((ref / max(ref.sum(), 1)).tolist()), tuple((new / max(new.sum(), 1)).tolist()))


def _histograms(profile: ReferenceProfile, matrix: npt.NDArray[np.float64], actions: npt.NDArray[Any] | None,
                rewards: npt.NDArray[np.float64] | None) -> tuple[Histogram, ...]:
    out = []
    n = matrix.shape[0]
    for feature in profile.features:
        if isinstance(feature, NumericProfile):
            out.append(_numeric_histogram(feature.name, feature.sample, matrix[:, feature.column]))
        else:
            sums = matrix[:, list(feature.columns)].sum(axis=0)
            out.append(_categorical_histogram(feature, feature.live_counts(sums, n)))
    if actions is not None:
        for d, action in enumerate(profile.actions):
            if isinstance(action, CategoricalProfile):
                counts = np.bincount(actions, minlength=len(action.categories)).astype(np.int64)
                out.append(_categorical_histogram(action, counts))
            else:
                out.append(_numeric_histogram(action.name, action.sample, np.asarray(actions)[:, d]))
    if rewards is not None and rewards.size and profile.rewards is not None:
        out.append(_numeric_histogram("reward", profile.rewards.sample, rewards))
    return tuple(out)


def _heatmap(profile: ReferenceProfile, matrix: npt.NDArray[np.float64], actions: npt.NDArray[Any] | None,
             ts: npt.NDArray[np.int64], start: int, end: int, k: int, config: DriftConfig) -> PsiHeatmap:
    quick = config.model_copy(update={"domain_classifier": DomainClassifier.NONE, "min_rows": 1})
    bounds = np.linspace(start, end, k + 1)
    slot = np.clip(np.searchsorted(bounds, ts, side="right") - 1, 0, k - 1)
    names = [f.name for f in profile.features] + ([a.name for a in profile.actions] if actions is not None else [])
    psi = np.full((len(names), k), np.nan)
    rows = np.bincount(slot, minlength=k)
    for s in range(k):
        if rows[s] < MIN_SUB_WINDOW_ROWS:
            continue
        pick = slot == s
        result = batch_drift(profile, matrix[pick], actions=None if actions is None else np.asarray(actions)[pick],
                             config=quick)
        for i, f in enumerate((*result.features, *result.actions)):
            psi[i, s] = f.value(Metric.PSI)
    return PsiHeatmap(tuple(names), tuple(int(b) for b in bounds[:-1]), tuple(int(r) for r in rows),
                      tuple(tuple(float(v) for v in row) for row in psi))


# ---- present ------------------------------------------------------------------------------------------------------

_SEVERITY_COLOR = {Severity.NONE: "#2f855a", Severity.WARN: "#b7791f", Severity.ALERT: "#c53030"}
_REFERENCE_COLOR = "#2f855a"
_LIVE_COLOR = "#2b6cb0"
_WIDTH = 720
_LEFT = 170

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:900px;color:#1a202c;line-height:1.45}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #e2e8f0}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.6rem 0}
th,td{padding:.3rem .5rem;border-bottom:1px solid #edf2f7;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;color:#fff;border-radius:3px;padding:0 .4rem;font-size:.8rem;font-weight:bold}
code{background:#f7fafc;padding:0 .2rem} .muted{color:#718096} figure{margin:1rem 0}
"""


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}g}"


def _badge(severity: Severity) -> str:
    return (f'<span class="badge" style="background:{_SEVERITY_COLOR[severity]}">'
            f"{escape(severity.value.upper())}</span>")


def _metric(drift: FeatureDrift, metric: Metric) -> float | None:
    try:
        return drift.value(metric)
    except KeyError:
        return None


def _severity_table(report: WindowDriftReport) -> str:
    metrics = (Metric.PSI, Metric.KS, Metric.WASSERSTEIN, Metric.JENSEN_SHANNON, Metric.CRAMERS_V)
    head = "".join(f"<th>{h}</th>" for h in ("column", "kind", "severity", "PSI", "KS", "Wasserstein / sd",
                                               "Jensen-Shannon", "Cramér's V", "live n"))
    order = sorted(report.rows, key=lambda f: (-(_metric(f, Metric.PSI) or 0.0)))
    body = "".join(
        f"<tr><td>{escape(f.name)}</td><td>{f.kind.value}</td><td>{_badge(f.severity)}</td>"
        + "".join(f'<td class="n">{_num(_metric(f, m))}</td>' for m in metrics)
        + f'<td class="n">{f.n_live:,}</td></tr>' for f in order)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def histogram_svg(hist: Histogram, title: str) -> str:
    """Reference and live proportions side by side per bin (green: reference, blue: live)."""
    k = len(hist.labels)
    top = max([*hist.reference, *hist.live, 1e-12])
    height, bottom, left, right = 230, 170, 50, 20
    span = _WIDTH - left - right
    bw = span / max(k, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
             f'<text x="{left}" y="16" font-weight="bold">{escape(title)}</text>',
             f'<rect x="{_WIDTH - 190}" y="6" width="10" height="10" fill="{_REFERENCE_COLOR}"/>'
             f'<text x="{_WIDTH - 176}" y="15">reference</text>',
             f'<rect x="{_WIDTH - 100}" y="6" width="10" height="10" fill="{_LIVE_COLOR}"/>'
             f'<text x="{_WIDTH - 86}" y="15">live</text>',
             f'<line x1="{left}" y1="{bottom}" x2="{_WIDTH - right}" y2="{bottom}" stroke="#a0aec0"/>',
             f'<text x="{left - 6}" y="34" text-anchor="end" fill="#4a5568">{top:.2g}</text>']
    for i, label in enumerate(hist.labels):
        for j, (who, value, color) in enumerate((("reference", hist.reference[i], _REFERENCE_COLOR),
                                                  ("live", hist.live[i], _LIVE_COLOR))):
            h = value / top * (bottom - 30)
            x = left + i * bw + j * bw / 2
            parts.append(f'<rect x="{x + 0.5:.1f}" y="{bottom - h:.1f}" width="{max(bw / 2 - 1, 1):.1f}" '
                         f'height="{h:.1f}" fill="{color}"><title>{escape(label)} · {who}: {value:.3f}</title></rect>')
    if hist.edges is not None:
        for i in (0, k // 2, k):
            parts.append(f'<text x="{left + i * bw:.1f}" y="{bottom + 16}" text-anchor="middle" fill="#4a5568">'
                         f"{hist.edges[i]:.4g}</text>")
    else:
        step = max(1, math.ceil(k / 12))
        for i in range(0, k, step):
            parts.append(f'<text x="{left + (i + 0.5) * bw:.1f}" y="{bottom + 16}" text-anchor="middle" '
                         f'fill="#4a5568">{escape(hist.labels[i][:14])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _heat_color(value: float, warn: float, alert: float) -> str:
    if math.isnan(value):
        return "#e2e8f0"
    if value <= warn:
        t, a, b = value / warn if warn > 0 else 1.0, (247, 250, 252), (246, 224, 94)
    else:
        t, a, b = min((value - warn) / max(alert - warn, 1e-12), 1.0), (246, 224, 94), (197, 48, 48)
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return f"#{r:02x}{g:02x}{bl:02x}"


def heatmap_svg(heatmap: PsiHeatmap, warn: float = 0.1, alert: float = 0.25) -> str:
    """PSI per feature (rows) and sub-window (columns): pale below ``warn``, yellow at it, red at ``alert``."""
    n_rows, n_cols = len(heatmap.features), len(heatmap.starts_us)
    cell_h, top = 22, 40
    cell_w = (_WIDTH - _LEFT - 20) / max(n_cols, 1)
    height = top + cell_h * n_rows + 40
    title = "PSI per feature over the window (grey: too few decisions)"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
             f'<text x="{_LEFT}" y="18" font-weight="bold">{escape(title)}</text>']
    for i, name in enumerate(heatmap.features):
        y = top + i * cell_h
        parts.append(f'<text x="{_LEFT - 8}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="end">{escape(name)}</text>')
        for j in range(n_cols):
            value = heatmap.psi[i][j]
            x = _LEFT + j * cell_w
            shown = "too few decisions" if math.isnan(value) else f"PSI {value:.3f}"
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{max(cell_w - 1, 1):.1f}" height="{cell_h - 1}" '
                         f'fill="{_heat_color(value, warn, alert)}"><title>{escape(name)}, from '
                         f"{iso(heatmap.starts_us[j])} ({heatmap.rows[j]} decisions): {shown}</title></rect>")
            if cell_w >= 34 and not math.isnan(value):
                parts.append(f'<text x="{x + cell_w / 2:.1f}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="middle" '
                             f'font-size="10">{value:.2f}</text>')
    axis = top + n_rows * cell_h + 16
    step = max(1, math.ceil(n_cols / 6))
    for j in range(0, n_cols, step):
        parts.append(f'<text x="{_LEFT + j * cell_w:.1f}" y="{axis}" fill="#4a5568">'
                     f"{iso(heatmap.starts_us[j])[11:16]}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _summary(report: WindowDriftReport) -> str:
    batch = report.batch
    domain = batch.multivariate
    action = batch.actions[0] if batch.actions else None
    items = [
        ("live window", f"{escape(iso(report.start_us))} .. {escape(iso(report.end_us))} "
                        f"({batch.n_live:,} served decisions, {report.n_rewarded:,} with a reward)"),
        ("reference", f"{escape(report.reference.description)} ({report.reference.kind.value}, "
                      f"{report.reference.n_rows:,} rows)"),
        ("drifted columns", escape(", ".join(f.name for f in report.rows if f.severity is not Severity.NONE))
         or "none"),
        ("domain classifier AUC", "not run" if domain is None else
         f"{domain.auc:.3f} ({escape(domain.classifier)}, {domain.n_live:,} rows each) {_badge(domain.severity)}"),
        ("action distribution", "not compared" if action is None else
         f"Jensen-Shannon {_num(_metric(action, Metric.JENSEN_SHANNON))}, PSI {_num(_metric(action, Metric.PSI))} "
         f"{_badge(action.severity)}"),
        ("reward distribution", "not compared (no reward in the reference, or too few rewarded decisions)"
         if report.rewards is None else
         f"KS {_num(_metric(report.rewards, Metric.KS))}, Wasserstein/sd "
         f"{_num(_metric(report.rewards, Metric.WASSERSTEIN))}, PSI {_num(_metric(report.rewards, Metric.PSI))} "
         f"{_badge(report.rewards.severity)}"),
    ]
    return "<table><tbody>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in items) + "</tbody></table>"


def render_html(report: WindowDriftReport, config: DriftConfig | None = None) -> str:
    """The whole report as one HTML document: summary, severity table, PSI heatmap, histograms.

    Args:
        report: what :func:`window_drift` returned.
        config: the thresholds it was judged with (default :class:`DriftConfig()`), for the heatmap's colours.
    """
    config = config or DriftConfig()
    warn = config.psi.warn if config.psi.warn is not None else 0.1
    alert = config.psi.alert if config.psi.alert is not None else max(warn * 2.5, 0.25)
    by_name = {f.name: f for f in report.rows}
    figures = []
    for hist in report.histograms:
        drift = by_name.get(hist.name)
        note = "" if drift is None else f" · {drift.severity.value}, PSI {_num(_metric(drift, Metric.PSI))}"
        figures.append(f"<figure>{histogram_svg(hist, f'{hist.name}{note}')}</figure>")
    sections: Sequence[tuple[str, str]] = [
        ("Summary", _summary(report)),
        ("Severity per column", _severity_table(report)),
        ("PSI over time", heatmap_svg(report.heatmap, warn, alert)),
        ("Reference vs live", "".join(figures)),
    ]
    body = "".join(f"<h2>{escape(title)}</h2>{html}" for title, html in sections)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>rlops drift: "
            f"{escape(report.deployment)}</title><style>{_CSS}</style></head><body>"
            f"<h1>Drift of {escape(report.deployment)} {_badge(report.severity)}</h1>"
            f"<p class='muted'>Recompute with <code>{escape(report.command)}</code>. Thresholds: PSI "
            f"{_num(config.psi.warn)} / {_num(config.psi.alert)}, KS {_num(config.ks.warn)} / {_num(config.ks.alert)}, "
            f"Wasserstein/sd {_num(config.wasserstein.warn)} / {_num(config.wasserstein.alert)} (warn / alert).</p>"
            f"{body}</body></html>")


def write_html(report: WindowDriftReport, path: str | Path, config: DriftConfig | None = None) -> Path:
    """Write :func:`render_html` to ``path`` atomically and return it."""
    target = Path(path)
    write_atomic(target, render_html(report, config))
    return target
