"""Registering versions: numbering, the files copied in, the registration document and its lineage."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from rlops import __version__
from rlops.errors import ConfigError, NotFoundError, ValidationError
from rlops.policies.io import content_hash
from rlops.registry import Lineage, ModelRef, Registry, Stage, default_actor
from tests.registry.conftest import save_linucb


def test_versions_are_consecutive_per_name(registry: Registry, policy_dir: Path) -> None:
    assert [registry.register("pricing", policy_dir).version for _ in range(3)] == [1, 2, 3]
    assert registry.register("ranking", policy_dir).version == 1
    assert registry.names() == ["pricing", "ranking"]
    assert [v.version for v in registry.versions("pricing")] == [1, 2, 3]
    assert registry.get("pricing").version == 3  # latest


def test_a_version_is_a_signed_copy(registry: Registry, policy_dir: Path) -> None:
    v = registry.register("pricing", policy_dir, lineage=Lineage(scenario="hvac", reward_spec="comfort@2"),
                          actor="alice")
    folder = registry.folder("pricing", 1)
    assert sorted(p.name for p in folder.iterdir()) == ["policy", "registration.json", "registration.sig"]
    assert content_hash(folder / "policy") == content_hash(policy_dir) == v.content_hash
    assert v.stage is Stage.CANDIDATE and v.kind == "linucb" and v.actor == "alice"
    document = json.loads((folder / "registration.json").read_text())
    assert document["name"] == "pricing" and document["version"] == 1
    assert set(document["files"]) == {"policy/manifest.json", "policy/state.npz"}
    assert document["public_key"] == v.public_key == registry.signing_key.public_key
    assert document["lineage"]["scenario"] == "hvac" and document["lineage"]["reward_spec"] == "comfort@2"
    assert document["lineage"]["rlops_version"] == __version__
    commit = document["lineage"]["git_commit"]
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit)
    history = registry.history("pricing", 1)
    assert [(t.from_stage, t.to_stage, t.actor, t.reason) for t in history] == [
        (None, Stage.CANDIDATE, "alice", "registered")]
    # The source is untouched and independent of the copy.
    (policy_dir / "state.npz").write_bytes(b"changed")
    registry.verify("pricing", 1)


def test_the_key_file_is_private(registry: Registry, policy_dir: Path) -> None:
    registry.register("pricing", policy_dir)
    key = registry.keys / "registry_ed25519"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(registry.keys.stat().st_mode) == 0o700
    assert (registry.keys / "registry_ed25519.pub").read_text().strip() == registry.signing_key.public_key


def test_report_is_copied_and_signed(registry: Registry, policy_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"status": "pass", "gates": []}))
    v = registry.register("pricing", policy_dir, report=report)
    assert v.has_report
    assert (registry.folder("pricing", 1) / "report.json").read_text() == report.read_text()
    assert registry.details("pricing", 1).report == {"status": "pass", "gates": []}


@pytest.mark.parametrize("text", ["not json", "[1, 2]"])
def test_a_bad_report_registers_nothing(registry: Registry, policy_dir: Path, tmp_path: Path, text: str) -> None:
    report = tmp_path / "report.json"
    report.write_text(text)
    with pytest.raises(ConfigError, match=r"report\.json"):
        registry.register("pricing", policy_dir, report=report)
    assert registry.versions() == []
    assert list((registry.root / "pricing").iterdir()) == []  # the staging folder is gone


def test_not_a_policy_folder_is_refused(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not a policy folder"):
        registry.register("pricing", tmp_path)


def test_a_policy_that_does_not_load_is_refused(registry: Registry, policy_dir: Path) -> None:
    (policy_dir / "state.npz").write_bytes(b"truncated")
    with pytest.raises(ConfigError, match=r"state\.npz"):
        registry.register("pricing", policy_dir)
    assert registry.versions() == []


@pytest.mark.parametrize("name", ["../escape", ".hidden", "", "a/b", "x" * 65, "spaces here"])
def test_bad_names_are_refused(registry: Registry, policy_dir: Path, name: str) -> None:
    with pytest.raises(ValidationError) as info:
        registry.register(name, policy_dir)
    assert info.value.field == "name"
    assert not (registry.root / "escape").exists()


def test_parent_must_exist_and_is_recorded(registry: Registry, policy_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="pricing@1"):
        registry.register("pricing", policy_dir, lineage=Lineage(parent=ModelRef("pricing", 1)))
    registry.register("pricing", policy_dir)
    tuned = registry.register("pricing", save_linucb(tmp_path / "tuned", alpha=0.2),
                              lineage=Lineage(parent=ModelRef("pricing", 1)))
    assert tuned.lineage.parent == ModelRef("pricing", 1)
    with pytest.raises(ValidationError, match="parent"):
        Lineage(parent=ModelRef("pricing"))


def test_default_actor_is_the_os_user() -> None:
    assert default_actor()
    assert default_actor() != ""


def test_empty_actor_is_refused(registry: Registry, policy_dir: Path) -> None:
    with pytest.raises(ValidationError) as info:
        registry.register("pricing", policy_dir, actor="  ")
    assert info.value.field == "actor"


def test_a_second_registry_on_the_same_home_sees_the_versions(registry: Registry, policy_dir: Path) -> None:
    registry.register("pricing", policy_dir)
    with Registry(registry.home) as other:
        assert other.get("pricing", 1).content_hash == registry.get("pricing", 1).content_hash
        other.verify("pricing", 1)
