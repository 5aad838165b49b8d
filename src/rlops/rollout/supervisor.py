"""What a running service does on its own between requests: learn online, snapshot, judge canaries.

Every server process runs a :class:`Supervisor` in a background thread (``rlops serve`` starts it):

* **online learning**, in every process (each worker serves from its own copy of the policy): deployments with
  ``learning.online`` update their served arms from newly joined interactions every ``learning.interval``;
* **rotation requests**, in every process: a process whose event-log segment an erasure or a retention run asked
  for seals it (:meth:`EventLog.rotate_if_requested`), even while no traffic comes in;
* and, in the one process that holds the home folder's supervisor lock (the *leader*):
  * **snapshots**: after every ``learning.snapshot_every`` learned interactions, the production policy is
    registered as a new registry version with its lineage (the deployment's event range, the reward spec, the
    version it was learned from);
  * **guardrails**: a deployment with a canary is judged by :meth:`Rollout.check`, which rolls it back or
    promotes it as the deployment allows;
  * **hooks**: anything else registered (the alert evaluator), called with the engine after each tick.

A tick never raises: a deployment that fails is logged and skipped, and the next tick tries again.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rlops.engine import Engine
from rlops.engine.deployment import Role
from rlops.errors import RlopsError
from rlops.registry import EventsRange, Lineage, ModelRef, Registry
from rlops.rollout.operations import CheckResult, Rollout

log = logging.getLogger("rlops.supervisor")

Hook = Callable[[Engine], None]


@dataclass
class TickReport:
    """What one tick did.

    Attributes:
        learned: interactions learned, per deployment.
        snapshots: registry versions registered, as ``MODEL@N``.
        checks: guardrail checks made (leader only).
        errors: what failed, one line each.
    """

    learned: dict[str, int] = field(default_factory=dict)
    snapshots: list[str] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class LeaderLock:
    """A non-blocking exclusive lock on ``HOME/supervisor.lock``: one process per home folder leads.

    The lock is the kernel's (``flock``): it is released when the holder exits, however it exits.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def acquire(self) -> bool:
        """Take the lock if free; returns whether this process holds it."""
        if self._file is not None:
            return True
        handle = open(self.path, "ab")  # noqa: SIM115  (held open for as long as the lock is)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class Supervisor:
    """Learn, snapshot and judge on a schedule, for every deployment of one engine.

    Args:
        engine: the process's engine.
        interval: seconds between ticks of the background thread (default 1).
        actor: who the guardrail's changes are attributed to (default ``guardrail``).
        hooks: called with the engine after every leader tick (e.g. the alert evaluator).
    """

    def __init__(self, engine: Engine, *, interval: float = 1.0, actor: str = "guardrail",
                 hooks: list[Hook] | None = None) -> None:
        self.engine = engine
        self.interval = interval
        self.rollout = Rollout(engine, actor=actor)
        self.hooks = list(hooks or [])
        self.lock = LeaderLock(engine.home.root / "supervisor.lock")
        self._lock_guard = threading.Lock()
        self._last_learn: dict[str, float] = {}
        self._since_snapshot: dict[str, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def leader(self) -> bool:
        with self._lock_guard:  # both threads ask; the lock file is opened once
            return self.lock.acquire()

    def tick(self, now: float | None = None) -> TickReport:
        """Do whatever is due now; ``now`` is a ``time.monotonic()`` value (default: the current one)."""
        report = self.tick_learning(now)
        leader_report = self.tick_leader()
        report.checks, report.errors = leader_report.checks, report.errors + leader_report.errors
        return report

    def tick_learning(self, now: float | None = None) -> TickReport:
        """Online learning (every process) and snapshots (the leader) that are due now."""
        now = time.monotonic() if now is None else now
        report = TickReport()
        try:
            self.engine.log.rotate_if_requested()
        except RlopsError as e:
            report.errors.append(f"event log: {e}")
            log.warning("supervisor: event log: %s", e)
        leader = self.leader
        for name in self.engine.store.names():
            try:
                self._learn(name, now, leader, report)
            except RlopsError as e:
                report.errors.append(f"{name}: {e}")
                log.warning("supervisor: deployment %s: %s", name, e)
        return report

    def tick_leader(self) -> TickReport:
        """Guardrails and hooks, in the leader process only (nothing elsewhere)."""
        report = TickReport()
        if not self.leader:
            return report
        for name in self.engine.store.names():
            try:
                if self.engine.spec(name).canary is not None:
                    report.checks.append(self.rollout.check(name))
            except RlopsError as e:
                report.errors.append(f"{name}: {e}")
                log.warning("supervisor: deployment %s: %s", name, e)
        for hook in self.hooks:
            try:
                hook(self.engine)
            except Exception as e:  # a broken hook must not stop learning or guardrails
                report.errors.append(f"hook {getattr(hook, '__name__', hook)}: {e}")
                log.exception("supervisor hook failed")
        return report

    def _learn(self, name: str, now: float, leader: bool, report: TickReport) -> None:
        spec = self.engine.spec(name)
        if not spec.learning.online or now - self._last_learn.get(name, -1e18) < spec.learning.interval_seconds:
            return
        self._last_learn[name] = now
        learned = self.engine.learn(name)  # early outcomes only where the deployment says they are usable
        if not learned:
            return
        report.learned[name] = learned
        if not (leader and spec.learning.snapshot_every):
            return
        self._since_snapshot[name] = self._since_snapshot.get(name, 0) + learned
        if self._since_snapshot[name] >= spec.learning.snapshot_every:
            report.snapshots.append(self.snapshot(name))
            self._since_snapshot[name] = 0

    def snapshot(self, name: str) -> str:
        """Register the production arm's learned policy as a new version; returns ``MODEL@N``.

        The model is the production version's registered model when it has one, else one named after the
        deployment. Lineage: the deployment's served decisions up to now, its reward spec, and the parent version.
        """
        arms = self.engine.arms(name)
        production = next(a for a in arms if a.role is Role.PRODUCTION)
        parent = ModelRef.parse(production.policy_version) if production.source == production.policy_version else None
        model = parent.name if parent is not None else name
        folder = self.engine.save_learned(name)
        lineage = Lineage(events=EventsRange(deployment=name, end_us=time.time_ns() // 1000),
                          reward_spec=self.engine.reward_spec(name).ref, parent=parent)
        with Registry(self.engine.home) as registry:
            version = registry.register(model, folder, lineage=lineage, actor="online-learning")
        return f"{version.name}@{version.version}"

    # ---- the background thread ----------------------------------------------------------------------------

    def start(self) -> None:
        """Tick every ``interval`` seconds in two daemon threads until :meth:`stop`: one learns (so a slow
        guardrail check or monitor pass never delays what the policies learn), one does the leader's work."""
        if self._threads:
            return
        self._threads = [threading.Thread(target=self._run, args=(work,), name=f"rlops-supervisor-{label}",
                                          daemon=True)
                         for label, work in (("learning", self.tick_learning), ("leader", self.tick_leader))]
        for thread in self._threads:
            thread.start()

    def _run(self, work: Callable[[], TickReport]) -> None:
        while not self._stop.wait(self.interval):
            try:
                work()
            except Exception:  # the thread must outlive any one bad tick
                log.exception("supervisor tick failed")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []
        self.lock.release()

