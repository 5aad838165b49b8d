"""Policy folders saved by earlier releases keep loading and keep deciding the same way.

The folders under fixtures/ were written by format_version 1 and are never regenerated: when the format changes,
add a migration in rlops.policies.io and keep these passing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rlops.errors import ConfigError, NotFoundError
from rlops.policies import PolicyInput, load_policy, read_manifest
from rlops.scenarios import SyntheticBandit

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_saved_folders_from_format_1_decide_identically(name: str) -> None:
    policy = load_policy(FIXTURES / name)
    expected = EXPECTED[name]
    batch = PolicyInput.from_contexts(SyntheticBandit().schema, expected["contexts"])
    result = policy.act(batch, np.random.default_rng(7))
    assert result.action.tolist() == expected["action"]
    np.testing.assert_allclose(result.propensity, expected["propensity"], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(result.probabilities), expected["probabilities"], rtol=1e-12)


def _copy_with_manifest(tmp_path: Path, **changes: object) -> Path:
    folder = tmp_path / "p"
    shutil.copytree(FIXTURES / "linucb-v1", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_newer_format_is_refused_with_advice(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"format_version 99 is newer than this rlops supports .*upgrade rlops"):
        load_policy(_copy_with_manifest(tmp_path, format_version=99))


@pytest.mark.parametrize(("changes", "message"), [
    ({"format": "something-else"}, "format is not 'rlops.policy'"),
    ({"format_version": 0}, "format_version must be a positive integer"),
    ({"kind": "unicorn"}, "unknown policy kind 'unicorn'"),
    ({"kind": []}, "kind must be a string and files a mapping"),
    ({"files": "abc"}, "kind must be a string and files a mapping"),
    ({"files": None}, "kind must be a string and files a mapping"),
])
def test_bad_manifests_are_refused(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_policy(_copy_with_manifest(tmp_path, **changes))


def test_missing_folder_and_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not a policy folder"):
        read_manifest(tmp_path)
    folder = _copy_with_manifest(tmp_path)
    (folder / "state.npz").unlink()
    with pytest.raises(ConfigError, match="listed in the manifest is missing"):
        load_policy(folder)


def test_manifest_config_that_does_not_fit_the_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config does not fit policy kind 'linucb'"):
        load_policy(_copy_with_manifest(tmp_path, config={"epsilon": 0.1}))  # alpha and l2 missing
    with pytest.raises(ConfigError, match="config does not fit policy kind 'epsilon_greedy'"):
        load_policy(_copy_with_manifest(tmp_path / "b", kind="epsilon_greedy"))
