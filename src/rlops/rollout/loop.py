"""The closed loop: retrain from the logs -> validate -> register -> shadow -> canary -> promote or roll back.

One cycle of :class:`Loop` moves a deployment through these steps. After every step its state is written to
``HOME/loops/DEPLOYMENT.json`` (atomically), so a loop that is interrupted (Ctrl-C, ``kill -9``, a reboot) resumes
at the step it was in, without retraining or registering twice: a candidate already in the registry (same content
hash) is found again instead of registered anew.

Steps and what moves a cycle on:

``train``     fit a candidate from the deployment's joined interactions (``rlops.training.offline``), or with
              ``sweep`` > 1 several, each scored on held-out logs, keeping the best (on Ray with ``backend`` ray)
``validate``  the validation gates on the logged data (:func:`rlops.evaluation.validate.validate`); a FAIL ends the
              cycle as ``rejected``
``register``  a signed registry version with lineage (the event range, reward spec, parent), the report, and the
              reference profile of the interactions it was trained on (what drift is measured against)
``shadow``    the candidate decides next to production until ``shadow_decisions`` shadow decisions are logged
``canary``    a sticky ``canary_fraction`` of units, until the guardrail promotes it or rolls it back (or
              ``canary_timeout`` passes: then it is rolled back, the safe choice)
``done``      ``promoted``, ``rolled_back``, ``rejected``, or ``awaiting_approval`` when the deployment needs a human
              before the canary (``require_approval``)

Example:
    >>> loop = Loop(engine, "news", LoopConfig(shadow_decisions=500))   # doctest: +SKIP
    >>> state = loop.run_cycle()                                         # doctest: +SKIP
    >>> state.outcome                                                    # doctest: +SKIP
    'promoted'
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from rlops.engine import Engine
from rlops.engine.deployment import PolicySource, Role
from rlops.engine.engine import now_us
from rlops.errors import ConflictError, ValidationError
from rlops.events import Mode
from rlops.files import write_atomic
from rlops.policies import content_hash, save_policy
from rlops.registry import Lineage, ModelRef, Registry, events_fingerprint
from rlops.rollout.operations import Rollout
from rlops.scale.backend import Backend

if TYPE_CHECKING:
    from rlops.training.offline import CandidateScore


class Step(StrEnum):
    TRAIN = "train"
    VALIDATE = "validate"
    REGISTER = "register"
    SHADOW = "shadow"
    CANARY = "canary"
    DONE = "done"


class LoopConfig(BaseModel):
    """How one loop cycle runs.

    Attributes:
        kind: the retraining method: ``auto`` (bandit policy learning for single-step data, offline RL or behaviour
            cloning for sequential), ``bandit``, ``bc`` or ``cql`` (see :func:`retrain_from_table`).
        min_interactions: joined interactions needed before training (default 200).
        gates: a gates file for validation (default: the validation defaults).
        shadow_decisions: shadow decisions to log before the canary starts (default 200; 0 skips the shadow).
        canary_fraction: the canary's share of units (default 0.1).
        canary_timeout: seconds to wait for the guardrail's verdict before rolling back (default 3600).
        shadow_timeout: seconds to wait for ``shadow_decisions`` (a shadow that fails to decide logs nothing);
            then the shadow is removed and the cycle ends as ``rejected`` (default 3600).
        require_approval: stop before the canary and wait for a human (``rlops deploy canary``).
        poll: seconds between looks while shadowing or in canary (default 2).
        seed: seeds training and validation.
        sweep: candidates to train, each scored on held-out logs, the best kept
            (:func:`~rlops.training.offline.sweep_retrain`); default 1: one candidate on all the data, no sweep.
        backend: where a sweep's candidates train: ``local`` (one after another here) or ``ray`` (Ray actors);
            the same candidate either way. Unused without a sweep.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["auto", "bandit", "bc", "cql"] = "auto"
    min_interactions: int = Field(default=200, ge=1)
    gates: str | None = None
    shadow_decisions: int = Field(default=200, ge=0)
    canary_fraction: float = Field(default=0.1, gt=0.0, lt=1.0)
    canary_timeout: float = Field(default=3600.0, gt=0.0)
    shadow_timeout: float = Field(default=3600.0, gt=0.0)
    require_approval: bool = False
    poll: float = Field(default=2.0, gt=0.0)
    seed: int = 0
    sweep: int = Field(default=1, ge=1)
    backend: Backend = Backend.LOCAL


