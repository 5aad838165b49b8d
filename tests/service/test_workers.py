"""`rlops serve --workers 2`: two processes on one port and one home folder lose nothing and see each other's work."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from rlops.engine import Engine
from rlops.service.runner import ServiceProcess
from tests.keys import bearer
from tests.service.test_api import USER

N = 240


def _decide(url: str, i: int, auth: dict[str, str]) -> str:
    # A new connection per request, so the kernel spreads them over both workers' accept loops.
    r = httpx.post(f"{url}/v1/deployments/news/decide", json={"unit_id": f"u{i}", "context": USER}, timeout=30,
                   headers=auth)
    assert r.status_code == 200, r.text
    return str(r.json()["decision_id"])


def test_two_workers_share_the_port_the_log_and_the_metrics(home: Path, admin_key: str) -> None:
    auth = bearer(admin_key)
    with ServiceProcess(home, workers=2) as url, ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: _decide(url, i, auth), range(N)))
        # Outcomes on fresh connections: often a worker other than the one that made the decision answers.
        statuses = list(pool.map(lambda d: httpx.post(f"{url}/v1/outcomes", timeout=30, headers=auth, json={
            "decision_id": d, "fields": {"clicked": 1}}).json()["results"][0]["status"], ids))
        looked_up = list(pool.map(lambda d: httpx.get(f"{url}/v1/decisions/{d}", timeout=30,
                                                      headers=auth).status_code, ids))
        text = httpx.get(f"{url}/metrics", timeout=30, headers=auth).text
    assert statuses == ["accepted"] * N
    assert looked_up == [200] * N
    decided = sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
                  if s.name == "rlops_decisions_total")
    assert decided == N  # summed over both processes, whichever answered /metrics
    writers = {p.name.split("-")[1] for p in (home / "events" / "segments").glob("*.seg")}
    assert len(writers) == 2, writers  # both processes appended, each to its own segments
    with Engine(home) as engine:
        assert sorted(engine.log.read_decisions()["decision_id"].to_pylist()) == sorted(ids)
        rewards = engine.interactions("news", include_pending=True).interactions["reward"].to_pylist()
        assert len(rewards) == N and all(r == 1.0 for r in rewards)
