"""The admin endpoint: a hot swap over HTTP, only with a key allowed to deploy, and bad specs change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from rlops.engine import Engine
from rlops.policies import LinUCB, save_policy
from rlops.scenarios import SyntheticBandit
from tests.keys import make_key
from tests.service.conftest import REWARD
from tests.service.test_api import USER


def _spec(**policy: Any) -> dict[str, Any]:
    return {"schema": SyntheticBandit().schema.to_dict(), "reward": REWARD,
            "policy": policy or {"kind": "linucb", "params": {"alpha": 0.9, "epsilon": 0.1}}}


def _revisions(home: Path) -> int:
    with Engine(home) as engine:
        return engine.store.latest("news").revision


def test_apply_over_http_makes_a_revision_that_serves_at_once(client: httpx.Client, home: Path) -> None:
    r = client.put("/v1/admin/deployments/news", json=_spec())
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "news", "revision": 2, "created": True, "policy_version": "news@r2"}
    again = client.put("/v1/admin/deployments/news", json=_spec())
    assert again.json()["created"] is False and again.json()["revision"] == 2  # idempotent
    decided = client.post("/v1/deployments/news/decide", json={"unit_id": "u", "context": USER}).json()
    assert decided["policy_version"] == "news@r2"
    made = client.put("/v1/admin/deployments/fresh", json=_spec(kind="uniform"))
    assert made.status_code == 200 and made.json()["policy_version"] == "fresh@r1"


@pytest.mark.parametrize("form", ["none", "wrong", "no scheme", "basic", "revoked"])
def test_without_a_valid_key_nothing_changes(server: str, home: Path, admin_key: str, form: str) -> None:
    other = make_key(home)
    if form == "revoked":
        from rlops.home import Home
        from rlops.security import KeyStore

        with KeyStore.for_home(Home.resolve(home)) as keys:
            keys.revoke(other.split("_")[1])
    headers = {"none": {}, "wrong": {"Authorization": f"Bearer {admin_key[:-4]}AAAA"},
               "no scheme": {"Authorization": admin_key}, "basic": {"Authorization": f"Basic {admin_key}"},
               "revoked": {"Authorization": f"Bearer {other}"}}[form]
    r = httpx.put(f"{server}/v1/admin/deployments/news", json=_spec(), headers=headers, timeout=10)
    assert r.status_code == 401 and r.json()["error"]["field"] is None
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert _revisions(home) == 1


def test_bad_specs_name_the_field_and_change_nothing(client: httpx.Client, home: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    save_policy(LinUCB(SyntheticBandit().schema), outside)
    cases = [
        ({**_spec(), "name": "other"}, "name"),
        (_spec(kind="nope"), "policy.kind"),
        (_spec(kind="linucb", params={"alpha": "high"}), "policy.params"),
        ({**_spec(), "surprise": 1}, "surprise"),
        ({k: v for k, v in _spec().items() if k != "reward"}, "reward"),
        (_spec(path=str(outside)), "policy.path"),
        (_spec(path="relative/folder"), "policy.path"),
        (_spec(path=str(home / "deployments" / "missing")), "policy.path"),
        (_spec(path=str(home / "a\u0000b")), "policy.path"),
        (_spec(path=str(home / ("a" * 5000))), "policy.path"),
        (_spec(kind="linucb", params={"alpha": -1.0}), "policy.params"),
    ]
    for body, field in cases:
        r = client.put("/v1/admin/deployments/news", json=body)
        assert r.status_code == 422, (field, r.status_code, r.text)
        assert r.json()["error"]["field"] == field, (field, r.json())
    assert _revisions(home) == 1


def test_a_saved_policy_inside_the_home_can_be_deployed(client: httpx.Client, home: Path) -> None:
    folder = home / "uploads" / "linucb"
    save_policy(LinUCB(SyntheticBandit().schema, alpha=0.3), folder)
    r = client.put("/v1/admin/deployments/news", json=_spec(path=str(folder)))
    assert r.status_code == 200 and r.json()["revision"] == 2, r.text
