"""Erasure of a unit and retention of the event log, on a whole home folder, audited.

- :func:`erase_unit` removes every decision of a unit and every outcome of those decisions from the event log
  (segments, Parquet parts, quarantined bytes: :func:`rlops.events.erasure.erase_unit_records`), drops them from the
  calling engine's memory, searches every other file of the home folder for the unit id, and records the erasure in
  the audit log under a keyed hash of the unit id, never the id itself.
- :func:`apply_retention` removes each deployment's decisions older than its ``retention`` with their outcomes
  (:func:`rlops.events.retention.expire_records`) and records each deployment's run in the audit log;
  :class:`RetentionHook` does it on a schedule inside a server.

Both work while servers keep writing: see :mod:`rlops.events.rewrite` for how live writers are asked to give up
their segments, and what is reported when one does not in time. ``docs/privacy.md`` is the operator's guide.

The keyed hash (:func:`unit_ref`) is HMAC-SHA256 under the erasure key: ``$RLOPS_ERASURE_KEY``, else
``HOME/keys/erasure_hmac`` (created, mode 0600, on the first erasure). A plain hash of a unit id could be reversed
by hashing every likely id; with the key, only its holder can recompute the hash of an id to answer "was this
unit erased, and when?" from the audit log.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import math
import os
import stat
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlops.engine import DeploymentStore, Engine
from rlops.errors import NotFoundError, RlopsError, StorageError, ValidationError
from rlops.events.erasure import check_unit_id, erase_unit_records, unit_needles
from rlops.events.layout import Layout, Snapshot
from rlops.events.log import EventLog
from rlops.events.retention import expire_records
from rlops.events.rewrite import HeldSegment, Progress, Removal
from rlops.home import Home
from rlops.security.audit import AuditAction, AuditLog
from rlops.security.keyfiles import load_key

log = logging.getLogger("rlops.privacy")

ENV_VAR = "RLOPS_ERASURE_KEY"
KEY_FILE = "erasure_hmac"
#: Shortest erasure key accepted, bytes.

#: Unit ids shorter than this (UTF-8 bytes) are not searched for byte by byte: they would match unrelated bytes.
MIN_SCAN_BYTES = 4
_SCAN_CHUNK = 1 << 20
_MAX_ACTOR = 200

#: What erasure and retention take: a home folder (a command), or the engine of the calling process (a server).
Target = Home | Engine | str | os.PathLike[str]


# ---- the keyed hash of a unit id ------------------------------------------------------------------------------


def erasure_key(keys_dir: Path, *, environ: Mapping[str, str] | None = None) -> bytes:
    """The erasure key: ``$RLOPS_ERASURE_KEY`` if set, else ``keys_dir/erasure_hmac``, created if missing.

    Raises:
        ConfigError: the key is shorter than :data:`MIN_KEY_BYTES`, or its file is readable by others.
        StorageError: the key file cannot be read or created.
    """
    key = load_key(keys_dir, env_var=ENV_VAR, file_name=KEY_FILE, what="the erasure key", create=True,
                   environ=environ)
    assert key is not None  # created when missing
    return key


def unit_ref(home: Home, unit_id: str, *, environ: Mapping[str, str] | None = None) -> str:
    """``unit:<HMAC-SHA256 of the unit id under the erasure key, hex>``: how the audit log names an erased unit.

    Raises:
        ConfigError, StorageError: see :func:`erasure_key`.
    """
    key = erasure_key(home.keys, environ=environ)
    return "unit:" + hmac.new(key, unit_id.encode(), hashlib.sha256).hexdigest()


# ---- shared ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _opened(target: Target) -> Iterator[tuple[Home, EventLog, Engine | None]]:
    """The home folder, its event log and the engine, if the caller passed one (else the log is opened here)."""
    if isinstance(target, Engine):
        yield target.home, target.log, target
        return
    home = (target if isinstance(target, Home) else Home.resolve(target)).require()
    event_log = EventLog(home.events)
    try:
        yield home, event_log, None
    finally:
        event_log.close()


def _check_actor(actor: object) -> str:
    if not isinstance(actor, str) or not actor.strip() or len(actor) > _MAX_ACTOR:
        raise ValidationError("actor", f"must be a non-empty text of at most {_MAX_ACTOR} characters")
    return actor


def _held_advice(held: Sequence[HeldSegment]) -> str:
    pids = sorted({h.pid for h in held if h.pid is not None})
    who = f"process{'es' if len(pids) > 1 else ''} {', '.join(map(str, pids))}" if pids else "a live process"
    return (f"{len(held)} segment(s) held by {who} did not rotate in time: a server rotates within a second once "
            f"its supervisor runs (rlops serve); a process without one rotates on its next append or when it "
            f"exits. Run the command again (with a longer --wait), or stop that process first")


# ---- erasure --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureResult:
    """What :func:`erase_unit` did, and whether anything of the unit remains.

    Attributes:
        unit_ref: how the audit log names the unit (:func:`unit_ref`).
        decisions: decisions removed.
        outcomes: outcomes removed.
        files_rewritten: Parquet parts replaced.
        tails_deleted: quarantined tails deleted (they mentioned the unit or could not be searched).
        remaining_decisions: the unit's decisions still stored (0 when complete).
        remaining_outcomes: outcomes of its decisions still stored.
        held: segments of live writers that still hold some of them.
        traces: files outside the event log's records that still contain the unit id (relative to the home).
        scanned: whether the home folder was searched for the unit id (not for a scan turned off, nor for an id
            shorter than :data:`MIN_SCAN_BYTES`).
    """

    unit_ref: str
    decisions: int
    outcomes: int
    files_rewritten: int
    tails_deleted: int
    remaining_decisions: int
    remaining_outcomes: int
    held: tuple[HeldSegment, ...]
    traces: tuple[str, ...]
    scanned: bool

    @property
    def complete(self) -> bool:
        """Nothing of the unit is left in the event log, and the search found the id in no other file."""
        return self.remaining_decisions == 0 and self.remaining_outcomes == 0 and not self.traces

    def problems(self) -> list[str]:
        """What remains and what to do about it, one sentence each (empty when complete)."""
        out = []
        if self.remaining_decisions or self.remaining_outcomes:
            out.append(f"{self.remaining_decisions} decision(s) and {self.remaining_outcomes} outcome(s) of the unit "
                       f"are still in the event log"
                       + (f": {_held_advice(self.held)}" if self.held else
                          "; they were stored while the erasure ran: run it again"))
        if self.traces:
            out.append(f"the unit id still appears in {len(self.traces)} file(s) outside the event log's records "
                       f"({', '.join(self.traces[:5])}{', ...' if len(self.traces) > 5 else ''}): exports, "
                       "reports or logs written from it; delete or redact them, then run the erasure again to "
                       "check (a short id may also match unrelated text)")
        return out

    def details(self) -> dict[str, Any]:
        """The audit entry's details: counts only, nothing that identifies the unit."""
        return {"decisions": self.decisions, "outcomes": self.outcomes, "files_rewritten": self.files_rewritten,
                "tails_deleted": self.tails_deleted, "remaining_decisions": self.remaining_decisions,
                "remaining_outcomes": self.remaining_outcomes, "held_segments": len(self.held),
                "traces": len(self.traces), "scanned": self.scanned, "complete": self.complete}


