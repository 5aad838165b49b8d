"""A home folder with a deployment serving a saved policy, and that deployment exported for the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlops.engine import DeploymentSpec, Engine
from rlops.export import ExportResult, export_deployment
from rlops.home import Home
from rlops.policies import save_policy
from tests.export.cases import CASES

REWARD: dict[str, Any] = {"name": "click", "version": 1, "expression": "1 if clicked else 0",
                          "fields": {"clicked": {}}, "window": "1h", "missing": 0.0}


def deploy(root: Path, case: str, name: str = "shop") -> Home:
    """Apply a deployment serving ``CASES[case]`` (saved to a folder) in the home folder ``root``."""
    policy = CASES[case]()
    folder = save_policy(policy, root.parent / f"{name}-{case}-policy")
    spec = DeploymentSpec.from_dict({"name": name, "schema": policy.schema.to_dict(), "reward": REWARD,
                                     "policy": {"path": str(folder)}})
    home = Home.resolve(root)
    with Engine(home) as engine:
        engine.apply(spec)
    return home


def deploy_and_export(root: Path, case: str, out: Path, name: str = "shop") -> tuple[Home, ExportResult]:
    home = deploy(root, case, name)
    return home, export_deployment(home, name, out)
