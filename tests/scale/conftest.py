"""One private Ray instance per test module that asks for it: the machine's cores, node address 127.0.0.1, token
authentication, shut down afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from rlops.scale import ray_session


@pytest.fixture(scope="module")
def ray_local() -> Iterator[ModuleType]:
    with ray_session() as ray:
        yield ray
