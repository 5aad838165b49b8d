"""`rlops serve --backend ray --replicas 2`: a real Ray Serve application on a loopback port, started as users
start it, serving HTTPS through Ray's proxy with a certificate made here. Every acknowledged decision is in the log
(also after a replica is killed), attributable to its deployment, version and key; both replicas write; a hot swap,
a canary and a rollback reach every replica; and the API is the same API (authentication, field-named errors,
metrics summed over the replicas).

One service for the module (a private Ray instance takes ~15 s to start); the tests run in file order and the last
one changes the deployment."""

from __future__ import annotations

import os
import signal
import ssl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rlops.engine import DeploymentSpec, Engine
from rlops.events.layout import Layout, stem_writer
from rlops.events.log import PREALLOC_BYTES
from rlops.scenarios import SyntheticBandit
from rlops.service.runner import ServiceProcess
from tests.keys import bearer, make_key
from tests.service.conftest import REWARD
from tests.service.test_api import USER
from tests.service.test_tls import self_signed

pytestmark = pytest.mark.slow  # a Ray instance with two replicas: ~40 s for the module

SPEC = {"name": "news", "schema": SyntheticBandit().schema.to_dict(), "reward": REWARD,
        "policy": {"kind": "linucb", "params": {"alpha": 0.5, "epsilon": 0.1}}}
FOOD = {"kind": "rule", "params": {"target": "tests.rollout.rules:always_food", "epsilon": 0.1}}


class Service:
    def __init__(self, home: Path, url: str, key: str, certificate: Path) -> None:
        self.home, self.url, self.auth = home, url, bearer(key)
        self.verify = ssl.create_default_context(cafile=str(certificate))
        self.killed: set[int] = set()

    def call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> httpx.Response:
        """One request on a new connection (Ray's proxy spreads requests over the replicas whatever the
        connection), trusting only the test's certificate."""
        return httpx.request(method, f"{self.url}{path}", headers=self.auth if auth else None, timeout=30,
                             verify=self.verify, **kwargs)

    def decide(self, unit: str) -> dict[str, object]:
        r = self.call("POST", "/v1/deployments/news/decide", json={"unit_id": unit, "context": USER})
        assert r.status_code == 200, r.text
        body: dict[str, object] = r.json()
        return body

    def writers(self) -> set[int]:
        """The process ids of the writers that have appended to the event log (a segment's name carries it)."""
        return {w for s in Layout(self.home / "events").segment_stems() if (w := stem_writer(s)) is not None}

    def logged(self) -> dict[str, dict[str, object]]:
        with Engine(self.home) as engine:
            table = engine.log.read_decisions()
        return {row["decision_id"]: row for row in table.to_pylist()}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("ray-serve") / "home"
    with Engine(home) as engine:
        engine.apply(DeploymentSpec.from_dict(SPEC))
    key = make_key(home)
    certificate, private_key = self_signed(home.parent)
    process = ServiceProcess(home, replicas=2, start_timeout=180, tls=(certificate, private_key))
    with process as url:
        assert url.startswith("https://")
        service = Service(home, url, key, certificate)
        yield service
    assert process._proc is not None and process._proc.returncode == 0  # a graceful stop on SIGTERM
    # and every replica closed its engine: each live writer cut its segment back from the preallocated size (the
    # killed replica's segment keeps it: nobody closed it)
    for segment in (home / "events" / "segments").glob("*.seg"):
        if stem_writer(segment.stem) not in service.killed:
            assert segment.stat().st_size < PREALLOC_BYTES, segment.name


def test_every_acknowledged_decision_is_logged_and_attributable(service: Service) -> None:
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: service.decide(f"a{i}"), range(160)))
        statuses = list(pool.map(lambda a: service.call("POST", "/v1/outcomes", json={
            "decision_id": a["decision_id"], "fields": {"clicked": 1}}).json()["results"][0]["status"], answers))
    assert statuses == ["accepted"] * 160  # an outcome finds its decision whichever replica made it
    assert len(service.writers()) == 2  # both replicas appended, each to segments of its own
    logged = service.logged()
    for a in answers:
        row = logged[str(a["decision_id"])]
        assert (row["deployment"], row["policy_version"], row["action"]) == ("news", "news@r1", a["action"])
        assert row["key_id"] == service.auth["Authorization"].split("_")[1]  # the key that asked
    text = service.call("GET", "/metrics").text
    decided = sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
                  if s.name == "rlops_decisions_total")
    assert decided == 160  # both replicas' counts, whichever answered /metrics


