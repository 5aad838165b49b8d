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


def test_without_ray_the_part_is_skipped_and_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    from rlops.cli import demo

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    demo._scale(tmp_path / "home", fast=True, seed=0)
    out = " ".join(capsys.readouterr().out.split())
    assert "Ray is not installed, so this part is skipped: pip install 'rlops[ray]'" in out
    assert not (tmp_path / "home").exists()  # nothing was started or written
