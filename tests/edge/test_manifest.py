"""Loading an export: the model's hash is checked, and every way a manifest can be wrong is one clear error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rlops.edge import EdgePolicy
from rlops.errors import ConfigError, NotFoundError
from rlops.export import export_policy
from tests.export.cases import CASES, contexts


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    return export_policy(CASES["softmax_linear"](), tmp_path / "m.onnx", policy_version="m@r1").model_path


def test_loads_from_the_model_or_the_manifest(exported: Path) -> None:
    by_model = EdgePolicy.load(exported).decide(contexts(1)[0], rng=0)
    by_manifest = EdgePolicy.load(exported.with_name("m.manifest.json")).decide(contexts(1)[0], rng=0)
    assert (by_model.action, by_model.probabilities) == (by_manifest.action, by_manifest.probabilities)


@pytest.mark.parametrize("tamper", ["flip", "truncate", "append"])
def test_a_changed_model_file_is_refused(exported: Path, tamper: str) -> None:
    data = bytearray(exported.read_bytes())
    if tamper == "flip":
        data[len(data) // 2] ^= 0x01
    elif tamper == "truncate":
        del data[-10:]
    else:
        data += b"\0"
    exported.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="does not match the sha256 in its manifest"):
        EdgePolicy.load(exported)


def _rewrite(exported: Path, change: dict[str, Any]) -> None:
    path = exported.with_name("m.manifest.json")
    manifest = json.loads(path.read_text())
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = manifest
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(("change", "message"), [
    ({"format_version": 2}, "format_version 2 is newer than this rlops supports"),
    ({"format": "rlops.policy"}, "format is not 'rlops.edge'"),
    ({"exploration.temperature": -1.0}, "exploration.softmax.temperature: Input should be greater than 0"),
    ({"exploration.rule": "ucb"}, "exploration: Input tag 'ucb' found using 'rule' does not match"),
    ({"preprocessing.columns.columns": []}, "preprocessing.columns does not match the schema's features"),
    ({"model.file": "other.onnx"}, "model file other.onnx is missing"),
    ({"actions": ["a", "b"]}, "actions ['a', 'b'] are not the schema's ['a', 'b', 'c', 'd']"),
    ({"exploration": {"rule": "gaussian", "low": [0.0], "high": [1.0]}},
     "exploration.rule 'gaussian' does not fit the schema's 'discrete' actions"),
])
def test_a_bad_manifest_is_one_clear_error(exported: Path, change: dict[str, Any], message: str) -> None:
    _rewrite(exported, change)
    with pytest.raises((ConfigError, NotFoundError)) as error:
        EdgePolicy.load(exported)
    assert message in str(error.value)


def test_missing_files_are_not_found(tmp_path: Path, exported: Path) -> None:
    with pytest.raises(NotFoundError, match="no edge manifest"):
        EdgePolicy.load(tmp_path / "nothing.onnx")
    exported.with_name("m.manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable manifest"):
        EdgePolicy.load(exported)
