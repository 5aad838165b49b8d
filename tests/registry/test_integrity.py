"""Signatures and hashes: a tampered, unsigned or re-signed version is refused by verify, load and promotion."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest

from rlops.errors import ConfigError, NotFoundError, StorageError
from rlops.home import Home
from rlops.policies import PolicyInput
from rlops.policies.io import load_policy
from rlops.registry import ENV_VAR, KeySource, Registry, SigningKey, Stage, load_signing_key
from tests.registry.conftest import BANDIT


@pytest.fixture
def registered(registry: Registry, policy_dir: Path, tmp_path: Path) -> Path:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"status": "pass", "gates": [{"gate": {"name": "dr"}, "status": "pass",
                                                                "reason": "0.3 > 0.2"}]}))
    registry.register("pricing", policy_dir, report=report)
    return registry.folder("pricing", 1)


def _flip(path: Path, offset: int = -2) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_load_gives_the_registered_policy(registry: Registry, registered: Path, policy_dir: Path) -> None:
    loaded = registry.load("pricing", 1)
    original = load_policy(policy_dir)
    batch = PolicyInput.from_contexts(BANDIT.schema, BANDIT.sample_contexts(32, np.random.default_rng(0)))
    np.testing.assert_array_equal(loaded.act(batch, np.random.default_rng(1)).probabilities,
                                  original.act(batch, np.random.default_rng(1)).probabilities)


@pytest.mark.parametrize("rel", ["policy/state.npz", "policy/manifest.json", "report.json", "registration.json"])
def test_one_changed_byte_is_refused_naming_the_file(registry: Registry, registered: Path, rel: str) -> None:
    _flip(registered / rel)
    for check in (registry.verify, registry.load, registry.details):
        with pytest.raises(ConfigError, match=re.escape(rel.split("/")[-1])):
            check("pricing", 1)
    with pytest.raises(ConfigError):
        registry.transition("pricing", 1, Stage.CANARY, reason="try")
    assert registry.get("pricing", 1).stage is Stage.CANDIDATE
    registry.transition("pricing", 1, Stage.RETIRED, reason="tampered")  # retiring needs no valid artefact


def test_an_edited_manifest_that_still_parses_is_refused(registry: Registry, registered: Path) -> None:
    manifest = registered / "policy" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["config"]["alpha"] = 5.0
    manifest.write_text(json.dumps(data, indent=2, sort_keys=True))
    with pytest.raises(ConfigError, match=r"manifest\.json"):
        registry.load("pricing", 1)


def test_unsigned_is_refused(registry: Registry, registered: Path) -> None:
    (registered / "registration.sig").unlink()
    with pytest.raises(ConfigError, match=r"registration\.sig: missing: pricing@1 is unsigned"):
        registry.load("pricing", 1)


def test_a_garbled_signature_is_refused(registry: Registry, registered: Path) -> None:
    (registered / "registration.sig").write_text("not base64!!")
    with pytest.raises(ConfigError, match=r"registration\.sig"):
        registry.verify("pricing", 1)


def test_an_added_file_is_refused(registry: Registry, registered: Path) -> None:
    (registered / "policy" / "extra.pt").write_bytes(b"payload")
    with pytest.raises(ConfigError, match=r"extra\.pt: not part of the signed registration"):
        registry.load("pricing", 1)


def test_a_removed_file_is_refused(registry: Registry, registered: Path) -> None:
    (registered / "report.json").unlink()
    with pytest.raises(ConfigError, match=r"report\.json: missing"):
        registry.verify("pricing", 1)


def test_a_symlink_is_refused(registry: Registry, registered: Path, tmp_path: Path) -> None:
    state = registered / "policy" / "state.npz"
    outside = tmp_path / "outside.npz"
    outside.write_bytes(state.read_bytes())
    state.unlink()
    state.symlink_to(outside)
    with pytest.raises(ConfigError, match="symbolic links"):
        registry.verify("pricing", 1)


def test_missing_files_are_not_found(registry: Registry, registered: Path) -> None:
    import shutil

    shutil.rmtree(registered)
    with pytest.raises(NotFoundError, match="missing"):
        registry.load("pricing", 1)


def _resign(folder: Path, key: SigningKey, *, swap_public_key: bool) -> None:
    path = folder / "registration.json"
    document = json.loads(path.read_text())
    document["lineage"]["scenario"] = "forged"
    if swap_public_key:
        document["public_key"], document["key_id"] = key.public_key, key.key_id
    data = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
    path.write_bytes(data)
    (folder / "registration.sig").write_bytes(base64.b64encode(key.sign(data)) + b"\n")


@pytest.mark.parametrize("swap_public_key", [True, False])
def test_resigned_with_another_key_is_refused(registry: Registry, registered: Path, swap_public_key: bool) -> None:
    _resign(registered, SigningKey.generate(), swap_public_key=swap_public_key)
    with pytest.raises(ConfigError, match="signature does not verify"):
        registry.load("pricing", 1)


def test_resigned_with_the_right_key_but_other_contents_is_refused(registry: Registry, registered: Path) -> None:
    """Even the registry's own key cannot move a registration to another name or content: the database pins them."""
    path = registered / "registration.json"
    document = json.loads(path.read_text())
    document["content_hash"] = "0" * 64
    data = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
    path.write_bytes(data)
    (registered / "registration.sig").write_bytes(base64.b64encode(registry.signing_key.sign(data)))
    with pytest.raises(ConfigError, match="content_hash"):
        registry.verify("pricing", 1)


