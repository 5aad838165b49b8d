"""The README's Python example runs as written (so the quick start stays true)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_loop_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    match = re.search(r"## The loop in Python\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert match is not None, "README lost its Python example"
    script = tmp_path / "example.py"
    script.write_text(match.group(1))
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    action, propensity = out[0].split()
    assert action in ("news", "sports", "tech", "travel", "food") and 0 < float(propensity) <= 1
    assert "reward" in out[1] and out[2].split()[-1] == "1.0"  # the reported click is the joined reward
    assert (tmp_path / ".rlops" / "events").is_dir()


def test_readme_lists_every_command() -> None:
    """Every top-level command (and sub-app) appears in the README's command table."""
    from rlops.cli.main import app

    text = README.read_text()
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    names += [g.name for g in app.registered_groups if g.name]
    missing = [n for n in names if f"`rlops {n}" not in text]
    assert missing == [], f"README's command table lacks {missing}"
