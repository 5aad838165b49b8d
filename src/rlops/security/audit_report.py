"""The compliance report of a period: what the audit log (and the event log, for consent) says happened in it.

Compute: :func:`compliance_report` reads the audit entries with ``ts_us < end`` once, oldest first. Entries before
the period only set the state at its start (which version each deployment had in production); entries in
``[start, end)`` fill the sections: the production timeline, deployment changes and rollbacks, registrations and
their gates, gate overrides, stage changes, erasures, retention runs, key changes and configuration changes. Consent
rates come from the served decisions of the event log in the period. The whole chain is verified first
(:meth:`~rlops.security.audit.AuditLog.verify`): a report over a chain that does not verify says so at the top.
Present: :meth:`ComplianceReport.to_dict` / :func:`render_json` and :func:`render_markdown`.

Every section names the command that lists what it was computed from (:attr:`ComplianceReport.commands`):
``rlops audit export`` for the period with a ``jq`` filter on the action, ``rlops audit verify`` for the chain, and
``rlops events export`` with a DuckDB query for consent.

Details keys are read leniently: an entry written by an older version, or without a key the report expects, shows
its missing values as empty instead of failing the report.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shlex
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rlops.errors import ValidationError
from rlops.events.records import Mode
from rlops.home import Home
from rlops.security.audit import AuditAction, AuditEntry, AuditLog, VerifyResult

#: The actions the report has a section for; entries of other actions are only counted (:attr:`Summary.other`).
_KNOWN = frozenset({"register", "stage_change", "deploy", "rollback", "gate_override", "key_create", "key_revoke",
                    "erasure", "retention", "config_change"})
_TIMELINE_ACTIONS = (AuditAction.DEPLOY.value, AuditAction.ROLLBACK.value)


class Section(StrEnum):
    """The parts of the report; each names the command that recomputes it (:attr:`ComplianceReport.commands`)."""

    CHAIN = "chain"
    ENTRIES = "entries"
    PRODUCTION = "production"
    DEPLOY_CHANGES = "deploy_changes"
    ROLLBACKS = "rollbacks"
    REGISTRATIONS = "registrations"
    GATE_OVERRIDES = "gate_overrides"
    STAGE_CHANGES = "stage_changes"
    ERASURES = "erasures"
    CONSENT = "consent"
    RETENTION = "retention"
    KEYS = "keys"
    CONFIG = "config"


class GateStatus(StrEnum):
    """How a registered version's validation gates ended (from the ``register`` entry's details)."""

    PASSED = "passed"  # gates_passed is true and no gate was overridden
    OVERRIDDEN = "overridden"  # gates_overridden names at least one gate
    FAILED = "failed"  # gates_passed is false and nothing was overridden
    NOT_RUN = "not_run"  # gates_passed is null or missing: registered without a validation report


class KeyChangeKind(StrEnum):
    CREATE = "create"
    REVOKE = "revoke"


@dataclass(frozen=True)
class Period:
    """``[start_us, end_us)``, microseconds since the epoch (UTC)."""

    start_us: int
    end_us: int

    def __post_init__(self) -> None:
        if self.end_us <= self.start_us:
            raise ValidationError("end_us", f"must be after the start of the period ({iso(self.start_us)}), got "
                                            f"{iso(self.end_us)}")

    @property
    def duration_us(self) -> int:
        return self.end_us - self.start_us


@dataclass(frozen=True)
class ChainCheck:
    """The audit chain's verification when the report was made.

    Attributes:
        result: what :meth:`AuditLog.verify` found over the whole chain (not only the period).
        keyed: new entries are HMAC-SHA256 (an audit key is configured); without a key the chain only shows edits
            by someone who did not rehash.
        anchor: ``SEQ:HASH`` of the newest entry when the chain verified (``None`` otherwise or when empty): keep it
            with the report, ``rlops audit verify --anchor`` later shows whether entries were removed since.
    """

    result: VerifyResult
    keyed: bool
    anchor: str | None = None

    @property
    def ok(self) -> bool:
        return self.result.ok


@dataclass(frozen=True)
class Recorded:
    """Where a row of the report comes from: one audit entry."""

    seq: int
    ts_us: int
    actor: str


@dataclass(frozen=True)
class ProductionInterval:
    """A time in the period during which ``version`` was the production version of ``deployment``.

    Attributes:
        start_us: when it started, cut to the period's start.
        end_us: when it ended, cut to the period's end (or to when the report was made, for a period not over yet).
        since_us: when it actually went into production (before the period when it was there at the start).
        entered_seq: the ``deploy`` or ``rollback`` entry that put it into production.
        entered_by: that entry's action and change, e.g. ``deploy/promote`` or ``rollback``.
        open: still in production at ``end_us`` (nothing replaced it within the period).
    """

    deployment: str
    version: str
    start_us: int
    end_us: int
    since_us: int
    entered_seq: int
    entered_by: str
    open: bool

    @property
    def duration_us(self) -> int:
        return self.end_us - self.start_us


@dataclass(frozen=True)
class DeployChange(Recorded):
    deployment: str
    revision: int | None
    change: str | None
    production_version: str | None
    canary_version: str | None
    reason: str | None


@dataclass(frozen=True)
class Rollback(Recorded):
    deployment: str
    revision: int | None
    production_version: str | None  # what is in production after the rollback
    rolled_back_version: str | None  # what was taken out
    reason: str | None


@dataclass(frozen=True)
class Registration(Recorded):
    target: str
    model: str | None
    version: str | None
    gates: GateStatus
    gates_overridden: tuple[str, ...]
    reason: str | None


@dataclass(frozen=True)
class GateOverride(Recorded):
    target: str
    gates: tuple[str, ...]
    reason: str | None


@dataclass(frozen=True)
class StageChange(Recorded):
    target: str
    from_stage: str | None
    to_stage: str | None


@dataclass(frozen=True)
class Erasure(Recorded):
    target: str  # unit:<hash>: the unit is named by a hash, never by its id
    decisions: int | None
    outcomes: int | None
    files: int | None


@dataclass(frozen=True)
class RetentionRun(Recorded):
    deployment: str
    cutoff_us: int | None
    decisions: int | None
    outcomes: int | None


@dataclass(frozen=True)
class KeyChange(Recorded):
    key_id: str
    kind: KeyChangeKind
    role: str | None
    scope: tuple[str, ...]


@dataclass(frozen=True)
class ConfigChange(Recorded):
    target: str
    details: dict[str, Any]


@dataclass(frozen=True)
class ConsentRate:
    """Served decisions of a deployment in the period and how many were made without the unit's consent.

    Decisions written before the ``consent`` column existed count as consented.
    """

    deployment: str
    decisions: int
    without_consent: int

    @property
    def share_without_consent(self) -> float | None:
        return self.without_consent / self.decisions if self.decisions else None


@dataclass(frozen=True)
class Summary:
    """The report's headline numbers (each also the length or a sum of a section)."""

    entries: int
    versions_in_production: int
    deploy_changes: int
    rollbacks: int
    registrations: int
    gates_passed: int
    gates_overridden: int
    gates_failed: int
    gates_not_run: int
    gate_overrides: int
    stage_changes: int
    erasures: int
    erased_decisions: int
    erased_outcomes: int
    retention_runs: int
    retention_decisions: int
    retention_outcomes: int
    keys_created: int
    keys_revoked: int
    config_changes: int
    decisions: int
    decisions_without_consent: int
    other: dict[str, int]