def test_trusted_keys_restrict_the_signers(home: Home, registered: Path) -> None:
    with Registry(home, trusted_keys={SigningKey.generate().public_key}) as strict, \
            pytest.raises(ConfigError, match="not trusted"):
        strict.load("pricing", 1)
    with Registry(home) as lenient:
        key = lenient.get("pricing", 1).public_key
    with Registry(home, trusted_keys={key}) as strict:
        strict.load("pricing", 1)


def test_signing_key_from_the_environment(home: Home, policy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = SigningKey.generate()
    monkeypatch.setenv(ENV_VAR, key.to_base64())
    with Registry(home) as registry:
        v = registry.register("pricing", policy_dir)
        assert registry.signing_key.source is KeySource.ENVIRONMENT
    assert v.public_key == key.public_key
    assert not (home.root / "keys" / "registry_ed25519").exists()
    monkeypatch.delenv(ENV_VAR)
    with Registry(home) as registry:  # a new home key signs v2; v1 keeps verifying with its recorded key
        v2 = registry.register("pricing", policy_dir)
        assert v2.public_key != key.public_key
        registry.verify("pricing", 1)
        registry.verify("pricing", 2)


@pytest.mark.parametrize("value", ["***", base64.b64encode(b"short").decode()])
def test_a_bad_environment_key_is_refused_without_echoing_it(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=ENV_VAR) as info:
        load_signing_key(tmp_path, environ={ENV_VAR: value})
    assert value not in str(info.value)


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    key = load_signing_key(tmp_path / "keys", environ={})
    assert key.source is KeySource.HOME
    assert load_signing_key(tmp_path / "keys", environ={}).public_key == key.public_key  # read back, not recreated
    path = tmp_path / "keys" / "registry_ed25519"
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_signing_key(tmp_path / "keys", environ={})


def test_a_malformed_key_file_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    path = keys / "registry_ed25519"
    path.write_text("garbage")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="PEM"):
        load_signing_key(keys, environ={})
    with pytest.raises(ConfigError, match="no signing key"):
        load_signing_key(tmp_path / "none", environ={}, create=False)


def test_an_unwritable_keys_folder_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "keys"
    blocker.write_text("a file in the way")
    with pytest.raises(StorageError, match="signing key"):
        load_signing_key(blocker, environ={})
