"""The in-process decision engine: ``decide`` and ``report`` over schemas, policies, rewards and the event log.

The HTTP service and the CLI are thin layers over this class. One Engine per process; it is thread-safe.

Example:
    >>> engine = Engine("/tmp/rlops-home")                                  # doctest: +SKIP
    >>> engine.apply(DeploymentSpec.load("deployment.yaml"))               # doctest: +SKIP
    >>> d = engine.decide("demo", {"age": 31, ...}, unit_id="user-7")      # doctest: +SKIP
    >>> engine.report(d.decision_id, {"clicked": True})                    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rlops.encryption import copy_tree
from rlops.engine.deployment import DeploymentSpec, PolicySource, Role
from rlops.engine.store import DeploymentStore, Revision
from rlops.errors import ConfigError, ConflictError, NotFoundError, RlopsError, ValidationError
from rlops.events import EventLog
from rlops.events.ids import id_time_ms, looks_like_id, new_id
from rlops.events.join import CLOCK_SKEW_US, JoinResult, join, orphan_outcomes
from rlops.events.log import DecisionRef, IndexCursor
from rlops.events.records import DECISION_SCHEMA, OUTCOME_SCHEMA, DecisionRecord, Mode, OutcomeRecord
from rlops.home import Home
from rlops.policies import BasePolicy, LearningBatch, PolicyInput, kinds, load_policy, save_policy
from rlops.registry import ModelRef, Registry, default_actor
from rlops.rewards import RewardSpec
from rlops.rewards.spec import RewardCheck
from rlops.rollout.split import Slot, Split
from rlops.schema.schema import PiiPolicy
from rlops.security import audit
from rlops.security.audit import AuditAction
from rlops.security.pii import PiiFilter, load_pii_key
from rlops.security.poisoning import PoisoningGuard

log = logging.getLogger("rlops.engine")

MAX_ID_LENGTH = 256
MAX_OUTCOME_FIELDS = 100
MAX_STRING = 1024
CONTEXT_CACHE = 100_000
#: How often a loaded deployment (or a missing decision id) is checked against what other processes stored, s.
RECHECK_S = 1.0
#: How often a newer revision that did not load is tried again, s.
FAILED_RETRY_S = 10.0
#: Learned decision ids an arm remembers before it forgets the old ones.
LEARNED_IDS = 200_000
#: Largest integer a float64 holds exactly; outcome values are numbers the reward spec computes with.
MAX_EXACT_INT = 2**53


class OutcomeStatus(StrEnum):
    """What happened to a reported outcome."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # same idempotency key as an outcome already stored: not stored again
    DEAD_LETTER = "dead_letter"  # stored, but it cannot count: unknown or expired decision, unusable fields
    QUARANTINED = "quarantined"  # stored, but held back from learning and evaluation by the poisoning guard


@dataclass(frozen=True)
class Decision:
    """The answer to ``decide``: what to do, how likely the policy was to do it, and the id to report against."""

    decision_id: str
    deployment: str
    policy_version: str
    action: str | list[float]
    action_index: int
    propensity: float
    probabilities: dict[str, float] | None
    latency_us: int


@dataclass(frozen=True)
class ReportResult:
    decision_id: str
    idempotency_key: str
    status: OutcomeStatus
    reason: str | None = None
    reward: float | None = None
    out_of_bounds: bool = False  # the reward lay outside the spec's bounds (clipped, or rejected as a dead letter)


@dataclass(frozen=True)
class ApplyResult:
    name: str
    revision: int
    created: bool
    policy_version: str


@dataclass(frozen=True)
class ArmInfo:
    """One arm of a deployment as it serves now.

    Attributes:
        role: production, canary, shadow or holdout.
        name: ``production``, ``canary``, ``holdout``, or the shadow's name.
        policy_version: the version its decisions are attributed to.
        fraction: its share of units (shadows: 0, they answer nobody); production gets what the others leave.
        source: where its policy comes from (a registered version, a folder, or a kind).
    """

    role: Role
    name: str
    policy_version: str
    fraction: float
    source: str


class _Arm:
    """A loaded arm: its policy and random stream. Decisions hold ``lock`` while its policy acts."""

    def __init__(self, info: ArmInfo, policy: BasePolicy, rng: np.random.Generator) -> None:
        self.info, self.policy, self.rng = info, policy, rng
        self.lock = threading.Lock()  # held while the policy acts or updates
        self.learn_lock = threading.Lock()  # one learn() at a time, so nothing is learned twice
        self.learned: set[str] = set()  # ids learned (recent ones; see Engine._learn_arm)
        self.learned_total = 0


class _Runtime:
    """A loaded deployment revision: its arms (production first) and the sticky split between them."""

    def __init__(self, revision: Revision, spec: DeploymentSpec, arms: list[_Arm]) -> None:
        self.revision, self.spec, self.arms = revision, spec, arms
        self.production = arms[0]
        self.by_slot = {Slot.PRODUCTION: arms[0]}
        for arm in arms:
            if arm.info.role is Role.CANARY:
                self.by_slot[Slot.CANARY] = arm
            elif arm.info.role is Role.HOLDOUT:
                self.by_slot[Slot.HOLDOUT] = arm
        self.shadows = [arm for arm in arms if arm.info.role is Role.SHADOW]
        self.baseline = next((arm for arm in arms if arm.info.role is Role.BASELINE), None)
        self.pii: PiiFilter | None = None  # made on first use (hashing needs the home's key)
        self.split = Split(spec.split_salt, holdout=0.0 if spec.holdout is None else spec.holdout.fraction,
                           canary=0.0 if spec.canary is None else spec.canary.fraction)
        self.window_us = int(spec.window_seconds * 1e6)
        self.checked_at = time.monotonic()  # when the store was last asked for a newer revision
        self.failed: tuple[int, int] | None = None  # (newer revision that did not load, retry period it failed in)

    @property
    def policy(self) -> BasePolicy:
        """The production arm's policy."""
        return self.production.policy

    def arm(self, version: str) -> _Arm | None:
        return next((a for a in self.arms if a.info.policy_version == version and a.info.role is not Role.SHADOW),
                    None)


def _made_after(decision_id: str, wall_ms: int) -> bool:
    """Whether ``decision_id`` looks like an rlops id minted after ``wall_ms`` (ms since the epoch)."""
    return looks_like_id(decision_id) and id_time_ms(decision_id) > wall_ms


def now_us() -> int:
    """Microseconds since the epoch (UTC): the unit of every timestamp rlops stores."""
    return time.time_ns() // 1000


def _check_id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise ValidationError(field, f"expected a non-empty string of at most {MAX_ID_LENGTH} characters")
    return value


