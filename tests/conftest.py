"""Shared fixtures: every test gets its own home folder; nothing touches the developer's ./.rlops."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLOPS_HOME", str(tmp_path / "home"))
