"""Roles grant exactly the documented permissions; scopes only narrow them; principals refuse with a clear error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rlops.errors import ForbiddenError, ValidationError
from rlops.security import GLOBAL, ROLE_PERMISSIONS, WRITES, Permission, Principal, Role, Scope

P = Permission
DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"

# Written out again on purpose: changing a role's permissions must change this test (and the docs) too.
EXPECTED = {
    Role.ADMIN: set(Permission),
    Role.DEPLOYER: {P.READ_DEPLOYMENTS, P.READ_MODELS, P.READ_METRICS, P.READ_DECISIONS, P.READ_PROBABILITIES,
                    P.DEPLOY, P.ROLLOUT, P.REGISTER_MODEL},
    Role.ANALYST: {P.READ_DEPLOYMENTS, P.READ_MODELS, P.READ_METRICS, P.READ_DECISIONS, P.READ_PROBABILITIES,
                   P.EXPORT_EVENTS},
    Role.DECIDER: {P.DECIDE, P.REPORT_OUTCOME},
    Role.AUDITOR: {P.READ_AUDIT, P.READ_DEPLOYMENTS, P.READ_MODELS, P.READ_METRICS, P.READ_DECISIONS},
    Role.VIEWER: {P.READ_DEPLOYMENTS, P.READ_MODELS, P.READ_METRICS},
}


def principal(role: Role, *terms: str) -> Principal:
    return Principal("0123456789ab", "test", role, Scope.parse(terms))


@pytest.mark.parametrize("role", list(Role))
def test_role_grants_exactly_the_documented_permissions(role: Role) -> None:
    assert set(ROLE_PERMISSIONS[role]) == EXPECTED[role]
    p = principal(role)
    for permission in Permission:
        assert p.allows(permission, "pricing") == (permission in EXPECTED[role])


def test_docs_table_matches_the_code() -> None:
    """Each role's row in docs/security.md lists the same permissions as ROLE_PERMISSIONS."""
    text = DOCS.read_text()
    for role in Role:
        row = re.search(rf"^\| `{role.value}` \|([^|]*)\|", text, re.M)
        assert row is not None, f"docs/security.md has no row for role {role.value}"
        listed = set(re.findall(r"`([a-z_]+)`", row.group(1)))
        expected = {p.value for p in ROLE_PERMISSIONS[role]} if role is not Role.ADMIN else {"every permission"}
        if role is Role.ADMIN:
            assert "every permission" in row.group(1)
        else:
            assert listed == expected, role


def test_decider_only_decides_and_reports() -> None:
    p = principal(Role.DECIDER)
    assert p.permissions == {P.DECIDE, P.REPORT_OUTCOME}
    with pytest.raises(ForbiddenError, match=r"read_decisions.*role 'decider' does not grant it"):
        p.require(P.READ_DECISIONS, "pricing")


def test_deployment_scope_allows_its_deployment_only() -> None:
    p = principal(Role.DECIDER, "deployment:pricing")
    assert p.allows(P.DECIDE, "pricing")
    assert not p.allows(P.DECIDE, "ranking")
    p.require(P.DECIDE, "pricing")
    with pytest.raises(ForbiddenError, match=r"may not decide on deployment 'ranking' \(permission 'decide'\)"):
        p.require(P.DECIDE, "ranking")
    assert p.scope.covers("pricing") and not p.scope.covers("ranking")


def test_several_deployments_and_global_permissions() -> None:
    p = principal(Role.ADMIN, "deployment:pricing", "deployment:ranking")
    assert p.allows(P.DEPLOY, "pricing") and p.allows(P.DEPLOY, "ranking")
    assert not p.allows(P.DEPLOY, "search")
    for permission in GLOBAL:  # a deployment-restricted admin cannot mint keys or erase across deployments
        assert not p.allows(permission)
    assert principal(Role.ADMIN).allows(P.MANAGE_KEYS)


def test_read_only_forbids_every_write_even_for_admin() -> None:
    p = principal(Role.ADMIN, "read-only")
    with pytest.raises(ForbiddenError, match=r"'deploy'.*read-only"):
        p.require(P.DEPLOY, "pricing")
    for permission in Permission:
        assert p.allows(permission, "pricing") == (permission not in WRITES)
    assert P.DECIDE in WRITES  # deciding logs a decision


def test_own_outcomes_only() -> None:
    p = principal(Role.DECIDER, "own-outcomes")
    assert p.may_report_outcome("pricing", p.key_id)
    assert not p.may_report_outcome("pricing", "ba9876543210")
    assert not p.may_report_outcome("pricing", None)
    p.require_outcome("pricing", p.key_id)
    with pytest.raises(ForbiddenError, match="only for decisions it made"):
        p.require_outcome("pricing", "ba9876543210")
    assert principal(Role.DECIDER).may_report_outcome("pricing", "ba9876543210")
    assert not principal(Role.VIEWER).may_report_outcome("pricing", None)


def test_scope_round_trips_and_rejects_bad_terms() -> None:
    scope = Scope.parse(["read-only", "deployment:b", "deployment:a", "own-outcomes"])
    assert scope.terms() == ["deployment:a", "deployment:b", "read-only", "own-outcomes"]
    assert Scope.parse(scope.terms()) == scope
    assert Scope.parse([]) == Scope()
    with pytest.raises(ValidationError, match="scope: unknown scope 'readonly'"):
        Scope.parse(["readonly"])
    with pytest.raises(ValidationError, match="does not name a deployment"):
        Scope.parse(["deployment:Bad Name"])
    with pytest.raises(ValidationError, match="does not name a deployment"):
        Scope.parse(["deployment:"])
