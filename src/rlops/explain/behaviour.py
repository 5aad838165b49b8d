"""A deployment's global behaviour now: what its production policy does over the contexts it has recently served.

:func:`live_behaviour_inputs` takes the production arm's live policy (with what it has learned online in this
process), its score function and the deployment's most recent served contexts of consenting units;
:func:`explain_behaviour` ranks the features by permutation importance and computes the partial dependence (with
ICE curves) of the top ones (:func:`rlops.explain.global_explanation.explain_policy_globally`), and
:meth:`DeploymentBehaviour.to_dict` gives the numbers with each chart as a self-contained SVG string, for the
dashboard (``GET /v1/deployments/{deployment}/behaviour``).

Example:
    >>> inputs = live_behaviour_inputs(engine, "news")                            # doctest: +SKIP
    >>> explain_behaviour(inputs).explanation.importance.ranking                  # doctest: +SKIP
    ['activity', 'age', ...]
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rlops.errors import ConflictError, NotFoundError, RlopsError, ValidationError
from rlops.events.records import Mode
from rlops.explain.global_explanation import GlobalExplanation, explain_policy_globally
from rlops.explain.plots import decision_share_svg, importance_svg, pdp_svg
from rlops.explain.scores import ScoreFunction, ScoreKind, as_context_mapping, score_function
from rlops.schema import Schema

if TYPE_CHECKING:
    from rlops.engine import Engine

#: The most recent served contexts (of consenting units) a deployment's behaviour is computed over.
BEHAVIOUR_ROWS = 1000
#: Fewest contexts that can be explained (permutation importance shuffles rows).
MIN_ROWS = 2
#: Partial dependence for this many of the most important features.
TOP_K = 4


@dataclass(frozen=True)
class BehaviourInputs:
    """What a deployment's behaviour is computed from.

    Attributes:
        deployment: the deployment's name.
        policy_version: the version the production arm's decisions are attributed to.
        scores: the production policy's score function (its default score kind).
        contexts: ``(n, schema.width)`` the encoded recent contexts, oldest first.
        skipped: recent contexts left out because they do not fit the policy's schema (logged under another).
    """

    deployment: str
    policy_version: str
    scores: ScoreFunction
    contexts: np.ndarray
    skipped: int = 0

    @property
    def rows(self) -> int:
        return int(self.contexts.shape[0])


@dataclass(frozen=True)
class DeploymentBehaviour:
    """A deployment's global behaviour, as computed at ``computed_at_us``.

    Attributes:
        deployment, policy_version, score_kind, score_description: whose behaviour and which score.
        rows: contexts it was computed over; ``skipped``: recent contexts that did not fit the schema.
        explanation: feature importance and the partial dependence of the top features.
        computed_at_us: when it was computed (Unix microseconds).
    """

    deployment: str
    policy_version: str
    score_kind: ScoreKind
    score_description: str
    rows: int
    skipped: int
    explanation: GlobalExplanation
    computed_at_us: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content: the importance ranking and numbers, and per top feature its partial dependence
        (means, decision shares; the ICE curves only in the chart) with its charts as SVG strings (``None`` when
        there was nothing to draw)."""
        imp = self.explanation.importance
        box = self.score_kind is ScoreKind.ACTION_MEAN  # no decision to share among a box's dimensions
        dependence = []
        for pd in self.explanation.dependence:
            dependence.append({
                "feature": pd.feature, "kind": pd.kind, "actions": list(pd.actions), "grid": list(pd.grid),
                "pd": pd.pd.tolist(), "decision_share": None if box else pd.decision_share.tolist(),
                "n_rows": pd.n_rows, "n_ice": int(pd.ice.shape[1]),
                "pdp_svg": _svg(pdp_svg(pd)), "decisions_svg": None if box else _svg(decision_share_svg(pd)),
            })
        return {
            "deployment": self.deployment, "policy_version": self.policy_version,
            "score_kind": self.score_kind.value, "score_label": _label(self.score_kind),
            "score_description": self.score_description, "rows": self.rows, "skipped_rows": self.skipped,
            "computed_at_us": self.computed_at_us, "ranking": imp.ranking, "importance": imp.to_dict(),
            "importance_svg": _svg(importance_svg(imp)), "dependence": dependence,
            "skipped_features": dict(self.explanation.skipped),
        }


def _svg(chart: str) -> str | None:
    """The chart, or ``None`` when a plot function said in words that there was nothing to draw."""
    return chart if chart.startswith("<svg") else None


def _label(kind: ScoreKind) -> str:
    return kind.value.replace("_", " ")


