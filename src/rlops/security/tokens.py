"""JWT bearer tokens from a single sign-on provider: verified against a configured issuer, audience and key.

A token is accepted when its signature verifies with the configured key and algorithm, it has not expired (``exp``
is required; ``nbf`` is honoured), its ``iss`` and ``aud`` are the configured ones, and it names a subject
(``sub``) and an rlops role. The role and the optional scope come from two claims::

    {"sub": "alice@example.com", "rlops_role": "analyst", "rlops_scope": ["deployment:pricing", "read-only"], ...}

The principal's id is ``jwt:<sub>``: that is what decisions, audit entries and rate limits record. Tokens cannot be
revoked here (that is the provider's job, through short lifetimes); API keys can.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from rlops.errors import ConfigError, UnauthorizedError
from rlops.security.permissions import Role
from rlops.security.principal import Principal
from rlops.security.scopes import Scope

#: Algorithms accepted for the configured key: HMAC with a shared secret, or a public key (RSA, EC, Ed25519).
ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA")
ROLE_CLAIM = "rlops_role"
SCOPE_CLAIM = "rlops_scope"
#: The one message of every refused token (which check failed is logged by nobody and told to nobody).
INVALID = "invalid or expired token"
_MAX_SUBJECT = 180


@dataclass(frozen=True)
class JwtVerifier:
    """Checks bearer tokens against one issuer.

    Attributes:
        issuer: the expected ``iss`` claim.
        audience: the expected ``aud`` claim (the token may list several; one must be this).
        key: the HMAC secret (``HS*``, at least 32 bytes) or the PEM public key of the issuer.
        algorithm: the one algorithm accepted (see :data:`ALGORITHMS`); a token signed otherwise is refused, which
            closes the ``alg: none`` and key-confusion attacks.
        leeway_s: clock skew allowed on ``exp`` and ``nbf``, seconds. Default 30.
    """

    issuer: str
    audience: str
    key: str
    algorithm: str = "RS256"
    leeway_s: float = 30.0

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"jwt_algorithm: {self.algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        if not self.issuer or not self.audience:
            raise ConfigError("jwt_issuer, jwt_audience: both are required to accept tokens")
        if self.algorithm.startswith("HS") and len(self.key.encode()) < 32:
            raise ConfigError("jwt_key: an HMAC secret must have at least 32 bytes")
        if not self.algorithm.startswith("HS") and "-----BEGIN" not in self.key:
            raise ConfigError(f"jwt_key: {self.algorithm} needs the issuer's PEM public key")

    def verify(self, token: str) -> Principal:
        """The caller the token identifies.

        Raises:
            UnauthorizedError: the token is malformed, badly signed, expired, for another issuer or audience, or
                lacks the subject or role (one message for all).
        """
        try:
            claims = jwt.decode(token, self.key, algorithms=[self.algorithm], audience=self.audience,
                                issuer=self.issuer, leeway=self.leeway_s,
                                options={"require": ["exp", "iss", "aud", "sub"]})
            subject = claims["sub"]
            role = Role(claims[ROLE_CLAIM])
            raw_scope = claims.get(SCOPE_CLAIM, [])
            if not isinstance(subject, str) or not subject or len(subject) > _MAX_SUBJECT:
                raise UnauthorizedError(INVALID)
            if not isinstance(raw_scope, list) or not all(isinstance(t, str) for t in raw_scope):
                raise UnauthorizedError(INVALID)
            scope = Scope.parse(raw_scope, SCOPE_CLAIM)
        except UnauthorizedError:
            raise
        except (jwt.PyJWTError, KeyError, ValueError, TypeError) as e:
            raise UnauthorizedError(INVALID) from e
        return Principal(key_id=f"jwt:{subject}", name=subject, role=role, scope=scope)
