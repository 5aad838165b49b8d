"""The HTTP API on a real socket: answers, errors that name the field, and nothing stored by bad requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from rlops.engine import Engine
from rlops.service import ServiceSettings
from rlops.service.runner import BackgroundServer
from tests.keys import bearer

USER = {"age": 30, "device": "mobile", "returning": True, "activity": 0.5, "taste": [0.1, 0.2, 0.3, 0.4]}


def stored(home: Path) -> tuple[int, int]:
    with Engine(home) as engine:
        return engine.log.read_decisions().num_rows, engine.log.read_outcomes().num_rows


def test_decide_report_and_read_back(client: httpx.Client, home: Path) -> None:
    r = client.post("/v1/deployments/news/decide", json={"unit_id": "u1", "context": USER})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["policy_version"] == "news@r1" and d["action"] in d["probabilities"]
    assert d["propensity"] == pytest.approx(d["probabilities"][d["action"]])
    logged = client.get(f"/v1/decisions/{d['decision_id']}").json()  # durably logged before the answer
    assert logged["action"] == d["action"] and logged["context"]["device"] == "mobile"
    assert logged["unit_id"] == "u1" and logged["propensity"] == d["propensity"]
    out = client.post("/v1/outcomes", json={"decision_id": d["decision_id"], "fields": {"clicked": True}}).json()
    assert (out["accepted"], out["duplicates"], out["dead_lettered"]) == (1, 0, 0)
    again = client.post("/v1/outcomes", json={"outcomes": [
        {"decision_id": d["decision_id"], "fields": {"clicked": True}},
        {"decision_id": "nope", "fields": {"clicked": True}}]}).json()
    assert (again["accepted"], again["duplicates"], again["dead_lettered"]) == (0, 1, 1)
    assert again["results"][1]["reason"] == "unknown decision"
    assert stored(home) == (1, 2)


def test_decide_batch(client: httpx.Client) -> None:
    r = client.post("/v1/deployments/news/decide-batch",
                    json={"items": [{"unit_id": f"u{i}", "context": USER} for i in range(5)]})
    assert r.status_code == 200 and len(r.json()["decisions"]) == 5
    too_many = client.post("/v1/deployments/news/decide-batch",
                           json={"items": [{"unit_id": "u", "context": USER}] * 51})
    assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "items"


def test_deployments_and_health(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "deployments": 1}
    listed = client.get("/v1/deployments").json()
    assert [d["name"] for d in listed] == ["news"] and listed[0]["actions"][0] == "news"
    assert client.get("/v1/deployments/news").json()["reward_spec"] == "click@1"
    spec = client.get("/openapi.json").json()
    assert "/v1/deployments/{deployment}/decide" in spec["paths"]


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/v1/deployments/news/decide", {"unit_id": "u", "context": {**USER, "age": 412}}, 422, "context.age"),
        ("/v1/deployments/news/decide", {"unit_id": "u", "context": {**USER, "shoe": 1}}, 422, "context.shoe"),
        ("/v1/deployments/news/decide", {"unit_id": "u", "context": {**USER, "age": "old"}}, 422, "context.age"),
        ("/v1/deployments/news/decide", {"unit_id": "", "context": USER}, 422, "unit_id"),
        ("/v1/deployments/news/decide", {"unit_id": "u"}, 422, "context"),
        ("/v1/deployments/news/decide", {"unit_id": "u", "context": USER, "extra": 1}, 422, "extra"),
        ("/v1/deployments/news/decide", [1, 2], 422, "body"),
        ("/v1/deployments/nope/decide", {"unit_id": "u", "context": USER}, 404, None),
        ("/v1/outcomes", {"decision_id": "d", "fields": {"clicked": "x" * 2000}}, 422, "outcome.fields.clicked"),
        ("/v1/outcomes", {"decision_id": "d", "fields": {"clicked": 1e400}}, 422, None),
        ("/v1/outcomes", {"decision_id": "d"}, 422, None),
        ("/v1/outcomes", {"outcomes": []}, 422, None),
    ],
)
def test_bad_requests_name_the_field_and_store_nothing(client: httpx.Client, home: Path, path: str, body: Any,
                                                       status: int, field: str | None) -> None:
    r = client.post(path, json=body) if not (isinstance(body, dict) and 1e400 in body.get("fields", {}).values()) \
        else client.post(path, content=b'{"decision_id": "d", "fields": {"clicked": 1e400}}',
                         headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"] and error["rule"]
    if field is not None:
        assert error["field"] == field
    assert stored(home) == (0, 0)


def test_malformed_json_and_unknown_decision(client: httpx.Client) -> None:
    r = client.post("/v1/deployments/news/decide", content=b'{"unit_id": ', headers={"content-type":
                                                                                      "application/json"})
    assert r.status_code == 422 and r.json()["error"]["message"]
    missing = client.get("/v1/decisions/01NOPE")
    assert missing.status_code == 404 and "does not exist" in missing.json()["error"]["message"]


def test_oversized_bodies_are_413(client: httpx.Client, home: Path) -> None:
    big = {"unit_id": "u", "context": {**USER, "device": "x" * 70_000}}
    assert client.post("/v1/deployments/news/decide", json=big).status_code == 413

    def chunks() -> Any:  # no Content-Length: the limit must hold for streamed bodies too
        yield b'{"unit_id": "u", "context": {"device": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}}'

    streamed = client.post("/v1/deployments/news/decide", content=chunks(),
                           headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert stored(home) == (0, 0)


def test_broken_policy_files_are_503_not_a_client_error(home: Path, admin_key: str) -> None:
    state = next((home / "deployments").rglob("state.npz"))
    state.write_bytes(b"corrupted on disk")  # before the server starts: it cannot load the policy
    with (BackgroundServer(ServiceSettings(home=home, port=0)) as url,
          httpx.Client(base_url=url, timeout=10, headers=bearer(admin_key)) as client):
        r = client.post("/v1/deployments/news/decide", json={"unit_id": "u", "context": USER})
        assert r.status_code == 503 and "does not match its hash" in r.json()["error"]["message"]
        assert client.get("/readyz").status_code == 503


def test_a_running_server_keeps_serving_what_it_loaded(client: httpx.Client, home: Path) -> None:
    """Policies load at start-up; files damaged afterwards do not take a running server down."""
    next((home / "deployments").rglob("state.npz")).write_bytes(b"corrupted on disk")
    r = client.post("/v1/deployments/news/decide", json={"unit_id": "u", "context": USER})
    assert r.status_code == 200 and r.json()["policy_version"] == "news@r1"