def _production(engine: Engine, deployment: str) -> tuple[str, Any]:
    """``(policy_version, policy)`` of the production arm, read so that both belong to the same revision (a hot
    swap between the two reads is detected and read again)."""
    def version() -> str:
        return next(a.policy_version for a in engine.arms(deployment) if a.name == "production")

    before = version()
    for _ in range(3):
        policy = engine.policy(deployment, "production")
        after = version()
        if after == before:
            return before, policy
        before = after
    raise ConflictError(f"deployment {deployment!r} is being changed; ask again")  # pragma: no cover - a swap storm


def recent_contexts(table: pa.Table, schema: Schema, deployment: str,
                    limit: int = BEHAVIOUR_ROWS) -> tuple[np.ndarray, int]:
    """The encoded contexts of the deployment's ``limit`` most recent served decisions of consenting units (a
    decision table as :meth:`rlops.events.EventLog.read_decisions` gives it), and how many of those did not fit
    ``schema`` (contexts logged under an older schema) and were left out."""
    mine = table.filter(pc.and_(pc.equal(table["deployment"], deployment), pc.equal(table["mode"],
                                                                                    Mode.SERVED.value)))
    mine = mine.filter(pc.fill_null(mine["consent"], True))  # old rows without the flag: consent was implied
    if mine.num_rows > limit:  # the latest by decision time (several writers' segments interleave in time)
        mine = mine.take(pc.sort_indices(mine, sort_keys=[("ts", "ascending")])).slice(mine.num_rows - limit)
    contexts = [json.loads(c) for c in mine["context"].to_pylist()]
    try:
        return schema.encode([as_context_mapping(schema, c) for c in contexts]), 0
    except (RlopsError, KeyError, TypeError, ValueError, IndexError):  # some rows do not fit: keep those that do
        rows = []
        for c in contexts:
            try:
                rows.append(schema.encode([as_context_mapping(schema, c)])[0])
            except (RlopsError, KeyError, TypeError, ValueError, IndexError):
                continue
        return np.array(rows, dtype=np.float64).reshape(len(rows), schema.width), len(contexts) - len(rows)


def live_behaviour_inputs(engine: Engine, deployment: str, rows: int = BEHAVIOUR_ROWS) -> BehaviourInputs:
    """The production arm's live policy and score function, and the deployment's recent contexts.

    The policy is read without the arm's lock: the score function copies its learned state when it is built, so a
    concurrent online update can at worst mix one update into the copy.

    Raises:
        NotFoundError: no such deployment.
        ConflictError: the deployment has served no context of a consenting unit that fits its schema yet, or its
            production policy offers no score to explain (e.g. a candidate action space, scored only per request).
    """
    if deployment not in engine.store.names():
        raise NotFoundError(f"deployment {deployment!r} does not exist")
    version, policy = _production(engine, deployment)
    try:
        scores = score_function(policy)
    except ValidationError as e:
        raise ConflictError(f"deployment {deployment!r}: its production policy ({policy.kind}, {version}) offers no "
                            f"score over its contexts alone to explain: {e}") from e
    contexts, skipped = recent_contexts(engine.log.read_decisions(), policy.schema, deployment, rows)
    if contexts.shape[0] < MIN_ROWS:
        fitting = f" ({skipped} did not fit its schema)" if skipped else ""
        raise ConflictError(f"deployment {deployment!r} has {contexts.shape[0]} logged context(s) of consenting "
                            f"units{fitting}; its behaviour needs at least {MIN_ROWS}: serve some decisions first")
    return BehaviourInputs(deployment, version, scores, contexts, skipped)


def explain_behaviour(inputs: BehaviourInputs, top_k: int = TOP_K, seed: int = 0) -> DeploymentBehaviour:
    """Feature importance and the partial dependence of the ``top_k`` most important features (default 4) over
    the inputs' contexts; the same inputs and ``seed`` give the same numbers.

    Raises:
        ConflictError: the policy could not be scored (e.g. a kind that gives no action probabilities).
    """
    scores = inputs.scores
    schema = scores.schema
    if schema is None:  # pragma: no cover - score_function always sets it
        raise ConflictError(f"deployment {inputs.deployment!r}: its score function has no schema")
    try:
        explanation = explain_policy_globally(scores, scores.actions, schema, inputs.contexts, top_k=top_k,
                                              sample=BEHAVIOUR_ROWS, seed=seed, score_label=_label(scores.kind),
                                              title=f"How {inputs.policy_version} behaves")
    except ValidationError as e:
        raise ConflictError(f"deployment {inputs.deployment!r}: its production policy ({inputs.policy_version}) "
                            f"could not be scored: {e}") from e
    return DeploymentBehaviour(inputs.deployment, inputs.policy_version, scores.kind, scores.description,
                               inputs.rows, inputs.skipped, explanation, time.time_ns() // 1000)
