"""The demo's scale-out part: the stress suite on Ray gives the local report exactly, and two Ray Serve replicas
log every decision they answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlops.demo.scale import DEPLOYMENT, run
from rlops.engine import Engine


@pytest.mark.slow  # a private Ray instance twice (compute, then serving): ~40 s
def test_the_scale_part_matches_local_numbers_and_logs_every_decision(tmp_path: Path) -> None:
    home = tmp_path / "home"
    said: list[str] = []
    result = run(home, fast=True, seed=3, say=said.append)
    assert result.candidate == "the thermostat"  # no lifecycle part ran: no registered PPO version
    assert result.identical and result.tasks == 4
    assert result.mean_difference == 0.0  # the thermostat against itself, paired by seed
    assert result.decisions == result.logged == 200
    assert result.writers == 2
    assert any("Ray Serve replicas" in line for line in said)
    with Engine(home) as engine:
        assert engine.interactions(DEPLOYMENT, include_pending=True).stats.decisions == 200
