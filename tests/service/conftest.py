"""A real uvicorn server on a real loopback socket, serving a home folder with one deployment."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from rlops.engine import DeploymentSpec, Engine
from rlops.scenarios import SyntheticBandit
from rlops.service import ServiceSettings, create_app

REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    with Engine(tmp_path / "home") as engine:
        engine.apply(DeploymentSpec.from_dict({
            "name": "news", "schema": SyntheticBandit().schema.to_dict(), "reward": REWARD,
            "policy": {"kind": "linucb", "params": {"alpha": 0.5, "epsilon": 0.1}}}))
    return tmp_path / "home"


@pytest.fixture
def server(home: Path) -> Iterator[str]:
    settings = ServiceSettings(home=home, port=0, max_body_bytes=64 * 1024, max_batch=50)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=20)


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10) as c:
        yield c
