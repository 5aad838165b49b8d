"""``rlops.Client``: the Python client of the HTTP decision service, sharing the service's request schemas.

Example:
    >>> with Client("http://127.0.0.1:8000", api_key="rlk_...") as client:   # doctest: +SKIP
    ...     d = client.decide("news", {"age": 34, ...}, unit_id="user-42")
    ...     client.report(d.decision_id, {"clicked": True})
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from rlops.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    RlopsError,
    StorageError,
    UnauthorizedError,
    ValidationError,
)
from rlops.service.schemas import (
    DecideBatchRequest,
    DecideBatchResponse,
    DecideRequest,
    DecideResponse,
    OutcomeIn,
    OutcomesRequest,
    OutcomesResponse,
)


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        field, rule, message = error.get("field"), error.get("rule", ""), error.get("message", "")
    except (ValueError, KeyError, TypeError):
        field, rule, message = None, response.text[:200], f"HTTP {response.status_code}: {response.text[:200]}"
    if response.status_code == 422:
        raise ValidationError(field or "", rule)
    if response.status_code == 404:
        raise NotFoundError(message)
    if response.status_code == 409:
        raise ConflictError(message)
    if response.status_code == 401:
        raise UnauthorizedError(message)
    if response.status_code == 403:
        raise ForbiddenError(message)
    if response.status_code == 429:
        raise RateLimitedError(message, retry_after=float(response.headers.get("retry-after", "1") or 1))
    if response.status_code == 503:
        raise StorageError(message)
    raise RlopsError(f"HTTP {response.status_code}: {message}")


class Client:
    """A keep-alive HTTP client of ``rlops serve``; errors come back as the same rlops exceptions.

    Args:
        url: the service's base URL, e.g. ``http://127.0.0.1:8000`` or ``https://...``.
        api_key: the API key (or JWT) to send as ``Authorization: Bearer ...``; default ``$RLOPS_API_KEY``.
        timeout: seconds per request, default 10.
        ca_file: a PEM file of certificates to trust for HTTPS (a private CA or a self-signed server certificate);
            default the system's trust store.
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 10.0,
                 ca_file: str | Path | None = None) -> None:
        key = api_key if api_key is not None else os.environ.get("RLOPS_API_KEY")
        headers = {"authorization": f"Bearer {key}"} if key else {}
        verify: Any = True
        if ca_file is not None:
            import ssl

            verify = ssl.create_default_context(cafile=str(ca_file))
        self._http = httpx.Client(base_url=url, timeout=timeout, headers=headers, verify=verify)

    def _post(self, path: str, body: Any) -> httpx.Response:
        response = self._http.post(path, content=body.model_dump_json(exclude_none=True),
                                   headers={"content-type": "application/json"})
        _raise_for(response)
        return response

    def decide(self, deployment: str, context: Mapping[str, Any], unit_id: str,
               actions: Sequence[Mapping[str, Any]] | None = None) -> DecideResponse:
        """One decision (logged by the service before it answers)."""
        body = DecideRequest(unit_id=unit_id, context=dict(context),
                             actions=None if actions is None else [dict(a) for a in actions])
        return DecideResponse.model_validate_json(self._post(f"/v1/deployments/{deployment}/decide", body).content)

    def decide_batch(self, deployment: str, contexts: Sequence[Mapping[str, Any]],
                     unit_ids: Sequence[str]) -> list[DecideResponse]:
        """Several decisions in one call."""
        body = DecideBatchRequest(items=[DecideRequest(unit_id=u, context=dict(c))
                                         for c, u in zip(contexts, unit_ids, strict=True)])
        response = self._post(f"/v1/deployments/{deployment}/decide-batch", body)
        return DecideBatchResponse.model_validate_json(response.content).decisions

    def report(self, decision_id: str, fields: Mapping[str, Any],
               idempotency_key: str | None = None) -> OutcomesResponse:
        """Report one outcome; the answer says whether it was accepted, a duplicate, or dead-lettered."""
        return self.report_batch([OutcomeIn(decision_id=decision_id, fields=dict(fields),
                                            idempotency_key=idempotency_key)])

    def report_batch(self, outcomes: Sequence[OutcomeIn]) -> OutcomesResponse:
        return OutcomesResponse.model_validate_json(self._post("/v1/outcomes",
                                                               OutcomesRequest(outcomes=list(outcomes))).content)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
