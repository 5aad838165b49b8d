"""Request ids, one structured access-log line per request, and request metrics (an ASGI middleware)."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from typing import Any

from rlops.monitoring import ServiceMetrics
from rlops.service.limits import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("rlops.service.access")
#: The request id of the request being handled (for log lines written while handling it).
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: What a credential looks like: an API key's secret part, or a JWT (three base64url parts, the first two JSON).
_SECRETS = re.compile(r"(rlk_[0-9a-fA-F]{12}_)[A-Za-z0-9_-]+|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")


def redact(text: str) -> str:
    """``text`` with anything shaped like a credential replaced: an API key keeps its public id, a JWT goes whole.

    Log lines pass through this, so a key a client put somewhere odd (a path, a query, a field) is not kept."""
    return _SECRETS.sub(lambda m: f"{m.group(1)}[redacted]" if m.group(1) else "[redacted token]", text)


class JSONFormatter(logging.Formatter):
    """One JSON object per log line: time, level, logger, message, request id, and any ``extra`` fields."""

    _SKIP = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                                "logger": record.name, "message": record.getMessage(),
                                "request_id": request_id_var.get()}
        line.update({k: v for k, v in record.__dict__.items() if k not in self._SKIP})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str))


class RequestContext:
    """Honour a valid incoming ``X-Request-ID`` (else make one), return it, log the request, and time it."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"  # the template, so ids do not explode labels
            self.metrics.record_request(template, scope["method"], status, seconds)
            access_log.info("request", extra={"request_id": request_id, "method": scope["method"],
                                              "path": scope["path"], "route": template, "status": status,
                                              "duration_ms": round(seconds * 1000, 3)})
            request_id_var.reset(token)


def configure_logging(level: int = logging.INFO) -> None:
    """Send the service's logs to stderr as JSON lines (called by ``rlops serve``, never at import)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter())
    service_log = logging.getLogger("rlops.service")
    service_log.handlers[:] = [handler]
    service_log.setLevel(level)
    service_log.propagate = False
