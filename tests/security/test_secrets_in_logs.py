"""Secrets never reach a file: after a session of real traffic (good keys, wrong keys, JWT-looking junk, keys in
odd places of a request), no byte of any file under the home folder (service log, databases, event log, audit
chain) holds a key's secret."""

from __future__ import annotations

from pathlib import Path

import httpx
from typer.testing import CliRunner

from rlops.cli.main import app
from rlops.engine import DeploymentSpec, Engine
from rlops.scenarios import SyntheticBandit
from rlops.service.runner import ServiceProcess
from tests.keys import bearer
from tests.service.conftest import REWARD
from tests.service.test_api import USER


def test_no_secret_is_written_anywhere(tmp_path: Path) -> None:
    home = tmp_path / "home"
    runner = CliRunner()
    made = runner.invoke(app, ["init", "--home", str(home), "--key-file", str(tmp_path / "admin.key")])
    assert made.exit_code == 0, made.output
    admin = (tmp_path / "admin.key").read_text().strip()
    created = runner.invoke(app, ["keys", "create", "--home", str(home), "--role", "decider", "--name", "app"])
    decider = next(word for word in created.output.split() if word.startswith("rlk_"))
    with Engine(home) as engine:
        engine.apply(DeploymentSpec.from_dict({"name": "news", "schema": SyntheticBandit().schema.to_dict(),
                                               "reward": REWARD, "policy": {"kind": "uniform"}}))
    wrong = admin[:-6] + "XXXXXX"  # a near miss: the one a log of failures would be most tempted to keep
    secrets = [admin, admin.split("_", 2)[2], decider, decider.split("_", 2)[2], wrong, wrong.split("_", 2)[2]]
    with ServiceProcess(home) as url, httpx.Client(base_url=url, timeout=10) as http:
        d = http.post("/v1/deployments/news/decide", json={"unit_id": "u", "context": USER}, headers=bearer(decider))
        assert d.status_code == 200
        assert http.post("/v1/outcomes", json={"decision_id": d.json()["decision_id"], "fields": {"clicked": True}},
                         headers=bearer(decider)).status_code == 200
        assert http.get("/v1/deployments", headers=bearer(wrong)).status_code == 401
        assert http.get("/v1/deployments", headers={"Authorization": wrong}).status_code == 401
        assert http.get("/v1/deployments", headers=bearer("eyJhbGciOiJub25lIn0." + wrong)).status_code == 401
        assert http.get("/metrics", headers=bearer(decider)).status_code == 403
        assert http.get(f"/v1/decisions/{admin}", headers=bearer(admin)).status_code in (404, 422)
        assert http.get("/v1/dashboard", params={"deployment": decider}, headers=bearer(admin)).status_code in (
            404, 422)
        assert http.put("/v1/admin/deployments/news", json={"policy": {"kind": wrong}},
                        headers=bearer(admin)).status_code == 422
    runner.invoke(app, ["keys", "revoke", "--home", str(home), decider.split("_")[1]])
    runner.invoke(app, ["audit", "verify", "--home", str(home)])
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "service.log" and p.stat().st_size > 0 for p in files)  # the server did log requests
    leaks = [(str(p.relative_to(home)), s[:16]) for p in files for s in secrets if s.encode() in p.read_bytes()]
    assert leaks == []


def test_redaction_keeps_the_key_id_and_drops_secrets() -> None:
    from rlops.service.observability import redact

    key = "rlk_0123456789ab_" + "A" * 43
    token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"
    assert redact(f"GET /v1/decisions/{key}?t={token}") == \
        "GET /v1/decisions/rlk_0123456789ab_[redacted]?t=[redacted token]"
    assert redact("decision 01JC9ZQ5 of news, unit user-42") == "decision 01JC9ZQ5 of news, unit user-42"
