"""Who is calling: an authenticated key's identity, role and scope, and the checks made against it."""

from __future__ import annotations

from dataclasses import dataclass

from rlops.errors import ForbiddenError
from rlops.security.permissions import Permission, Role, role_permissions
from rlops.security.scopes import Scope


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    Attributes:
        key_id: the id of the API key it presented (public; part of the key).
        name: the key's human-readable name (may be empty).
        role: the key's role.
        scope: how the key is narrowed beyond its role.
    """

    key_id: str
    name: str
    role: Role
    scope: Scope

    @property
    def permissions(self) -> frozenset[Permission]:
        """The role's permissions left after the scope (an action may still be refused for its deployment)."""
        return self.scope.narrow(role_permissions(self.role))

    def allows(self, permission: Permission, deployment: str | None = None) -> bool:
        """Whether this caller may use ``permission``, on ``deployment`` when the action is about one.

        ``deployment=None`` for a deployment-bound permission means a listing: allowed, and the caller must then
        show only the deployments :meth:`Scope.covers` accepts.
        """
        return self._refusal(permission, deployment) is None

    def require(self, permission: Permission, deployment: str | None = None) -> None:
        """Return if :meth:`allows`; else raise.

        Raises:
            ForbiddenError: naming the permission and why it is refused.
        """
        reason = self._refusal(permission, deployment)
        if reason is not None:
            on = f" on deployment {deployment!r}" if deployment is not None else ""
            raise ForbiddenError(f"key {self.key_id} may not {permission.value}{on} (permission "
                                 f"{permission.value!r}): {reason}")

    def may_report_outcome(self, deployment: str, made_by: str | None) -> bool:
        """Whether this caller may report an outcome for a decision on ``deployment`` made by key ``made_by``
        (``None`` when the decision records no key)."""
        if not self.allows(Permission.REPORT_OUTCOME, deployment):
            return False
        return not self.scope.own_outcomes_only or made_by == self.key_id

    def require_outcome(self, deployment: str, made_by: str | None) -> None:
        """Return if :meth:`may_report_outcome`; else raise.

        Raises:
            ForbiddenError: naming the permission and why it is refused.
        """
        self.require(Permission.REPORT_OUTCOME, deployment)
        if self.scope.own_outcomes_only and made_by != self.key_id:
            raise ForbiddenError(f"key {self.key_id} may not report_outcome for this decision (permission "
                                 "'report_outcome'): the key may report outcomes only for decisions it made")

    def _refusal(self, permission: Permission, deployment: str | None) -> str | None:
        if permission not in role_permissions(self.role):
            return f"role {self.role.value!r} does not grant it"
        return self.scope.why_not(permission, deployment)