@dataclass
class LoopState:
    """Where a deployment's current cycle is; written after every step.

    Attributes:
        deployment: the deployment.
        cycle: the cycle's number (from 1).
        step: the next step to run.
        started_us: when the cycle began.
        folder: the trained candidate's policy folder.
        trained_us: the "now" of the training data: interactions joined as of then.
        method: how it was trained, and why that method.
        sweep: with ``LoopConfig.sweep`` > 1, what was tried and why the winner won
            (:meth:`~rlops.training.offline.SweepResult.to_dict`), else ``None``.
        report: the validation report (``report.json``) and its status.
        candidate: the registered version, ``MODEL@N``.
        stage_started_us: when the current shadow or canary began.
        outcome: how the cycle ended (``promoted``, ``rolled_back``, ``rejected``, ``awaiting_approval``).
        notes: one line per step, for the history.
    """

    deployment: str
    cycle: int = 1
    step: Step = Step.TRAIN
    started_us: int = field(default_factory=now_us)
    folder: str | None = None
    trained_us: int | None = None
    method: str | None = None
    sweep: dict[str, Any] | None = None
    report: str | None = None
    status: str | None = None
    candidate: str | None = None
    stage_started_us: int | None = None
    outcome: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "step": self.step.value}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LoopState:
        data = json.loads(text)
        data["step"] = Step(data["step"])
        return cls(**data)


Say = Callable[[str], None]


