"""Diffs between versions: configuration, content, lineage and gate changes, and nothing for identical ones."""

from __future__ import annotations

import json
from pathlib import Path

from rlops.registry import DiffSection, Lineage, ModelRef, Registry
from rlops.registry.diff import flatten
from tests.registry.conftest import save_linucb


def _report(tmp_path: Path, name: str, status: str, dr: str) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"status": status, "gates": [
        {"gate": {"name": "DR beats logging"}, "status": dr, "reason": f"{dr} reason"},
        {"gate": {"name": "p99 latency"}, "status": "pass", "reason": "1.2 ms < 2 ms"}]}))
    return path


def test_diff_names_what_changed(registry: Registry, tmp_path: Path) -> None:
    registry.register("pricing", save_linucb(tmp_path / "a", alpha=0.5), report=_report(tmp_path, "a.json", "fail",
                                                                                         "fail"),
                      lineage=Lineage(scenario="shop", reward_spec="revenue@1"))
    registry.register("pricing", save_linucb(tmp_path / "b", alpha=1.5), report=_report(tmp_path, "b.json", "pass",
                                                                                         "pass"),
                      lineage=Lineage(scenario="shop", reward_spec="revenue@2", parent=ModelRef("pricing", 1)))
    changes = {(c.section, c.key): (c.before, c.after) for c in registry.diff(ModelRef("pricing", 1),
                                                                              ModelRef("pricing", 2))}
    assert changes[(DiffSection.CONFIG, "config.alpha")] == (0.5, 1.5)
    assert changes[(DiffSection.LINEAGE, "reward_spec")] == ("revenue@1", "revenue@2")
    assert changes[(DiffSection.LINEAGE, "parent")] == (None, "pricing@1")
    assert changes[(DiffSection.GATES, "status")] == ("fail", "pass")
    assert changes[(DiffSection.GATES, "gate DR beats logging")] == ("fail: fail reason", "pass: pass reason")
    assert (DiffSection.GATES, "gate p99 latency") not in changes  # unchanged gates are not listed
    assert (DiffSection.CONTENT, "content_hash") in changes
    assert (DiffSection.CONTENT, "files.policy/manifest.json") in changes
    assert (DiffSection.LINEAGE, "scenario") not in changes


def test_identical_versions_have_no_diff(registry: Registry, policy_dir: Path) -> None:
    registry.register("pricing", policy_dir)
    registry.register("pricing", policy_dir)
    assert registry.diff(ModelRef("pricing", 1), ModelRef("pricing", 2)) == []


def test_a_report_on_one_side_only(registry: Registry, policy_dir: Path, tmp_path: Path) -> None:
    registry.register("pricing", policy_dir)
    registry.register("pricing", policy_dir, report=_report(tmp_path, "r.json", "pass", "pass"))
    changes = {(c.section, c.key): (c.before, c.after) for c in registry.diff(ModelRef("pricing", 1),
                                                                              ModelRef("pricing", 2))}
    assert changes[(DiffSection.GATES, "report")] == (None, "included")
    assert changes[(DiffSection.GATES, "status")] == (None, "pass")
    assert (DiffSection.CONTENT, "files.report.json") in changes


def test_flatten_hashes_long_lists() -> None:
    flat = flatten({"a": {"b": 1, "c": [1, 2]}, "w": list(range(100)), "e": {}})
    assert flat["a.b"] == 1 and flat["a.c"] == [1, 2] and flat["e"] == {}
    assert flat["w"].startswith("list[100] sha256:")
    assert flatten({"w": list(range(100))}) != flatten({"w": [*range(99), 7]})
