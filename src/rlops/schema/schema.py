"""The schema of a decision problem: its context features and its action space."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlops.configfile import parse_model, read_document, write_document
from rlops.errors import ValidationError
from rlops.schema.actions import ActionSpace, BoxActions, CandidateActions, DiscreteActions
from rlops.schema.features import MAX_STRING_LENGTH, Feature

Context = dict[str, Any]


class PiiPolicy(StrEnum):
    """What the event log keeps of a PII field."""

    DROP = "drop"
    HASH = "hash"
    KEEP = "keep"


def _validate_mapping(
    features: Sequence[Any], raw: Any, path: str, by_name: Mapping[str, Any]
) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValidationError(path, f"expected an object of features, got {type(raw).__name__}")
    if not raw.keys() <= by_name.keys():
        key = next(k for k in raw if k not in by_name)
        raise ValidationError(f"{path}.{str(key)[:64]}", f"unknown field (known: {sorted(by_name)[:20]})")
    result: dict[str, Any] = {}
    for feature in features:
        value = raw.get(feature.name)
        field_path = f"{path}.{feature.name}"
        if value is None:
            if feature.required:
                raise ValidationError(field_path, "is required")
            value = feature.default
        result[feature.name] = feature.validate_value(value, field_path)
    return result


_PII_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PII_MAX = 1024


def _pii_value(value: Any, path: str) -> str | int | float | bool:
    if isinstance(value, str):
        if len(value) > _PII_MAX:
            raise ValidationError(path, f"at most {_PII_MAX} characters")
        return value
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise ValidationError(path, f"a PII field holds a string, number or boolean, not {type(value).__name__}")


def _encode_rows(features: Sequence[Any], rows: Sequence[Mapping[str, Any]], width: int) -> np.ndarray:
    out = np.empty((len(rows), width), dtype=np.float64)
    for i, row in enumerate(rows):
        values: list[float] = []
        for feature in features:
            feature.encode_into(row[feature.name], values)
        out[i] = values
    return out


class Schema(BaseModel):
    """Context features plus an action space, loaded from and saved to YAML or JSON.

    Example:
        >>> s = Schema.model_validate({
        ...     "features": [{"name": "temperature", "type": "float", "min": -40, "max": 60}],
        ...     "actions": {"type": "discrete", "names": ["heat", "off"]}})
        >>> s.encode([s.validate_context({"temperature": 21.5})]).tolist()
        [[21.5]]
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    features: list[Feature] = Field(min_length=1)
    actions: ActionSpace
    pii: dict[str, PiiPolicy] = Field(default_factory=dict, description=(
        "Context fields about the person (not features: no policy input) and what the log keeps of each: drop "
        "(nothing), hash (a keyed HMAC, the same for the same value: joins without the value), keep."))

    @model_validator(mode="after")
    def _unique_names(self) -> Schema:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features: duplicate names {dupes}")
        for name in self.pii:
            if not _PII_NAME.fullmatch(name):
                raise ValueError(f"pii.{name[:64]}: a field name is a Python-style identifier")
            if name in names:
                raise ValueError(f"pii.{name}: is a feature; PII fields are extra context fields, not features")
        return self

    # ---- construction -------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, source: str = "schema") -> Schema:
        """Build from parsed YAML/JSON; a malformed schema raises :class:`ConfigError` naming the field."""
        return parse_model(cls, data, source, "schema")

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        """Load a schema from a ``.yaml``/``.yml`` or ``.json`` file."""
        return cls.from_dict(read_document(path, "schema"), source=str(path))

    def save(self, path: str | Path) -> None:
        """Write as JSON when the suffix is ``.json``, else YAML."""
        write_document(path, self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude_defaults=False)
        if not data["pii"]:
            del data["pii"]  # schemas without PII fields read and hash as they did before the field existed
        return data

    # ---- layout ---------------------------------------------------------------------------------------------------

    @cached_property
    def _by_name(self) -> dict[str, Any]:
        return {f.name: f for f in self.features}

    @cached_property
    def width(self) -> int:
        """Number of columns of the encoded context matrix."""
        return sum(f.width for f in self.features)

    @cached_property
    def column_names(self) -> list[str]:
        """Names of the encoded matrix's columns, in order (``color=red`` for one-hot, ``v[3]`` for vectors)."""
        return [c for f in self.features for c in f.column_names()]

    @property
    def n_actions(self) -> int | None:
        """Number of actions for a fixed discrete space, else ``None``."""
        return self.actions.n if isinstance(self.actions, DiscreteActions) else None

    # ---- validation and encoding ---------------------------------------------------------------------------------

    def validate_context(self, raw: Any, path: str = "context") -> Context:
        """Check a raw context and return it with defaults filled in and values normalised.

        Raises:
            ValidationError: naming the field and rule, e.g. ``context.temperature: 412.0 is above the maximum
                60.0``. Unknown fields, missing required fields, wrong types and NaN/inf are all refused.
        """
        if not self.pii or not isinstance(raw, Mapping) or not (raw.keys() & self.pii.keys()):
            return _validate_mapping(self.features, raw, path, self._by_name)
        features = {k: v for k, v in raw.items() if k not in self.pii}
        result = _validate_mapping(self.features, features, path, self._by_name)
        for name in self.pii:
            if name in raw and raw[name] is not None:
                result[name] = _pii_value(raw[name], f"{path}.{name}")
        return result

    def validate_candidates(self, raw: Any, path: str = "actions") -> list[dict[str, Any]]:
        """Check a per-request candidate list (candidate action spaces only).

        Each candidate is ``{"id": str, "features": {...}}``; ids must be unique within the request.
        """
        space = self.actions
        if not isinstance(space, CandidateActions):
            if raw is None:
                return []
            raise ValidationError(path, f"per-request candidates need an action space of type 'candidates', "
                                        f"this schema's is '{space.type}'")
        if not isinstance(raw, Sequence) or isinstance(raw, str | bytes) or len(raw) == 0:
            raise ValidationError(path, "expected a non-empty list of candidates")
        if len(raw) > space.max_candidates:
            raise ValidationError(path, f"{len(raw)} candidates is more than the maximum {space.max_candidates}")
        by_name = {f.name: f for f in space.features}
        seen: set[str] = set()
        result = []
        for i, item in enumerate(raw):
            item_path = f"{path}[{i}]"
            if not isinstance(item, Mapping):
                raise ValidationError(item_path, f"expected an object with 'id' and 'features', got "
                                                 f"{type(item).__name__}")
            extra = set(item) - {"id", "features"}
            if extra:
                raise ValidationError(f"{item_path}.{sorted(extra)[0]}", "unknown field (known: id, features)")
            cid = item.get("id")
            if not isinstance(cid, str) or not cid or len(cid) > MAX_STRING_LENGTH:
                raise ValidationError(f"{item_path}.id", f"expected a non-empty string of at most "
                                                         f"{MAX_STRING_LENGTH} characters")
            if cid in seen:
                raise ValidationError(f"{item_path}.id", f"duplicate candidate id {cid!r}")
            seen.add(cid)
            feats = _validate_mapping(space.features, item.get("features", {}), f"{item_path}.features", by_name)
            result.append({"id": cid, "features": feats})
        return result

    def encode(self, contexts: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encode validated contexts into a float64 matrix of shape ``(n, width)``, deterministically."""
        return _encode_rows(self.features, contexts, self.width)

    def encode_candidates(self, candidates: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encode one request's validated candidates into a ``(k, action_width)`` matrix."""
        space = self.actions
        if not isinstance(space, CandidateActions):
            raise ValidationError("actions", "this schema has no candidate features")
        return _encode_rows(space.features, [c["features"] for c in candidates], space.width)

    def action_names(self, candidates: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
        """Names of the actions a policy chooses among: fixed names, or the request's candidate ids."""
        if isinstance(self.actions, DiscreteActions):
            return list(self.actions.names)
        if isinstance(self.actions, CandidateActions):
            return [c["id"] for c in candidates or []]
        return []

    @property
    def is_continuous(self) -> bool:
        return isinstance(self.actions, BoxActions)
