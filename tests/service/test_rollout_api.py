"""Rollout over the admin API on a real server: changes take effect at once, under load, with no failed request."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from rlops.engine import Engine
from tests.keys import bearer
from tests.service.test_api import USER

FOOD = {"kind": "rule", "params": {"target": "tests.rollout.rules:always_food", "epsilon": 0.1}}


def _arms(client: httpx.Client) -> list[tuple[str, str]]:
    response = client.get("/v1/deployments/news/arms")
    assert response.status_code == 200
    return [(a["role"], a["policy_version"]) for a in response.json()]


def test_canary_promote_rollback_over_http(client: httpx.Client, home: Path) -> None:
    r = client.post("/v1/admin/deployments/news/canary",
                    json={"policy": FOOD, "fraction": 0.4, "reason": "try food"})
    assert r.status_code == 200, r.text
    assert r.json()["action"] == "canary" and r.json()["actor"].startswith("key:")
    deadline = time.monotonic() + 5
    while _arms(client) != [("production", "news@r1"), ("canary", "news@r2")] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _arms(client) == [("production", "news@r1"), ("canary", "news@r2")]
    seen: dict[str, set[str]] = {}
    for i in range(200):
        d = client.post("/v1/deployments/news/decide", json={"context": USER, "unit_id": f"u{i % 40}"}).json()
        seen.setdefault(f"u{i % 40}", set()).add(d["policy_version"])
    assert all(len(v) == 1 for v in seen.values())
    assert {v for s in seen.values() for v in s} == {"news@r1", "news@r2"}
    assert client.post("/v1/admin/deployments/news/promote", json={"reason": "ok"}).status_code == 200
    assert client.post("/v1/admin/deployments/news/rollback", json={"reason": "no"}).status_code == 200
    history = client.get("/v1/deployments/news/history").json()
    assert [(h["action"], h["reason"]) for h in history] == [("canary", "try food"), ("promote", "ok"),
                                                             ("rollback", "no")]


def test_bad_rollout_requests_name_the_field_and_change_nothing(client: httpx.Client, server: str, home: Path,
                                                                tmp_path: Path) -> None:
    cases = [
        ("canary", {"policy": FOOD, "reason": "x"}, 422, "fraction"),
        ("canary", {"policy": FOOD, "fraction": 1.5, "reason": "x"}, 422, "fraction"),
        ("canary", {"policy": {"path": str(tmp_path)}, "fraction": 0.1, "reason": "x"}, 422, "policy.path"),
        ("canary", {"policy": {"version": "nope@3"}, "fraction": 0.1, "reason": "x"}, 422,
         "canary.policy.version"),
        ("canary", {"policy": {"kind": "linucb", "path": "/x"}, "fraction": 0.1, "reason": "x"}, 422, "policy"),
        ("canary", {"fraction": 0.1, "reason": "x"}, 422, "policy"),
        ("promote", {"reason": "nothing to promote"}, 409, None),
        ("promote", {}, 422, "reason"),
        ("explode", {"reason": "x"}, 404, None),
    ]
    for action, body, status, field in cases:
        r = client.post(f"/v1/admin/deployments/news/{action}", json=body)
        assert r.status_code == status, (action, body, r.text)
        if field is not None:
            assert r.json()["error"]["field"] == field, (body, r.json())
    assert httpx.post(f"{server}/v1/admin/deployments/news/canary", json={"policy": FOOD, "fraction": 0.1,
                                                                         "reason": "no key"}).status_code == 401
    assert client.post("/v1/admin/deployments/ghost/promote", json={"reason": "x"}).status_code == 404
    with Engine(home) as engine:
        assert engine.store.latest("news").revision == 1
        assert engine.store.changes("news") == []


def test_rollback_under_load_fails_no_request(client: httpx.Client, server: str, admin_key: str) -> None:
    failures: list[str] = []
    versions: Counter[str] = Counter()
    stop = threading.Event()

    def hammer(worker: int) -> None:
        with httpx.Client(base_url=server, timeout=10, headers=bearer(admin_key)) as c:
            i = 0
            while not stop.is_set():
                r = c.post("/v1/deployments/news/decide", json={"context": USER, "unit_id": f"w{worker}-{i % 50}"})
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    versions[r.json()["policy_version"]] += 1
                i += 1

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        for step in range(3):
            time.sleep(0.4)
            r = client.post("/v1/admin/deployments/news/canary",
                            json={"policy": FOOD, "fraction": 0.5, "reason": f"round {step}"})
            assert r.status_code == 200, r.text
            time.sleep(1.5)  # servers pick a new revision up within a second
            r = client.post("/v1/admin/deployments/news/rollback", json={"reason": "under load"})
            assert r.status_code == 200, r.text
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert versions["news@r1"] > 100 and versions["news@r2"] > 20  # the canary did serve, then left
    r = client.post("/v1/deployments/news/decide", json={"context": USER, "unit_id": "after"})
    assert r.json()["policy_version"] == "news@r1"


def test_shadow_over_http_is_logged_counted_and_never_returned(client: httpx.Client, home: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    r = client.post("/v1/admin/deployments/news/shadow",
                    json={"policy": FOOD, "name": "challenger", "reason": "compare"})
    assert r.status_code == 200, r.text
    time.sleep(1.2)
    ids = set()
    for i in range(30):
        d = client.post("/v1/deployments/news/decide", json={"context": USER, "unit_id": f"s{i}"}).json()
        assert d["policy_version"] == "news@r1"
        ids.add(d["decision_id"])
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    by_mode = Counter()
    for sample in families["rlops_decisions"].samples:
        if sample.name == "rlops_decisions_total":
            by_mode[(sample.labels["mode"], sample.labels["policy_version"])] += sample.value
    assert by_mode[("shadow", "news@r2")] == 30 and by_mode[("served", "news@r1")] == 30
    with Engine(home) as engine:
        shadow = [row for row in engine.log.read_decisions().to_pylist() if row["mode"] == "shadow"]
    assert len(shadow) == 30 and not ids & {row["decision_id"] for row in shadow}
    assert {row["action"] for row in shadow} <= {"food", "news", "sports", "tech", "travel"}


def test_more_bad_rollout_requests_are_422s_naming_the_field(client: httpx.Client, home: Path) -> None:
    client.post("/v1/admin/deployments/news/holdout",
                json={"policy": {"kind": "uniform"}, "fraction": 0.5, "reason": "baseline"})
    cases = [
        ("shadow", {"policy": FOOD, "name": "Bad Name", "reason": "x"}, "shadows.0.name"),
        ("shadow", {"policy": {"kind": "nope"}, "reason": "x"}, "shadows[0].policy.kind"),
        ("canary", {"policy": {"kind": "nope"}, "fraction": 0.1, "reason": "x"}, "canary.policy.kind"),
        ("canary", {"policy": FOOD, "fraction": 0.6, "reason": "x"}, "canary.fraction"),
        ("canary", {"policy": {"kind": "linucb", "params": {"epsilon": 5}}, "fraction": 0.1, "reason": "x"},
         "canary.policy.params"),
    ]
    for action, body, field in cases:
        r = client.post(f"/v1/admin/deployments/news/{action}", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["field"] == field, (body, r.json())
    with Engine(home) as engine:
        assert engine.store.latest("news").revision == 2  # only the holdout
