"""SIGTERM while clients keep deciding and reporting: every acknowledged decision and outcome is in the log, and no
request gets a 5xx or a broken answer (in-flight requests finish; later ones find the port closed)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from rlops.engine import Engine
from rlops.service.runner import ServiceProcess
from tests.keys import bearer
from tests.service.test_api import USER


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_loses_nothing(home: Path, workers: int, admin_key: str) -> None:
    acknowledged: list[str] = []
    outcomes: list[str] = []
    bad: list[str] = []
    stop = threading.Event()
    service = ServiceProcess(home, workers=workers)
    url = service.__enter__()

    def load(i: int) -> None:
        with httpx.Client(base_url=url, timeout=30, headers=bearer(admin_key)) as client:
            while not stop.is_set():
                try:
                    r = client.post("/v1/deployments/news/decide", json={"unit_id": f"u{i}", "context": USER})
                except httpx.TransportError:
                    return  # the server has closed the port: this request was never acknowledged
                if r.status_code != 200:
                    bad.append(f"{r.status_code} {r.text[:200]}")
                    return
                decision = r.json()["decision_id"]
                acknowledged.append(decision)
                try:
                    o = client.post("/v1/outcomes", json={"decision_id": decision, "fields": {"clicked": 1}})
                except httpx.TransportError:
                    return
                if o.status_code != 200:
                    bad.append(f"{o.status_code} {o.text[:200]}")
                    return
                outcomes.append(decision)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    assert service._proc is not None
    service._proc.send_signal(signal.SIGTERM)  # mid-load
    assert service._proc.wait(timeout=60) in (0, -signal.SIGTERM)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    service.__exit__(None, None, None)
    assert bad == []
    assert len(acknowledged) > 50  # the load was real
    with Engine(home) as engine:
        stored = set(engine.log.read_decisions()["decision_id"].to_pylist())
        stored_outcomes = set(engine.log.read_outcomes()["decision_id"].to_pylist())
    assert set(acknowledged) <= stored
    assert set(outcomes) <= stored_outcomes
