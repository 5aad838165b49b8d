"""Fixtures of the registry tests: a home folder, saved policy folders, a registry on them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rlops.home import Home
from rlops.policies import LinUCB, save_policy
from rlops.registry import Registry
from rlops.scenarios import SyntheticBandit

BANDIT = SyntheticBandit(seed=3)


def save_linucb(folder: Path, alpha: float = 0.5) -> Path:
    """A small LinUCB policy folder (manifest.json + state.npz)."""
    return save_policy(LinUCB(BANDIT.schema, alpha=alpha, epsilon=0.1), folder)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home.resolve(tmp_path / "home").ensure()


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    return save_linucb(tmp_path / "policy")


@pytest.fixture
def registry(home: Home) -> Iterator[Registry]:
    with Registry(home) as r:
        yield r
