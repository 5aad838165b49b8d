"""What changed between two registered versions: content, lineage, configuration, validation gates.

Compute only: :func:`diff_versions` returns typed :class:`Change` rows; ``rlops models diff`` renders them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rlops.registry.store import ModelVersion

#: Lists longer than this are compared by a hash of their contents rather than element by element.
LONG_LIST = 8


class DiffSection(StrEnum):
    """Which part of a version a change is in."""

    CONTENT = "content"  # content hash, policy kind, files
    LINEAGE = "lineage"  # training data, reward spec, scenario, parent, rlops version and commit
    CONFIG = "config"  # the policy manifest: hyperparameters, preprocessing, schema
    GATES = "gates"  # the validation report: overall status and each gate's verdict


@dataclass(frozen=True)
class Change:
    """One field that differs; ``None`` on a side means the field is absent there."""

    section: DiffSection
    key: str
    before: Any
    after: Any


@dataclass(frozen=True)
class VersionDetails:
    """A version with the contents of its verified files.

    Attributes:
        version: the database record.
        manifest: its policy folder's ``manifest.json``.
        report: its validation report (``report.json``), or ``None`` when it was registered without one.
    """

    version: ModelVersion
    manifest: dict[str, Any]
    report: dict[str, Any] | None


def _digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``dotted.key -> leaf``; long lists as a short hash of their contents."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in sorted(value, key=str):
            out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        if not value and prefix:
            out[prefix] = {}
        return out
    if isinstance(value, list) and len(value) > LONG_LIST:
        return {prefix: f"list[{len(value)}] {_digest(value)}"}
    return {prefix: value}


def content_fields(details: VersionDetails) -> dict[str, Any]:
    v = details.version
    files = v.registration.get("files", {})
    return {"content_hash": v.content_hash, "kind": v.kind, "signed_by": v.registration.get("key_id"),
            **{f"files.{name}": digest[:12] for name, digest in files.items()}}


def config_fields(details: VersionDetails) -> dict[str, Any]:
    m = details.manifest
    out = {"format_version": m.get("format_version"), "rlops_version": m.get("rlops_version"),
           "schema": _digest(m.get("schema"))}
    out.update(flatten(m.get("config", {}), "config"))
    if "preprocessing" in m:
        out.update(flatten(m["preprocessing"], "preprocessing"))
    return out


def gate_fields(details: VersionDetails) -> dict[str, Any]:
    """Whether there is a report, its overall status and ``gate NAME -> "status: reason"``."""
    report = details.report
    if report is None:
        return {"report": None}
    out: dict[str, Any] = {"report": "included", "status": report.get("status")}
    for gate in report.get("gates") or []:
        if isinstance(gate, Mapping):
            name = (gate.get("gate") or {}).get("name", "?") if isinstance(gate.get("gate"), Mapping) else "?"
            out[f"gate {name}"] = f"{gate.get('status')}: {gate.get('reason', '')}"
    return out


def diff_versions(a: VersionDetails, b: VersionDetails) -> list[Change]:
    """Every field that differs between ``a`` (before) and ``b`` (after), section by section, keys sorted."""
    changes: list[Change] = []
    for section, fields in ((DiffSection.CONTENT, content_fields), (DiffSection.LINEAGE,
                                                                       lambda d: d.version.lineage.flat()),
                            (DiffSection.CONFIG, config_fields), (DiffSection.GATES, gate_fields)):
        before, after = fields(a), fields(b)
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                changes.append(Change(section, key, before.get(key), after.get(key)))
    return changes
