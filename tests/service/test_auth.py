"""Who may call what, on a real server: the route x role matrix built from the app's own route table, scopes, JWTs,
rate limits, revocation, and what a decider may see of a decision."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.routing import APIRoute

from rlops.engine import Engine
from rlops.errors import ConfigError
from rlops.home import Home
from rlops.scenarios import SyntheticBandit
from rlops.security import ROLE_PERMISSIONS, KeyStore, Permission, Role
from rlops.service import ServiceSettings
from rlops.service.app import create_app
from rlops.service.auth import PUBLIC, TokenBucket, check_guarded, guard_of
from rlops.service.runner import BackgroundServer
from tests.keys import bearer, make_key
from tests.service.conftest import REWARD
from tests.service.test_api import USER

#: A value for each path parameter of the app's routes (a route with another parameter fails the matrix test).
PATH_VALUES = {"deployment": "news", "action": "promote", "name": "dashboard.js", "version": "1"}


def _routes(settings: ServiceSettings) -> list[tuple[str, str, Permission | None]]:
    """(method, path template, permission) of every route the app declares."""
    out = []
    for route in create_app(settings).routes:
        if isinstance(route, APIRoute):
            guard = guard_of(route)
            assert guard is not None, route.path
            out.extend((method, route.path, guard.permission) for method in sorted(route.methods))
    return out


@pytest.fixture
def decision_id(home: Path) -> str:
    with Engine(home) as engine:
        return engine.decide("news", USER, "u-matrix").decision_id


def _call(url: str, method: str, template: str, decision_id: str, headers: dict[str, str]) -> httpx.Response:
    path = template.format(**PATH_VALUES, decision_id=decision_id)
    body: dict[str, Any] | None = {} if method in ("POST", "PUT") else None  # valid JSON, so the guard answers first
    return httpx.request(method, url + path, json=body, headers=headers, timeout=30)


def test_every_route_by_every_role(home: Path, decision_id: str) -> None:
    """401 without a key on every protected route, 403 for every role without the route's permission, and through
    the guard (any other answer) for every role with it; public routes answer anyone."""
    settings = ServiceSettings(home=home, port=0, rate_limit=0)
    routes = _routes(settings)
    assert len(routes) >= 15 and sum(p is None for _, _, p in routes) == 4  # healthz, readyz, the page, static
    keys = {role: make_key(home, role) for role in Role}
    problems = []
    with BackgroundServer(settings) as url:
        for method, template, permission in routes:
            anonymous = _call(url, method, template, decision_id, {})
            if permission is None:
                if anonymous.status_code in (401, 403):
                    problems.append(f"public {method} {template}: {anonymous.status_code}")
                continue
            if anonymous.status_code != 401:
                problems.append(f"{method} {template} without a key: {anonymous.status_code}")
            for role, key in keys.items():
                status = _call(url, method, template, decision_id, bearer(key)).status_code
                allowed = permission in ROLE_PERMISSIONS[role]
                if (allowed and status in (401, 403)) or (not allowed and status != 403):
                    problems.append(f"{method} {template} as {role.value} (needs {permission.value}): {status}")
    assert problems == []
    with Engine(home) as engine:  # nothing the matrix sent changed anything
        assert engine.store.latest("news").revision == 1 and engine.log.read_decisions().num_rows == 1


def test_a_route_without_a_guard_fails_the_build(home: Path) -> None:
    app = create_app(ServiceSettings(home=home, port=0))
    check_guarded(app)

    @app.get("/v1/forgotten")
    def forgotten() -> dict[str, str]:
        return {}

    with pytest.raises(ConfigError, match="/v1/forgotten"):
        check_guarded(app)

    @app.get("/v1/twice", dependencies=[PUBLIC, PUBLIC])
    def twice() -> dict[str, str]:
        return {}

    app.router.routes = [r for r in app.router.routes if getattr(r, "path", "") != "/v1/forgotten"]
    with pytest.raises(ConfigError, match="/v1/twice"):
        check_guarded(app)


@pytest.fixture
def url(home: Path) -> Iterator[str]:
    with Engine(home) as engine:
        engine.apply(engine.spec("news").model_copy(update={"name": "other"}))
    with BackgroundServer(ServiceSettings(home=home, port=0)) as address:
        yield address


def test_scopes_narrow_a_role(url: str, home: Path) -> None:
    news_only = bearer(make_key(home, "decider", ["deployment:news"]))
    decide = {"unit_id": "u", "context": USER}
    assert httpx.post(f"{url}/v1/deployments/news/decide", json=decide, headers=news_only).status_code == 200
    refused = httpx.post(f"{url}/v1/deployments/other/decide", json=decide, headers=news_only)
    assert refused.status_code == 403 and "restricted to deployments news" in refused.json()["error"]["message"]
    # An outcome for a decision of a deployment outside the scope is refused whole, before anything is stored.
    admin = bearer(make_key(home))
    other = httpx.post(f"{url}/v1/deployments/other/decide", json=decide, headers=admin).json()["decision_id"]
    mine = httpx.post(f"{url}/v1/deployments/news/decide", json=decide, headers=news_only).json()["decision_id"]
    batch = {"outcomes": [{"decision_id": mine, "fields": {"clicked": True}},
                          {"decision_id": other, "fields": {"clicked": True}}]}
    assert httpx.post(f"{url}/v1/outcomes", json=batch, headers=news_only).status_code == 403
    with Engine(home) as engine:
        assert engine.log.read_outcomes().num_rows == 0
    # read-only: reads pass, every write is refused.
    viewer_ro = bearer(make_key(home, "analyst", ["read-only"]))
    assert httpx.get(f"{url}/v1/deployments", headers=viewer_ro).status_code == 200
    # A deployment-scoped reader sees only its deployments.
    analyst_news = bearer(make_key(home, "analyst", ["deployment:news"]))
    listed = httpx.get(f"{url}/v1/deployments", headers=analyst_news).json()
    assert [d["name"] for d in listed] == ["news"]
    assert httpx.get(f"{url}/v1/decisions/{other}", headers=analyst_news).status_code == 404
    assert httpx.get(f"{url}/v1/decisions/{mine}", headers=analyst_news).status_code == 200
    # /metrics covers every deployment: a key restricted to some may not read it
    assert httpx.get(f"{url}/metrics", headers=bearer(make_key(home, "viewer", ["deployment:news"]))).status_code \
        == 403
    assert httpx.get(f"{url}/metrics", headers=bearer(make_key(home, "viewer"))).status_code == 200


def test_own_outcomes_only(url: str, home: Path) -> None:
    a = bearer(make_key(home, "decider", ["own-outcomes"]))
    b = bearer(make_key(home, "decider", ["own-outcomes"]))
    decide = {"unit_id": "u", "context": USER}
    made_by_a = httpx.post(f"{url}/v1/deployments/news/decide", json=decide, headers=a).json()["decision_id"]
    outcome = {"decision_id": made_by_a, "fields": {"clicked": True}}
    forged = httpx.post(f"{url}/v1/outcomes", json=outcome, headers=b)
    assert forged.status_code == 403 and "only for decisions it made" in forged.json()["error"]["message"]
    assert httpx.post(f"{url}/v1/outcomes", json=outcome, headers=a).json()["accepted"] == 1
    with Engine(home) as engine:
        [stored] = engine.log.read_outcomes().to_pylist()
        decision = engine.decision(made_by_a)
    key_a = a["Authorization"].split("_")[1]
    assert stored["key_id"] == key_a and decision["key_id"] == key_a


def test_deciders_do_not_see_probabilities(url: str, home: Path) -> None:
    """Model-inversion defence: the full distribution goes only to roles allowed to read it."""
    decide = {"unit_id": "u", "context": USER}
    decider = httpx.post(f"{url}/v1/deployments/news/decide", json=decide,
                         headers=bearer(make_key(home, "decider"))).json()
    assert set(decider) == {"decision_id", "action", "propensity", "policy_version"}
    admin_key = bearer(make_key(home))
    admin = httpx.post(f"{url}/v1/deployments/news/decide", json=decide, headers=admin_key).json()
    actions = httpx.get(f"{url}/v1/deployments/news", headers=admin_key).json()["actions"]
    assert list(admin["probabilities"]) == actions and sum(admin["probabilities"].values()) == pytest.approx(1.0)
    batch = httpx.post(f"{url}/v1/deployments/news/decide-batch", json={"items": [decide, decide]},
                       headers=bearer(make_key(home, "decider"))).json()
    assert all("probabilities" not in d for d in batch["decisions"])
    auditor = httpx.get(f"{url}/v1/decisions/{admin['decision_id']}", headers=bearer(make_key(home, "auditor")))
    assert auditor.status_code == 200 and auditor.json()["probabilities"] is None
    analyst = httpx.get(f"{url}/v1/decisions/{admin['decision_id']}", headers=bearer(make_key(home, "analyst")))
    assert analyst.json()["probabilities"] == pytest.approx(list(admin["probabilities"].values()))


def test_a_revoked_key_stops_working_within_the_cache_time(url: str, home: Path) -> None:
    key = make_key(home, "viewer")
    assert httpx.get(f"{url}/v1/deployments", headers=bearer(key)).status_code == 200
    with KeyStore.for_home(Home.resolve(home)) as keys:
        keys.revoke(key.split("_")[1], actor="tests")
    time.sleep(2.2)  # CACHE_TTL_S
    assert httpx.get(f"{url}/v1/deployments", headers=bearer(key)).status_code == 401


def test_rate_limit_answers_429_with_retry_after(home: Path) -> None:
    key = bearer(make_key(home, "viewer"))
    other = bearer(make_key(home, "viewer"))
    with BackgroundServer(ServiceSettings(home=home, port=0, rate_limit=1, rate_burst=3)) as url:
        statuses = [httpx.get(f"{url}/v1/deployments", headers=key).status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
        limited = httpx.get(f"{url}/v1/deployments", headers=key)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert httpx.get(f"{url}/v1/deployments", headers=other).status_code == 200  # per key
        time.sleep(1.1)
        assert httpx.get(f"{url}/v1/deployments", headers=key).status_code == 200  # refilled


def test_token_bucket_arithmetic() -> None:
    bucket = TokenBucket(rate=2.0, burst=2.0)
    assert [bucket.take("k", now=0.0) for _ in range(2)] == [0.0, 0.0]
    assert bucket.take("k", now=0.0) == pytest.approx(0.5)
    assert bucket.take("k", now=0.5) == 0.0  # one token back after 1/rate seconds
    assert TokenBucket(rate=0, burst=1).take("k") == 0.0  # off


def _token(private: ec.EllipticCurvePrivateKey, **claims: Any) -> str:
    base = {"iss": "https://sso.example", "aud": "rlops", "sub": "alice@example.com", "rlops_role": "viewer",
            "exp": int(time.time()) + 300}
    return jwt.encode({**base, **claims}, private, algorithm="ES256")


def test_jwt_bearer_tokens(home: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    settings = ServiceSettings(home=home, port=0, jwt_issuer="https://sso.example", jwt_audience="rlops",
                               jwt_key=public, jwt_algorithm="ES256")  # type: ignore[arg-type]
    stranger = ec.generate_private_key(ec.SECP256R1())
    with BackgroundServer(settings) as url:
        def status(token: str, path: str = "/v1/deployments") -> int:
            return httpx.get(url + path, headers=bearer(token)).status_code

        assert status(_token(private)) == 200
        assert status(_token(private), "/v1/decisions/nope") == 403  # a viewer may not read decisions
        assert status(_token(private, rlops_role="analyst", rlops_scope=["deployment:news"])) == 200
        assert status(_token(stranger)) == 401  # signed by someone else
        assert status(_token(private, aud="another")) == 401
        assert status(_token(private, iss="https://evil.example")) == 401
        assert status(_token(private, exp=int(time.time()) - 3600)) == 401
        assert status(_token(private, rlops_role="root")) == 401
        assert status(jwt.encode({"iss": "https://sso.example", "aud": "rlops", "sub": "x", "rlops_role": "admin",
                                  "exp": int(time.time()) + 60}, "", algorithm="none")) == 401
        assert status(make_key(home, "viewer")) == 200  # API keys keep working beside tokens


def test_settings_refuse_half_configurations(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tls_cert and tls_key"):
        ServiceSettings(home=tmp_path, tls_cert=tmp_path / "cert.pem")
    with pytest.raises(ValueError, match="jwt_issuer, jwt_audience and jwt_key"):
        ServiceSettings(home=tmp_path, jwt_issuer="x")
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        create_app(ServiceSettings(home=tmp_path, jwt_issuer="x", jwt_audience="y", jwt_key="short",  # type: ignore[arg-type]
                                   jwt_algorithm="HS256"))


def test_state_changes_over_http_are_attributed_in_the_audit_chain(url: str, home: Path) -> None:
    admin = make_key(home)
    spec = {"schema": SyntheticBandit().schema.to_dict(), "reward": REWARD,
            "policy": {"kind": "linucb", "params": {"alpha": 0.9}}}
    assert httpx.put(f"{url}/v1/admin/deployments/news", json=spec, headers=bearer(admin)).status_code == 200
    auditor = bearer(make_key(home, "auditor"))
    entries = httpx.get(f"{url}/v1/audit/entries", headers=auditor).json()
    deploys = [e for e in entries if e["action"] == "deploy" and e["target"] == "deployment:news"]
    assert deploys[-1]["actor"] == f"key:{admin.split('_')[1]}" and deploys[-1]["details"]["revision"] == 2
    assert [e["action"] for e in entries].count("key_create") == 2  # the two keys this test made
    verified = httpx.get(f"{url}/v1/audit/verify", headers=auditor).json()
    assert verified["ok"] and verified["entries"] == len(entries)
    assert httpx.get(f"{url}/v1/audit/entries", headers=bearer(make_key(home, "deployer"))).status_code == 403
    for start in ("yesterday", "99999999999999999999999", "-5"):
        bad = httpx.get(f"{url}/v1/audit/entries", params={"start": start}, headers=auditor)
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "start", bad.text
