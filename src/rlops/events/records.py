"""The records of the event log (see DESIGN.md, "Data contracts") and their Arrow layouts.

Times are integers: microseconds since the Unix epoch, UTC. In Arrow/Parquet they are ``timestamp[us, UTC]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pyarrow as pa


class Mode(StrEnum):
    """Whether a decision was returned to the caller (``served``) or only logged for comparison (``shadow``)."""

    SERVED = "served"
    SHADOW = "shadow"


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision, logged before it is returned.

    Attributes:
        decision_id: time-ordered unique id (:func:`rlops.events.ids.new_id`).
        ts: when the decision was made, microseconds since the epoch (UTC).
        deployment: deployment name.
        policy_version: version of the policy that chose.
        mode: served or shadow.
        unit_id: the subject of the decision (sticky routing, erasure).
        context: the validated context features.
        actions: names of the candidate actions (fixed names or per-request candidate ids; empty for boxes).
        action: the chosen action's name (discrete) or its vector (box).
        action_index: index of the chosen action in ``actions`` (-1 for box actions).
        propensity: probability the serving policy gave the chosen action (> 0); a density for box actions.
        probabilities: the full distribution over ``actions`` when known.
        candidate_features: per-request candidates' validated features (candidate action spaces only).
        latency_us: time the policy took to decide, microseconds.
        key_id: the id of the API key that asked for the decision (``None`` in-process or before keys existed);
            a key scoped to its own outcomes may report outcomes only for these decisions.
        consent: whether the unit consented to its data being used for learning; without consent the decision
            came from the deployment's baseline policy and learners and estimators skip it. Default ``True``.
    """

    decision_id: str
    ts: int
    deployment: str
    policy_version: str
    mode: Mode
    unit_id: str
    context: dict[str, Any]
    actions: list[str]
    action: str | list[float]
    action_index: int
    propensity: float
    probabilities: list[float] | None = None
    candidate_features: list[dict[str, Any]] | None = None
    latency_us: int = 0
    key_id: str | None = None
    consent: bool = True


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """Something that happened after a decision; the reward is computed from ``fields`` by a reward spec.

    Attributes:
        decision_id: the decision this outcome belongs to.
        ts: when the outcome was reported, microseconds since the epoch (UTC).
        fields: outcome values (numbers, booleans or strings), by name.
        idempotency_key: outcomes with the same key are one outcome; the first one stored wins.
        key_id: the id of the API key that reported it (``None`` in-process or before keys existed).
        quarantine: why the outcome is held back from learning and evaluation (out of the reward's bounds, an
            anomalous rate or reward distribution from one key), or ``None`` for a trusted outcome.
    """

    decision_id: str
    ts: int
    fields: dict[str, Any]
    idempotency_key: str
    key_id: str | None = None
    quarantine: str | None = None


TIMESTAMP = pa.timestamp("us", tz="UTC")

#: Arrow layout of decisions as the log reads them back and compacts them to Parquet. ``context`` and
#: ``candidate_features`` are JSON text because each deployment has its own schema; ``action`` is the name, or the
#: JSON text of the vector for box actions.
DECISION_SCHEMA = pa.schema(
    [
        ("decision_id", pa.string()),
        ("ts", TIMESTAMP),
        ("deployment", pa.string()),
        ("policy_version", pa.string()),
        ("mode", pa.string()),
        ("unit_id", pa.string()),
        ("context", pa.string()),
        ("actions", pa.list_(pa.string())),
        ("action", pa.string()),
        ("action_index", pa.int64()),
        ("propensity", pa.float64()),
        ("probabilities", pa.list_(pa.float64())),
        ("candidate_features", pa.string()),
        ("latency_us", pa.int64()),
        ("key_id", pa.string()),
        ("consent", pa.bool_()),
    ]
)

#: Arrow layout of outcomes; ``fields`` is JSON text.
OUTCOME_SCHEMA = pa.schema(
    [
        ("decision_id", pa.string()),
        ("ts", TIMESTAMP),
        ("fields", pa.string()),
        ("idempotency_key", pa.string()),
        ("key_id", pa.string()),
        ("quarantine", pa.string()),
    ]
)

#: Values of the columns added after the first release, for rows and Parquet parts written before them.
ADDED_DEFAULTS: dict[str, Any] = {"key_id": None, "consent": True, "quarantine": None}
