"""A real uvicorn server on a real loopback socket, serving a home folder with one deployment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rlops.engine import DeploymentSpec, Engine
from rlops.scenarios import SyntheticBandit
from rlops.service import ServiceSettings
from rlops.service.runner import BackgroundServer
from tests.keys import bearer, make_key

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
def admin_key(home: Path) -> str:
    return make_key(home)


@pytest.fixture
def server(home: Path) -> Iterator[str]:
    settings = ServiceSettings(home=home, port=0, max_body_bytes=64 * 1024, max_batch=50)
    with BackgroundServer(settings) as url:
        yield url


@pytest.fixture
def client(server: str, admin_key: str) -> Iterator[httpx.Client]:
    """A client with an admin key (tests of who may do what use their own keys: tests/service/test_auth.py)."""
    with httpx.Client(base_url=server, timeout=10, headers=bearer(admin_key)) as c:
        yield c