def _current_log_files(root: Path) -> set[Path]:
    """The event log's current copies (checked record by record by the erasure), to leave out of the byte search."""
    layout = Layout(root)
    snapshot = Snapshot.take(layout)
    files: set[Path] = set()
    for stem in snapshot.stems():
        if snapshot.committed(stem):  # parts on another filesystem are not in the home folder's byte search anyway
            files.update(p for p in (layout.decision_part(stem).local, layout.outcome_part(stem).local) if p)
        elif stem in snapshot.segments:
            files.add(layout.segment(stem))
    return files


def find_traces(root: Path, needles: Sequence[bytes], *, skip: Collection[Path] = (),
                progress: Progress | None = None) -> list[str]:
    """Files under ``root`` (symbolic links not followed) whose bytes contain one of ``needles``, relative to it.

    Raises:
        StorageError: a folder cannot be listed.
    """
    files: list[tuple[Path, int]] = []
    skip = set(skip)
    try:
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                with contextlib.suppress(FileNotFoundError):
                    info = path.lstat()
                    if stat.S_ISREG(info.st_mode) and path not in skip:
                        files.append((path, info.st_size))
    except OSError as e:
        raise StorageError(f"cannot search {root}: {e.strerror or e}") from e
    total = sum(size for _, size in files) or 1
    overlap = max(len(n) for n in needles) - 1
    found: list[str] = []
    done = 0
    for path, size in sorted(files):
        try:
            with path.open("rb") as f:
                tail = b""
                while chunk := f.read(_SCAN_CHUNK):
                    window = tail + chunk
                    if any(needle in window for needle in needles):
                        found.append(str(path.relative_to(root)))
                        break
                    tail = window[-overlap:] if overlap else b""
        except FileNotFoundError:
            pass  # removed since it was listed (a temporary file)
        except OSError as e:
            found.append(f"{path.relative_to(root)} (unreadable: {e.strerror or e})")
        done += size
        if progress is not None:
            progress("searching the home folder for the unit id", min(done, total), total)
    return found


