"""One private Ray instance per test module that asks for it: 2 CPUs, bound to loopback, shut down afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from rlops.scale import ray_session


@pytest.fixture(scope="module")
def ray_local() -> Iterator[ModuleType]:
    with ray_session(num_cpus=2) as ray:
        yield ray