@dataclass(frozen=True)
class ComplianceReport:
    """Everything the audit log (and the event log, for consent) says about one period.

    Rows of every section are in log order (by ``seq``); the production timeline is by deployment, then time.
    ``commands`` maps each :class:`Section` to a shell command that lists what it was computed from.
    """

    home: str
    period: Period
    generated_us: int
    chain: ChainCheck
    summary: Summary
    actions: dict[str, int]
    production: tuple[ProductionInterval, ...]
    deploy_changes: tuple[DeployChange, ...]
    rollbacks: tuple[Rollback, ...]
    registrations: tuple[Registration, ...]
    gate_overrides: tuple[GateOverride, ...]
    stage_changes: tuple[StageChange, ...]
    erasures: tuple[Erasure, ...]
    consent: tuple[ConsentRate, ...]
    retention: tuple[RetentionRun, ...]
    keys: tuple[KeyChange, ...]
    config_changes: tuple[ConfigChange, ...]
    commands: dict[Section, str]

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON values (enums as their values, tuples as lists), with ISO-8601 times for the period
        and the generation time next to their microseconds."""
        data: dict[str, Any] = _plain(self)
        data["period"].update(start=iso(self.period.start_us), end=iso(self.period.end_us))
        data["generated"] = iso(self.generated_us)
        data["chain"]["ok"] = self.chain.ok
        for row, rate in zip(data["consent"], self.consent, strict=True):
            row["share_without_consent"] = rate.share_without_consent
        return data


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# ---- compute ----


def compliance_report(home: Home, start_us: int, end_us: int, *, anchor: str | None = None, unkeyed_until: int = 0,
                      now_us: int | None = None, environ: Mapping[str, str] | None = None) -> ComplianceReport:
    """The compliance report of ``home`` for ``[start_us, end_us)``.

    Args:
        home: an existing home folder.
        start_us: first time included, microseconds since the epoch (UTC).
        end_us: first time excluded; must be after ``start_us``.
        anchor: ``SEQ:HASH`` kept from an earlier verify: the chain check then also catches entries removed from
            the end.
        unkeyed_until: with an audit key, entries up to this seq may be plain SHA-256 (appended before the key).
        now_us: when the report is made (default: now); production intervals of a period not over yet end here.
        environ: where to look for ``RLOPS_AUDIT_KEY`` (default: ``os.environ``).

    Raises:
        ValidationError: ``end_us`` is not after ``start_us``, or ``anchor`` is malformed.
        ConfigError: the audit key is malformed or its file readable by others.
        StorageError: the metadata database or the event log cannot be read.
    """
    period = Period(start_us, end_us)
    generated = time.time_ns() // 1000 if now_us is None else now_us
    with AuditLog.for_home(home, environ=environ) as log:
        result = log.verify(anchor=anchor, unkeyed_until=unkeyed_until)
        chain = ChainCheck(result, keyed=log.key is not None, anchor=log.anchor() if result.ok else None)
        entries = list(log.entries(end_us=end_us))
    consent = consent_rates(home.events, period) if home.events.is_dir() else []
    return build_report(entries, chain, consent, period, generated_us=generated, home=home,
                        anchor=anchor, unkeyed_until=unkeyed_until)


def consent_rates(events: Path, period: Period) -> list[ConsentRate]:
    """Per deployment, the served decisions with ``ts`` in ``period`` and how many have ``consent`` false.

    Shadow decisions are left out (nobody acted on them, and each would count a request twice). Reads four columns
    of the decision table; a log without the ``consent`` column counts every decision as consented.

    Raises:
        StorageError: the event log could not be read.
    """
    from rlops.events import EventLog

    with EventLog(events) as log:
        table = log.read_decisions()
    names = ["deployment", "ts", "mode"] + (["consent"] if "consent" in table.schema.names else [])
    table = table.select(names)
    ts = pc.cast(table["ts"], pa.int64())
    mask = pc.and_(pc.and_(pc.greater_equal(ts, period.start_us), pc.less(ts, period.end_us)),
                   pc.equal(table["mode"], Mode.SERVED.value))
    table = table.filter(mask)
    if "consent" in names:
        refused = pc.cast(pc.invert(pc.fill_null(table["consent"], True)), pa.int64())
    else:
        refused = pa.array([0] * table.num_rows, pa.int64())
    counts = (pa.table({"deployment": table["deployment"], "refused": refused})
              .group_by("deployment").aggregate([("refused", "count"), ("refused", "sum")]))
    rows = zip(counts["deployment"].to_pylist(), counts["refused_count"].to_pylist(),
               counts["refused_sum"].to_pylist(), strict=True)
    return sorted((ConsentRate(str(name), int(n), int(k or 0)) for name, n, k in rows), key=lambda r: r.deployment)


def build_report(entries: Iterable[AuditEntry], chain: ChainCheck, consent: Sequence[ConsentRate], period: Period,
                 *, generated_us: int, home: Home, anchor: str | None = None,
                 unkeyed_until: int = 0) -> ComplianceReport:
    """The report from already-read inputs (what :func:`compliance_report` does after reading).

    Args:
        entries: audit entries, oldest first; those before ``period`` set the state at its start, those from its
            end on are ignored.
        chain: the verification of the chain.
        consent: per-deployment consent counts for the period.
        period: the period.
        generated_us: when the report is made; production intervals end here if the period is not over yet.
        home: the home folder (named in the commands).
        anchor: the anchor the chain was verified with (repeated in the chain's command).
        unkeyed_until: as passed to verify (repeated in the chain's command).
    """
    timeline = _Timeline(period, max(period.start_us, min(period.end_us, generated_us)))
    actions: Counter[str] = Counter()
    deploys: list[DeployChange] = []
    rollbacks: list[Rollback] = []
    registrations: list[Registration] = []
    overrides: list[GateOverride] = []
    stages: list[StageChange] = []
    erasures: list[Erasure] = []
    retention: list[RetentionRun] = []
    keys: list[KeyChange] = []
    configs: list[ConfigChange] = []
    for e in entries:
        if e.ts_us >= period.end_us:
            continue
        if e.action in _TIMELINE_ACTIONS:
            timeline.see(e)
        if e.ts_us < period.start_us:
            continue
        actions[e.action] += 1
        d, seen = e.details, (e.seq, e.ts_us, e.actor)
        if e.action == AuditAction.DEPLOY:
            deploys.append(DeployChange(*seen, _deployment(e), _int(d, "revision"), _str(d, "change"),
                                        _str(d, "production_version"), _str(d, "canary_version"), _str(d, "reason")))
        elif e.action == AuditAction.ROLLBACK:
            rollbacks.append(Rollback(*seen, _deployment(e), _int(d, "revision"), _str(d, "production_version"),
                                      _str(d, "rolled_back_version"), _str(d, "reason")))
        elif e.action == AuditAction.REGISTER:
            model, _, number = e.target.partition("@")
            overridden = _strs(d, "gates_overridden")
            registrations.append(Registration(*seen, e.target, _str(d, "model") or model or None,
                                              _str(d, "version") or number or None,
                                              _gate_status(d.get("gates_passed"), overridden), overridden,
                                              _str(d, "reason")))
        elif e.action == AuditAction.GATE_OVERRIDE:
            overrides.append(GateOverride(*seen, e.target, _strs(d, "gates"), _str(d, "reason")))
        elif e.action == AuditAction.STAGE_CHANGE:
            stages.append(StageChange(*seen, e.target, _str(d, "from"), _str(d, "to")))
        elif e.action == AuditAction.ERASURE:
            erasures.append(Erasure(*seen, e.target, _count(d, "decisions"), _count(d, "outcomes"),
                                    _count(d, "files")))
        elif e.action == AuditAction.RETENTION:
            retention.append(RetentionRun(*seen, _str(d, "deployment") or _deployment(e), _int(d, "cutoff_us"),
                                          _count(d, "decisions"), _count(d, "outcomes")))
        elif e.action in (AuditAction.KEY_CREATE, AuditAction.KEY_REVOKE):
            kind = KeyChangeKind.CREATE if e.action == AuditAction.KEY_CREATE else KeyChangeKind.REVOKE
            keys.append(KeyChange(*seen, e.target.removeprefix("key:"), kind, _str(d, "role"), _strs(d, "scope")))
        elif e.action == AuditAction.CONFIG_CHANGE:
            configs.append(ConfigChange(*seen, e.target, dict(d)))
    production = timeline.close()
    gates = Counter(r.gates for r in registrations)
    summary = Summary(
        entries=sum(actions.values()), versions_in_production=len({(p.deployment, p.version) for p in production}),
        deploy_changes=len(deploys), rollbacks=len(rollbacks), registrations=len(registrations),
        gates_passed=gates[GateStatus.PASSED], gates_overridden=gates[GateStatus.OVERRIDDEN],
        gates_failed=gates[GateStatus.FAILED], gates_not_run=gates[GateStatus.NOT_RUN], gate_overrides=len(overrides),
        stage_changes=len(stages), erasures=len(erasures), erased_decisions=sum(x.decisions or 0 for x in erasures),
        erased_outcomes=sum(x.outcomes or 0 for x in erasures),
        retention_runs=len(retention), retention_decisions=sum(r.decisions or 0 for r in retention),
        retention_outcomes=sum(r.outcomes or 0 for r in retention),
        keys_created=sum(k.kind is KeyChangeKind.CREATE for k in keys),
        keys_revoked=sum(k.kind is KeyChangeKind.REVOKE for k in keys), config_changes=len(configs),
        decisions=sum(c.decisions for c in consent), decisions_without_consent=sum(c.without_consent for c in consent),
        other={a: n for a, n in sorted(actions.items()) if a not in _KNOWN})
    return ComplianceReport(
        home=str(home.root), period=period, generated_us=generated_us, chain=chain, summary=summary,
        actions=dict(sorted(actions.items())), production=tuple(production), deploy_changes=tuple(deploys),
        rollbacks=tuple(rollbacks), registrations=tuple(registrations), gate_overrides=tuple(overrides),
        stage_changes=tuple(stages), erasures=tuple(erasures), consent=tuple(consent), retention=tuple(retention),
        keys=tuple(keys), config_changes=tuple(configs),
        commands=recompute_commands(home, period, anchor=anchor, unkeyed_until=unkeyed_until))


class _Timeline:
    """Which version each deployment has in production, from ``deploy``/``rollback`` entries' ``production_version``.

    An entry without that key says nothing about production and is skipped; an entry that keeps the same version
    (a canary step, a shadow) does not start a new interval; a null version means nothing is in production.
    """

    def __init__(self, period: Period, end_us: int) -> None:
        self.period = period
        self.end_us = end_us  # the period's end, or now if that is earlier
        self.current: dict[str, tuple[str | None, int, int, str]] = {}  # deployment -> (version, since, seq, by)
        self.intervals: list[ProductionInterval] = []

    def see(self, e: AuditEntry) -> None:
        if "production_version" not in e.details:
            return
        deployment, version = _deployment(e), _str(e.details, "production_version")
        now = self.current.get(deployment)
        if now is not None and now[0] == version:
            return
        if now is not None:
            self._close(deployment, now, e.ts_us, still_open=False)
        change = _str(e.details, "change")
        by = e.action if e.action != AuditAction.DEPLOY or change is None else f"{e.action}/{change}"
        self.current[deployment] = (version, e.ts_us, e.seq, by)

    def _close(self, deployment: str, state: tuple[str | None, int, int, str], until_us: int, *,
               still_open: bool) -> None:
        version, since, seq, by = state
        start, end = max(since, self.period.start_us), min(until_us, self.end_us)
        if version is not None and end > start:
            self.intervals.append(ProductionInterval(deployment, version, start, end, since, seq, by, still_open))

    def close(self) -> list[ProductionInterval]:
        for deployment, state in self.current.items():
            self._close(deployment, state, self.end_us, still_open=True)
        return sorted(self.intervals, key=lambda p: (p.deployment, p.start_us))


def _gate_status(passed: Any, overridden: tuple[str, ...]) -> GateStatus:
    if overridden:
        return GateStatus.OVERRIDDEN
    if passed is True:
        return GateStatus.PASSED
    if passed is False:
        return GateStatus.FAILED
    return GateStatus.NOT_RUN


def _deployment(e: AuditEntry) -> str:
    return e.target.removeprefix("deployment:")


def _str(d: Mapping[str, Any], key: str) -> str | None:
    value = d.get(key)
    return None if value is None else str(value)


def _int(d: Mapping[str, Any], key: str) -> int | None:
    value = d.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _count(d: Mapping[str, Any], key: str) -> int | None:
    """A count given as a number or as the list of what was counted."""
    value = d.get(key)
    return len(value) if isinstance(value, list) else _int(d, key)


def _strs(d: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = d.get(key)
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return (str(value),)


# ---- the commands that recompute each section ----


def recompute_commands(home: Home, period: Period, *, anchor: str | None = None,
                       unkeyed_until: int = 0) -> dict[Section, str]:
    """For each section, a shell command that lists what its rows and numbers were computed from.

    Audit sections: ``rlops audit export`` of the period (or, for the production timeline, of everything before
    its end: the state at the start comes from earlier entries) piped through a ``jq`` filter on the action.
    Consent: ``rlops events export`` and a DuckDB query over its ``decisions.parquet``.
    """
    h = shlex.quote(str(home.root))
    start, end = iso(period.start_us), iso(period.end_us)
    stem = f"audit-{start[:10]}-{end[:10]}"
    export = f"rlops audit export {stem}.jsonl --from {start} --to {end} --home {h}"
    history = f"rlops audit export {stem}-history.jsonl --to {end} --home {h}"

    def only(*actions: str, fields: str = "") -> str:
        test = " or ".join(f'.action == "{a}"' for a in actions)
        return f"{export} && jq -c {shlex.quote(f'select({test}){fields}')} {stem}.jsonl"

    verify = f"rlops audit verify --home {h}"
    if anchor is not None:
        verify += f" --anchor {shlex.quote(anchor)}"
    if unkeyed_until:
        verify += f" --unkeyed-until {unkeyed_until}"
    timeline = ('select(.action == "deploy" or .action == "rollback") '
                "| [.seq, .ts, .target, .details.production_version]")
    folder = f"events-{start[:10]}-{end[:10]}"
    sql = ("select deployment, count(*) as decisions, count(*) filter (where consent = false) as without_consent "
           f"from '{folder}/decisions.parquet' where mode = 'served' and ts >= TIMESTAMPTZ '{start}' "
           f"and ts < TIMESTAMPTZ '{end}' group by deployment order by deployment")
    return {
        Section.CHAIN: verify,
        Section.ENTRIES: f"{export} && jq -r .action {stem}.jsonl | sort | uniq -c",
        Section.PRODUCTION: f"{history} && jq -c {shlex.quote(timeline)} {stem}-history.jsonl",
        Section.DEPLOY_CHANGES: only("deploy"),
        Section.ROLLBACKS: only("rollback"),
        Section.REGISTRATIONS: only("register"),
        Section.GATE_OVERRIDES: only("gate_override"),
        Section.STAGE_CHANGES: only("stage_change"),
        Section.ERASURES: only("erasure"),
        Section.CONSENT: f'rlops events export --out {folder} --home {h} && duckdb -c "{sql}"',  # no " $ ` \ in it
        Section.RETENTION: only("retention"),
        Section.KEYS: only("key_create", "key_revoke"),
        Section.CONFIG: only("config_change"),
    }


# ---- present ----


def iso(us: int) -> str:
    """``us`` (microseconds since the epoch) as ISO 8601 in UTC with a ``Z``: seconds, or microseconds if any."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S" + (".%f" if moment.microsecond else "") + "Z")


def render_json(report: ComplianceReport) -> str:
    """:meth:`ComplianceReport.to_dict` as indented JSON (sorted keys, so equal reports give equal text)."""
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_markdown(report: ComplianceReport) -> str:
    """The report as one Markdown document: the chain's state first, then a summary and one section per topic,
    each followed by the command that recomputes it."""
    r, s, c = report, report.summary, report.commands
    refused = f"{s.decisions_without_consent} ({_share(s.decisions_without_consent, s.decisions)})"
    out = [f"# Compliance report: {_when(r.period.start_us)} to {_when(r.period.end_us)}", "",
           f"Home folder `{r.home}`; period [{iso(r.period.start_us)}, {iso(r.period.end_us)}) (UTC, start "
           f"included, end excluded); generated {iso(r.generated_us)}.", ""]
    out += _chain(r.chain, c[Section.CHAIN])
    out += ["## Summary", "",
            _table(["what", "count"], [
                ["audit entries in the period", s.entries],
                ["versions in production (deployment, version)", s.versions_in_production],
                ["deployment changes", s.deploy_changes], ["rollbacks", s.rollbacks],
                ["registrations", s.registrations], ["- gates passed", s.gates_passed],
                ["- gates overridden", s.gates_overridden], ["- gates failed", s.gates_failed],
                ["- gates not run", s.gates_not_run], ["gate overrides", s.gate_overrides],
                ["stage changes", s.stage_changes],
                ["erasures (units)", s.erasures], ["- decisions erased", s.erased_decisions],
                ["- outcomes erased", s.erased_outcomes], ["retention runs", s.retention_runs],
                ["- decisions removed by retention", s.retention_decisions],
                ["- outcomes removed by retention", s.retention_outcomes],
                ["keys created", s.keys_created], ["keys revoked", s.keys_revoked],
                ["configuration changes", s.config_changes], ["served decisions", s.decisions],
                ["- without consent", refused],
                *([[f"other: {a}", n] for a, n in s.other.items()])]),
            "", _recompute(c[Section.ENTRIES]), ""]
    period = r.period.duration_us
    out += _section("Versions in production", c[Section.PRODUCTION], ["deployment", "version", "from", "to",
                                                                        "share of period", "in production since",
                                                                        "entered by (entry)"],
                    [[p.deployment, p.version, _when(p.start_us),
                      _when(p.end_us) + (" (still in production)" if p.open else ""),
                      _share(p.duration_us, period), _when(p.since_us), f"{p.entered_by} (#{p.entered_seq})"]
                     for p in r.production], "No version was in production during the period.")
    out += _section("Deployment changes", c[Section.DEPLOY_CHANGES], ["#", "when", "actor", "deployment", "revision",
                                                                       "change", "production", "canary", "reason"],
                    [[x.seq, _when(x.ts_us), x.actor, x.deployment, x.revision, x.change, x.production_version,
                      x.canary_version, x.reason] for x in r.deploy_changes], "None.")
    out += _section("Rollbacks", c[Section.ROLLBACKS], ["#", "when", "actor", "deployment", "revision",
                                                         "rolled back", "now in production", "reason"],
                    [[x.seq, _when(x.ts_us), x.actor, x.deployment, x.revision, x.rolled_back_version,
                      x.production_version, x.reason] for x in r.rollbacks], "None.")
    out += _section("Registrations and their gates", c[Section.REGISTRATIONS],
                    ["#", "when", "actor", "version", "gates", "overridden", "reason"],
                    [[x.seq, _when(x.ts_us), x.actor, x.target, x.gates.value, ", ".join(x.gates_overridden),
                      x.reason] for x in r.registrations], "None.")
    out += _section("Gate overrides", c[Section.GATE_OVERRIDES], ["#", "when", "actor", "version", "gates",
                                                                   "reason"],
                    [[x.seq, _when(x.ts_us), x.actor, x.target, ", ".join(x.gates), x.reason]
                     for x in r.gate_overrides], "None.")
    out += _section("Stage changes", c[Section.STAGE_CHANGES], ["#", "when", "actor", "version", "from", "to"],
                    [[x.seq, _when(x.ts_us), x.actor, x.target, x.from_stage, x.to_stage] for x in r.stage_changes],
                    "None.")
    out += _section("Erasures", c[Section.ERASURES], ["#", "when", "actor", "unit", "decisions", "outcomes", "files"],
                    [[x.seq, _when(x.ts_us), x.actor, x.target, x.decisions, x.outcomes, x.files]
                     for x in r.erasures], "None.")
    out += _section("Consent", c[Section.CONSENT], ["deployment", "served decisions", "without consent", "share"],
                    [[x.deployment, x.decisions, x.without_consent, _share(x.without_consent, x.decisions)]
                     for x in r.consent], "No served decisions in the period.",
                    note="Served decisions only (shadow decisions were never acted on); decisions logged before "
                         "consent was recorded count as consented.")
    out += _section("Retention runs", c[Section.RETENTION], ["#", "when", "actor", "deployment", "cutoff",
                                                             "decisions removed", "outcomes removed"],
                    [[x.seq, _when(x.ts_us), x.actor, x.deployment,
                      None if x.cutoff_us is None else _when(x.cutoff_us), x.decisions, x.outcomes]
                     for x in r.retention], "None.")
    out += _section("Key changes", c[Section.KEYS], ["#", "when", "actor", "key", "change", "role", "scope"],
                    [[x.seq, _when(x.ts_us), x.actor, x.key_id, x.kind.value, x.role, " ".join(x.scope)]
                     for x in r.keys], "None.")
    out += _section("Configuration changes", c[Section.CONFIG], ["#", "when", "actor", "target", "details"],
                    [[x.seq, _when(x.ts_us), x.actor, x.target, json.dumps(x.details, sort_keys=True)]
                     for x in r.config_changes], "None.")
    if not r.chain.ok:
        out += ["---", "", _alarm(r.chain), ""]
    return "\n".join(out).rstrip() + "\n"


def _chain(chain: ChainCheck, command: str) -> list[str]:
    if not chain.ok:
        return [_alarm(chain), "", _recompute(command), ""]
    v = chain.result
    text = f"**Audit chain: verified** ({v.entries} entries"
    text += ", HMAC-SHA256 with an audit key)." if chain.keyed else (
        ", plain SHA-256 without an audit key: it shows accidental damage, not edits by someone who rehashes).")
    if chain.anchor is not None:
        text += (f" Anchor at the time of this report: `{chain.anchor}`; `rlops audit verify --anchor "
                 f"{chain.anchor}` later shows whether entries were removed since.")
    return [text, "", _recompute(command), ""]


def _alarm(chain: ChainCheck) -> str:
    v = chain.result
    return (f"> **WARNING: THE AUDIT CHAIN DOES NOT VERIFY.** {_cell(v.problem)} ({v.entries} entries before it "
            "verified.) The log was altered, entries were removed or reordered, or it cannot be checked with the "
            "configured key: the numbers in this report come from that log and cannot be trusted until this is "
            "explained.")


def _section(title: str, command: str, head: list[str], rows: list[list[Any]], empty: str,
             note: str | None = None) -> list[str]:
    body = _table(head, rows) if rows else empty
    return [f"## {title}", "", *([note, ""] if note else []), body, "", _recompute(command), ""]


def _recompute(command: str) -> str:
    return f"Recompute: `{command}`"


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _when(us: int) -> str:
    return iso(us).replace("T", " ")


def _share(part: int, whole: int) -> str:
    return "" if whole <= 0 else f"{100 * part / whole:.2f}%"


__all__ = ["ChainCheck", "ComplianceReport", "ConfigChange", "ConsentRate", "DeployChange", "Erasure",
           "GateOverride", "GateStatus", "KeyChange", "KeyChangeKind", "Period", "ProductionInterval", "Recorded",
           "Registration", "RetentionRun", "Rollback", "Section", "StageChange", "Summary", "build_report",
           "compliance_report", "consent_rates", "iso", "recompute_commands", "render_json", "render_markdown"]