def erase_unit(target: Target, unit_id: str, actor: str, *, wait_s: float = 30.0, scan: bool = True,
               progress: Progress | None = None) -> ErasureResult:
    """Erase a unit: its decisions, their outcomes, from every file of the home folder; record it in the audit log.

    Safe while servers keep writing (see :mod:`rlops.events.rewrite`), and crash-safe: an interrupted erasure
    leaves every file whole, and running it again finishes it. The audit entry names the unit by its keyed hash
    (:func:`unit_ref`) and holds counts only.

    Args:
        target: the home folder (a command), or the engine of the calling process (the service: its own segment
            is rotated and its in-memory caches forget the unit's decisions).
        unit_id: the unit.
        actor: who asked, for the audit log.
        wait_s: how long to wait for live writers to seal segments holding the unit's records, seconds.
        scan: also search every other file of the home folder for the unit id (default True).
        progress: called with ``(phase, done, total)``.

    Returns:
        What was removed and whether anything remains: never :attr:`ErasureResult.complete` while a record of the
        unit, or a file holding its id, is left; :meth:`ErasureResult.problems` says what to do then.

    Raises:
        ValidationError: ``unit_id`` or ``actor`` is empty or too long (nothing is changed).
        NotFoundError: ``target`` is not a home folder.
        ConfigError: the audit or erasure key is unusable (checked before anything is changed).
        ConflictError: another erasure or retention run kept the log busy for longer than ``wait_s``.
        StorageError: a file could not be read or written (every file is still whole; run it again).
    """
    unit_id = check_unit_id(unit_id)
    actor = _check_actor(actor)
    with _opened(target) as (home, event_log, engine), AuditLog.for_home(home) as audit:
        ref = unit_ref(home, unit_id)
        erased = erase_unit_records(event_log, unit_id, wait_s=wait_s, progress=progress)
        if engine is not None:
            engine.forget(erased.decision_ids)
        needles = unit_needles(unit_id)
        scanned = scan and len(unit_id.encode()) >= MIN_SCAN_BYTES
        traces = find_traces(home.root, needles, skip=_current_log_files(event_log.root),
                             progress=progress) if scanned else []
        removal = erased.removal
        result = ErasureResult(ref, removal.decisions, removal.outcomes, removal.files_rewritten,
                               erased.tails_deleted, removal.remaining_decisions, removal.remaining_outcomes,
                               removal.held, tuple(traces), scanned)
        audit.append(actor, AuditAction.ERASURE, ref, result.details())
    return result


