"""Erasure over HTTP while the server runs: the unit is gone from every file under the home, others stay."""

from __future__ import annotations

from pathlib import Path

import httpx

from rlops.engine import Engine
from tests.keys import bearer, make_key
from tests.service.test_api import USER


def test_erase_a_unit_through_the_running_server(client: httpx.Client, server: str, home: Path) -> None:
    for i in range(6):
        for unit in ("patient-7", f"other-{i}"):
            d = client.post("/v1/deployments/news/decide", json={"unit_id": unit, "context": USER}).json()
            assert client.post("/v1/outcomes", json={"decision_id": d["decision_id"],
                                                     "fields": {"clicked": True}}).status_code == 200
    refused = httpx.post(f"{server}/v1/admin/erase", json={"unit_id": "patient-7"},
                         headers=bearer(make_key(home, "deployer")), timeout=30)
    assert refused.status_code == 403
    r = client.post("/v1/admin/erase", json={"unit_id": "patient-7"}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] and body["decisions"] == 6 and body["outcomes"] == 6
    assert body["unit_ref"].startswith("unit:") and "patient" not in body["unit_ref"]
    leaks = [p for p in home.rglob("*") if p.is_file() and b"patient-7" in p.read_bytes()]
    assert leaks == []
    with Engine(home) as engine:
        units = engine.log.read_decisions()["unit_id"].to_pylist()
        assert sorted(units) == sorted(f"other-{i}" for i in range(6)) and engine.log.read_outcomes().num_rows == 6
    entries = client.get("/v1/audit/entries").json()
    assert entries[-1]["action"] == "erasure" and entries[-1]["target"] == body["unit_ref"]
    assert client.post("/v1/admin/erase", json={"unit_id": ""}).status_code == 422
