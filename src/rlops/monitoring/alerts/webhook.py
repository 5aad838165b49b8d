"""Webhook delivery: POST an alert as JSON, with timeouts and a small bounded retry, and never raise.

A delivery that fails (no connection, timeout, 5xx after every retry, any other non-2xx) comes back as a FAILED
:class:`~rlops.monitoring.alerts.store.Delivery` with the reason; the evaluator stores it on the alert, which is
already stored, so a receiver that is down loses nothing: ``rlops alerts`` shows the alert and its failed delivery.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from rlops.errors import ValidationError
from rlops.monitoring.alerts.store import AlertState, Delivery, DeliveryStatus, now_us

#: Statuses worth another attempt: the receiver may answer differently in a moment.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class WebhookSender:
    """POSTs alert payloads.

    Args:
        timeout_s: per attempt, for connecting and for the answer (default 5 s).
        attempts: POSTs at most per notification, >= 1 (default 3).
        backoff_s: wait before the second attempt, doubled before each further one (default 0.5 s).
        headers: extra request headers (e.g. an ``Authorization`` the receiver expects).

    Raises:
        ValidationError: a non-positive timeout, attempts < 1 or a negative backoff.
    """

    def __init__(self, *, timeout_s: float = 5.0, attempts: int = 3, backoff_s: float = 0.5,
                 headers: Mapping[str, str] | None = None) -> None:
        if not timeout_s > 0:
            raise ValidationError("timeout_s", f"must be > 0, got {timeout_s}")
        if attempts < 1:
            raise ValidationError("attempts", f"must be at least 1, got {attempts}")
        if not backoff_s >= 0:
            raise ValidationError("backoff_s", f"must be >= 0, got {backoff_s}")
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.headers = {"User-Agent": "rlops-alerts", **(headers or {})}

    def send(self, url: str, payload: Mapping[str, Any], state: AlertState) -> Delivery:
        """POST ``payload`` as JSON to ``url``; retry on connection errors, timeouts and 408/425/429/5xx.

        Args:
            url: the receiver.
            payload: the JSON body.
            state: which transition the payload announces (recorded on the delivery).

        Returns:
            DELIVERED on the first 2xx answer; otherwise FAILED with the last status or error. Never raises.
        """
        http_status: int | None = None
        error = "not attempted"
        made = 0
        with httpx.Client(timeout=self.timeout_s, headers=self.headers, follow_redirects=False) as client:
            for attempt in range(self.attempts):
                if attempt:
                    time.sleep(self.backoff_s * 2 ** (attempt - 1))
                made += 1
                try:
                    response = client.post(url, json=dict(payload))
                except httpx.HTTPError as e:  # connection refused, DNS, timeout, protocol error
                    http_status, error = None, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                    continue
                except ValueError as e:  # a URL httpx cannot use (the rules file checks the scheme and host)
                    return Delivery(state, DeliveryStatus.FAILED, made, now_us(), None, f"bad URL: {e}")
                http_status = response.status_code
                if 200 <= http_status < 300:
                    return Delivery(state, DeliveryStatus.DELIVERED, made, now_us(), http_status)
                body = response.text[:200].strip()
                error = f"HTTP {http_status}: {body}" if body else f"HTTP {http_status}"
                if http_status not in RETRY_STATUSES:
                    break
        return Delivery(state, DeliveryStatus.FAILED, made, now_us(), http_status, error)
