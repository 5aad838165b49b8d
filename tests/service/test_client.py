"""rlops.Client against a real server, and hot swaps of the policy under steady load."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

import rlops
from rlops.engine import DeploymentSpec, Engine
from rlops.errors import NotFoundError, ValidationError
from rlops.scenarios import SyntheticBandit
from tests.keys import bearer
from tests.service.conftest import REWARD
from tests.service.test_api import USER


def test_client_round_trip(server: str, home: Path, admin_key: str) -> None:
    with rlops.Client(server, api_key=admin_key) as client:
        d = client.decide("news", USER, unit_id="u1")
        assert d.policy_version == "news@r1" and d.probabilities is not None
        batch = client.decide_batch("news", [USER, USER], ["u2", "u3"])
        assert len({b.decision_id for b in batch}) == 2
        assert client.report(d.decision_id, {"clicked": True}).accepted == 1
        assert client.report(d.decision_id, {"clicked": True}).duplicates == 1
        with pytest.raises(ValidationError) as info:
            client.decide("news", {**USER, "age": 412}, unit_id="u")
        assert info.value.field == "context.age" and "above the maximum" in info.value.rule
        with pytest.raises(NotFoundError, match="nope"):
            client.decide("nope", USER, unit_id="u")


@pytest.mark.slow
@pytest.mark.parametrize("via", ["engine", "admin endpoint"])
def test_hot_swaps_under_load_fail_nothing_and_attribute_every_decision(server: str, home: Path, via: str,
                                                                       admin_key: str) -> None:
    """Ten revisions applied while clients keep deciding: no failed request, every decision attributed to the
    revision that made it (its logged policy version matches the policy that answered). The swaps come from
    another engine on the home folder (what `rlops deploy apply` does) or through the admin endpoint."""
    failures: list[str] = []
    answered: list[tuple[str, str]] = []
    stop = threading.Event()

    def load() -> None:
        with rlops.Client(server, api_key=admin_key) as client:
            while not stop.is_set():
                try:
                    d = client.decide("news", USER, unit_id="u")
                    answered.append((d.decision_id, d.policy_version))
                except Exception as e:  # any failure at all is what this test counts
                    failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    schema = SyntheticBandit().schema.to_dict()
    try:
        with Engine(home) as engine:  # another process would do the same through `rlops deploy apply`
            for i in range(10):
                time.sleep(0.4)
                body = {"name": "news", "schema": schema, "reward": REWARD,
                        "policy": {"kind": "linucb", "params": {"alpha": 0.5 + 0.1 * (i + 1), "epsilon": 0.1}}}
                if via == "engine":
                    engine.apply(DeploymentSpec.from_dict(body))
                else:
                    r = httpx.put(f"{server}/v1/admin/deployments/news", json=body, timeout=10,
                                  headers=bearer(admin_key))
                    assert r.status_code == 200 and r.json()["revision"] == i + 2, r.text
            time.sleep(1.5)  # the last revision is picked up within RECHECK_S
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    versions = Counter(v for _, v in answered)
    assert "news@r11" in versions and len(versions) >= 6  # the swaps really happened during the load
    with Engine(home) as engine:
        logged = dict(zip(engine.log.read_decisions()["decision_id"].to_pylist(),
                          engine.log.read_decisions()["policy_version"].to_pylist(), strict=True))
    assert all(logged[decision_id] == version for decision_id, version in answered)