def _check_fields(fields: Any, prefix: str = "outcome.fields") -> dict[str, Any]:
    if not isinstance(fields, Mapping):
        raise ValidationError(prefix, f"expected an object, got {type(fields).__name__}")
    if len(fields) > MAX_OUTCOME_FIELDS:
        raise ValidationError(prefix, f"{len(fields)} fields is more than {MAX_OUTCOME_FIELDS}")
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if not isinstance(key, str) or not key or len(key) > 64:
            raise ValidationError(prefix, f"field names must be strings of 1-64 characters: {key!r:.70}")
        path = f"{prefix}.{key}"
        if isinstance(value, bool) or value is None:
            clean[key] = value
        elif isinstance(value, int | float):
            if isinstance(value, int) and not -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
                raise ValidationError(path, f"integer of {len(str(abs(value)))} digits is too large (at most 2**53)")
            if not math.isfinite(value):
                raise ValidationError(path, f"{value} is not a finite number")
            clean[key] = value
        elif isinstance(value, str):
            if len(value) > MAX_STRING:
                raise ValidationError(path, f"string of {len(value)} characters is longer than {MAX_STRING}")
            clean[key] = value
        else:
            raise ValidationError(path, f"expected a number, boolean or string, got {type(value).__name__}")
    return clean


#: Earliest outcome time accepted (2000-01-01) and how far into the future a clock may run, microseconds.
EARLIEST_TS = 946_684_800_000_000
MAX_CLOCK_AHEAD_US = 86_400_000_000


def _check_ts(ts: Any) -> int:
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise ValidationError("outcome.ts", f"expected microseconds since the epoch as an integer, got "
                                            f"{type(ts).__name__}")
    latest = now_us() + MAX_CLOCK_AHEAD_US
    if not EARLIEST_TS <= ts <= latest:
        raise ValidationError("outcome.ts", f"{ts} is not between 2000-01-01 and one day from now "
                                            f"(microseconds since the epoch)")
    return ts


