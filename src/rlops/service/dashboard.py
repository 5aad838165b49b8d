"""The monitoring dashboard: the page at ``/``, its script and style under ``/static/``, its JSON at
``/v1/dashboard``, and a deployment's global behaviour at ``/v1/deployments/{deployment}/behaviour``.

The page is hand-written HTML, CSS and JavaScript shipped in the package (``rlops/service/static``): no CDN, no
third-party code, nothing fetched from outside the server, which the page's Content-Security-Policy enforces. Its
script reads ``/v1/dashboard`` every 10 seconds and draws the charts as SVG. The numbers come from
:func:`rlops.monitoring.overview.build_overview`; this module only serves them. The behaviour panel asks for a
deployment's feature importance and partial dependence plots (:mod:`rlops.explain.behaviour`) only when the reader
presses its button; they are kept for :data:`BEHAVIOUR_TTL_S` per deployment, policy version and amount of data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from functools import cache
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response

from rlops.engine import Engine
from rlops.errors import NotFoundError, ValidationError
from rlops.explain.behaviour import explain_behaviour, live_behaviour_inputs
from rlops.monitoring.overview import Overview, build_overview
from rlops.registry import Registry
from rlops.rewards import parse_duration
from rlops.service.schemas import ErrorResponse

#: Files under ``/static/`` and their media types; nothing else is served from there.
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".svg": "image/svg+xml"}
#: Everything the page loads comes from this server; inline scripts and styles are refused too.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
#: Seconds a deployment's computed behaviour is served again without recomputing it.
BEHAVIOUR_TTL_S = 60.0


class TimedCache:
    """Values kept for ``ttl_s`` seconds by key (thread-safe; at most ``max_entries``, the oldest dropped first).

    Two requests that miss at once both compute; the later one's value is kept. Nothing here is a secret: the
    routes that use it check who may see a value before they ask for it.
    """

    def __init__(self, ttl_s: float, max_entries: int = 256, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.max_entries, self.clock = ttl_s, max_entries, clock
        self._values: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value kept under ``key`` if it is younger than ``ttl_s``, else ``compute()`` (kept)."""
        now = self.clock()
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        value = compute()
        with self._lock:
            self._values = {k: v for k, v in self._values.items() if now - v[0] < self.ttl_s}
            self._values[key] = (now, value)
            while len(self._values) > self.max_entries:
                del self._values[next(iter(self._values))]
        return value


def rows_bucket(rows: int) -> int:
    """Amounts of data that give the same cache entry: 2**(b-1) <= rows < 2**b share bucket ``b``."""
    return rows.bit_length()


@cache
def static_file(name: str) -> bytes | None:
    """The bytes of ``rlops/service/static/NAME`` (a plain file name, no folders), or ``None``."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    entry = resources.files("rlops.service").joinpath("static").joinpath(name)
    return entry.read_bytes() if entry.is_file() else None


def dashboard_overview(engine: Engine, deployment: str | None, window: str | None) -> Overview:
    """The dashboard's data for one request; ``window`` is a duration (``"90"``, ``"15m"``, ``"24h"``, ``"7d"``)."""
    window_s = None
    if window:
        try:
            window_s = parse_duration(window)
        except ValueError as e:
            raise ValidationError("window", str(e)) from e
    if deployment is not None and deployment not in engine.store.names():
        raise NotFoundError(f"deployment {deployment!r} does not exist")
    with Registry(engine.home) as registry:
        return build_overview(engine, deployment=deployment, window_s=window_s, registry=registry)


def deployment_behaviour(engine: Engine, deployment: str, cache: TimedCache) -> dict[str, Any]:
    """The behaviour panel's data: :meth:`rlops.explain.behaviour.DeploymentBehaviour.to_dict` of the production
    policy over the deployment's recent contexts, from ``cache`` when one was computed for the same policy version
    and about as large a log (:func:`rows_bucket` of the decisions stored) less than its TTL ago."""
    if deployment not in engine.store.names():
        raise NotFoundError(f"deployment {deployment!r} does not exist")
    # The key costs no log read (frame headers and Parquet footers only): a hit must not decode the whole log.
    version = next(a.policy_version for a in engine.arms(deployment) if a.name == "production")
    key = (deployment, version, rows_bucket(engine.log.stats().decisions))
    result: dict[str, Any] = cache.get(key, lambda: explain_behaviour(live_behaviour_inputs(engine, deployment))
                                       .to_dict())
    return result