# ---- retention ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentRetention:
    """One deployment in a retention run.

    Attributes:
        deployment: its name.
        retention: its ``retention`` as configured (None: keeps everything).
        cutoff_us: decisions made before this went (microseconds since the epoch; None: keeps everything).
        removal: what was found and removed (None when it keeps everything).
    """

    deployment: str
    retention: str | float | None
    cutoff_us: int | None
    removal: Removal | None


@dataclass(frozen=True)
class RetentionResult:
    """What :func:`apply_retention` did.

    Attributes:
        deployments: each deployment considered.
        orphans: outcomes of decisions the log does not hold, removed under the longest retention (None when some
            deployment keeps everything, or when the run was for one deployment).
        orphan_cutoff_us: their cutoff.
        dry_run: nothing was changed; the removals hold what would go.
    """

    deployments: tuple[DeploymentRetention, ...]
    orphans: Removal | None
    orphan_cutoff_us: int | None
    dry_run: bool

    def _removals(self) -> list[Removal]:
        removals = [d.removal for d in self.deployments if d.removal is not None]
        return removals + ([self.orphans] if self.orphans is not None else [])

    @property
    def decisions(self) -> int:
        """Decisions removed (a dry run: that would be)."""
        return sum(r.selected_decisions if self.dry_run else r.decisions for r in self._removals())

    @property
    def outcomes(self) -> int:
        """Outcomes removed (a dry run: that would be)."""
        return sum(r.selected_outcomes if self.dry_run else r.outcomes for r in self._removals())

    @property
    def complete(self) -> bool:
        """Everything past its retention is gone (a dry run: nothing is past it)."""
        return all(r.complete for r in self._removals())

    def problems(self) -> list[str]:
        """What remains and what to do about it (empty when complete, and for a dry run)."""
        if self.dry_run:
            return []
        out = []
        for r, name in [(d.removal, f"deployment {d.deployment!r}") for d in self.deployments] + \
                [(self.orphans, "outcomes of unknown decisions")]:
            if r is not None and not r.complete:
                out.append(f"{name}: {r.remaining_decisions} decision(s) and {r.remaining_outcomes} outcome(s) past "
                           "retention are still stored" + (f": {_held_advice(r.held)}" if r.held else
                                                           "; run it again"))
        return out


def _now_us() -> int:
    return time.time_ns() // 1000


