"""`rlops serve` as a real process: serves over a socket and, on SIGTERM, stops with every acknowledged write kept."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from rlops.engine import Engine
from tests.keys import bearer
from tests.service.test_api import USER


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_process_round_trip_and_graceful_stop(home: Path, admin_key: str) -> None:
    port = _free_port()
    exe = Path(sys.executable).parent / "rlops"
    proc = subprocess.Popen([str(exe), "serve", "--home", str(home), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"server did not become ready: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.1)
        ids = []
        for i in range(20):
            r = httpx.post(f"http://127.0.0.1:{port}/v1/deployments/news/decide",
                           json={"unit_id": f"u{i}", "context": USER}, timeout=10, headers=bearer(admin_key))
            assert r.status_code == 200
            ids.append(r.json()["decision_id"])
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully and re-raises SIGTERM; rlops serve makes that a clean exit: status 0, what
        # supervisors and container engines read as a successful stop
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    # The shutdown closed the log: a closed segment is cut back to its data, while a killed writer leaves its
    # preallocated 4 MiB behind.
    sizes = [p.stat().st_size for p in (home / "events" / "segments").glob("*.seg")]
    assert sizes and all(size < 1 << 20 for size in sizes), sizes
    with Engine(home) as engine:
        assert set(engine.log.read_decisions()["decision_id"].to_pylist()) == set(ids)
