"""The monitoring dashboard: the page at ``/``, its script and style under ``/static/``, and its JSON at
``/v1/dashboard``.

The page is hand-written HTML, CSS and JavaScript shipped in the package (``rlops/service/static``): no CDN, no
third-party code, nothing fetched from outside the server, which the page's Content-Security-Policy enforces. Its
script reads ``/v1/dashboard`` every 10 seconds and draws the charts as SVG. The numbers come from
:func:`rlops.monitoring.overview.build_overview`; this module only serves them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response

from rlops.engine import Engine
from rlops.errors import NotFoundError, ValidationError
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


def install_dashboard(app: FastAPI, *, read: Any, public: Any) -> None:
    """Add the dashboard's routes to the service app.

    Args:
        app: the service app.
        read: the guard of the dashboard's data (``requires(Permission.READ_METRICS)``).
        public: the guard of the page and its static files (they hold no data: the page asks for a key and sends
            it with every data request).
    """

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
