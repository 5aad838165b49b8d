"""A home folder filled through the real engine and registry, for the encryption and rotation tests.

Every context carries a unique string value (a categorical feature with ``unknown: other`` logs raw values), so a
test can look for it in the raw bytes of every file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from rlops.engine import DeploymentSpec, Engine
from rlops.home import Home
from rlops.registry import Registry

SECRET = "zq-secret-context-7f3a9c41"
REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}
SCHEMA = {"name": "shop", "features": [
    {"name": "segment", "type": "categorical", "vocabulary": ["a", "b"], "unknown": "other"},
    {"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
    "actions": {"type": "discrete", "names": ["left", "right"]}}


@dataclass
class Filled:
    """What :func:`fill` stored, to compare with what reads back."""

    contexts: dict[str, dict[str, object]]
    outcomes: int
    version: int


def fill(home: Home, *, decisions: int = 30, compact: bool = True, register: bool = True) -> Filled:
    """Deploy, decide (half compacted into Parquet, half left in a sealed segment), report outcomes, save the
    learned policy and register it with a report."""
    contexts: dict[str, dict[str, object]] = {}
    with Engine(home.root) as engine:
        engine.apply(DeploymentSpec.from_dict({"name": "shop", "schema": SCHEMA, "reward": REWARD,
                                               "policy": {"kind": "linucb", "params": {"alpha": 0.5}}}))
        for i in range(decisions):
            context = {"segment": f"{SECRET}-{i}", "x": i / decisions}
            d = engine.decide("shop", context, f"unit-{SECRET}-{i}")
            contexts[d.decision_id] = context
            if i == decisions // 2 and compact:
                engine.log.rotate()
                engine.log.compact()
        ids = list(contexts)
        engine.report_batch([{"decision_id": i, "fields": {"clicked": 1}} for i in ids[::3]])
        learned = engine.save_learned("shop")
    version = 0
    if register:
        report = home.root.parent / "report.json"
        report.write_text(f'{{"status": "pass", "note": "{SECRET}"}}')
        with Registry(home) as registry:
            version = registry.register("shop-model", learned, report=report).version
        report.unlink()
    return Filled(contexts, len(ids[::3]), version)


def raw_files(home: Home) -> dict[Path, bytes]:
    """Every file under the home folder, as stored."""
    return {p: p.read_bytes() for p in sorted(home.root.rglob("*")) if p.is_file()}


def digests(home: Home) -> dict[Path, str]:
    """SHA-256 of every file but lock files (taking a lock changes no data)."""
    return {p: hashlib.sha256(b).hexdigest() for p, b in raw_files(home).items() if not p.name.endswith(".lock")}