def test_the_api_is_the_same_api(service: Service) -> None:
    no_key = service.call("POST", "/v1/deployments/news/decide", auth=False, json={"unit_id": "u", "context": USER})
    assert no_key.status_code == 401 and no_key.headers["www-authenticate"].startswith("Bearer")
    bad = service.call("POST", "/v1/deployments/news/decide", json={"unit_id": "u", "context": {**USER, "age": 412}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "context.age"
    assert service.call("GET", "/readyz", auth=False).json() == {"status": "ready", "deployments": 1}
    assert "/v1/deployments/{deployment}/decide" in service.call("GET", "/openapi.json").json()["paths"]
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate is refused
        httpx.get(f"{service.url}/healthz", timeout=10)
    with pytest.raises(httpx.TransportError):  # and plain HTTP is not served
        httpx.get(service.url.replace("https://", "http://") + "/healthz", timeout=10)


def test_acknowledged_decisions_survive_a_killed_replica_and_ray_restarts_it(service: Service) -> None:
    before = [service.decide(f"k{i}") for i in range(40)]
    writers = service.writers()
    replicas = _replica_processes()
    assert len(replicas) == 2 and replicas <= writers  # the two replicas are the event log's writers
    victim = max(replicas)
    os.kill(victim, signal.SIGKILL)
    service.killed.add(victim)
    logged = service.logged()
    assert all(str(a["decision_id"]) in logged for a in before)  # acknowledged means on disk
    # The other replica keeps answering meanwhile (a request in flight on the victim may fail: retried here).
    served, deadline = 0, time.monotonic() + 120
    while time.monotonic() < deadline and not (served >= 20 and len(service.writers() - writers) >= 1):
        r = service.call("POST", "/v1/deployments/news/decide", json={"unit_id": f"r{served}", "context": USER})
        served += r.status_code == 200
    assert served >= 20
    assert service.writers() - writers, "Ray did not bring up a new replica within 120 s"


def test_hot_swap_canary_and_rollback_reach_every_replica(service: Service) -> None:
    admin = "/v1/admin/deployments/news"
    swapped = service.call("PUT", admin, json={**SPEC, "policy": {"kind": "linucb",
                                                                   "params": {"alpha": 0.9, "epsilon": 0.2}}})
    assert swapped.status_code == 200, swapped.text
    version = swapped.json()["policy_version"]
    assert version != "news@r1"
    _until(lambda: {service.decide(f"s{i}")["policy_version"] for i in range(30)} == {version})

    canary = service.call("POST", f"{admin}/canary", json={"policy": FOOD, "fraction": 0.5, "reason": "try food"})
    assert canary.status_code == 200, canary.text
    _until(lambda: len({service.decide(f"c{i}")["policy_version"] for i in range(30)}) == 2)
    # Each replica loads a newer revision on its first request more than a second after its last look: once 1.5 s
    # have passed, 40 requests reach both (all but surely) and every replica serves the canary's revision.
    time.sleep(1.5)
    for i in range(40):
        service.decide(f"warm{i}")
    seen: dict[str, set[object]] = {}
    with ThreadPoolExecutor(8) as pool:
        for i, answer in enumerate(pool.map(lambda i: service.decide(f"c{i % 30}"), range(150))):
            seen.setdefault(f"c{i % 30}", set()).add(answer["policy_version"])
    assert all(len(v) == 1 for v in seen.values())  # sticky: a unit gets one arm from every replica
    assert len({v for s in seen.values() for v in s}) == 2

    rolled = service.call("POST", f"{admin}/rollback", json={"reason": "no"})
    assert rolled.status_code == 200, rolled.text
    _until(lambda: {service.decide(f"c{i}")["policy_version"] for i in range(30)} == {version})


def _replica_processes() -> set[int]:
    """Process ids of Ray Serve's replica processes on this machine (Ray names them ``ray::ServeReplica:...``)."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::ServeReplica:rlops-"):
                found.add(int(proc.name))
        except OSError:  # gone meanwhile
            continue
    return found


def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Every replica looks for a newer revision at most once a second: wait for ``check()`` to hold."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the change did not reach every replica in time"
        time.sleep(0.2)
