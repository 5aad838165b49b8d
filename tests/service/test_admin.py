"""The admin endpoint: a hot swap over HTTP, only with the server's token, and bad specs change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from rlops.engine import Engine
from rlops.policies import LinUCB, save_policy
from rlops.scenarios import SyntheticBandit
from rlops.service import ServiceSettings
from rlops.service.runner import BackgroundServer
from tests.service.conftest import ADMIN_TOKEN, REWARD
from tests.service.test_api import USER

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _spec(**policy: Any) -> dict[str, Any]:
    return {"schema": SyntheticBandit().schema.to_dict(), "reward": REWARD,
            "policy": policy or {"kind": "linucb", "params": {"alpha": 0.9, "epsilon": 0.1}}}


def _revisions(home: Path) -> int:
    with Engine(home) as engine:
        return engine.store.latest("news").revision


def test_apply_over_http_makes_a_revision_that_serves_at_once(client: httpx.Client, home: Path) -> None:
    r = client.put("/v1/admin/deployments/news", json=_spec(), headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "news", "revision": 2, "created": True, "policy_version": "news@r2"}
    again = client.put("/v1/admin/deployments/news", json=_spec(), headers=AUTH)
    assert again.json()["created"] is False and again.json()["revision"] == 2  # idempotent
    decided = client.post("/v1/deployments/news/decide", json={"unit_id": "u", "context": USER}).json()
    assert decided["policy_version"] == "news@r2"
    made = client.put("/v1/admin/deployments/fresh", json=_spec(kind="uniform"), headers=AUTH)
    assert made.status_code == 200 and made.json()["policy_version"] == "fresh@r1"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-0123456789"},
                                     {"Authorization": ADMIN_TOKEN}, {"Authorization": f"Basic {ADMIN_TOKEN}"}])
def test_without_the_token_nothing_changes(client: httpx.Client, home: Path, headers: dict[str, str]) -> None:
    r = client.put("/v1/admin/deployments/news", json=_spec(), headers=headers)
    assert r.status_code == 401 and r.json()["error"]["field"] is None
    assert "Bearer" in r.json()["error"]["message"]
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
        r = client.put("/v1/admin/deployments/news", json=body, headers=AUTH)
        assert r.status_code == 422, (field, r.status_code, r.text)
        assert r.json()["error"]["field"] == field, (field, r.json())
    assert _revisions(home) == 1


def test_a_saved_policy_inside_the_home_can_be_deployed(client: httpx.Client, home: Path) -> None:
    folder = home / "uploads" / "linucb"
    save_policy(LinUCB(SyntheticBandit().schema, alpha=0.3), folder)
    r = client.put("/v1/admin/deployments/news", json=_spec(path=str(folder)), headers=AUTH)
    assert r.status_code == 200 and r.json()["revision"] == 2, r.text


def test_admin_is_disabled_without_a_configured_token(home: Path) -> None:
    with BackgroundServer(ServiceSettings(home=home, port=0)) as url:
        r = httpx.put(f"{url}/v1/admin/deployments/news", json=_spec(), headers=AUTH)
    assert r.status_code == 403 and "RLOPS_ADMIN_TOKEN" in r.json()["error"]["message"]
    assert _revisions(home) == 1


def test_short_tokens_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="admin_token"):
        ServiceSettings(home=Path("."), admin_token="short")  # type: ignore[arg-type]
