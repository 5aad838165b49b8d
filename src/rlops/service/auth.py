"""Who may call which route: one guard dependency on every route, declared where the route is declared.

Every route of the app carries exactly one :class:`Guard` (``dependencies=[requires(Permission.X)]``, or
:data:`PUBLIC` for the few routes that must answer anyone: liveness, readiness, the dashboard's static page).
:func:`check_guarded` refuses to build an app with a route that has none, so a new route without a declared
permission fails at start-up and in the tests, never silently open.

A guard authenticates the ``Authorization: Bearer ...`` header (an API key ``rlk_...``, or a JWT when the server is
configured for one), charges the caller's rate limit, and checks the permission against the key's role and scope:
for routes with a ``{deployment}`` in their path, on that deployment. Missing or wrong credentials answer 401,
a known caller without the permission 403, a caller over its rate 429 with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute

from rlops.errors import ConfigError, RateLimitedError, UnauthorizedError
from rlops.security.keys import PREFIX, KeyStore
from rlops.security.permissions import Permission
from rlops.security.principal import Principal
from rlops.security.tokens import JwtVerifier

#: How long an authenticated key is trusted without looking at the key store again, seconds: a revoked key stops
#: working within this time on every server process.
CACHE_TTL_S = 2.0
_CACHE_SIZE = 10_000


class TokenBucket:
    """Per-caller token buckets: ``rate`` requests per second on average, bursts of up to ``burst``.

    Thread-safe; one set of buckets per server process (with N worker processes a caller may get up to N times the
    rate, see docs/security.md). ``rate`` 0 turns limiting off.
    """

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, max(burst, 1.0)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, caller: str, now: float | None = None) -> float:
        """Take one token for ``caller``: 0.0 if it was there, else the seconds until one will be."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[caller] = (tokens, now)
            if len(self._buckets) > _CACHE_SIZE:  # forget the callers idle longest (their buckets are full)
                self._buckets.popitem(last=False)
            return wait


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`, with a short cache in front of the key store.

    The cache is keyed by the SHA-256 of the presented credential, never the credential itself.
    """

    def __init__(self, keys: KeyStore, jwt_verifier: JwtVerifier | None = None) -> None:
        self.keys, self.jwt = keys, jwt_verifier
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller, from an ``Authorization: Bearer <credential>`` header value.

        Raises:
            UnauthorizedError: no header, another scheme, or a credential that does not verify.
        """
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise UnauthorizedError("authorization: expected 'Authorization: Bearer <API key or token>'")
        digest = hashlib.sha256(credential.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        if credential.startswith(PREFIX) or self.jwt is None:
            principal = self.keys.authenticate(credential)
        else:
            principal = self.jwt.verify(credential)
        with self._lock:
            self._cache[digest] = (principal, now + CACHE_TTL_S)
            self._cache.move_to_end(digest)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return principal

    def close(self) -> None:
        self.keys.close()


class Guard:
    """The dependency that protects one route (see the module docstring).

    Attributes:
        permission: what the route needs, or ``None`` for a public route.
    """

    def __init__(self, permission: Permission | None) -> None:
        self.permission = permission

    async def __call__(self, request: Request) -> Principal | None:
        # async: FastAPI runs a sync dependency on its thread pool, and two extra thread hops per request cost
        # more than the check (a cached key takes about a microsecond; a store lookup, once per key every 2 s,
        # about 0.1 ms on the event loop).
        if self.permission is None:
            return None
        state = request.app.state
        principal = state.authenticator.authenticate(request.headers.get("authorization"))
        wait = state.rate_limiter.take(principal.key_id)
        if wait > 0:
            raise RateLimitedError(f"key {principal.key_id} is over its rate limit of {state.rate_limiter.rate:g} "
                                   f"requests/s; retry after {math.ceil(wait)} s", retry_after=wait)
        principal.require(self.permission, request.path_params.get("deployment"))
        request.state.principal = principal
        return principal

    def __repr__(self) -> str:
        return f"Guard({self.permission.value if self.permission else 'public'})"


def requires(permission: Permission) -> Any:
    """The ``dependencies=[...]`` entry of a route that needs ``permission``."""
    return Depends(Guard(permission))


#: The ``dependencies=[...]`` entry of a route anyone may call.
PUBLIC: Any = Depends(Guard(None))


async def current_principal(request: Request) -> Principal:
    """The caller of a guarded route (its guard has run: FastAPI resolves route dependencies first)."""
    principal: Principal = request.state.principal
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def guard_of(route: APIRoute) -> Guard | None:
    """The route's guard, or ``None`` if it has none."""
    guards = [d.dependency for d in route.dependencies if isinstance(d.dependency, Guard)]
    return guards[0] if len(guards) == 1 else None


def check_guarded(app: FastAPI) -> None:
    """Refuse an app with a route that declares no guard, or more than one.

    Raises:
        ConfigError: naming the route.
    """
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue  # FastAPI's own /docs and /openapi.json: public by design (they describe, they hold no data)
        guards = [d.dependency for d in route.dependencies if isinstance(d.dependency, Guard)]
        if len(guards) != 1:
            raise ConfigError(f"route {sorted(route.methods or ())} {route.path} declares {len(guards)} guards; every "
                              "route needs exactly one: dependencies=[requires(Permission.X)] or [PUBLIC]")
