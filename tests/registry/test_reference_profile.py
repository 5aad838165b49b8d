"""Reference profiles registered with versions: stored in the version folder, signed with it, read back verified."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlops.cli.main import main
from rlops.engine import DeploymentSpec, Engine
from rlops.engine.reports import export_parquet
from rlops.errors import ConfigError, ValidationError
from rlops.home import Home
from rlops.monitoring.drift import ReferenceProfile, Severity, batch_drift
from rlops.registry import Registry
from rlops.schema import Schema
from tests.registry.conftest import BANDIT

REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}


def profile(n: int = 400, seed: int = 0) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    return ReferenceProfile.build(BANDIT.schema, BANDIT.sample_contexts(n, rng), actions=rng.integers(0, 5, n),
                                  rewards=rng.random(n), seed=seed)


def test_round_trip_through_the_registry(registry: Registry, policy_dir: Path) -> None:
    built = profile()
    v = registry.register("pricing", policy_dir, reference=built)
    folder = registry.folder("pricing", v.version)
    assert (folder / "reference_profile.json").is_file()
    assert "reference_profile.json" in v.registration["files"]  # pinned by the signed registration
    read = registry.reference("pricing", v.version)
    assert read is not None and read.to_dict() == built.to_dict()
    assert read.actions and read.rewards is not None and read.rows is not None
    # the read profile judges a window exactly as the built one does
    live = BANDIT.sample_contexts(200, np.random.default_rng(9))
    assert batch_drift(read, live, schema=BANDIT.schema).to_dict() == batch_drift(built, live,
                                                                                  schema=BANDIT.schema).to_dict()
    assert registry.reference("pricing").to_dict() == built.to_dict()  # type: ignore[union-attr]  # latest


def test_versions_without_a_profile_have_none(registry: Registry, policy_dir: Path) -> None:
    registry.register("pricing", policy_dir)
    assert registry.reference("pricing", 1) is None
    assert sorted(p.name for p in registry.folder("pricing", 1).iterdir()) == ["policy", "registration.json",
                                                                             "registration.sig"]


def test_a_tampered_profile_is_refused(registry: Registry, policy_dir: Path) -> None:
    registry.register("pricing", policy_dir, reference=profile())
    file = registry.folder("pricing", 1) / "reference_profile.json"
    data = json.loads(file.read_text())
    data["features"][0]["mean"] += 1.0
    file.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as info:
        registry.reference("pricing", 1)
    message = str(info.value)
    assert "reference_profile.json" in message and "changed after it was registered" in message
    with pytest.raises(ConfigError):
        registry.verify("pricing", 1)
    file.unlink()
    with pytest.raises(ConfigError, match=r"reference_profile\.json: missing"):
        registry.reference("pricing", 1)


def test_a_profile_added_afterwards_is_refused(registry: Registry, policy_dir: Path) -> None:
    registry.register("pricing", policy_dir)
    profile().save(registry.folder("pricing", 1))
    with pytest.raises(ConfigError, match="not part of the signed registration"):
        registry.reference("pricing", 1)


def test_a_profile_of_another_schema_is_refused_and_nothing_is_stored(registry: Registry, policy_dir: Path) -> None:
    other = Schema.model_validate({"features": [{"name": "x", "type": "float"}],
                                   "actions": {"type": "discrete", "names": ["a", "b"]}})
    wrong = ReferenceProfile.build(other, [{"x": 1.0}, {"x": 2.0}, {"x": 3.0}])
    with pytest.raises(ValidationError) as info:
        registry.register("pricing", policy_dir, reference=wrong)
    assert info.value.field == "reference" and "policy schema" in info.value.rule
    assert registry.versions() == []
    assert [p.name for p in (registry.root / "pricing").iterdir()] == []  # the staging folder is gone


def test_register_reference_option(tmp_path: Path, policy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    with Engine(home, fsync=False) as engine:
        engine.apply(DeploymentSpec.from_dict({"name": "news", "schema": BANDIT.schema.to_dict(), "reward": REWARD,
                                               "policy": {"kind": "uniform"}}))
        decisions = engine.decide_batch("news", BANDIT.sample_contexts(120, np.random.default_rng(4)),
                                        [f"u{i}" for i in range(120)])
        engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": i % 2 == 0}}
                             for i, d in enumerate(decisions)])
        export_parquet(engine, tmp_path / "export", deployment="news")
    h = ["--home", str(home)]
    parquet = tmp_path / "export" / "interactions-news.parquet"
    assert main(["models", "register", "pricing", str(policy_dir), "--reference", str(parquet), *h]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "reference profile: 120 rows" in out and "actions, rewards" in out
    assert main(["models", "register", "pricing", str(policy_dir), "--reference", "news", *h]) == 0
    saved = tmp_path / "profile.json"
    profile().save(saved)
    assert main(["models", "register", "pricing", str(policy_dir), "--reference", str(saved), *h]) == 0
    with Registry(Home.resolve(home)) as registry:
        from_parquet, from_log, from_file = (registry.reference("pricing", v) for v in (1, 2, 3))
        assert from_parquet is not None and from_log is not None and from_file is not None
        assert from_parquet.to_dict() == from_log.to_dict()
        assert from_parquet.rewards is not None and from_parquet.rewards.mean == pytest.approx(0.5)
        assert from_file.to_dict() == profile().to_dict()
        assert batch_drift(from_log, BANDIT.sample_contexts(300, np.random.default_rng(5)),
                           schema=BANDIT.schema).severity in (Severity.NONE, Severity.WARN)
    capsys.readouterr()
    assert main(["models", "register", "pricing", str(policy_dir), "--reference", str(tmp_path / "no.parquet"),
                 *h]) == 1
    assert "--reference" in capsys.readouterr().err
    assert main(["models", "register", "pricing", str(policy_dir), "--reference", "news@2001-01-01..2001-01-02",
                 *h]) == 1
    assert "--reference" in capsys.readouterr().err
    assert main(["models", "register", "pricing", str(policy_dir), "--reference", "nope", *h]) == 1
    assert "deployment 'nope'" in capsys.readouterr().err
