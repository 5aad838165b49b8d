"""Scopes: attributes that narrow what a key's role allows (never widen it).

A scope is written on the command line as a list of terms::

    deployment:pricing      only this deployment (repeat the term to allow several)
    read-only               no permission that changes stored state (see :data:`~rlops.security.permissions.WRITES`)
    own-outcomes            outcomes only for decisions this key made

No term means no narrowing: every deployment, reads and writes, any decision's outcome.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from rlops.errors import ValidationError
from rlops.security.permissions import GLOBAL, WRITES, Permission

#: Deployment names as deployments accept them (lower-case letters, digits, '_' and '-').
DEPLOYMENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")

READ_ONLY = "read-only"
OWN_OUTCOMES = "own-outcomes"
DEPLOYMENT_PREFIX = "deployment:"
SYNTAX = f"{DEPLOYMENT_PREFIX}NAME, {READ_ONLY} or {OWN_OUTCOMES}"


class Scope(BaseModel):
    """How a key is narrowed beyond its role.

    Attributes:
        deployments: the only deployments the key may act on; ``None`` (the default) means every deployment.
        read_only: the key holds no permission that writes (default ``False``).
        own_outcomes_only: the key may report outcomes only for decisions it made itself (default ``False``).

    Example:
        >>> Scope.parse(["deployment:pricing", "read-only"]).terms()
        ['deployment:pricing', 'read-only']
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    deployments: frozenset[str] | None = None
    read_only: bool = False
    own_outcomes_only: bool = False

    @classmethod
    def parse(cls, terms: Iterable[str], field: str = "scope") -> Scope:
        """The scope the terms describe (see the module docstring for the syntax).

        Raises:
            ValidationError: a term is unknown or names an invalid deployment (``field`` names the option).
        """
        deployments: set[str] = set()
        read_only = own = False
        for raw in terms:
            term = raw.strip()
            if term == READ_ONLY:
                read_only = True
            elif term == OWN_OUTCOMES:
                own = True
            elif term.startswith(DEPLOYMENT_PREFIX):
                name = term[len(DEPLOYMENT_PREFIX):]
                if not DEPLOYMENT_NAME.fullmatch(name):
                    raise ValidationError(field, f"{raw!r} does not name a deployment (lower-case letters, digits, "
                                                 "'_' and '-', at most 63 characters)")
                deployments.add(name)
            else:
                raise ValidationError(field, f"unknown scope {raw!r}; expected {SYNTAX}")
        return cls(deployments=frozenset(deployments) or None, read_only=read_only, own_outcomes_only=own)

    def terms(self) -> list[str]:
        """The scope as the terms :meth:`parse` reads (sorted; empty when it narrows nothing)."""
        out = [f"{DEPLOYMENT_PREFIX}{d}" for d in sorted(self.deployments or ())]
        if self.read_only:
            out.append(READ_ONLY)
        if self.own_outcomes_only:
            out.append(OWN_OUTCOMES)
        return out

    def covers(self, deployment: str) -> bool:
        """Whether the key may see or act on ``deployment`` at all (what a listing filters by)."""
        return self.deployments is None or deployment in self.deployments

    def narrow(self, permissions: frozenset[Permission]) -> frozenset[Permission]:
        """What is left of ``permissions`` under this scope, ignoring which deployment an action is about."""
        left = permissions
        if self.read_only:
            left = left - WRITES
        if self.deployments is not None:
            left = left - GLOBAL
        return left

    def why_not(self, permission: Permission, deployment: str | None) -> str | None:
        """Why this scope forbids ``permission`` (on ``deployment``), or ``None`` if it does not."""
        if self.read_only and permission in WRITES:
            return "the key is read-only"
        if self.deployments is not None:
            if permission in GLOBAL:
                return "the key is restricted to some deployments and this permission is not about one"
            if deployment is not None and deployment not in self.deployments:
                return f"the key is restricted to deployments {', '.join(sorted(self.deployments))}"
        return None
