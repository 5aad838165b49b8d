"""Configuration documents (schemas, reward specs, deployments): YAML or JSON files read into pydantic models.

Every part that loads a declarative file goes through here, so every malformed file is refused the same way: one
:class:`~rlops.errors.ConfigError` naming the file, the field and the rule.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from rlops.errors import ConfigError

Model = TypeVar("Model", bound=pydantic.BaseModel)


def read_document(path: str | Path, what: str) -> Any:
    """Parse a ``.json`` file as JSON and anything else as YAML.

    Args:
        path: the file.
        what: what the file should hold, for the error message (``"schema"``, ``"reward spec"``, ...).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read {what} file {path}: {e.strerror or e}") from e
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML/JSON: {e}") from e


def write_document(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON when the suffix is ``.json``, else as YAML (keys in their given order)."""
    path = Path(path)
    text = json.dumps(data, indent=2) if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text)


def _plain(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def parse_model(cls: type[Model], data: Any, source: str, what: str) -> Model:
    """Validate parsed data into ``cls``; the first problem becomes ``source: field.path: rule``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of {what} keys, got {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        rule = "unknown key" if first["type"] == "extra_forbidden" else _plain(first["msg"])
        raise ConfigError(f"{source}: {where}: {rule}" if where else f"{source}: {rule}") from e
