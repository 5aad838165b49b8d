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

ADMIN_TOKEN = "test-admin-token-0123456789"
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
    settings = ServiceSettings(home=home, port=0, max_body_bytes=64 * 1024, max_batch=50,
                               admin_token=ADMIN_TOKEN)  # type: ignore[arg-type]  # pydantic makes the SecretStr
    with BackgroundServer(settings) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10) as c:
        yield c
