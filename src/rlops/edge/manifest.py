"""The manifest of an exported policy: what a device needs besides the ``.onnx`` file, as one JSON document.

``rlops export DEPLOYMENT --onnx model.onnx`` writes ``model.onnx`` and, next to it, ``model.manifest.json``::

    {"format": "rlops.edge", "format_version": 1, "rlops_version": "0.1.0",
     "deployment": "pricing", "policy_version": "pricing@r3",
     "source": {"kind": "linucb", "config": {...}, "content_hash": "<policy folder hash>"},
     "model": {"file": "model.onnx", "sha256": "<hash of model.onnx>", "input": "context", "opset": 17},
     "schema": {...}, "actions": ["a", "b", "c"],
     "preprocessing": {"columns": [...], "in_graph": "..."},
     "exploration": {"rule": "epsilon_greedy", "epsilon": 0.1}}

``format_version`` is the promise: a manifest written by any earlier release loads in every later one. The
``sha256`` of the model file is checked whenever it is loaded, so an edited or truncated model is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from rlops import __version__
from rlops.edge.continuous import ActorNoise, Gaussian, SquashedGaussian
from rlops.edge.discrete import Categorical, EpsilonGreedy, Greedy, Softmax, Thompson
from rlops.edge.layout import RawLayout
from rlops.errors import ConfigError, NotFoundError
from rlops.files import sha256_file
from rlops.schema import BoxActions, DiscreteActions, Schema

FORMAT = "rlops.edge"
FORMAT_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"
#: The graph's one input: the raw features, float64 of shape ``(n, layout.width)``.
INPUT = "context"
IN_GRAPH = ("input: float64 (n, width), one column per scalar feature (booleans 0/1, categoricals as their "
            "vocabulary index, len(vocabulary) for 'other'), `size` columns per vector. The graph rebuilds "
            "Schema.encode's matrix as gathered * keep + (gathered == code), gathered = raw @ select (0/1), code NaN "
            "for pass-through columns, and feeds it to the policy's network.")

#: The manifest's ``exploration``: one of the rules, told apart by its ``rule`` field.
RuleSpec = Annotated[
    Greedy | EpsilonGreedy | Softmax | Categorical | Thompson | Gaussian | SquashedGaussian | ActorNoise,
    Field(discriminator="rule"),
]


class ExportedFrom(BaseModel):
    """The policy the graph was exported from.

    Attributes:
        kind: its policy kind (``linucb``, ``softmax``, ``sb3``, ...).
        config: its hyperparameters, as in its own manifest.
        content_hash: :func:`rlops.policies.content_hash` of its saved folder, when exported from one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    config: dict[str, Any] = Field(default_factory=dict)
    content_hash: str | None = None


class ModelFile(BaseModel):
    """The ONNX file: its name (next to the manifest), its SHA-256, its input name and opset."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    file: str = Field(pattern=r"^[^/\\]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: str = INPUT
    opset: int = Field(ge=1)


class Preprocessing(BaseModel):
    """How contexts become the graph's input (see :mod:`rlops.edge.layout`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    columns: RawLayout
    in_graph: str = IN_GRAPH


class EdgeManifest(BaseModel):
    """Everything the edge runtime needs besides the ONNX file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    format: Literal["rlops.edge"] = "rlops.edge"
    format_version: int = Field(default=FORMAT_VERSION, ge=1)
    rlops_version: str = __version__
    deployment: str | None = None
    policy_version: str
    source: ExportedFrom
    model: ModelFile
    schema_: Schema = Field(alias="schema")
    actions: list[str]
    preprocessing: Preprocessing
    exploration: RuleSpec

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True) + "\n"


def _check_actions(manifest: EdgeManifest, where: Path) -> None:
    """The action names, the rule and the schema's action space must agree."""
    schema, rule = manifest.schema_, manifest.exploration
    if manifest.actions != schema.action_names():
        raise ConfigError(f"{where}: actions {manifest.actions[:20]} are not the schema's {schema.action_names()[:20]}")
    box = isinstance(rule, Gaussian | SquashedGaussian | ActorNoise)
    if isinstance(schema.actions, BoxActions):
        if not isinstance(rule, Gaussian | SquashedGaussian | ActorNoise) or len(rule.low) != schema.actions.dim:
            raise ConfigError(f"{where}: exploration.rule {rule.rule.value!r} does not act on the schema's box of "
                              f"dimension {schema.actions.dim}")
    elif box or not isinstance(schema.actions, DiscreteActions):
        raise ConfigError(f"{where}: exploration.rule {rule.rule.value!r} does not fit the schema's "
                          f"'{schema.actions.type}' actions")


def manifest_path(model_path: str | os.PathLike[str]) -> Path:
    """The manifest next to an ONNX file: ``model.onnx`` -> ``model.manifest.json``."""
    path = Path(model_path)
    return path.with_name(path.stem + MANIFEST_SUFFIX)


def read_manifest(path: str | os.PathLike[str]) -> tuple[EdgeManifest, Path]:
    """Read the manifest of an export, given the ``.onnx`` file or the manifest itself, and verify the model's hash.

    Returns:
        The manifest and the path of its ONNX file.

    Raises:
        NotFoundError: the manifest or the model file is missing.
        ConfigError: the manifest is malformed, from a newer rlops, or inconsistent with its schema; or the model
            file does not match its SHA-256 (edited, truncated or swapped).
    """
    given = Path(path)
    where = given if given.name.endswith(MANIFEST_SUFFIX) else manifest_path(given)
    try:
        raw = json.loads(where.read_text())
    except FileNotFoundError as e:
        raise NotFoundError(f"{where}: no edge manifest (export one with 'rlops export DEPLOYMENT --onnx FILE')") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{where}: unreadable manifest: {e}") from e
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ConfigError(f"{where}: format is not {FORMAT!r}")
    version = raw.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(f"{where}: format_version must be a positive integer")
    if version > FORMAT_VERSION:
        raise ConfigError(f"{where}: format_version {version} is newer than this rlops supports ({FORMAT_VERSION}); "
                          f"upgrade rlops")
    try:
        manifest = EdgeManifest.model_validate(raw)
    except PydanticError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}: {field}: {first['msg']}") from e
    if manifest.preprocessing.columns != RawLayout.from_schema(manifest.schema_):
        raise ConfigError(f"{where}: preprocessing.columns does not match the schema's features")
    _check_actions(manifest, where)
    model = where.with_name(manifest.model.file)
    if not model.is_file():
        raise NotFoundError(f"{where}: model file {model.name} is missing")
    actual = sha256_file(model)
    if actual != manifest.model.sha256:
        raise ConfigError(f"{model}: the file does not match the sha256 in its manifest ({manifest.model.sha256[:12]}"
                          f"..., file {actual[:12]}...): it was changed after export; export it again")
    return manifest, model