class Loop:
    """Run the closed loop for one deployment (see the module docs for the steps).

    Args:
        engine: the engine of the home folder.
        deployment: the deployment.
        config: how the cycle runs.
        say: called with one line per event (the CLI prints them; default: nothing).
        sleep: how to wait between looks (tests pass a function that also makes traffic).
    """

    def __init__(self, engine: Engine, deployment: str, config: LoopConfig | None = None, *,
                 say: Say | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        engine.store.latest(deployment)  # an unknown deployment fails here, clearly
        self.engine, self.deployment = engine, deployment
        self.config = config or LoopConfig()
        self.say = say or (lambda _: None)
        self.sleep = sleep
        self.rollout = Rollout(engine, actor="loop")
        self.path = engine.home.root / "loops" / f"{deployment}.json"

    # ---- state --------------------------------------------------------------------------------------------

    def state(self) -> LoopState | None:
        """The current (or last) cycle's state, ``None`` before the first."""
        if not self.path.exists():
            return None
        return LoopState.from_json(self.path.read_text())

    def _save(self, state: LoopState, note: str | None = None) -> None:
        if note:
            state.notes.append(note)
            self.say(note)
        write_atomic(self.path, state.to_json())

    # ---- one cycle ------------------------------------------------------------------------------------------

    def run_cycle(self, *, until: Step | None = None) -> LoopState:
        """Resume the current cycle, or start a new one if there is none or the last one finished; run it to its
        end, or until its next step is ``until``."""
        state = self.state()
        if state is None or state.step is Step.DONE:
            state = LoopState(self.deployment, cycle=1 if state is None else state.cycle + 1)
            self._save(state, f"cycle {state.cycle}: started")
        else:
            self.say(f"cycle {state.cycle}: resuming at {state.step.value}")
        steps = {Step.TRAIN: self._train, Step.VALIDATE: self._validate, Step.REGISTER: self._register,
                 Step.SHADOW: self._shadow, Step.CANARY: self._canary}
        while state.step is not Step.DONE and state.step is not until:
            steps[state.step](state)
        return state

    def run_schedule(self, every_s: float | None = None, *, max_cycles: int = 0,
                     sleep: Callable[[float], None] = time.sleep) -> int:
        """Run cycles every ``every_s`` seconds and whenever a retrain trigger arrives (:func:`request_retrain`),
        until ``max_cycles`` cycles have run (0: forever); returns how many ran.

        An interrupted cycle resumes at once. A cycle refused for too little data is skipped until the next turn.
        """
        last = self.state()
        due = time.monotonic() if (last is not None and last.step is not Step.DONE) or every_s is not None \
            else math.inf
        cycles = 0
        while not max_cycles or cycles < max_cycles:
            trigger = take_trigger(self.engine.home.root, self.deployment)
            if trigger is None and time.monotonic() < due:
                sleep(1.0)
                continue
            if trigger is not None:
                self.say(f"triggered: {trigger.get('reason', '')}")
            try:
                state = self.run_cycle()
                self.say(f"cycle {state.cycle}: {state.outcome}")
            except ConflictError as e:  # not enough data yet: wait for the next turn
                self.say(f"cycle skipped: {e}")
            cycles += 1
            due = time.monotonic() + every_s if every_s is not None else math.inf
        return cycles

    def _finish(self, state: LoopState, outcome: str, note: str) -> None:
        state.outcome, state.step = outcome, Step.DONE
        self._save(state, note)

    def _train(self, state: LoopState) -> None:
        from rlops.training.offline import retrain_from_table, sweep_retrain

        trained_us = now_us()
        early = self.engine.spec(self.deployment).early_outcomes_usable  # else only closed windows (unbiased)
        table = self.engine.interactions(self.deployment, as_of_us=trained_us, include_pending=early).interactions
        if table.num_rows < self.config.min_interactions:
            waiting = "" if early else (" (outcomes count once their window has closed, unless the deployment says "
                                        "all_outcomes_reported)")
            raise ConflictError(f"deployment {self.deployment!r} has {table.num_rows} joined interactions{waiting}; "
                                f"retraining needs {self.config.min_interactions} (min_interactions)")
        schema = self.engine.spec(self.deployment).schema_
        how = ""
        if self.config.sweep > 1:
            self.say(f"training {self.config.sweep} candidates on {table.num_rows:,} interactions "
                     f"({self.config.kind}, backend {self.config.backend.value})")
            swept = sweep_retrain(table, schema, sweep=self.config.sweep, kind=self.config.kind,
                                  seed=self.config.seed, backend=self.config.backend, on_candidate=self._tried)
            self.say(f"  kept {swept.reason}")
            result, state.sweep, how = swept.best, swept.to_dict(), f"; {swept.summary()}"
        else:
            self.say(f"training on {table.num_rows:,} interactions ({self.config.kind})")
            result = retrain_from_table(table, schema, kind=self.config.kind, seed=self.config.seed)  # type: ignore[arg-type]
        folder = self.engine.home.root / "candidates" / self.deployment / f"cycle-{state.cycle}"
        save_policy(result.policy, folder)
        state.folder, state.method, state.step = str(folder), f"{result.method.value}: {result.reason}", Step.VALIDATE
        state.trained_us = trained_us
        self._save(state, f"trained a candidate with {result.method.value} ({table.num_rows:,} interactions){how}")

    def _tried(self, score: CandidateScore, done: int, total: int) -> None:
        self.say(f"  candidate {done}/{total}: {score.point.label()}: {score.value:.4g} "
                 f"[{score.low:.4g}, {score.high:.4g}]")

    def _validate(self, state: LoopState) -> None:
        from rlops.evaluation.gates import GatesFile
        from rlops.evaluation.report import write_report
        from rlops.evaluation.validate import DEFAULT_GATES, ValidateOptions, validate

        gates = DEFAULT_GATES if self.config.gates is None else GatesFile.load(self.config.gates)
        options = ValidateOptions(policy=Path(str(state.folder)), events=self.engine.home.root,
                                  deployment=self.deployment, gates=gates, seed=self.config.seed,
                                  command=f"rlops loop {self.deployment}")
        run = validate(options, progress=lambda line: self.say(f"  validate: {line}"), progress_bar=False)
        out = Path(str(state.folder)).parent / f"cycle-{state.cycle}-report"
        json_path, _ = write_report(run.results, out)
        state.report, state.status = str(json_path), run.status.value
        if run.status.value == "fail":
            failed = [f"{g.gate.name}: {g.reason}" for g in run.gates if g.status.value == "fail"]
            self._finish(state, "rejected", f"validation failed ({'; '.join(failed)}): the candidate stops here")
            return
        state.step = Step.REGISTER
        self._save(state, f"validation: {run.status.value} (report {json_path})")

    def _model_name(self) -> tuple[str, ModelRef | None]:
        production = next(a for a in self.engine.arms(self.deployment) if a.role is Role.PRODUCTION)
        if production.source == production.policy_version:  # a registered version
            parent = ModelRef.parse(production.policy_version)
            return parent.name, parent
        return self.deployment, None

    def _register(self, state: LoopState) -> None:
        folder = Path(str(state.folder))
        name, parent = self._model_name()
        digest = content_hash(folder)
        with Registry(self.engine.home) as registry:
            again = [v for v in (registry.versions(name) if name in registry.names() else [])
                     if v.content_hash == digest]
            if again:  # registered before an interruption: use it, do not register twice
                version = again[-1]
            else:
                from rlops.monitoring.reference import profile_interactions

                events = events_fingerprint(self.engine.log, self.deployment, end_us=state.trained_us)
                lineage = Lineage(events=events, reward_spec=self.engine.reward_spec(self.deployment).ref,
                                  parent=parent)
                # The reference profile drift is measured against: the interactions it was trained on.
                early = self.engine.spec(self.deployment).early_outcomes_usable
                trained_on = self.engine.interactions(self.deployment, as_of_us=state.trained_us,
                                                      include_pending=early).interactions
                reference = profile_interactions(trained_on, self.engine.spec(self.deployment).schema_,
                                                 seed=self.config.seed)
                version = registry.register(name, folder, lineage=lineage, report=state.report, actor="loop",
                                            reference=reference)
        state.candidate = f"{version.name}@{version.version}"
        state.step = Step.SHADOW if self.config.shadow_decisions else Step.CANARY
        self._save(state, f"registered {state.candidate}")

    def _shadow_count(self, version: str, since_us: int) -> int:
        table = self.engine.log.read_decisions().select(["deployment", "policy_version", "mode", "ts"])
        mask = pc.and_(pc.equal(table["deployment"], self.deployment), pc.equal(table["mode"], Mode.SHADOW.value))
        mask = pc.and_(mask, pc.equal(table["policy_version"], version))
        mask = pc.and_(mask, pc.greater_equal(pc.cast(table["ts"], "int64"), since_us))
        return int(pc.sum(mask.cast("int64")).as_py() or 0)

    def _shadow(self, state: LoopState) -> None:
        candidate = str(state.candidate)
        shadows = {s.name: s.policy.version for s in self.engine.spec(self.deployment).shadows}
        if shadows.get("loop") != candidate:
            self.rollout.shadow(self.deployment, PolicySource(version=candidate), shadow="loop",
                                reason=f"loop cycle {state.cycle}: shadow before canary")
            state.stage_started_us = now_us()
            self._save(state, f"{candidate} in shadow")
        since = state.stage_started_us or 0
        while (seen := self._shadow_count(candidate, since)) < self.config.shadow_decisions:
            if now_us() - since > self.config.shadow_timeout * 1e6:
                self.rollout.unshadow(self.deployment, shadow="loop",
                                      reason=f"loop: {seen} shadow decisions in {self.config.shadow_timeout:g} s")
                self._finish(state, "rejected", f"{candidate}: only {seen} of {self.config.shadow_decisions} "
                                                "shadow decisions before shadow_timeout (see logs/service.log)")
                return
            self.say(f"  shadow: {seen}/{self.config.shadow_decisions} decisions")
            self.sleep(self.config.poll)
        if self.config.require_approval or self.engine.spec(self.deployment).require_approval:
            self._finish(state, "awaiting_approval", f"{candidate} shadowed {seen} decisions; the deployment needs "
                                                     "approval before the canary (rlops deploy canary)")
            return
        state.step = Step.CANARY
        self._save(state, f"shadow done ({seen} decisions)")

    def _canary(self, state: LoopState) -> None:
        candidate = str(state.candidate)
        spec = self.engine.spec(self.deployment)
        if spec.canary is None or spec.canary.policy.version != candidate:
            outcome = self._ended(candidate, state)
            if outcome is not None:  # the server's supervisor decided while we were away
                self._finish(state, outcome, f"{candidate}: {outcome} (by the guardrail)")
                return
            self.rollout.canary(self.deployment, PolicySource(version=candidate), self.config.canary_fraction,
                                reason=f"loop cycle {state.cycle}: validation {state.status}")
            state.stage_started_us = now_us()
            self._save(state, f"{candidate} in canary on {self.config.canary_fraction:.0%} of units")
        started = state.stage_started_us or now_us()
        while True:
            check = self.rollout.check(self.deployment)
            if check.action in ("promoted", "rolled_back") and check.canary_version == candidate:
                self._finish(state, check.action, f"{candidate}: {check.action} "
                                                  f"({check.result.reason if check.result else ''})")
                return
            outcome = self._ended(candidate, state)
            if outcome is not None:
                self._finish(state, outcome, f"{candidate}: {outcome} (by the guardrail)")
                return
            if now_us() - started > self.config.canary_timeout * 1e6:
                try:
                    self.rollout.rollback(self.deployment, reason="loop: no guardrail verdict within canary_timeout",
                                          expected_canary=candidate)
                except ConflictError:  # the canary is not ours any more: someone else decided
                    self._finish(state, "superseded", f"{candidate} is no longer the canary")
                    return
                self._finish(state, "rolled_back", f"{candidate}: no verdict in time, rolled back")
                return
            if check.result is not None:
                r = check.result
                self.say(f"  canary: {r.n_canary} vs {r.n_production} decisions, {r.decision.value}")
            self.sleep(self.config.poll)

    def _ended(self, candidate: str, state: LoopState) -> str | None:
        """How the candidate's canary ended if someone (the server's supervisor, a human) already decided."""
        for change in reversed(self.engine.store.changes(self.deployment)):
            if change.ts_us < (state.stage_started_us or state.started_us):
                break
            if change.action == "promote" and change.version == candidate:
                return "promoted"
            if change.action == "rollback" and change.version == candidate:
                return "rolled_back"
        return None


def request_retrain(home_root: Path, deployment: str, reason: str) -> Path:
    """Ask the loop to start a new cycle soon (an alert's ``retrain`` action): a trigger file it picks up."""
    if not deployment:
        raise ValidationError("deployment", "must not be empty")
    path = home_root / "loops" / f"{deployment}.trigger"
    write_atomic(path, json.dumps({"ts_us": now_us(), "reason": reason}))
    return path


def take_trigger(home_root: Path, deployment: str) -> dict[str, Any] | None:
    """The pending retrain request of a deployment, removed as it is taken (``None`` if there is none)."""
    path = home_root / "loops" / f"{deployment}.trigger"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    path.unlink(missing_ok=True)
    return data if isinstance(data, dict) else {}
