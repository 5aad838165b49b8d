"""Validation gates over HTTP: a registered version that failed them meets live traffic only through an override,
which needs the override_gate permission and lands in the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from rlops.home import Home
from rlops.policies import LinUCB, save_policy
from rlops.registry import Registry
from rlops.scenarios import SyntheticBandit
from tests.keys import bearer, make_key
from tests.service.conftest import REWARD

FAILED = {"status": "fail", "gates": [{"gate": {"name": "DR lower bound beats the logging policy"}, "status": "fail",
                                       "reason": "the lower bound is below"}]}


def _register_failing(home: Path, tmp_path: Path) -> str:
    folder = save_policy(LinUCB(SyntheticBandit().schema, alpha=0.7), tmp_path / "candidate")
    report = tmp_path / "report.json"
    report.write_text(json.dumps(FAILED))
    with Registry(Home.resolve(home)) as registry:
        version = registry.register("news-model", folder, report=report, actor="tests")
    return f"news-model@{version.version}"


def test_a_failed_version_needs_an_override(client: httpx.Client, server: str, home: Path, tmp_path: Path) -> None:
    ref = _register_failing(home, tmp_path)
    body = {"policy": {"version": ref}, "fraction": 0.2, "reason": "try it"}
    refused = client.post("/v1/admin/deployments/news/canary", json=body)
    assert refused.status_code == 409 and "failed validation gates" in refused.json()["error"]["message"]
    deployer = bearer(make_key(home, "deployer"))
    forbidden = httpx.post(f"{server}/v1/admin/deployments/news/canary", headers=deployer,
                           json={**body, "override_gates": True})
    assert forbidden.status_code == 403 and "override_gate" in forbidden.json()["error"]["message"]
    spec = {"schema": SyntheticBandit().schema.to_dict(), "reward": REWARD, "policy": {"version": ref}}
    assert httpx.put(f"{server}/v1/admin/deployments/news", json=spec, headers=deployer).status_code == 409
    assert client.get("/v1/deployments/news").json()["revision"] == 1  # nothing changed
    done = client.post("/v1/admin/deployments/news/canary", json={**body, "override_gates": True})
    assert done.status_code == 200, done.text
    overrides = [e for e in client.get("/v1/audit/entries").json() if e["action"] == "gate_override"]
    assert overrides and overrides[-1]["target"] == ref and overrides[-1]["actor"].startswith("key:")
    assert overrides[-1]["details"]["gates"] == ["DR lower bound beats the logging policy"]
