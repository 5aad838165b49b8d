"""Explanations over HTTP and on the command line: the attributions of a logged decision add up, and only roles
that may see the policy's scores get them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from rlops.cli.main import app
from rlops.errors import NotFoundError
from tests.keys import bearer, make_key
from tests.service.test_api import USER


def test_explanation_route(client: httpx.Client, server: str, home: Path) -> None:
    d = client.post("/v1/deployments/news/decide", json={"unit_id": "u", "context": USER}).json()
    analyst = bearer(make_key(home, "analyst"))
    r = httpx.get(f"{server}/v1/decisions/{d['decision_id']}/explanation", headers=analyst, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["policy_version"] == d["policy_version"] and body["action"] == d["action"] and body["complete"]
    chosen = body["chosen"]
    assert sum(chosen["features"].values()) == pytest.approx(chosen["value"] - chosen["baseline_value"], abs=1e-9)
    assert set(chosen["features"]) == {"age", "device", "returning", "activity", "taste"}
    decider = bearer(make_key(home, "decider"))
    assert httpx.get(f"{server}/v1/decisions/{d['decision_id']}/explanation", headers=decider).status_code == 403
    elsewhere = bearer(make_key(home, "analyst", ["deployment:other"]))
    assert httpx.get(f"{server}/v1/decisions/{d['decision_id']}/explanation", headers=elsewhere).status_code == 404
    bad = httpx.get(f"{server}/v1/decisions/{d['decision_id']}/explanation", params={"method": "magic"},
                    headers=analyst)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "query.method"
    assert httpx.get(f"{server}/v1/decisions/nope/explanation", headers=analyst).status_code == 404


def test_explain_command(client: httpx.Client, home: Path, tmp_path: Path) -> None:
    d = client.post("/v1/deployments/news/decide", json={"unit_id": "u", "context": USER}).json()
    runner = CliRunner()
    shown = runner.invoke(app, ["explain", d["decision_id"], "--home", str(home)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert f"action {d['action']}" in shown.output and "the attributions sum to" in shown.output
    as_json = runner.invoke(app, ["explain", d["decision_id"], "--json", "--home", str(home)])
    assert as_json.exit_code == 0 and '"complete": true' in as_json.output
    bad = runner.invoke(app, ["explain", d["decision_id"], "--method", "magic", "--home", str(home)])
    assert bad.exit_code == 2 and "--method" in bad.output
    missing = runner.invoke(app, ["explain", "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "--home", str(home)])
    assert isinstance(missing.exception, NotFoundError)  # `rlops` prints it as one line and exits 1
    (tmp_path / "base.json").write_text("[1, 2]")
    wrong = runner.invoke(app, ["explain", d["decision_id"], "--baseline", str(tmp_path / "base.json"),
                                "--home", str(home)])
    assert wrong.exit_code == 2 and "--baseline" in wrong.output