def default_idempotency_key(decision_id: str, fields: Mapping[str, Any]) -> str:
    """The key used when a client sends none: the same outcome sent twice counts once."""
    canonical = json.dumps([decision_id, fields], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class _LearnFeed:
    """What online learning has read of the log: a cursor, and the served decisions (with their outcomes) of the
    deployments that learn online, not learned yet. A decision leaves when it is learned or when its window has
    closed (what was not learned by then never will be: late outcomes are dead letters).

    The first pass of a process reads the whole log (as a join would); later passes read what was stored since.
    """

    #: Outcomes whose decision has not been read yet are kept this long (their decision is in a segment read
    #: later in the same pass, or in the next), microseconds.
    ORPHAN_US = 600_000_000

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cursor = IndexCursor()
        self.decisions: dict[str, pa.Table] = {}
        self.outcomes = OUTCOME_SCHEMA.empty_table()

    def _read(self, log: EventLog, online: set[str]) -> None:
        decisions, outcomes = log.read_since(self.cursor)
        if decisions.num_rows:
            served = decisions.filter(pc.equal(decisions["mode"], Mode.SERVED.value))
            names = served["deployment"]
            for name in pc.unique(names).to_pylist():
                if name not in online:
                    continue
                fresh = served.filter(pc.equal(names, name))
                known = self.decisions.get(name)
                if known is not None:  # a rescanned segment can give rows again
                    fresh = fresh.filter(pc.invert(pc.is_in(fresh["decision_id"], known["decision_id"])))
                    fresh = pa.concat_tables([known, fresh])
                self.decisions[name] = fresh
        if outcomes.num_rows:
            self.outcomes = pa.concat_tables([self.outcomes, outcomes])

    def joinable(self, log: EventLog, deployment: str, spec: DeploymentSpec, online: set[str], now: int,
                 include_pending: bool) -> pa.Table:
        """The deployment's interactions among the decisions not learned yet."""
        self._read(log, online)
        decisions = self.decisions.get(deployment, DECISION_SCHEMA.empty_table())
        mine = self.outcomes.filter(pc.is_in(self.outcomes["decision_id"], decisions["decision_id"]))
        return join(decisions, mine, spec.reward, deployment=deployment, window_seconds=spec.window_seconds,
                    as_of_us=now, include_pending=include_pending).interactions

    def forget(self, ids: pa.Array) -> None:
        """Drop the decisions ``ids`` and their outcomes (erased from the log) from what is kept in memory."""
        for name, table in list(self.decisions.items()):
            self.decisions[name] = table.filter(pc.invert(pc.is_in(table["decision_id"], value_set=ids)))
        self.outcomes = self.outcomes.filter(pc.invert(pc.is_in(self.outcomes["decision_id"], value_set=ids)))

    def settle(self, deployment: str, learned: pa.Table, windows_us: dict[str, int], now: int) -> None:
        """Forget what was learned, every decision whose window has closed, and stale outcomes."""
        decisions = self.decisions.get(deployment)
        if decisions is not None:
            self.decisions[deployment] = decisions.filter(
                pc.invert(pc.is_in(decisions["decision_id"], learned["decision_id"])))
        for name, table in list(self.decisions.items()):
            window_us = windows_us.get(name)
            if window_us is None:  # no longer learns online
                del self.decisions[name]
                continue
            self.decisions[name] = table.filter(pc.greater(pc.add(pc.cast(table["ts"], pa.int64()), window_us), now))
        waiting = [t["decision_id"] for t in self.decisions.values()]
        recent = pc.greater(pc.cast(self.outcomes["ts"], pa.int64()), now - self.ORPHAN_US)
        if waiting:
            ids = pa.chunked_array([c for chunked in waiting for c in chunked.chunks], pa.string())
            recent = pc.or_(pc.is_in(self.outcomes["decision_id"], ids), recent)
        self.outcomes = self.outcomes.filter(recent)


class Engine:
    """Decide, log, report and join, for every deployment in one home folder.

    Args:
        home: the home folder (default ``$RLOPS_HOME``, else ``./.rlops``).
        fsync: ``True`` (default) makes every acknowledged write survive a power cut (group-committed fsync);
            ``False`` still survives a crash of this process (the data is in the kernel) but not of the machine.
        stream: an extra word for every deployment's random stream, seeded ``(seed, revision[, stream])``. Several
            processes serving one home folder must each pass a different value (``rlops serve --workers`` uses the
            process id), or they would all draw the same "random" actions. ``None`` (default): one process.
    """

    def __init__(self, home: str | Path | Home | None = None, *, fsync: bool = True,
                 stream: int | None = None) -> None:
        self.home = (home if isinstance(home, Home) else Home.resolve(home)).ensure()
        self.stream = stream
        self.store = DeploymentStore(self.home.metadata_url)
        self.log = EventLog(self.home.events, fsync=fsync)
        self._runtimes: dict[str, _Runtime] = {}
        self._lock = threading.RLock()
        self._index: dict[str, DecisionRef] | None = None
        self._guards: dict[str, PoisoningGuard] = {}  # per deployment: this process's poisoning guard
        self._cursor = IndexCursor()
        self._index_update_started = 0.0  # monotonic time the last incremental index update began
        self._index_read_wall_ms = 0  # ids made (by their embedded time) after this may be missing from the index
        self._refresh_lock = threading.Lock()
        self._keys: set[tuple[str, str]] | None = None
        # Contexts of recent decisions, so reward specs that read context need no log scan at report time.
        self._contexts: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._feed = _LearnFeed()
        #: Called with the shadow decisions of every batch after they are logged (the service counts them).
        self.on_shadow: Callable[[list[DecisionRecord]], None] | None = None

    # ---- deployments ------------------------------------------------------------------------------------------

    def _policy_folder(self, name: str, source_hash: str) -> Path:
        return self.home.deployments / name / "policies" / source_hash[:16]

    def _materialize(self, spec: DeploymentSpec, field: str, source: PolicySource) -> dict[str, Any]:
        """Make one policy of a deployment loadable: verify a registered version, copy a folder, build a kind.

        Returns where it loads from: ``{"registry": "MODEL@N"}`` (verified again at every load) or ``{"folder"}``.
        """
        source_hash = spec.source_hash(source)
        if source.version is not None:
            ref = ModelRef.parse(source.version, f"{field}.version", require_version=True)
            with Registry(self.home) as registry:
                try:
                    policy = registry.load(ref.name, ref.version)  # verifies the signature and every file's hash
                except (NotFoundError, ConfigError) as e:
                    raise ValidationError(f"{field}.version", str(e)) from e
            if policy.schema != spec.schema_:
                raise ConflictError(f"{field}.version: {source.version}'s schema differs from the deployment's schema")
            return {"registry": source.version, "source_hash": source_hash}
        folder = self._policy_folder(spec.name, source_hash)
        if not (folder / "manifest.json").exists():
            if source.path is not None:
                loaded = load_policy(source.path, keyring=self.log.keyring)  # verifies it before it is copied
                if loaded.schema != spec.schema_:
                    raise ConflictError(f"{field}.path: the saved policy's schema differs from the deployment's "
                                        f"schema ({source.path})")
                tmp = folder.with_name(folder.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                copy_tree(Path(source.path), tmp, self.log.keyring, symlinks=True)  # sealed with a data key
                try:
                    tmp.replace(folder)
                except OSError:  # a concurrent apply of the same content got there first
                    shutil.rmtree(tmp, ignore_errors=True)
                    if not (folder / "manifest.json").exists():
                        raise
            else:
                policy_cls = kinds()[str(source.kind)]
                try:
                    policy = policy_cls(spec.schema_, **source.params)  # type: ignore[call-arg]
                except (TypeError, ConfigError) as e:  # an unknown or out-of-range parameter: the request's fault
                    raise ValidationError(f"{field}.params", f"not accepted by '{source.kind}': {e}") from e
                save_policy(policy, folder, keyring=self.log.keyring)
        return {"folder": str(folder), "source_hash": source_hash}

    def apply(self, spec: DeploymentSpec | str | Path, *, base_revision: int | None = None,
              actor: str | None = None, change: str = "apply", reason: str = "") -> ApplyResult:
        """Create or update a deployment. Idempotent: unchanged content makes no new revision.

        Every policy the spec names is made loadable first (registered versions verified, folders copied into
        the home folder, kinds built), so a spec that cannot serve is refused before it becomes a revision. A new
        revision is recorded in the audit log (``deploy``, or ``rollback`` when ``change`` is one).

        Args:
            spec: the deployment (or its file).
            base_revision: the revision this spec was derived from; if another change has made a newer one since,
                :class:`ConflictError` (no lost update). ``None``: apply whatever the latest is.
            actor: who makes the change, for the audit log (default: the OS user).
            change: what kind of change, for the audit log (``apply``, ``canary``, ``promote``, ``rollback``...).
            reason: why, for the audit log.
        """
        if not isinstance(spec, DeploymentSpec):
            spec = DeploymentSpec.load(spec)
        resolved = spec
        arms: list[tuple[Role, str, float, PolicySource, dict[str, Any]]] = []
        roles = [(Role.PRODUCTION, "production", "policy", spec.policy, 1.0)]
        if spec.canary is not None:
            roles.append((Role.CANARY, "canary", "canary.policy", spec.canary.policy, spec.canary.fraction))
        if spec.holdout is not None:
            roles.append((Role.HOLDOUT, "holdout", "holdout.policy", spec.holdout.policy, spec.holdout.fraction))
        roles.extend((Role.SHADOW, s.name, f"shadows[{i}].policy", s.policy, 0.0) for i, s in enumerate(spec.shadows))
        if spec.baseline is not None:
            roles.append((Role.BASELINE, "baseline", "baseline", spec.baseline, 0.0))
        for role, name, field, source, fraction in roles:
            arms.append((role, name, fraction, source, self._materialize(resolved, field, source)))
        served = 1.0 - sum(f for role, _, f, _, _ in arms if role in (Role.CANARY, Role.HOLDOUT))

        def stored(number: int, previous: Revision | None) -> dict[str, Any]:
            # A policy keeps its version across revisions (adding a canary does not rename production, rolling
            # back brings the old name back), so its decisions stay comparable; a new policy is named after the
            # revision it came in with.
            known = {} if previous is None else {a.get("source_hash"): a["version"]
                                                 for r in self.store.history(spec.name) for a in r.arms
                                                 if a["role"] != Role.BASELINE.value}
            out = spec.model_dump(mode="json", by_alias=True)
            out["arms"] = []
            for role, name, f, source, where in arms:
                if role is Role.BASELINE:
                    # Its own label, stable while its policy is unchanged, never shared with an arm that serves units
                    # in the split (the baseline may be the very same policy as production or the holdout).
                    out["arms"].append({"role": role.value, "name": name, "fraction": 0.0,
                                        "version": f"{spec.name}@baseline-{where['source_hash'][:8]}", **where})
                    continue
                version = source.version or known.get(where["source_hash"])
                if version is None:  # new here; a second new policy in the same revision gets its arm's name too
                    taken = {a["version"] for a in out["arms"]}
                    version = next(v for v in (f"{spec.name}@r{number}", f"{spec.name}@r{number}-{name}")
                                   if v not in taken)
                    known[where["source_hash"]] = version
                out["arms"].append({"role": role.value, "name": name,
                                    "fraction": served if role is Role.PRODUCTION else f, "version": version, **where})
            out["policy_folder"] = arms[0][4].get("folder")
            return out

        revision, created = self.store.add(spec.name, spec.content_hash(), stored, base_revision=base_revision)
        with self._lock:
            stale = self._runtimes.get(spec.name)
            if created and stale is not None:
                stale.checked_at = -math.inf  # the next decision loads the new revision (carrying kept arms over)
        if created:
            self._audit_revision(revision, actor, change, reason)
        return ApplyResult(spec.name, revision.revision, created, revision.policy_version)

    def _audit_revision(self, revision: Revision, actor: str | None, change: str, reason: str) -> None:
        versions = {a["role"]: a["version"] for a in revision.arms}
        details: dict[str, Any] = {"revision": revision.revision, "change": change,
                                   "production_version": revision.policy_version,
                                   "canary_version": versions.get(Role.CANARY.value), "reason": reason}
        action = AuditAction.ROLLBACK if change == "rollback" else AuditAction.DEPLOY
        audit.record_change(self.home, actor or default_actor(), action, f"deployment:{revision.name}", details)

    def deployments(self) -> list[Revision]:
        return [self.store.latest(name) for name in self.store.names()]

    def _load(self, revision: Revision, previous: _Runtime | None = None) -> _Runtime:
        """Load every arm of a revision; a registered version is verified (signature, every file) each time.

        An arm whose policy the previous revision already served (same version and source) is carried over as it
        is in memory, with what it learned online: adding a canary must not make production forget.
        """
        spec = revision.deployment_spec()
        arms = []
        stream = () if self.stream is None else (self.stream,)
        kept = {} if previous is None else {(a.info.policy_version, a.info.source): a for a in previous.arms}
        for i, stored in enumerate(revision.arms):
            info = ArmInfo(Role(stored["role"]), stored["name"], stored["version"], float(stored["fraction"]),
                           self._describe(spec, stored["role"], stored["name"]))
            carried = kept.get((info.policy_version, info.source))
            if carried is not None and (carried.info.role is Role.SHADOW) == (info.role is Role.SHADOW):
                carried.info = info
                arms.append(carried)
                continue
            if "registry" in stored:
                ref = ModelRef.parse(stored["registry"], "version", require_version=True)
                with Registry(self.home) as registry:
                    policy = registry.load(ref.name, ref.version)
            else:
                policy = load_policy(stored["folder"], keyring=self.log.keyring)
            # Production keeps the stream it always had; other arms get their own.
            rng = np.random.default_rng([spec.seed, revision.revision, *stream, *((1000 + i,) if i else ())])
            arms.append(_Arm(info, policy, rng))
        return _Runtime(revision, spec, arms)

    @staticmethod
    def _describe(spec: DeploymentSpec, role: str, name: str) -> str:
        if role == Role.CANARY and spec.canary is not None:
            return spec.canary.policy.describe()
        if role == Role.HOLDOUT and spec.holdout is not None:
            return spec.holdout.policy.describe()
        if role == Role.SHADOW:
            return next(s.policy.describe() for s in spec.shadows if s.name == name)
        if role == Role.BASELINE and spec.baseline is not None:
            return spec.baseline.describe()
        return spec.policy.describe()

    def _runtime(self, name: str) -> _Runtime:
        if not isinstance(name, str):
            raise ValidationError("deployment", f"expected a deployment name, got {type(name).__name__}")
        runtime = self._runtimes.get(name)
        now = time.monotonic()
        if runtime is not None and now - runtime.checked_at < RECHECK_S:
            return runtime
        with self._lock:
            runtime = self._runtimes.get(name)
            if runtime is not None and now - runtime.checked_at < RECHECK_S:
                return runtime
            # Another process (e.g. `rlops deploy apply`) may have made a newer revision: look, at most once a second.
            revision = self.store.latest(name)
            if runtime is None or revision.revision != runtime.revision.revision:
                if runtime is not None and runtime.failed == (revision.revision, int(now // FAILED_RETRY_S)):
                    runtime.checked_at = now  # it failed moments ago: do not verify it again on every request
                    return runtime
                try:
                    loaded = self._load(revision, runtime)
                except Exception as e:  # whatever stops it loading (ConfigError, a missing dependency...)
                    if runtime is None:
                        raise
                    runtime.failed = (revision.revision, int(now // FAILED_RETRY_S))
                    # A newer revision that does not load (a tampered artefact, a missing folder) must not stop
                    # the server: it keeps serving what it has, and says so.
                    log.error("deployment %s revision %d did not load, still serving revision %d: %s", name,
                              revision.revision, runtime.revision.revision, e)
                    loaded = runtime
                runtime = loaded
                self._runtimes[name] = runtime
            runtime.checked_at = now
        return runtime

    def arms(self, name: str) -> list[ArmInfo]:
        """The arms serving deployment ``name`` now: production first, then canary, holdout and shadows."""
        return [arm.info for arm in self._runtime(name).arms]

    def policy(self, name: str, arm: str = "production") -> BasePolicy:
        """The in-memory policy of one arm (with what it has learned online in this process). Read it, do not act
        with it: decisions go through :meth:`decide`, which holds the arm's lock."""
        for candidate in self._runtime(name).arms:
            if candidate.info.name == arm:
                return candidate.policy
        raise NotFoundError(f"arm: deployment {name!r} has no arm {arm!r}")

    def expected_rewards(self, name: str, arm: str, batch: PolicyInput) -> Any:
        """An arm's reward-model predictions (:meth:`BasePolicy.expected_rewards`), under the arm's lock so that
        online learning does not change the model mid-prediction."""
        for candidate in self._runtime(name).arms:
            if candidate.info.name == arm:
                with candidate.lock:
                    return candidate.policy.expected_rewards(batch)
        raise NotFoundError(f"arm: deployment {name!r} has no arm {arm!r}")

    def serving_revision(self, name: str) -> int:
        """The revision this process serves (the newest, unless the newest did not load)."""
        return self._runtime(name).revision.revision

    def spec(self, name: str) -> DeploymentSpec:
        return self._runtime(name).spec

    # ---- decisions --------------------------------------------------------------------------------------------

    def decide(self, deployment: str, context: Any, unit_id: Any, actions: Any = None, *,
               key_id: str | None = None, consent: bool = True) -> Decision:
        """Choose an action for one context, log the decision durably, and return it.

        Args:
            deployment: the deployment's name.
            context: the raw context features (validated against the deployment's schema).
            unit_id: the subject of the decision (a user, a building, a patient), at most 256 characters.
            actions: per-request candidates ``[{"id": ..., "features": {...}}]`` for candidate action spaces.
            key_id: the API key asking (the service passes it; logged with the decision).
            consent: whether the unit consented to its data being used for learning. Without consent the
                deployment's ``baseline`` policy decides (a deployment without one refuses the request), shadows do
                not, and the decision is logged with ``consent=False``: no learner or estimator ever uses it.
        """
        return self.decide_batch(deployment, [context], [unit_id], None if actions is None else [actions],
                                 key_id=key_id, consent=None if consent is True else [consent])[0]

    def decide_batch(self, deployment: str, contexts: Sequence[Any], unit_ids: Sequence[Any],
                     actions: Sequence[Any] | None = None, *, key_id: str | None = None,
                     consent: Sequence[bool] | None = None) -> list[Decision]:
        """Decide for several contexts at once; all are validated before any is logged.

        ``consent``: one flag per context (default: every unit consented); see :meth:`decide`.
        """
        runtime = self._runtime(deployment)
        schema = runtime.spec.schema_
        if not isinstance(contexts, Sequence) or isinstance(contexts, str | bytes) or not contexts:
            raise ValidationError("contexts", "expected a non-empty list of contexts")
        if not isinstance(unit_ids, Sequence) or len(unit_ids) != len(contexts):
            raise ValidationError("unit_ids", f"expected {len(contexts)} unit ids, one per context")
        units = [_check_id(u, "unit_id" if len(contexts) == 1 else f"unit_ids[{i}]") for i, u in enumerate(unit_ids)]
        if len(contexts) == 1:
            valid = [schema.validate_context(contexts[0])]
        else:
            valid = [schema.validate_context(c, path=f"contexts[{i}]") for i, c in enumerate(contexts)]
        candidates = None
        if actions is not None:
            if not isinstance(actions, Sequence) or len(actions) != len(contexts):
                raise ValidationError("actions", f"expected {len(contexts)} candidate lists, one per context")
            candidates = [schema.validate_candidates(a, path="actions" if len(contexts) == 1 else f"actions[{i}]")
                          for i, a in enumerate(actions)]
        elif schema.actions.type == "candidates":
            raise ValidationError("actions", "this deployment needs a candidate list with every request")
        withheld = np.zeros(len(valid), dtype=bool)
        if consent is not None:
            if not isinstance(consent, Sequence) or len(consent) != len(contexts):
                raise ValidationError("consent", f"expected {len(contexts)} consent flags, one per context")
            for i, flag in enumerate(consent):
                if not isinstance(flag, bool):
                    raise ValidationError("consent" if len(contexts) == 1 else f"consent[{i}]",
                                          f"expected true or false, got {type(flag).__name__}")
            withheld = ~np.asarray(consent, dtype=bool)
        if withheld.any() and runtime.baseline is None:
            raise ValidationError("consent", f"deployment {deployment!r} has no baseline policy to decide for units "
                                             "without consent; add `baseline: {kind: ...}` to its deployment file")
        x = schema.encode(valid)
        encoded = None if candidates is None else [schema.encode_candidates(c) for c in candidates]
        logged = self._loggable(runtime, valid)
        ts = now_us()
        rows = np.arange(len(valid))
        slots = runtime.split.slots(units)
        served: dict[int, tuple[Decision, DecisionRecord]] = {}
        plan = [(arm, rows if runtime.split.trivial else np.flatnonzero(slots == slot))
                for slot, arm in runtime.by_slot.items()]
        if withheld.any() and runtime.baseline is not None:
            plan = [(arm, picked[~withheld[picked]]) for arm, picked in plan]
            plan.append((runtime.baseline, np.flatnonzero(withheld)))
        for arm, picked in plan:
            if len(picked):
                for i, pair in zip(picked.tolist(), self._act(deployment, arm, Mode.SERVED, picked, x, valid,
                                                              candidates, encoded, units, ts, key_id,
                                                              consent=arm is not runtime.baseline, logged=logged),
                                   strict=True):
                    served[i] = pair
        records = [served[i][1] for i in range(len(valid))]
        shadowed: list[DecisionRecord] = []
        consenting = rows[~withheld]
        for arm in runtime.shadows if len(consenting) else ():  # a shadow that fails must not fail the request
            try:
                shadowed.extend(r for _, r in self._act(deployment, arm, Mode.SHADOW, consenting, x, valid,
                                                        candidates, encoded, units, ts, key_id, logged=logged))
            except Exception:
                log.exception("shadow %s of %s failed to decide", arm.info.name, deployment)
        self.log.append(records + shadowed)
        if shadowed and self.on_shadow is not None:
            self.on_shadow(shadowed)
        index_map = self._decision_index()
        keep_context = bool(runtime.spec.reward.context)
        for i in range(len(valid)):
            record = served[i][1]
            index_map[record.decision_id] = (deployment, ts, key_id, record.action_index)
            if keep_context:
                self._contexts[record.decision_id] = record.context
        while len(self._contexts) > CONTEXT_CACHE:
            self._contexts.popitem(last=False)
        return [served[i][0] for i in range(len(valid))]

    def _loggable(self, runtime: _Runtime, valid: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """The contexts as the log may keep them (PII fields dropped or hashed), or ``None`` if they all may be
        kept as they are."""
        if not runtime.spec.schema_.pii:
            return None
        if runtime.pii is None:
            hashing = PiiPolicy.HASH in runtime.spec.schema_.pii.values()
            runtime.pii = PiiFilter(runtime.spec.schema_, load_pii_key(self.home.keys) if hashing else None)
        if not runtime.pii.active:
            return None
        return [runtime.pii.protect(c) for c in valid]

    @staticmethod
    def _act(deployment: str, arm: _Arm, mode: Mode, rows: np.ndarray[Any, Any], x: np.ndarray[Any, Any],
             valid: list[dict[str, Any]], candidates: list[list[dict[str, Any]]] | None,
             encoded: list[Any] | None, units: list[str], ts: int,
             key_id: str | None, consent: bool = True,
             logged: list[dict[str, Any]] | None = None) -> list[tuple[Decision, DecisionRecord]]:
        """Let one arm decide for some rows of a batch; returns the answer and the log record of each."""
        schema = arm.policy.schema
        whole = len(rows) == len(valid)
        index_list = rows.tolist()
        contexts = valid if whole else [valid[i] for i in index_list]
        batch = PolicyInput(x=x if whole else x[rows], contexts=contexts,
                            candidates=None if encoded is None else [encoded[i] for i in index_list])
        started = time.perf_counter_ns()
        with arm.lock:
            result = arm.policy.act(batch, arm.rng)
        latency_us = (time.perf_counter_ns() - started) // 1000 // len(index_list)
        version = arm.info.policy_version
        chosen = result.action.tolist()  # one conversion per batch, not one numpy scalar per field
        propensities = result.propensity.tolist()
        fixed_names = schema.action_names() if candidates is None else None
        out = []
        for j, i in enumerate(index_list):
            names = fixed_names if candidates is None else schema.action_names(candidates[i])
            probs = result.row_probabilities(j)
            index = -1 if schema.is_continuous else chosen[j]
            action: str | list[float] = chosen[j] if index == -1 else names[index]  # type: ignore[index]
            prob_list = None if probs is None else probs.tolist()
            decision_id = new_id()
            record = DecisionRecord(
                decision_id=decision_id, ts=ts, deployment=deployment, policy_version=version, mode=mode,
                unit_id=units[i], context=valid[i] if logged is None else logged[i], actions=names or [],
                action=action, action_index=index,
                propensity=propensities[j], probabilities=prob_list,
                candidate_features=None if candidates is None else [c["features"] for c in candidates[i]],
                latency_us=latency_us, key_id=key_id, consent=consent)
            decision = Decision(decision_id, deployment, version, action, index, propensities[j],
                                None if prob_list is None else dict(zip(names or [], prob_list, strict=True)),
                                latency_us)
            out.append((decision, record))
        return out

    def decision_deployment(self, decision_id: Any) -> str | None:
        """The deployment a stored decision belongs to (from the index: no log read), or ``None`` if unknown."""
        found = self._find_decision(_check_id(decision_id, "decision_id"))
        return None if found is None else found[0]

    def decision(self, decision_id: Any) -> dict[str, Any]:
        """The logged record of one decision (context and candidate features as objects).

        Reads the log: fine for inspecting a decision, not for a hot path.
        """
        decision_id = _check_id(decision_id, "decision_id")
        table = self.log.read_decisions()
        rows = table.filter(pc.equal(table["decision_id"], decision_id)).to_pylist()
        if not rows:
            raise NotFoundError(f"decision {decision_id!r} does not exist")
        row = rows[0]
        row["ts"] = row["ts"].isoformat()
        row["context"] = json.loads(row["context"])
        if row["candidate_features"] is not None:
            row["candidate_features"] = json.loads(row["candidate_features"])
        if row["action_index"] == -1:
            row["action"] = json.loads(row["action"])
        return row  # type: ignore[no-any-return]

    def forget(self, decision_ids: Collection[str]) -> None:
        """Drop erased decisions from this process's memory: the decision index, recent contexts, stored outcome
        keys and the online-learning feed (:func:`rlops.security.privacy.erase_unit` calls it after removing them
        from the log; what other server processes hold in memory ages out with their windows)."""
        ids = set(decision_ids)
        if not ids:
            return
        with self._lock:
            if self._index is not None:
                for decision_id in ids:
                    self._index.pop(decision_id, None)
            for decision_id in ids:
                self._contexts.pop(decision_id, None)
            if self._keys is not None:
                self._keys = {key for key in self._keys if key[0] not in ids}
        with self._feed.lock:
            self._feed.forget(pa.array(sorted(ids), pa.string()))

    # ---- outcomes ---------------------------------------------------------------------------------------------

    def _decision_index(self) -> dict[str, DecisionRef]:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    index: dict[str, DecisionRef] = {}
                    self._index_read_wall_ms = time.time_ns() // 1_000_000 - 1000
                    self.log.update_decision_index(index, self._cursor)
                    self._index = index
        return self._index

    def _find_decision(self, decision_id: str) -> DecisionRef | None:
        """Where and when a decision was made.

        An id missing from this engine's index is looked for in what the log gained since the index was last
        brought up to date (each update reads only the bytes written since):

        - at once, if its embedded time is after that update (another worker's decision of a moment ago);
        - at most once a second, if it is an older well-formed id (decisions ingested from an edge device's log
          were made earlier than they were stored);
        - never, if it is not an rlops id at all or claims a time in the future.

        A made-up id carrying the current time does cause a read; requests waiting at the same time share one, and
        a read costs only what was written since the last.
        """
        index = self._decision_index()
        found = index.get(decision_id)
        if found is not None or not looks_like_id(decision_id):
            return found
        if id_time_ms(decision_id) > time.time_ns() // 1_000_000 + CLOCK_SKEW_US // 1000:
            return None  # claims to be from the future: junk, not worth a read
        fresh = _made_after(decision_id, self._index_read_wall_ms)
        arrived = time.monotonic()
        if not fresh and arrived - self._index_update_started < RECHECK_S:
            return None
        with self._refresh_lock:  # one reader at a time; decide never waits on it
            found = index.get(decision_id)  # a concurrent update may have brought it in meanwhile
            # An update that began after this request arrived has read everything stored before it: a flood of
            # unknown ids waiting here shares one read instead of making one each.
            if found is None and self._index_update_started < arrived:
                self._index_update_started = time.monotonic()
                started_wall_ms = time.time_ns() // 1_000_000
                self.log.update_decision_index(index, self._cursor)
                self._index_read_wall_ms = started_wall_ms - 1000
                found = index.get(decision_id)
        return found

    def _outcome_keys(self) -> set[tuple[str, str]]:
        """``(decision_id, idempotency_key)`` of every stored outcome, loaded once."""
        if self._keys is None:
            with self._lock:
                if self._keys is None:
                    stored = self.log.read_outcomes()
                    self._keys = {(d, k) for d, k, q in zip(stored["decision_id"].to_pylist(),
                                                            stored["idempotency_key"].to_pylist(),
                                                            stored["quarantine"].to_pylist(), strict=True)
                                  if q is None}  # a quarantined outcome holds no key (see report_batch)
        return self._keys

    def report(self, decision_id: Any, fields: Any, idempotency_key: Any = None,
               ts: int | None = None) -> ReportResult:
        """Store an outcome of a decision; the reward is computed later, at join time, by the reward spec.

        Args:
            decision_id: the id ``decide`` returned.
            fields: what happened, e.g. ``{"clicked": True, "revenue": 12.5}``.
            idempotency_key: outcomes with the same key count once; default: a hash of the id and the fields.
            ts: when it happened, microseconds since the epoch (default: now).

        Returns:
            Whether it was accepted, a duplicate (not stored again), or dead-lettered (stored, with the reason).
        """
        outcome = {"decision_id": decision_id, "fields": fields, "idempotency_key": idempotency_key}
        return self.report_batch([outcome], ts=ts)[0]

    def report_batch(self, outcomes: Sequence[Any], ts: int | None = None, *, key_id: str | None = None,
                     authorize: Callable[[str, str | None], None] | None = None) -> list[ReportResult]:
        """Store several outcomes with one durable write; all are validated before any is stored.

        Each outcome is a mapping with ``decision_id``, ``fields`` and an optional ``idempotency_key``.

        Args:
            outcomes: the outcomes.
            ts: their time, microseconds since the epoch (default: now).
            key_id: the API key reporting them (the service passes it; stored with each outcome).
            authorize: called with each known decision's deployment and the key that asked for it, before anything
                is stored; it raises (e.g. :class:`ForbiddenError`) to refuse the whole batch.
        """
        if not isinstance(outcomes, Sequence) or isinstance(outcomes, str | bytes) or not outcomes:
            raise ValidationError("outcomes", "expected a non-empty list of outcomes")
        when = now_us() if ts is None else _check_ts(ts)
        parsed: list[tuple[str, dict[str, Any], str]] = []
        for i, item in enumerate(outcomes):
            prefix = "outcome" if len(outcomes) == 1 else f"outcomes[{i}]"
            if not isinstance(item, Mapping):
                raise ValidationError(prefix, f"expected an object, got {type(item).__name__}")
            unknown = set(item) - {"decision_id", "fields", "idempotency_key"}
            if unknown:
                raise ValidationError(f"{prefix}.{sorted(unknown)[0]}", "unknown field")
            decision_id = _check_id(item.get("decision_id"), f"{prefix}.decision_id")
            clean = _check_fields(item.get("fields"), f"{prefix}.fields")
            raw_key = item.get("idempotency_key")
            key = (default_idempotency_key(decision_id, clean) if raw_key is None
                   else _check_id(raw_key, f"{prefix}.idempotency_key"))
            parsed.append((decision_id, clean, key))
        found = [self._find_decision(decision_id) for decision_id, _, _ in parsed]
        if authorize is not None:
            for ref in found:
                if ref is not None:
                    authorize(ref[0], ref[2])
        # Each outcome's reward, evaluated once (outside the lock) for both the poisoning guard and the answer.
        checks = [None if ref is None else self._check(decision_id, clean, self._runtime(ref[0]))
                  for (decision_id, clean, _), ref in zip(parsed, found, strict=True)]
        screening = self._screening(found, checks, key_id)
        held: list[str | None] = [None] * len(parsed)
        results: dict[int, ReportResult] = {}
        with self._lock:
            keys = self._outcome_keys()
            fresh: list[OutcomeRecord] = []
            batch_keys: set[tuple[str, str]] = set()
            for i, (decision_id, clean, key) in enumerate(parsed):
                scoped = (decision_id, key)  # keys are per decision: "click" may be reused across decisions
                if scoped in keys or scoped in batch_keys:
                    results[i] = ReportResult(decision_id, key, OutcomeStatus.DUPLICATE,
                                              "idempotency key already stored for this decision")
                    continue
                held[i] = self._judge(screening[i], key_id)  # only outcomes that will be stored count for the guard
                if held[i] is None:  # a quarantined outcome never takes the key from the trusted one to come
                    batch_keys.add(scoped)
                fresh.append(OutcomeRecord(decision_id=decision_id, ts=when, fields=clean, idempotency_key=key,
                                           key_id=key_id, quarantine=held[i]))
            if fresh:
                self.log.append(fresh)
                keys.update(batch_keys)
        for i, (decision_id, _, key) in enumerate(parsed):
            if i in results:
                continue
            results[i] = self._classify(decision_id, key, when, found[i], checks[i])
            # A dead letter stays one (an unknown decision's outcome is also stored quarantined: see _judge).
            if held[i] is not None and results[i].status is OutcomeStatus.ACCEPTED:
                results[i] = dataclasses.replace(results[i], status=OutcomeStatus.QUARANTINED, reason=held[i])
        return [results[i] for i in range(len(parsed))]

    def _check(self, decision_id: str, fields: dict[str, Any], runtime: _Runtime) -> RewardCheck:
        return runtime.spec.reward.check_one(fields, self._context_of(decision_id, runtime))

    def _screening(self, found: list[DecisionRef | None], checks: list[RewardCheck | None],
                   key_id: str | None) -> list[tuple[str | None, int, float | None] | None]:
        """What the poisoning guard needs of each outcome: (deployment or None when the decision is unknown, action
        index, reward or None); ``None`` when it is not screened (reported in-process, or a guard turned off)."""
        out: list[tuple[str | None, int, float | None] | None] = [None] * len(found)
        if key_id is None:
            return out  # reported in-process: trusted
        for i, (ref, check) in enumerate(zip(found, checks, strict=True)):
            if ref is None:
                out[i] = (None, -1, None)
            elif self._runtime(ref[0]).spec.outcome_guard.enabled:
                out[i] = (ref[0], ref[3], None if check is None else check.reward)
        return out

    def _judge(self, screened: tuple[str | None, int, float | None] | None, key_id: str | None) -> str | None:
        """The guard's verdict on one outcome about to be stored (called under the engine's lock)."""
        if screened is None or key_id is None:
            return None
        deployment, action, reward = screened
        if deployment is None:
            # Nobody can check a key's right to a decision that is not stored yet (an edge decision not ingested):
            # kept, but never counted, even once the decision arrives.
            return "quarantined: the decision was unknown when the outcome was reported"
        spec = self._runtime(deployment).spec.outcome_guard
        guard = self._guards.get(deployment)
        if guard is None or guard.config != spec:
            guard = self._guards[deployment] = PoisoningGuard(spec)
        return guard.check(key_id, action, reward, now_s=time.monotonic())

    def _classify(self, decision_id: str, key: str, when: int, found: DecisionRef | None,
                  check: RewardCheck | None) -> ReportResult:
        """Tell the client now what the join will do with a stored outcome."""
        if found is None or check is None:
            return ReportResult(decision_id, key, OutcomeStatus.DEAD_LETTER, "unknown decision")
        deployment, decided_at, _, _ = found
        runtime = self._runtime(deployment)
        if decided_at - when > CLOCK_SKEW_US:
            return ReportResult(decision_id, key, OutcomeStatus.DEAD_LETTER,
                                f"dated {(decided_at - when) / 1e6:.0f} s before its decision")
        if when - decided_at > runtime.window_us:
            late = (when - decided_at) / 1e6
            return ReportResult(decision_id, key, OutcomeStatus.DEAD_LETTER,
                                f"expired: arrived {late:.0f} s after the decision, the window is "
                                f"{runtime.window_us / 1e6:.0f} s")
        if check.error is not None or check.reward is None:
            return ReportResult(decision_id, key, OutcomeStatus.DEAD_LETTER, str(check.error),
                                out_of_bounds=check.out_of_bounds)
        if check.out_of_bounds:
            return ReportResult(decision_id, key, OutcomeStatus.ACCEPTED, f"reward {check.unbounded:g} clipped to "
                                f"{check.reward:g} (outside the reward spec's bounds)", check.reward,
                                out_of_bounds=True)
        return ReportResult(decision_id, key, OutcomeStatus.ACCEPTED, None, check.reward)

    def _context_of(self, decision_id: str, runtime: _Runtime) -> dict[str, Any]:
        """The decision's context, for reward specs that read context fields (recent ones are cached)."""
        if not runtime.spec.reward.context:
            return {}
        cached = self._contexts.get(decision_id)
        if cached is not None:
            return cached
        table = self.log.read_decisions()
        row = table.filter(pc.equal(table["decision_id"], decision_id)).slice(0, 1).to_pylist()
        return json.loads(row[0]["context"]) if row else {}

    # ---- joins and learning -----------------------------------------------------------------------------------

    def interactions(self, deployment: str, *, as_of_us: int | None = None,
                     include_pending: bool = False) -> JoinResult:
        """Join the deployment's decisions with their outcomes under its reward spec and window."""
        runtime = self._runtime(deployment)
        return join(self.log.read_decisions(), self.log.read_outcomes(), runtime.spec.reward,
                    deployment=deployment, window_seconds=runtime.spec.window_seconds,
                    as_of_us=now_us() if as_of_us is None else as_of_us, include_pending=include_pending)

    def join_all(self, names: Sequence[str] | None = None, *, as_of_us: int | None = None,
                 include_pending: bool = False, tables: tuple[pa.Table, pa.Table] | None = None
                 ) -> dict[str, JoinResult]:
        """Join several deployments (default: all), each under its own reward spec, reading the log once.

        ``tables``: the log's decisions and outcomes when the caller has read them already.
        """
        chosen = list(self.store.names() if names is None else names)
        specs = {name: self._runtime(name).spec for name in chosen}  # unknown names fail before any reading
        decisions, outcomes = tables if tables is not None else (self.log.read_decisions(), self.log.read_outcomes())
        now = now_us() if as_of_us is None else as_of_us
        return {name: join(decisions, outcomes, spec.reward, deployment=name, window_seconds=spec.window_seconds,
                           as_of_us=now, include_pending=include_pending)
                for name, spec in specs.items()}

    def dead_letters(self, *, as_of_us: int | None = None) -> pa.Table:
        """Every dead-lettered outcome: each deployment's (under its own reward spec) and unknown decisions'."""
        tables = [result.dead_letters for result in self.join_all(as_of_us=as_of_us).values()]
        tables.append(orphan_outcomes(self.log.read_decisions(), self.log.read_outcomes()))
        return pa.concat_tables(tables).sort_by([("ts", "ascending")])

    def learn(self, deployment: str, *, include_pending: bool | None = None) -> int:
        """Update online-learning policies from joined interactions they have not seen yet; returns how many.

        Each served arm (production, canary, holdout) whose policy can update learns from the decisions it made
        itself: its policy version's interactions. An arm keeps what it learned across revisions that keep its
        policy (see :meth:`_load`). Concurrent calls are safe: each interaction is learned once.

        A pass reads only what the log gained since the last pass (the first pass of a process reads it all) and
        keeps in memory the decisions of online deployments still inside their window.

        Args:
            deployment: the deployment.
            include_pending: also learn from outcomes that arrived before their window closed (default: the
                deployment's :attr:`~DeploymentSpec.early_outcomes_usable`). Each decision is learned once, at its
                first outcome then: a spec that aggregates several outcomes per decision should leave this off.
        """
        runtime = self._runtime(deployment)
        if not runtime.spec.learning.online:
            return 0
        learners = [arm for arm in runtime.arms if arm.info.role not in (Role.SHADOW, Role.BASELINE)
                    and getattr(arm.policy, "update", None) is not None]
        if not learners:
            return 0
        early = runtime.spec.early_outcomes_usable if include_pending is None else include_pending
        with self._feed.lock:
            windows = {}
            for name in self.store.names():
                try:
                    other = self._runtime(name)
                except RlopsError:
                    continue
                if other.spec.learning.online:
                    windows[name] = other.window_us
            now = now_us()  # one "now" for the join and for what is forgotten after it
            table = self._feed.joinable(self.log, deployment, runtime.spec, set(windows), now, early)
            learned = sum(self._learn_arm(runtime, arm, table) for arm in learners)
            self._feed.settle(deployment, table, windows, now)
        return learned

    @staticmethod
    def _learn_arm(runtime: _Runtime, arm: _Arm, table: pa.Table) -> int:
        with arm.learn_lock:
            table = table.filter(pc.equal(table["policy_version"], arm.info.policy_version))
            ids = table["decision_id"].to_pylist()
            fresh = [i for i, d in enumerate(ids) if d not in arm.learned]
            if not fresh:
                return 0
            rows = table.take(pa.array(fresh))
            schema = runtime.spec.schema_
            contexts = [json.loads(c) for c in rows["context"].to_pylist()]
            cands = None
            if schema.actions.type == "candidates":
                cands = [np.asarray(schema.encode_candidates([{"features": f} for f in json.loads(c)]))
                         for c in rows["candidate_features"].to_pylist()]
            batch = PolicyInput(x=schema.encode(contexts), contexts=contexts, candidates=cands)
            learning = LearningBatch(batch, np.asarray(rows["action_index"].to_numpy(), dtype=np.int64),
                                     np.asarray(rows["reward"].to_numpy(), dtype=np.float64),
                                     np.asarray(rows["propensity"].to_numpy(), dtype=np.float64))
            with arm.lock:
                arm.policy.update(learning)  # type: ignore[attr-defined]
            arm.learned.update(ids[i] for i in fresh)
            arm.learned_total += len(fresh)
            if len(arm.learned) > LEARNED_IDS:
                # The ids only guard against a rescanned segment giving rows again, which concerns recent rows:
                # forget those made more than a window (and a day) ago.
                horizon_ms = time.time_ns() // 1_000_000 - runtime.window_us // 1000 - 86_400_000
                arm.learned = {d for d in arm.learned if not looks_like_id(d) or id_time_ms(d) > horizon_ms}
            return len(fresh)

    def save_learned(self, deployment: str, arm: str = "production") -> Path:
        """Snapshot an arm's in-memory policy (after online learning) next to its revision."""
        runtime = self._runtime(deployment)
        chosen = next((a for a in runtime.arms if a.info.name == arm), None)
        if chosen is None:
            raise NotFoundError(f"arm: deployment {deployment!r} has no arm {arm!r} "
                                f"(it has {[a.info.name for a in runtime.arms]})")
        suffix = "" if chosen is runtime.production else f"-{arm}"
        folder = self.home.deployments / deployment / "learned" / f"r{runtime.revision.revision}{suffix}"
        with chosen.lock:
            return save_policy(chosen.policy, folder, keyring=self.log.keyring)

    def learned_count(self, deployment: str, arm: str = "production") -> int:
        """How many interactions an arm's in-memory policy has learned since it was loaded."""
        runtime = self._runtime(deployment)
        return sum(a.learned_total for a in runtime.arms if a.info.name == arm)

    def reward_spec(self, deployment: str) -> RewardSpec:
        return self._runtime(deployment).spec.reward

    def close(self) -> None:
        self.log.close()
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

