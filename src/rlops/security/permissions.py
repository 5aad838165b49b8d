"""What a caller may do: permissions, the six roles, and the one table that maps each role to its permissions.

A permission names one kind of action; a role is a fixed, documented set of permissions (there are no custom
roles: a key is narrowed with a :class:`~rlops.security.scopes.Scope` instead). The table below is the single
source of truth; ``docs/security.md`` shows it and a test checks that the two agree.

=========  ===========================================================================================
role       permissions
=========  ===========================================================================================
admin      every permission
deployer   read_deployments, read_models, read_metrics, read_decisions, read_probabilities, deploy,
           rollout, register_model
analyst    read_deployments, read_models, read_metrics, read_decisions, read_probabilities, export_events
decider    decide, report_outcome (client applications)
auditor    read_audit, read_deployments, read_models, read_metrics, read_decisions
viewer     read_deployments, read_models, read_metrics
=========  ===========================================================================================
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    """One kind of action a key may be allowed."""

    DECIDE = "decide"
    """Ask a deployment for a decision (``POST /decide``); the decision is logged."""
    REPORT_OUTCOME = "report_outcome"
    """Report what happened after a decision (``POST /outcomes``)."""
    READ_DECISIONS = "read_decisions"
    """Read logged decisions and outcomes, including their context features."""
    READ_PROBABILITIES = "read_probabilities"
    """See the full action distribution of a decision (reveals more of the policy than the chosen action)."""
    READ_DEPLOYMENTS = "read_deployments"
    """List deployments and read their configuration and rollout state."""
    READ_MODELS = "read_models"
    """List registry versions, lineage and model cards."""
    READ_METRICS = "read_metrics"
    """Read metrics, drift reports, alerts and the dashboard."""
    READ_AUDIT = "read_audit"
    """Read the audit chain (who did what, when)."""
    EXPORT_EVENTS = "export_events"
    """Export the event log in bulk (Parquet, SQL over it)."""
    DEPLOY = "deploy"
    """Create or change a deployment (apply a deployment file)."""
    ROLLOUT = "rollout"
    """Start a shadow or canary, promote, roll back."""
    REGISTER_MODEL = "register_model"
    """Register a model version or move it between stages."""
    OVERRIDE_GATE = "override_gate"
    """Promote a version although a validation gate failed (recorded with a reason)."""
    MANAGE_KEYS = "manage_keys"
    """Create, list and revoke API keys."""
    ERASE = "erase"
    """Erase a subject's data (``unit_id``) from the event log."""


class Role(StrEnum):
    """The six roles; what each grants is in :data:`ROLE_PERMISSIONS`."""

    ADMIN = "admin"
    DEPLOYER = "deployer"
    ANALYST = "analyst"
    DECIDER = "decider"
    AUDITOR = "auditor"
    VIEWER = "viewer"


P = Permission

#: Permissions that change stored state. A read-only scope removes all of them (``decide`` logs a decision, so it
#: writes too).
WRITES: frozenset[Permission] = frozenset({P.DECIDE, P.REPORT_OUTCOME, P.DEPLOY, P.ROLLOUT, P.REGISTER_MODEL,
                                           P.OVERRIDE_GATE, P.MANAGE_KEYS, P.ERASE})

#: Permissions that are not about one deployment. A key restricted to some deployments never holds them: it could
#: otherwise act on everything (mint keys, erase across deployments, read the whole audit chain).
GLOBAL: frozenset[Permission] = frozenset({P.READ_MODELS, P.READ_AUDIT, P.REGISTER_MODEL, P.OVERRIDE_GATE,
                                           P.MANAGE_KEYS, P.ERASE})

_READ_BASICS = frozenset({P.READ_DEPLOYMENTS, P.READ_MODELS, P.READ_METRICS})

#: What each role grants. Explicit on purpose: adding a permission grants it to no role but admin until this table
#: says so.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.DEPLOYER: _READ_BASICS | {P.READ_DECISIONS, P.READ_PROBABILITIES, P.DEPLOY, P.ROLLOUT, P.REGISTER_MODEL},
    Role.ANALYST: _READ_BASICS | {P.READ_DECISIONS, P.READ_PROBABILITIES, P.EXPORT_EVENTS},
    Role.DECIDER: frozenset({P.DECIDE, P.REPORT_OUTCOME}),
    Role.AUDITOR: _READ_BASICS | {P.READ_AUDIT, P.READ_DECISIONS},
    Role.VIEWER: _READ_BASICS,
}


def role_permissions(role: Role) -> frozenset[Permission]:
    """The permissions ``role`` grants before any scope narrows them."""
    return ROLE_PERMISSIONS[role]
