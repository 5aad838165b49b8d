"""Request and response bodies of the HTTP API (separate classes: what comes in is not what goes out)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rlops.engine import Decision, OutcomeStatus, ReportResult


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecideRequest(_Body):
    """One decision: who it is about, what is known about them, and (for candidate spaces) the candidates."""

    unit_id: str = Field(min_length=1, max_length=256, examples=["user-42"])
    context: dict[str, Any] = Field(examples=[{"age": 34, "device": "mobile"}])
    actions: list[dict[str, Any]] | None = Field(default=None, description="Per-request candidates "
                                                 "[{'id': ..., 'features': {...}}] for candidate action spaces.")
    consent: bool = Field(default=True, description="Whether the unit consented to its data being used for "
                          "learning; without consent the deployment's baseline policy decides and nothing learns "
                          "from the decision.")


class DecideBatchRequest(_Body):
    items: list[DecideRequest] = Field(min_length=1)


class DecideResponse(BaseModel):
    decision_id: str
    action: str | list[float]
    propensity: float
    policy_version: str
    probabilities: dict[str, float] | None = None

    @classmethod
    def of(cls, decision: Decision) -> DecideResponse:
        return cls(decision_id=decision.decision_id, action=decision.action, propensity=decision.propensity,
                   policy_version=decision.policy_version, probabilities=decision.probabilities)


class DecideBatchResponse(BaseModel):
    decisions: list[DecideResponse]


class OutcomeIn(_Body):
    decision_id: str = Field(min_length=1, max_length=256)
    fields: dict[str, Any] = Field(examples=[{"clicked": True}])
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)


class OutcomesRequest(_Body):
    outcomes: list[OutcomeIn] = Field(min_length=1)


class OutcomeResult(BaseModel):
    decision_id: str
    idempotency_key: str
    status: OutcomeStatus
    reason: str | None = None

    @classmethod
    def of(cls, result: ReportResult) -> OutcomeResult:
        return cls(decision_id=result.decision_id, idempotency_key=result.idempotency_key, status=result.status,
                   reason=result.reason)


class OutcomesResponse(BaseModel):
    accepted: int
    duplicates: int
    dead_lettered: int
    quarantined: int = 0
    results: list[OutcomeResult]


class DeploymentInfo(BaseModel):
    name: str
    revision: int
    policy_version: str
    policy: str
    reward_spec: str
    action_space: str
    actions: list[str]


class ApplyResponse(BaseModel):
    """What an admin apply did: a new revision (``created``), or none because nothing changed."""

    name: str
    revision: int
    created: bool
    policy_version: str


class ArmOut(BaseModel):
    """An arm serving a deployment; ``learned``: interactions its policy has learned online in the process that
    answered (each server process learns on its own copy)."""

    role: str
    name: str
    policy_version: str
    fraction: float
    source: str
    learned: int


class RolloutRequest(BaseModel):
    """A rollout change over the admin API: ``reason`` always; ``policy`` (``{"version": "MODEL@N"}``,
    ``{"kind": ...}`` or ``{"path": ...}`` inside the home folder) for shadow, canary and holdout; ``fraction``
    for canary and holdout; ``name`` for a shadow."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)
    policy: dict[str, Any] | None = None
    fraction: float | None = None
    name: str | None = Field(default=None, max_length=63)
    remove: bool = False
    override_gates: bool = Field(default=False, description="Serve a registered version although its validation "
                                 "report failed gates (needs permission override_gate; recorded in the audit log).")


class ChangeOut(BaseModel):
    name: str
    ts_us: int
    revision: int
    action: str
    version: str | None
    actor: str
    reason: str
    details: dict[str, Any]


class CheckOut(BaseModel):
    deployment: str
    canary_version: str | None
    production_version: str
    action: str
    verdict: dict[str, Any] | None


class AuditEntryOut(BaseModel):
    """One entry of the audit chain (see docs/audit.md)."""

    seq: int
    ts_us: int
    ts: str
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    alg: str
    prev_hash: str
    hash: str


class AuditVerifyOut(BaseModel):
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None
    anchor: str | None = None


class EraseRequest(_Body):
    """Whose data to erase."""

    unit_id: str = Field(min_length=1, max_length=256)


class ErasureOut(BaseModel):
    """What an erasure removed (counts only: nothing that identifies the unit)."""

    unit_ref: str
    decisions: int
    outcomes: int
    files_rewritten: int
    tails_deleted: int
    remaining_decisions: int
    remaining_outcomes: int
    held_segments: int
    traces: int
    scanned: bool
    complete: bool


class ErrorDetail(BaseModel):
    field: str | None = None
    rule: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
