"""Rollout operations on a running deployment: shadow, canary, promote, rollback, holdout, and the guardrail check.

Each operation is a new revision of the deployment (so it takes effect in every running server within a second,
without a restart), an entry in the deployment's change history with who and why, and, when the policy is a
registered version, the matching stage move in the registry. A registry move that is not allowed from the
version's current stage is noted in the history, never a reason to refuse a rollback.

Example:
    >>> rollout = Rollout(engine, actor="alice")                                      # doctest: +SKIP
    >>> rollout.canary("pricing", PolicySource(version="pricing-model@4"), 0.1, reason="gates passed")
    >>> rollout.check("pricing").result.decision                                      # doctest: +SKIP
    <Decision.CONTINUE: 'continue'>
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pydantic

from rlops.engine import DeploymentSpec, Engine
from rlops.engine.deployment import PolicySource
from rlops.engine.engine import now_us
from rlops.engine.store import Change, Revision
from rlops.errors import ConflictError, NotFoundError, RlopsError, ValidationError
from rlops.registry import ModelRef, Registry, Stage, default_actor
from rlops.rollout.guardrails import Arm, Decision, GuardrailMonitor, GuardrailResult

#: Rows fed to the guardrail per look when it replays a canary's history (its verdict is the one a monitor
#: looking after every batch of this size would have reached).
LOOK_EVERY = 50


@dataclass(frozen=True)
class CheckResult:
    """A guardrail check of a deployment's canary and what was done about it.

    Attributes:
        deployment: the deployment.
        canary_version: the canary's version (``None``: there was no canary, nothing to check).
        production_version: production's version.
        result: the guardrail's verdict on the canary's interactions so far (``None`` without a canary).
        action: ``promoted``, ``rolled_back``, or ``none``.
    """

    deployment: str
    canary_version: str | None
    production_version: str
    result: GuardrailResult | None
    action: str


def parse_source(text: str, field: str = "policy") -> PolicySource:
    """A policy source from a command-line word: ``MODEL@N`` (registered), ``kind:NAME``, or a folder path."""
    if not text:
        raise ValidationError(field, "expected MODEL@VERSION, kind:KIND or a policy folder")
    if text.startswith("kind:"):
        return PolicySource(kind=text.removeprefix("kind:"))
    if "@" in text and "/" not in text:
        ModelRef.parse(text, field, require_version=True)
        return PolicySource(version=text)
    return PolicySource(path=text)


class Rollout:
    """Change what a deployment serves, and judge its canary.

    A registered version whose validation report failed a gate meets live traffic (as a canary) only with
    ``override_gates``, which the audit log records; promotion then rests on the canary's live evidence.

    Args:
        engine: the engine of the home folder.
        actor: who makes the changes (default: the OS user); kept in the history and the registry.
        override_gates: let a version that failed validation gates become the canary (permission
            ``override_gate``). Default ``False``.
    """

    def __init__(self, engine: Engine, *, actor: str | None = None, override_gates: bool = False) -> None:
        self.engine = engine
        self.actor = actor if actor is not None else default_actor()
        self.override_gates = override_gates

    def gate_spec(self, spec: DeploymentSpec) -> None:
        """:meth:`gate` every registered version a spec would newly serve to units as production or canary
        (shadows, the holdout and the baseline are not judged by the gates).

        Raises:
            ConflictError: naming a version and its failed gates.
        """
        names = self.engine.store.names()
        serving = dict(self.engine.spec(spec.name).policy_sources()) if spec.name in names else {}
        for field, source in spec.policy_sources():
            if field in ("policy", "canary.policy") and serving.get(field) != source:
                self.gate(source)

    def gate(self, source: PolicySource) -> None:
        """Refuse a registered version that failed validation gates, unless overriding.

        Raises:
            ConflictError: naming the version and its failed gates.
        """
        if source.version is None or self.override_gates:
            return
        ref = ModelRef.parse(source.version, "version", require_version=True)
        with Registry(self.engine.home) as registry:
            try:
                failed = registry.failed_gates(ref.name, int(ref.version or 0))
            except NotFoundError:
                return  # not registered: applying the spec says so, naming the field

        if failed:
            raise ConflictError(f"policy.version: {source.version} failed validation gates ({', '.join(failed)}); "
                                "serving it needs an override with a reason (--override-gates; permission "
                                "override_gate)")

    # ---- changes ----------------------------------------------------------------------------------------------

    def _spec(self, name: str) -> tuple[Revision, DeploymentSpec]:
        revision = self.engine.store.latest(name)
        return revision, revision.deployment_spec()

    def _change(self, name: str, base: Revision, spec: DeploymentSpec | dict[str, Any], action: str,
                version: str | None, reason: str, moves: list[tuple[str, Stage]],
                details: dict[str, Any] | None = None) -> Change:
        """Apply the changed spec on top of ``base`` (refused if the deployment changed meanwhile), move
        registered versions, record the change."""
        if not isinstance(reason, str) or not reason.strip():
            raise ValidationError("reason", "say why (it is kept in the deployment's history)")
        data = spec.model_dump(by_alias=True) if isinstance(spec, DeploymentSpec) else spec
        try:  # model_copy skips validation: validate the result as a whole
            checked = DeploymentSpec.model_validate(data)
        except pydantic.ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            rule = str(first["msg"]).removeprefix("Value error, ")
            named = re.match(r"^([a-z_][a-z0-9_.\[\]]*): (.+)$", rule, re.S)
            if not where and named:
                where, rule = named.group(1), named.group(2)
            raise ValidationError(where or "deployment", rule) from e
        result = self.engine.apply(checked, base_revision=base.revision, actor=self.actor, change=action,
                                   reason=reason.strip())
        notes = self._move(moves, reason)
        change = Change(name, now_us(), result.revision, action, version, self.actor, reason.strip(),
                        {**(details or {}), **({"registry": notes} if notes else {})})
        self.engine.store.record(change)
        return change

    def _move(self, moves: list[tuple[str, Stage]], reason: str) -> list[str]:
        """Move registered versions to their new stages; a move the registry refuses is noted, not raised."""
        notes: list[str] = []
        if not moves:
            return notes
        with Registry(self.engine.home) as registry:
            for ref_text, stage in moves:
                ref = ModelRef.parse(ref_text, "version", require_version=True)
                number = int(ref.version or 0)
                try:
                    current = registry.get(ref.name, number).stage
                    if current != stage:
                        # Gates were checked where they apply (a canary's entry; see gate): an override taken
                        # there, or a promotion on live evidence, is recorded by the registry as such.
                        registry.transition(ref.name, number, stage, reason=reason, actor=self.actor,
                                            override_gates=True)
                    notes.append(f"{ref_text}: {current} -> {stage}")
                except (ConflictError, NotFoundError) as e:
                    notes.append(f"{ref_text}: not moved to {stage} ({e})")
        return notes

    def shadow(self, name: str, source: PolicySource, *, shadow: str = "shadow", reason: str) -> Change:
        """Add (or replace) a shadow: it decides on every context, logged with mode=shadow, never answered."""
        base, spec = self._spec(name)
        kept = [s.model_dump() for s in spec.shadows if s.name != shadow]
        data = {**spec.model_dump(by_alias=True), "shadows": [*kept, {"name": shadow, "policy": source.model_dump()}]}
        moves = [(source.version, Stage.SHADOW)] if source.version else []
        replaced = next((s.policy.version for s in spec.shadows if s.name == shadow and s.policy != source), None)
        if replaced:
            moves.append((replaced, Stage.CANDIDATE))  # the shadow it replaces
        return self._change(name, base, data, "shadow", source.describe(), reason, moves, {"shadow": shadow})

    def unshadow(self, name: str, *, shadow: str = "shadow", reason: str) -> Change:
        """Remove a shadow (its registered version goes back to candidate)."""
        base, spec = self._spec(name)
        gone = [s for s in spec.shadows if s.name == shadow]
        if not gone:
            raise NotFoundError(f"shadow: deployment {name!r} has no shadow {shadow!r} "
                                f"(it has {[s.name for s in spec.shadows]})")
        spec = spec.model_copy(update={"shadows": tuple(s for s in spec.shadows if s.name != shadow)})
        version = gone[0].policy.version
        return self._change(name, base, spec, "unshadow", gone[0].policy.describe(), reason,
                            [(version, Stage.CANDIDATE)] if version else [], {"shadow": shadow})

    def canary(self, name: str, source: PolicySource, fraction: float, *, reason: str) -> Change:
        """Serve ``source`` to a sticky ``fraction`` of units next to production (or change the fraction)."""
        base, spec = self._spec(name)
        if not (isinstance(fraction, int | float) and 0.0 < fraction < 1.0):
            raise ValidationError("fraction", f"must be between 0 and 1 (exclusive), got {fraction}")
        self.gate(source)
        # A shadow graduating to canary leaves the shadows.
        shadows = [s.model_dump() for s in spec.shadows if s.policy != source]
        data = {**spec.model_dump(by_alias=True), "canary": {"policy": source.model_dump(), "fraction": fraction},
                "shadows": shadows}
        moves = [(source.version, Stage.CANARY)] if source.version else []
        if spec.canary is not None and spec.canary.policy.version and spec.canary.policy != source:
            moves.append((spec.canary.policy.version, Stage.CANDIDATE))  # the canary it replaces
        return self._change(name, base, data, "canary", source.describe(), reason, moves, {"fraction": fraction})

    def _expect(self, name: str, revision: Revision, expected: str | None) -> None:
        """Refuse to act on a canary other than the one judged (someone changed it since)."""
        if expected is None:
            return
        current = next((a["version"] for a in revision.arms if a["role"] == "canary"), None)
        if current != expected:
            raise ConflictError(f"deployment {name!r}: the canary is now {current!r}, not {expected!r} as judged")

    def promote(self, name: str, *, reason: str, details: dict[str, Any] | None = None,
                expected_canary: str | None = None) -> Change:
        """Make the canary production; the old production version is retired. With ``expected_canary``, only if
        that version is still the canary (a verdict on one canary must never promote the next)."""
        revision, spec = self._spec(name)
        self._expect(name, revision, expected_canary)
        if spec.canary is None:
            raise ConflictError(f"deployment {name!r} has no canary to promote")
        new = spec.canary.policy
        updated = spec.model_copy(update={"policy": new, "canary": None})
        moves = [(new.version, Stage.PRODUCTION)] if new.version else []  # the registry retires the old one
        if spec.policy.version and (not new.version or ModelRef.parse(new.version).name
                                    != ModelRef.parse(spec.policy.version).name):
            moves.append((spec.policy.version, Stage.RETIRED))
        return self._change(name, revision, updated, "promote", new.describe(), reason, moves, details)

    def rollback(self, name: str, *, reason: str, details: dict[str, Any] | None = None,
                 expected_canary: str | None = None) -> Change:
        """Take the canary out (it goes back to candidate); without a canary, return production to the policy
        that served before the last promotion. With ``expected_canary``, only if that version is still the
        canary."""
        revision, spec = self._spec(name)
        self._expect(name, revision, expected_canary)
        if spec.canary is not None:
            gone = spec.canary.policy
            updated = spec.model_copy(update={"canary": None})
            return self._change(name, revision, updated, "rollback", gone.describe(), reason,
                                [(gone.version, Stage.CANDIDATE)] if gone.version else [], details)
        previous = self._previous_production(name, spec)
        if previous is None:
            raise ConflictError(f"deployment {name!r} has no canary, and production is not a promotion to undo "
                                "(no promotion recorded, or it was rolled back already)")
        updated = spec.model_copy(update={"policy": previous})
        moves: list[tuple[str, Stage]] = []
        if spec.policy.version:
            moves.append((spec.policy.version, Stage.RETIRED))
        if previous.version:
            moves.append((previous.version, Stage.PRODUCTION))
        return self._change(name, revision, updated, "rollback", previous.describe(), reason, moves, details)

    def _previous_production(self, name: str, spec: DeploymentSpec) -> PolicySource | None:
        """Production as it was just before the last promotion (``None`` without one, or if production is that
        policy already: a second rollback does not flip back)."""
        promoted = [c for c in self.engine.store.changes(name) if c.action == "promote"]
        if not promoted:
            return None
        history = {r.revision: r for r in self.engine.store.history(name)}
        before = history.get(promoted[-1].revision - 1)
        if before is None:
            return None
        source = before.deployment_spec().policy
        return None if source == spec.policy else source

    def holdout(self, name: str, source: PolicySource | None, fraction: float = 0.05, *, reason: str) -> Change:
        """Serve the baseline ``source`` to a sticky ``fraction`` of units, to measure lift; ``None`` removes it."""
        base, spec = self._spec(name)
        if source is not None and not (isinstance(fraction, int | float) and 0.0 < fraction <= 0.5):
            raise ValidationError("fraction", f"must be in (0, 0.5], got {fraction}")
        if source is None and spec.holdout is None:
            raise ConflictError(f"deployment {name!r} has no holdout to remove")
        data = {**spec.model_dump(by_alias=True),
                "holdout": None if source is None else {"policy": source.model_dump(), "fraction": fraction}}
        return self._change(name, base, data, "holdout", None if source is None else source.describe(), reason, [],
                            {"fraction": fraction if source is not None else 0.0})

    def history(self, name: str, limit: int | None = None) -> list[Change]:
        """The deployment's changes, oldest first."""
        self.engine.store.latest(name)  # unknown names fail clearly
        return self.engine.store.changes(name, limit)

    # ---- the guardrail ----------------------------------------------------------------------------------------

    def judge(self, name: str, interactions: pa.Table | None = None) -> tuple[str | None, str, GuardrailResult | None]:
        """The guardrail's verdict on the canary from its logged interactions (nothing is changed).

        Decisions and rewards of both arms since the canary started serving are replayed in time order to a
        fresh :class:`GuardrailMonitor`, looking every :data:`LOOK_EVERY` rows: the verdict is the one a monitor
        watching continuously would have reached, so checking more or less often does not change it. Metrics:
        ``reward`` (from the join) and, if the deployment's guardrail names it, ``latency_us`` per decision.
        Outcomes that arrived before their window closed count only if the deployment's
        ``early_outcomes_usable`` says they are not a selected sample; otherwise the verdict waits for windows to
        close. ``interactions``: the deployment's ``include_pending`` join when the caller has it already
        (default: join now).
        """
        revision, spec = self._spec(name)
        production = revision.policy_version
        if spec.canary is None:
            return None, production, None
        canary = next(a["version"] for a in revision.arms if a["role"] == "canary")
        since = self._canary_since(name, canary)
        table = self.engine.interactions(name, include_pending=True).interactions if interactions is None \
            else interactions
        if not spec.early_outcomes_usable:  # early outcomes would be a selected sample (see DeploymentSpec)
            table = table.filter(table["window_closed"])
        table = table.filter(pc.greater_equal(pc.cast(table["ts"], pa.int64()), since))
        versions = table["policy_version"]
        table = table.filter(pc.or_(pc.equal(versions, canary), pc.equal(versions, production)))
        table = table.sort_by([("ts", "ascending")])
        arms = np.where(np.asarray(table["policy_version"].to_pylist()) == canary, Arm.CANARY, Arm.PRODUCTION)
        metrics = {m.name for m in spec.guardrail.metrics}
        unknown = metrics - {"reward", "latency_us"}
        if unknown:
            raise ValidationError("guardrail.metrics", f"unknown metric {sorted(unknown)[0]!r} (the deployment "
                                                       "guardrail knows reward and latency_us)")
        columns = {"reward": table["reward"].to_numpy(zero_copy_only=False).astype(np.float64)}
        if "latency_us" in metrics:
            columns["latency_us"] = table["latency_us"].to_numpy(zero_copy_only=False).astype(np.float64)
        monitor = GuardrailMonitor(spec.guardrail)
        result = monitor.result()
        for start in range(0, len(arms), LOOK_EVERY):
            stop = start + LOOK_EVERY
            result = monitor.update(arms[start:stop], {k: columns[k][start:stop] for k in metrics})
            if result.decided:
                break
        return canary, production, result

    def _canary_since(self, name: str, canary: str) -> int:
        """When ``canary`` started serving as the canary (its first revision of the current run), microseconds."""
        since = 0
        for revision in self.engine.store.history(name):
            roles = {a["version"]: a["role"] for a in revision.arms}
            since = (since or revision.created_at * 1_000_000) if roles.get(canary) == "canary" else 0
        return since

    def check(self, name: str) -> CheckResult:
        """Judge the canary and act: roll it back when worse with confidence (if ``auto_rollback``), promote it
        when found not worse (if ``auto_promote``). If the canary changed while it was judged, nothing is done."""
        canary, production, result = self.judge(name)
        if canary is None or result is None:
            return CheckResult(name, None, production, None, "none")
        _, spec = self._spec(name)
        verdict = result.to_dict()
        action = "none"
        try:
            if result.decision is Decision.ROLLBACK and spec.auto_rollback:
                self.rollback(name, reason=f"guardrail: {result.reason}", details={"guardrail": verdict},
                              expected_canary=canary)
                action = "rolled_back"
            elif result.decision is Decision.PROMOTE and spec.auto_promote:
                self.promote(name, reason=f"guardrail: {result.reason}", details={"guardrail": verdict},
                             expected_canary=canary)
                action = "promoted"
        except ConflictError:  # someone else changed the canary meanwhile: nothing to do now
            action = "none"
        return CheckResult(name, canary, production, result, action)

    def check_all(self) -> list[CheckResult]:
        """Check every deployment that has a canary; a deployment that fails to check is skipped, not fatal."""
        out = []
        for name in self.engine.store.names():
            try:
                out.append(self.check(name))
            except RlopsError:
                continue
        return out
