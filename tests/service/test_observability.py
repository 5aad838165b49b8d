"""/metrics values (parsed with prometheus_client's own parser), request ids, and JSON access logs."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rlops.service.observability import JSONFormatter
from tests.service.test_api import USER


def _samples(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_what_happened(client: httpx.Client) -> None:
    actions = []
    for i in range(3):
        actions.append(client.post("/v1/deployments/news/decide", json={"unit_id": f"u{i}", "context": USER}).json())
    client.post("/v1/deployments/news/decide-batch", json={"items": [{"unit_id": "b", "context": USER}] * 2})
    client.post("/v1/outcomes", json={"outcomes": [{"decision_id": actions[0]["decision_id"], "fields": {"clicked": 1}},
                                                   {"decision_id": "nope", "fields": {"clicked": 1}}]})
    client.post("/v1/deployments/news/decide", json={"unit_id": "u", "context": {**USER, "age": 412}})
    samples = _samples(client)
    decisions = {labels: v for (name, labels), v in samples.items() if name == "rlops_decisions_total"}
    assert sum(decisions.values()) == 5
    assert all(dict(labels)["policy_version"] == "news@r1" for labels in decisions)
    assert samples[("rlops_outcomes_total", (("status", "accepted"),))] == 1
    assert samples[("rlops_outcomes_total", (("status", "dead_letter"),))] == 1
    route = "/v1/deployments/{deployment}/decide"
    assert samples[("rlops_http_requests_total", (("method", "POST"), ("route", route), ("status", "200")))] == 3
    assert samples[("rlops_http_requests_total", (("method", "POST"), ("route", route), ("status", "422")))] == 1
    assert samples[("rlops_http_request_seconds_count", (("method", "POST"), ("route", route)))] == 4
    assert samples[("rlops_decision_policy_seconds_count", (("deployment", "news"),))] == 5


def test_request_ids_are_honoured_or_made(client: httpx.Client) -> None:
    mine = client.get("/healthz", headers={"X-Request-ID": "trace-123"})
    assert mine.headers["x-request-id"] == "trace-123"
    made = client.get("/healthz").headers["x-request-id"]
    assert len(made) == 32 and int(made, 16) >= 0
    unsafe = client.get("/healthz", headers={"X-Request-ID": "x" * 500}).headers["x-request-id"]
    assert unsafe != "x" * 500 and len(unsafe) == 32  # an unusable id is replaced, not echoed
    too_big = client.post("/v1/deployments/news/decide", content=b"x" * 100_000,
                          headers={"content-type": "application/json", "X-Request-ID": "big-1"})
    assert too_big.status_code == 413 and too_big.headers["x-request-id"] == "big-1"


def test_access_log_lines_are_json_with_the_request_id(client: httpx.Client,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rlops.service.access"):
        client.post("/v1/deployments/news/decide", json={"unit_id": "u", "context": USER},
                    headers={"X-Request-ID": "req-42"})
        # The line is written after the response has gone out, on the server's thread: wait for it, briefly.
        deadline = time.monotonic() + 5
        while not (records := [r for r in caplog.records if r.name == "rlops.service.access"]):
            assert time.monotonic() < deadline, "no access-log line within 5 s"
            time.sleep(0.01)
    line = json.loads(JSONFormatter().format(records[-1]))
    assert line["request_id"] == "req-42" and line["status"] == 200
    assert line["route"] == "/v1/deployments/{deployment}/decide" and line["duration_ms"] > 0