def install_dashboard(app: FastAPI, *, read: Any, public: Any, behaviour: Any) -> None:
    """Add the dashboard's routes to the service app.

    Args:
        app: the service app.
        read: the guard of the dashboard's data (``requires(Permission.READ_METRICS)``).
        public: the guard of the page and its static files (they hold no data: the page asks for a key and sends
            it with every data request).
        behaviour: the guard of a deployment's behaviour (``requires(Permission.READ_PROBABILITIES)``: partial
            dependence reveals the policy's scores).
    """
    app.state.behaviour_cache = TimedCache(BEHAVIOUR_TTL_S, max_entries=64)  # a few hundred kB each

    @app.get("/", response_class=HTMLResponse, include_in_schema=False, dependencies=[public])
    def page() -> Response:
        """The dashboard page."""
        body = static_file("index.html")
        if body is None:  # pragma: no cover - a broken installation
            raise NotFoundError("the dashboard's files are not installed with this rlops")
        return Response(content=body, media_type="text/html; charset=utf-8",
                        headers={**_HEADERS, "Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False, dependencies=[public])
    def static(name: str) -> Response:
        """The page's script, style and icon."""
        suffix = name[name.rfind("."):] if "." in name else ""
        body = static_file(name) if suffix in STATIC_TYPES else None
        if body is None:
            raise NotFoundError(f"static file {name!r} does not exist")
        return Response(content=body, media_type=STATIC_TYPES[suffix],
                        headers={**_HEADERS, "Cache-Control": "public, max-age=300"})

    @app.get("/v1/dashboard", response_model=Overview, dependencies=[read],
             responses={code: {"model": ErrorResponse} for code in (401, 403, 404, 422, 429)})
    def dashboard(request: Request,
                  deployment: Annotated[str | None, Query(max_length=64, description="Only this deployment.")] = None,
                  window: Annotated[str | None, Query(max_length=16, description="Only the last DURATION of "
                                                      "decisions: seconds, or 30s, 15m, 24h, 7d.")] = None,
                  ) -> Overview:
        """Everything the dashboard shows: deployments and their arms, reward over time per version with 95%
        intervals, canary vs production, drift per feature over time, actions, alerts, validation reports and model
        cards (see docs/dashboard.md for where each number comes from)."""
        engine: Engine = request.app.state.engine
        scope = request.state.principal.scope
        if deployment and not scope.covers(deployment):
            raise NotFoundError(f"deployment {deployment!r} does not exist")  # what a scoped key may not see
        overview = dashboard_overview(engine, deployment or None, window)
        if scope.deployments is not None:
            overview = overview.visible_to(scope.covers)
        return overview

    @app.get("/v1/deployments/{deployment}/behaviour", dependencies=[behaviour],
             responses={code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 429)})
    def deployment_behaviour_route(deployment: str, request: Request) -> dict[str, Any]:
        """How the deployment's production policy behaves over its most recent served contexts of consenting units
        (up to 1,000): the features ranked by permutation importance (the share of decisions that change when one
        is shuffled) and, for the top 4, the partial dependence of each action's score with ICE curves, each chart
        as an SVG string. Kept 60 s per policy version and amount of data. 409 when the deployment has no logged
        context yet or its policy offers no score. Reveals the policy's scores: permission
        ``read_probabilities``."""
        # A key scoped to other deployments is refused by the guard first (403, whether the deployment exists or
        # not, like every /v1/deployments/{deployment} route); this keeps it unseen should the guard ever let it by.
        if not request.state.principal.scope.covers(deployment):
            raise NotFoundError(f"deployment {deployment!r} does not exist")
        return deployment_behaviour(request.app.state.engine, deployment, request.app.state.behaviour_cache)