def apply_retention(target: Target, *, deployment: str | None = None, actor: str = "retention",
                    now_us: int | None = None, dry_run: bool = False, wait_s: float = 30.0,
                    progress: Progress | None = None) -> RetentionResult:
    """Remove every deployment's decisions older than its ``retention`` (and their outcomes); audit each.

    Orphan outcomes (their decision is not in the log) belong to no deployment: they go once older than the
    longest retention, and only when every deployment has one and the run is not for one deployment.

    Args:
        target: the home folder, or the engine of the calling process (a server's supervisor).
        deployment: only this deployment (default: all that have a retention).
        actor: who runs it, for the audit log (default ``retention``).
        now_us: "now", microseconds since the epoch (default: the clock); cutoffs are ``now_us - retention``.
        dry_run: only count what would go; change nothing and write no audit entry.
        wait_s: how long to wait for live writers to seal segments holding expired records, seconds.
        progress: called with ``(phase, done, total)``.

    Raises:
        NotFoundError: ``deployment`` does not exist, or ``target`` is not a home folder.
        ValidationError: ``actor`` is empty or too long (nothing is changed).
        ConflictError: another erasure or retention run kept the log busy for longer than ``wait_s``.
        StorageError: a file could not be read or written (every file is still whole; run it again).
    """
    actor = _check_actor(actor)
    now = _now_us() if now_us is None else now_us
    with _opened(target) as (home, event_log, engine):
        store = engine.store if engine is not None else DeploymentStore(home.metadata_url)
        try:
            names = store.names()
            if deployment is not None and deployment not in names:
                known = ", ".join(names) or "none"
                raise NotFoundError(f"deployment {deployment!r} does not exist in {home.root} (deployments: {known})")
            specs = {name: store.latest(name).deployment_spec() for name in names}
        finally:
            if engine is None:
                store.close()
        audit = None if dry_run else AuditLog.for_home(home)
        try:
            done: list[DeploymentRetention] = []
            for name in names if deployment is None else [deployment]:
                seconds = specs[name].retention_seconds
                if seconds is None:
                    done.append(DeploymentRetention(name, None, None, None))
                    continue
                cutoff = now - math.floor(seconds * 1e6)
                removal = expire_records(event_log, {name: cutoff}, dry_run=dry_run, wait_s=wait_s,
                                         progress=progress)
                done.append(DeploymentRetention(name, specs[name].retention, cutoff, removal))
                if audit is not None and (removal.decisions or removal.outcomes or not removal.complete):
                    audit.append(actor, AuditAction.RETENTION, f"deployment:{name}",
                                 {"deployment": name, "retention": specs[name].retention, "cutoff_us": cutoff,
                                  "decisions": removal.decisions, "outcomes": removal.outcomes,
                                  "files_rewritten": removal.files_rewritten, "complete": removal.complete})
            orphans = orphan_cutoff = None
            retained = [specs[n].retention_seconds for n in names]
            if deployment is None and names and all(s is not None for s in retained):
                orphan_cutoff = now - math.floor(max(s for s in retained if s is not None) * 1e6)
                orphans = expire_records(event_log, {}, orphan_cutoff_us=orphan_cutoff, dry_run=dry_run,
                                         wait_s=wait_s, progress=progress)
                if audit is not None and (orphans.outcomes or not orphans.complete):
                    audit.append(actor, AuditAction.RETENTION, "events:orphan-outcomes",
                                 {"cutoff_us": orphan_cutoff, "outcomes": orphans.outcomes,
                                  "files_rewritten": orphans.files_rewritten, "complete": orphans.complete})
        finally:
            if audit is not None:
                audit.close()
    return RetentionResult(tuple(done), orphans, orphan_cutoff, dry_run)


class RetentionHook:
    """Apply every deployment's retention inside a server, at most every ``interval_s`` seconds.

    A :class:`~rlops.rollout.supervisor.Supervisor` hook: the leader process calls it with its engine after each
    tick. A run that fails, or leaves records a live writer still holds, is logged; the next run catches up.

    Args:
        interval_s: seconds between runs (default 3600: hourly). The first run is at the first tick.
        wait_s: how long one run waits for other workers to seal their segments, seconds (default 5; their
            supervisors answer within a second).
        actor: who the audit log names (default ``retention``).
    """

    def __init__(self, interval_s: float = 3600.0, *, wait_s: float = 5.0, actor: str = "retention") -> None:
        if not interval_s > 0:
            raise ValidationError("interval_s", f"must be a positive number of seconds, not {interval_s!r}")
        self.interval_s, self.wait_s, self.actor = interval_s, wait_s, actor
        self._last = -math.inf
        self.last_result: RetentionResult | None = None

    def __call__(self, engine: Engine) -> None:
        if time.monotonic() - self._last < self.interval_s:
            return
        self._last = time.monotonic()
        try:
            result = apply_retention(engine, actor=self.actor, wait_s=self.wait_s)
        except RlopsError as e:
            log.warning("retention did not run: %s", e)
            return
        self.last_result = result
        if result.decisions or result.outcomes:
            log.info("retention removed %d decisions and %d outcomes", result.decisions, result.outcomes)
        for problem in result.problems():
            log.warning("retention: %s", problem)
