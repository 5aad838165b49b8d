"""Explain a logged decision: which features pushed the chosen action's score up, and its lead over the runner-up.

:func:`explain_decision` reads the decision from the event log, loads the policy of the version that made it (not
whatever serves now), scores the logged context and a baseline, and attributes

- the chosen action's score (``score[a](x) - score[a](baseline)``), and
- its advantage over the runner-up (the best other action by the same score):
  ``(score[a] - score[r])(x) - (score[a] - score[r])(baseline)``,

to the context's features with the best method the policy allows (:mod:`rlops.explain.attributions`). Box actions
have no runner-up: each dimension of the policy's noiseless action is explained instead.

Where the policy comes from, in this order:

1. a live arm of the deployment with that version: its in-memory policy (:meth:`Engine.policy`). An online
   learner is explained as this process holds it now: in the serving process, with what it learned since the
   decision; in a fresh process (the CLI), as its revision stored it. The result's notes say so;
2. a registered version ``MODEL@N``: loaded from the registry, signature and files verified;
3. the newest revision of the deployment whose arms include the version: the policy folder it stored (or the
   registered version it named).

The default baseline is the mean of the reference profile registered with that version (see
:func:`rlops.monitoring.reference.registered_reference`), else the mean of the deployment's most recent
:data:`LOGGED_ROWS` served contexts; the result says which.

Example:
    >>> explanation = explain_decision(engine, decision_id)                       # doctest: +SKIP
    >>> explanation.chosen.by_feature                                              # doctest: +SKIP
    {'age': 0.21, 'device': -0.04, ...}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rlops.encryption import KeyNotFoundError
from rlops.engine.engine import MAX_ID_LENGTH
from rlops.errors import NotFoundError, RlopsError, ValidationError
from rlops.events.records import Mode
from rlops.explain.attributions import (
    DEFAULT_BUDGET,
    Attribution,
    Method,
    attribute,
    baseline_from_context,
    baseline_from_profile,
)
from rlops.explain.scores import ScoreFunction, ScoreKind, as_context_mapping, score_function
from rlops.policies import BasePolicy, load_policy
from rlops.registry import ModelRef, Registry
from rlops.schema import BoxActions, CandidateActions, Schema

if TYPE_CHECKING:
    from rlops.engine import Engine
    from rlops.monitoring.drift.profile import ReferenceProfile

#: Most recent served contexts of the deployment averaged into the default baseline when there is no profile.
LOGGED_ROWS = 10_000


class BaselineSource(StrEnum):
    """Where the baseline came from."""

    REFERENCE_PROFILE = "reference_profile"  # the mean of the version's registered reference profile
    LOGGED_CONTEXTS = "logged_contexts"  # the mean of the deployment's recent served contexts
    CONTEXT = "context"  # a context the caller gave


class PolicyOrigin(StrEnum):
    """Where the explained policy was loaded from."""

    LIVE = "live"  # the in-memory policy of a live arm with the decision's version
    REGISTRY = "registry"  # a registered version, verified
    REVISION = "revision"  # the folder an earlier deployment revision stored for that version


@dataclass(frozen=True)
class VersionPolicy:
    """The policy of one version, and where it was found.

    Attributes:
        policy: the policy.
        origin: where it came from.
        folder: the policy folder a revision stored for the version, when there is one (used to find a
            registered reference profile by content).
        registered: the registered version ``MODEL@N`` it is, when it is one.
        arm: the live arm's name, for a live policy.
    """

    policy: BasePolicy
    origin: PolicyOrigin
    folder: str | None = None
    registered: str | None = None
    arm: str | None = None


@dataclass(frozen=True, eq=False)
class DecisionExplanation:
    """Attributions of one logged decision (see the module docstring).

    Attributes:
        decision_id: the decision.
        deployment: its deployment.
        policy_version: the version that made it (the one explained).
        mode: ``served`` or ``shadow`` (a shadow's decision is explained the same way; it was never served).
        policy_origin: where the policy was loaded from.
        action: the chosen action (a name, or a vector for box actions).
        score_kind: what the scores mean; ``score_description`` says where they come from.
        score_description: one line on the scores.
        actions: the scored actions (fixed names, the decision's candidate ids, or ``action[i]`` for a box).
        scores: ``(K,)`` each action's score at the decision's context.
        baseline_scores: ``(K,)`` at the baseline.
        baseline_source: where the baseline came from.
        baseline_detail: the registered version whose profile gave it, or how many logged contexts were
            averaged, or ``""`` for a given context.
        context: the decision's context features (PII fields left out).
        baseline: the encoded baseline by column.
        runner_up: the best other action by the score (``None`` for box actions or a single action).
        chosen: attributions of the chosen action's score (``None`` for box actions).
        advantage: attributions of ``score[chosen] - score[runner_up]`` (``None`` without a runner-up).
        dimensions: box actions: attributions of each dimension's noiseless action.
        notes: what a reader should know (an online learner explained as it is now, an explored action...).
    """

    decision_id: str
    deployment: str
    policy_version: str
    mode: Mode
    policy_origin: PolicyOrigin
    action: str | list[float]
    score_kind: ScoreKind
    score_description: str
    actions: tuple[str, ...]
    scores: np.ndarray
    baseline_scores: np.ndarray
    baseline_source: BaselineSource
    baseline_detail: str
    context: dict[str, Any]
    baseline: dict[str, float]
    runner_up: str | None
    chosen: Attribution | None
    advantage: Attribution | None
    dimensions: tuple[Attribution, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def attributions(self) -> list[Attribution]:
        """Every attribution computed: chosen and advantage, or one per box dimension."""
        return [a for a in (self.chosen, self.advantage) if a is not None] + list(self.dimensions)

    @property
    def method(self) -> Method:
        """The method of the first attribution (the chosen action's, or the first dimension's)."""
        return self.attributions[0].method

    @property
    def complete(self) -> bool:
        """Whether every attribution meets its completeness tolerance."""
        return all(a.complete for a in self.attributions)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what ``GET /v1/decisions/{id}/explanation`` returns)."""
        return {
            "decision_id": self.decision_id, "deployment": self.deployment, "policy_version": self.policy_version,
            "mode": self.mode.value, "policy_origin": self.policy_origin.value, "action": self.action,
            "score_kind": self.score_kind.value, "score_description": self.score_description,
            "method": self.method.value, "complete": self.complete,
            "scores": dict(zip(self.actions, self.scores.tolist(), strict=True)),
            "baseline_scores": dict(zip(self.actions, self.baseline_scores.tolist(), strict=True)),
            "baseline_source": self.baseline_source.value, "baseline_detail": self.baseline_detail,
            "context": self.context, "baseline": self.baseline, "runner_up": self.runner_up,
            "chosen": None if self.chosen is None else self.chosen.to_dict(),
            "advantage": None if self.advantage is None else self.advantage.to_dict(),
            "dimensions": [d.to_dict() for d in self.dimensions], "notes": list(self.notes),
        }


# ---- the policy of a version ---------------------------------------------------------------------------------------


def _registered(version: str) -> ModelRef | None:
    """``MODEL@N`` as a reference, or ``None`` for a deployment's own ``NAME@rN`` versions."""
    try:
        return ModelRef.parse(version, "policy_version", require_version=True)
    except ValidationError:
        return None


def _stored_arm(engine: Engine, deployment: str, version: str) -> dict[str, Any] | None:
    """The newest revision's stored arm with ``version`` (``folder`` or ``registry``), if any revision had one."""
    for revision in reversed(engine.store.history(deployment)):
        for arm in revision.arms:
            if arm.get("version") == version:
                return dict(arm)
    return None


def _from_registry(engine: Engine, ref: ModelRef) -> BasePolicy:
    with Registry(engine.home) as registry:
        return registry.load(ref.name, ref.version)  # verified: signature and every file's hash


def policy_of_version(engine: Engine, deployment: str, version: str) -> VersionPolicy:
    """The policy that made a deployment's decisions attributed to ``version`` (see the module docstring).

    Raises:
        NotFoundError: no live arm, registered version or stored revision has that version (or its files are gone).
        ConfigError: a registered version that no longer verifies (tampered, or signed by an untrusted key).
    """
    stored = _stored_arm(engine, deployment, version)
    folder = None if stored is None else stored.get("folder")
    ref = _registered(version)
    registered = str(ref) if ref is not None else (None if stored is None else stored.get("registry"))
    try:
        arms = engine.arms(deployment)
    except RlopsError:  # the live revision does not load here (or the deployment is gone): look further
        arms = []
    for info in arms:
        if info.policy_version == version:
            return VersionPolicy(engine.policy(deployment, info.name), PolicyOrigin.LIVE, folder, registered,
                                 info.name)
    if ref is not None:
        return VersionPolicy(_from_registry(engine, ref), PolicyOrigin.REGISTRY, folder, registered)
    if stored is None:
        raise NotFoundError(f"policy_version: {version!r} is not a version any revision of deployment "
                            f"{deployment!r} served")
    if "registry" in stored:
        loaded = _from_registry(engine, ModelRef.parse(str(stored["registry"]), "registry", require_version=True))
        return VersionPolicy(loaded, PolicyOrigin.REGISTRY, folder, registered)
    if folder is None or not (Path(folder) / "manifest.json").exists():
        raise NotFoundError(f"policy_version: the policy folder of {version!r} ({folder}) is no longer stored")
    return VersionPolicy(load_policy(folder, keyring=engine.log.keyring), PolicyOrigin.REVISION, folder, registered)


# ---- baselines -----------------------------------------------------------------------------------------------------


def _reference_profile(engine: Engine, found: VersionPolicy, version: str) -> tuple[ReferenceProfile, str] | None:
    from rlops.monitoring.reference import registered_reference

    with Registry(engine.home) as registry:
        try:
            match = registered_reference(registry, found.folder, found.registered or version)
        except (NotFoundError, KeyNotFoundError):  # gone, or a sealed folder this lookup cannot hash
            return None
    return None if match is None else (match.profile, str(match.ref))


def _read_decision(table: pa.Table, decision_id: Any) -> dict[str, Any]:
    """One decision's record from the log's decision table, as :meth:`Engine.decision` gives it."""
    if not isinstance(decision_id, str) or not decision_id or len(decision_id) > MAX_ID_LENGTH:
        raise ValidationError("decision_id", f"expected a non-empty string of at most {MAX_ID_LENGTH} characters")
    rows = table.filter(pc.equal(table["decision_id"], decision_id)).slice(0, 1).to_pylist()
    if not rows:
        raise NotFoundError(f"decision {decision_id!r} does not exist")
    row: dict[str, Any] = rows[0]
    row["context"] = json.loads(row["context"])
    if row["candidate_features"] is not None:
        row["candidate_features"] = json.loads(row["candidate_features"])
    if row["action_index"] == -1:
        row["action"] = json.loads(row["action"])
    return row


def _logged_mean(table: pa.Table, schema: Schema, deployment: str) -> tuple[np.ndarray, int]:
    table = table.filter(pc.and_(pc.equal(table["deployment"], deployment), pc.equal(table["mode"],
                                                                                     Mode.SERVED.value)))
    if table.num_rows > LOGGED_ROWS:
        table = table.slice(table.num_rows - LOGGED_ROWS)
    contexts = [json.loads(c) for c in table["context"].to_pylist()]
    try:
        matrix = schema.encode(contexts)
    except (KeyError, TypeError, ValueError, IndexError):  # rows logged under another schema: keep those that fit
        rows = []
        for c in contexts:
            try:
                rows.append(schema.encode([as_context_mapping(schema, c)])[0])
            except (RlopsError, KeyError, TypeError, ValueError):
                continue
        matrix = np.array(rows).reshape(len(rows), schema.width)
    if matrix.shape[0] == 0:
        raise ValidationError("baseline", f"deployment {deployment!r} has no reference profile for this version and "
                                          "no logged contexts that fit its schema; pass a baseline context")
    return matrix.mean(axis=0), int(matrix.shape[0])


# ---- explaining ----------------------------------------------------------------------------------------------------


def _chosen_index(record: Mapping[str, Any], score_fn: ScoreFunction) -> int:
    name, index = record.get("action"), record.get("action_index")
    if isinstance(name, str) and name in score_fn.actions and score_fn.actions.count(name) == 1:
        return score_fn.actions.index(name)
    if isinstance(index, int) and 0 <= index < len(score_fn.actions):
        return index
    raise ValidationError("action", f"the decision's action {name!r} is not one of the policy's actions "
                                    f"{score_fn.actions[:10]}")


def explain_decision(engine: Engine, decision_id: str, *, baseline: Mapping[str, Any] | None = None,
                     method: Method | str = Method.AUTO, kind: ScoreKind | str | None = None,
                     budget: int = DEFAULT_BUDGET, seed: int = 0) -> DecisionExplanation:
    """Explain one logged decision with the policy version that made it.

    Args:
        engine: the engine over the home folder that logged it.
        decision_id: the decision (read from the event log, as :meth:`Engine.decision` reads it).
        baseline: a raw context to compare with (validated against the policy's schema; PII fields ignored).
            Default: the version's reference profile mean, else the mean of the deployment's logged contexts.
        method: ``auto`` (exact > integrated gradients > Shapley sampling), or one of them.
        kind: the score kind (default: the policy's first, see :func:`rlops.explain.scores.score_kinds`).
        budget: Shapley sampling's score evaluations (default 2048).
        seed: Shapley sampling's seed (default 0).

    Raises:
        NotFoundError: no such decision, or its policy version is no longer stored.
        ValidationError: a bad baseline, method or kind; a policy that cannot explain its decision (a box action
            sampled by a policy without a deterministic action, say).
    """
    table = engine.log.read_decisions()  # read once: the decision and, when needed, the logged contexts
    record = _read_decision(table, decision_id)
    deployment, version = str(record["deployment"]), str(record["policy_version"])
    mode = Mode(record["mode"])
    found = policy_of_version(engine, deployment, version)
    policy = found.policy
    schema = policy.schema
    context = as_context_mapping(schema, record["context"], "decision.context")
    x = schema.encode([context])[0]
    candidates, candidate_ids = None, None
    if isinstance(schema.actions, CandidateActions):
        features = record.get("candidate_features") or []
        candidates = schema.encode_candidates([{"features": f} for f in features])
        candidate_ids = list(record.get("actions") or [])
    score_fn = score_function(policy, kind=kind, candidates=candidates, candidate_ids=candidate_ids)

    notes: list[str] = []
    detail = ""
    if baseline is not None:
        b = baseline_from_context(schema, baseline)
        source = BaselineSource.CONTEXT
    else:
        profile = _reference_profile(engine, found, version)
        if profile is not None:
            b, detail = baseline_from_profile(profile[0], schema), profile[1]
            source = BaselineSource.REFERENCE_PROFILE
        else:
            b, rows = _logged_mean(table, schema, deployment)
            source, detail = BaselineSource.LOGGED_CONTEXTS, f"{rows} logged contexts"

    if mode is Mode.SHADOW:
        notes.append("a shadow decision: logged for comparison, never served")
    if record.get("consent") is False:
        notes.append("the unit gave no consent: the deployment's baseline policy decided")
    if found.arm is not None and callable(getattr(policy, "update", None)):
        try:
            online = engine.spec(deployment).learning.online
        except RlopsError:
            online = False
        if online:
            learned = engine.learned_count(deployment, found.arm)
            notes.append(f"an online learner, explained as this process holds it now ({learned} interactions "
                         "learned since it was loaded here): its state when it decided may differ")
    if score_fn.reads_contexts:
        notes.append("the policy reads contexts: the baseline is the nearest valid context to it")

    options: dict[str, Any] = {"method": method, "budget": budget, "seed": seed}
    runner_up: str | None = None
    chosen = advantage = None
    dimensions: tuple[Attribution, ...] = ()
    if isinstance(schema.actions, BoxActions):
        dimensions = tuple(attribute(score_fn, x, b, i, **options) for i in range(len(score_fn.actions)))
        baseline_used = dimensions[0].baseline
    else:
        a = _chosen_index(record, score_fn)
        chosen = attribute(score_fn, x, b, a, **options)
        baseline_used = chosen.baseline
        scores_now = score_fn(x)[0]
        if len(score_fn.actions) > 1:
            others = np.delete(np.arange(len(score_fn.actions)), a)
            r = int(others[np.argmax(scores_now[others])])
            runner_up = score_fn.actions[r]
            advantage = attribute(score_fn, x, b, a, versus=r, **options)
            if scores_now[r] > scores_now[a]:
                notes.append(f"the chosen action is not the highest by this score ({runner_up!r} is): it was "
                             "explored, or the policy ranks by another score")
    scores = score_fn(np.stack([x, baseline_used]))
    for attribution in (chosen, advantage, *dimensions):
        if attribution is not None and not attribution.complete:
            notes.append(f"{attribution.target}: completeness error {attribution.completeness_error:.3g} is above "
                         f"the tolerance {attribution.tolerance:.3g}")
    action = record["action"]
    return DecisionExplanation(
        decision_id=str(record["decision_id"]), deployment=deployment, policy_version=version, mode=mode,
        policy_origin=found.origin, action=action, score_kind=score_fn.kind,
        score_description=score_fn.description, actions=tuple(score_fn.actions), scores=scores[0],
        baseline_scores=scores[1], baseline_source=source, baseline_detail=detail,
        context=dict(context),
        baseline=dict(zip(schema.column_names, baseline_used.tolist(), strict=True)), runner_up=runner_up,
        chosen=chosen, advantage=advantage, dimensions=dimensions, notes=tuple(notes))
