"""GET /v1/deployments/{deployment}/behaviour on a real server: the production policy's feature importance and
partial dependence plots over its logged contexts, for a policy whose scores depend on one feature only."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import numpy as np
import pytest

from rlops.engine import DeploymentSpec, Engine
from rlops.policies import save_policy
from rlops.policies.exploration import EpsilonGreedy
from rlops.policies.scorers import LinearScorer
from rlops.scenarios import SyntheticBandit
from rlops.service import ServiceSettings
from rlops.service.dashboard import TimedCache, rows_bucket
from rlops.service.runner import BackgroundServer
from tests.keys import bearer, make_key
from tests.policies.factories import CANDIDATES
from tests.service.conftest import REWARD

SVG = "{http://www.w3.org/2000/svg}svg"
SERVED = 300
WITHOUT_CONSENT = 40


def _one_feature_policy(folder: Path) -> Path:
    """Epsilon-greedy over fixed linear scores where only ``activity`` matters: ``news`` scores ``4 activity``,
    ``sports`` ``2 - 4 activity``, the others -5; so news is chosen above activity 0.25 and sports below."""
    schema = SyntheticBandit().schema
    weights = np.zeros((5, schema.width))
    weights[:, schema.column_names.index("activity")] = [4.0, -4.0, 0.0, 0.0, 0.0]
    return save_policy(EpsilonGreedy(schema, LinearScorer(weights, np.array([0.0, 2.0, -5.0, -5.0, -5.0])), 0.1),
                       folder)


@pytest.fixture
def behaviour_home(home: Path, tmp_path: Path) -> Path:
    """The service home (``news``: LinUCB, no decisions yet) plus ``ranked`` (the one-feature policy, with served
    decisions of consenting units and some without consent) and ``catalog`` (per-request candidates)."""
    bandit = SyntheticBandit()
    rng = np.random.default_rng(5)
    with Engine(home, fsync=False) as engine:
        engine.apply(DeploymentSpec.from_dict({
            "name": "ranked", "schema": bandit.schema.to_dict(), "reward": REWARD, "baseline": {"kind": "uniform"},
            "policy": {"path": str(_one_feature_policy(tmp_path / "one-feature"))}}))
        engine.decide_batch("ranked", bandit.sample_contexts(SERVED, rng), [f"u{i}" for i in range(SERVED)])
        engine.decide_batch("ranked", bandit.sample_contexts(WITHOUT_CONSENT, rng),
                            [f"n{i}" for i in range(WITHOUT_CONSENT)], consent=[False] * WITHOUT_CONSENT)
        engine.apply(DeploymentSpec.from_dict({"name": "catalog", "schema": CANDIDATES.model_dump(mode="json"),
                                               "reward": REWARD, "policy": {"kind": "uniform"}}))
        engine.decide("catalog", {"u": 0.5}, "c1", actions=[{"id": "a", "features": {"price": 1.0, "kind": "a"}},
                                                            {"id": "b", "features": {"price": 2.0, "kind": "b"}}])
    return home


def test_behaviour_of_a_deployment(behaviour_home: Path) -> None:
    home = behaviour_home
    analyst = bearer(make_key(home, "analyst"))
    with BackgroundServer(ServiceSettings(home=home, port=0)) as url, \
            httpx.Client(base_url=url, timeout=60, headers=analyst) as client:
        response = client.get("/v1/deployments/ranked/behaviour")
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["deployment"], body["policy_version"], body["score_kind"]) == ("ranked", "ranked@r1", "score")
        assert body["rows"] == SERVED and body["skipped_rows"] == 0  # served to consenting units only
        # Only activity moves a decision (about half of them when shuffled); every other feature changes nothing.
        assert body["ranking"][0] == "activity"
        importance = {f["feature"]: f for f in body["importance"]["features"]}
        assert set(importance) == {"age", "device", "returning", "activity", "taste"}
        assert 0.25 < importance["activity"]["permutation"] < 0.75 and importance["activity"]["score_shift"] > 0.5
        assert all(f["permutation"] == 0.0 and f["score_shift"] == 0.0 for name, f in importance.items()
                   if name != "activity")
        assert ET.fromstring(body["importance_svg"]).tag == SVG
        assert [d["feature"] for d in body["dependence"]] == body["ranking"][:4]
        activity = body["dependence"][0]
        for chart in (activity["pdp_svg"], activity["decisions_svg"]):
            assert ET.fromstring(chart).tag == SVG
        pd = np.array(activity["pd"])
        assert pd[-1, 0] - pd[0, 0] > 2.0 and pd[-1, 1] - pd[0, 1] < -2.0  # news rises with activity, sports falls
        share = np.array(activity["decision_share"])
        assert share[0, 1] == 1.0 and share[-1, 0] == 1.0  # sports at low activity, news at high
        assert all(np.ptp(np.array(d["pd"]), axis=0).max() == 0.0 for d in body["dependence"][1:])

        # Kept: the same policy version and amount of data answer the same computation.
        assert client.get("/v1/deployments/ranked/behaviour").json()["computed_at_us"] == body["computed_at_us"]
        # Twice the data is another bucket: computed again, over the new contexts too.
        more = [{"unit_id": f"v{i}", "context": c} for i, c in
                enumerate(SyntheticBandit().sample_contexts(SERVED, np.random.default_rng(9)))]
        admin = bearer(make_key(home))
        served = client.post("/v1/deployments/ranked/decide-batch", json={"items": more}, headers=admin)
        assert served.status_code == 200, served.text
        again = client.get("/v1/deployments/ranked/behaviour").json()
        assert again["rows"] == 2 * SERVED and again["computed_at_us"] > body["computed_at_us"]

        # Refusals: no logged context yet, no score over contexts alone, no such deployment.
        empty = client.get("/v1/deployments/news/behaviour")
        assert empty.status_code == 409 and "0 logged context" in empty.json()["error"]["message"]
        candidates = client.get("/v1/deployments/catalog/behaviour")
        assert candidates.status_code == 409 and "offers no score" in candidates.json()["error"]["message"]
        assert client.get("/v1/deployments/nope/behaviour").status_code == 404


def test_who_may_see_a_deployments_behaviour(behaviour_home: Path) -> None:
    home = behaviour_home
    viewer = bearer(make_key(home, "viewer"))
    elsewhere = bearer(make_key(home, "analyst", ["deployment:news"]))
    mine = bearer(make_key(home, "analyst", ["deployment:ranked"]))
    with BackgroundServer(ServiceSettings(home=home, port=0)) as url:
        refused = httpx.get(f"{url}/v1/deployments/ranked/behaviour", headers=viewer, timeout=60)
        assert refused.status_code == 403 and "read_probabilities" in refused.json()["error"]["message"]
        # A key scoped to other deployments is refused by the route's guard, before the deployment is looked up:
        # the same answer whether it exists or not.
        for name in ("ranked", "nope"):
            outside = httpx.get(f"{url}/v1/deployments/{name}/behaviour", headers=elsewhere, timeout=60)
            assert outside.status_code == 403 and "restricted to deployments news" in outside.json()["error"]["message"]
        assert httpx.get(f"{url}/v1/deployments/ranked/behaviour", headers=mine, timeout=60).status_code == 200
        assert httpx.get(f"{url}/v1/deployments/ranked/behaviour", timeout=60).status_code == 401


def test_timed_cache() -> None:
    now = [0.0]
    cache = TimedCache(60.0, max_entries=2, clock=lambda: now[0])
    calls: list[str] = []

    def compute(value: str) -> str:
        calls.append(value)
        return value

    assert cache.get("a", lambda: compute("a1")) == "a1"
    now[0] = 59.0
    assert cache.get("a", lambda: compute("a2")) == "a1"  # younger than 60 s
    now[0] = 60.0
    assert cache.get("a", lambda: compute("a3")) == "a3"  # expired
    cache.get("b", lambda: compute("b"))
    cache.get("c", lambda: compute("c"))  # over max_entries: the oldest (a) goes
    assert cache.get("a", lambda: compute("a4")) == "a4" and calls == ["a1", "a3", "b", "c", "a4"]
    assert [rows_bucket(n) for n in (2, 3, 4, 511, 512, 1000)] == [2, 2, 3, 9, 10, 10]
