"""Reference profiles from logged data, and the reference a deployment's drift is measured against.

A :class:`~rlops.monitoring.drift.ReferenceProfile` is built from a policy version's training or validation data
and stored with the version in the registry (``Registry.register(..., reference=...)``, signed with it). This module
builds one from an interactions table (the joined table ``Engine.interactions(...).interactions`` returns, or a
Parquet file ``rlops events export`` wrote) or straight from a home folder's event log, and finds the registered
profile of the policy a deployment serves.

Example:
    >>> table = engine.interactions("pricing").interactions           # doctest: +SKIP
    >>> profile = profile_interactions(table, engine.spec("pricing").schema_)  # doctest: +SKIP
    >>> registry.register("pricing", "trained/policy", reference=profile)     # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from rlops.errors import ConfigError, NotFoundError, ValidationError
from rlops.events.tables import served_in
from rlops.monitoring.drift.profile import ReferenceProfile
from rlops.schema import Schema
from rlops.schema.actions import BoxActions, DiscreteActions

if TYPE_CHECKING:
    from rlops.home import Home
    from rlops.registry import ModelRef, Registry


@dataclass(frozen=True)
class RegisteredReference:
    """A reference profile and the registry version it was registered with.

    Attributes:
        ref: the version (``NAME@VERSION``).
        profile: its reference profile (read after the version's signature and file hashes were verified).
    """

    ref: ModelRef
    profile: ReferenceProfile


# ---- reading logged tables ----------------------------------------------------------------------------------------


def logged_contexts(table: pa.Table, schema: Schema) -> list[dict[str, Any]]:
    """Each row's raw context: from a JSON ``context`` column (the event log's), a struct column (an export's), or
    one column per feature."""
    from rlops.evaluation.data_check import logged_contexts as contexts

    return contexts(table, schema)


def encode_logged(table: pa.Table, schema: Schema, name: str = "live") -> npt.NDArray[np.float64]:
    """The encoded context matrix ``(rows, schema.width)`` of logged decisions.

    Logged contexts were validated when the decision was made, so they are encoded directly; a row that does not
    fit the schema (logged under an older schema, say) is validated to name the field that breaks it.

    Raises:
        ValidationError: naming the row and field (``live[12].temperature: is required``).
    """
    contexts = logged_contexts(table, schema)
    if not contexts:
        return np.empty((0, schema.width), dtype=np.float64)
    try:
        return schema.encode(contexts)
    except (KeyError, TypeError, ValueError, IndexError):
        return schema.encode([schema.validate_context(c, f"{name}[{i}]") for i, c in enumerate(contexts)])


def logged_actions(table: pa.Table, schema: Schema, name: str = "actions") -> npt.NDArray[Any] | None:
    """The chosen actions of logged rows in the form batch drift takes, or ``None`` when there are none to compare.

    Discrete actions become indices into the schema's action names (by name, from the ``action`` column, so a log
    with another action order still lines up; else from ``action_index``); continuous actions become a
    ``(rows, dim)`` matrix from the JSON ``action`` column; candidate action spaces have no fixed actions (``None``).

    Raises:
        ValidationError: an action that is not one of the schema's, naming the row.
    """
    space = schema.actions
    columns = table.column_names
    if isinstance(space, DiscreteActions):
        if "action" in columns:
            index = {a: i for i, a in enumerate(space.names)}
            chosen = table["action"].to_pylist()
            out = np.empty(len(chosen), dtype=np.int64)
            for i, action in enumerate(chosen):
                found = index.get(action)
                if found is None:
                    raise ValidationError(f"{name}[{i}]", f"{action!r} is not one of the schema's actions "
                                                          f"{list(space.names)[:10]}")
                out[i] = found
            return out
        if "action_index" in columns:
            return np.asarray(table["action_index"].to_numpy(zero_copy_only=False), dtype=np.int64)
        return None
    if isinstance(space, BoxActions) and "action" in columns:
        values = table["action"].to_pylist()
        try:
            rows = [json.loads(v) if isinstance(v, str) else v for v in values]
            return np.asarray(rows, dtype=np.float64).reshape(len(rows), space.dim)
        except (TypeError, ValueError) as e:
            raise ValidationError(name, f"expected one vector of {space.dim} numbers per row ({e})") from e
    return None


def logged_rewards(table: pa.Table) -> npt.NDArray[np.float64] | None:
    """The ``reward`` column as floats, or ``None`` when the table has none or any row lacks one."""
    if "reward" not in table.column_names or table["reward"].null_count:
        return None
    return np.asarray(table["reward"].to_numpy(zero_copy_only=False), dtype=np.float64)


# ---- building profiles --------------------------------------------------------------------------------------------


def profile_interactions(table: pa.Table, schema: Schema, *, n_bins: int = 10, sample_size: int = 2000,
                         row_sample_size: int = 2000, seed: int = 0) -> ReferenceProfile:
    """Profile logged interactions: contexts, the action distribution and the reward distribution.

    Args:
        table: interactions: the joined table of ``Engine.interactions(...)``, or a Parquet file
            ``rlops events export`` wrote, read with ``pyarrow.parquet.read_table`` (a JSON or struct ``context``
            column, or one column per feature; ``action`` or ``action_index``; ``reward`` if known). Decisions
            without rewards (the raw decision table) give a profile without a reward distribution.
        schema: the policy's schema (its encoded columns become the profile's).
        n_bins: quantile bins per numeric column, >= 2 (default 10).
        sample_size: sorted reference values kept per numeric column, >= 10 (default 2000).
        row_sample_size: encoded rows kept for the domain classifier, >= 0 (default 2000).
        seed: seed of the row sample (default 0).

    Raises:
        ValidationError: a context that does not fit the schema, an unknown action, fewer than 2 rows.
    """
    if table.num_rows < 2:
        raise ValidationError("reference", f"has {table.num_rows} interactions; a reference profile needs at "
                                           "least 2")
    matrix = encode_logged(table, schema, "reference")
    return ReferenceProfile.build(schema, matrix, actions=logged_actions(table, schema),
                                  rewards=logged_rewards(table), n_bins=n_bins, sample_size=sample_size,
                                  row_sample_size=row_sample_size, seed=seed)


def profile_parquet(path: str | Path, schema: Schema, **options: Any) -> ReferenceProfile:
    """:func:`profile_interactions` of a Parquet file (``interactions-NAME.parquet`` from ``rlops events export``).

    Raises:
        NotFoundError: the file is missing.
        ValidationError: it is not Parquet, or its rows do not fit the schema.
    """
    import pyarrow.parquet as pq

    file = Path(path)
    if not file.is_file():
        raise NotFoundError(f"reference: {file} does not exist")
    try:
        table = pq.read_table(file)
    except (OSError, pa.ArrowInvalid) as e:
        raise ValidationError("reference", f"{file} is not a readable Parquet file: {e}") from e
    return profile_interactions(table, schema, **options)


def profile_from_log(home: Home, deployment: str, schema: Schema, *, start_us: int | None = None,
                     end_us: int | None = None, **options: Any) -> ReferenceProfile:
    """:func:`profile_interactions` of a deployment's interactions in a home folder's event log.

    Args:
        home: the home folder.
        deployment: the deployment whose served decisions (joined with their rewards under its reward spec,
            windows still open included when they have an outcome) make the reference.
        schema: the policy's schema.
        start_us: first decision time included, microseconds since the epoch (default: from the start).
        end_us: decision times up to but excluding this one (default: to the end).
        **options: ``n_bins``, ``sample_size``, ``row_sample_size``, ``seed`` of :func:`profile_interactions`.

    Raises:
        NotFoundError: no such deployment.
        ValidationError: fewer than 2 interactions in the range.
    """
    from rlops.engine import Engine

    with Engine(home) as engine:
        table = engine.interactions(deployment, include_pending=True).interactions
    table = served_in(table, deployment, start_us, end_us)
    if table.num_rows < 2:
        raise ValidationError("reference", f"deployment {deployment!r} has {table.num_rows} interactions with a "
                                           "reward in that range; a reference profile needs at least 2")
    return profile_interactions(table, schema, **options)


# ---- finding a deployment's registered reference ------------------------------------------------------------------


def registered_reference(registry: Registry, policy_folder: str | Path | None,
                         policy_version: str | None = None) -> RegisteredReference | None:
    """The reference profile registered with the policy a deployment serves, if any.

    A deployment serves a copy of a policy folder; the registry version is found by that copy's content hash
    (the newest version with that content and a reference profile), or, first, when ``policy_version`` is a
    registry reference (``NAME@VERSION``) of a registered version with a profile, by that.

    Args:
        registry: the home's registry.
        policy_folder: the policy folder the deployment serves (``None``: look up by ``policy_version`` only).
        policy_version: the version its decisions are attributed to (``NAME@rN`` or a registered ``NAME@N``).

    Raises:
        ConfigError: the matching version was changed after it was registered (its signature no longer verifies).
    """
    from rlops.policies.io import content_hash
    from rlops.registry import ModelRef
    from rlops.registry.artifact import REFERENCE

    if policy_version is not None:
        try:
            ref = ModelRef.parse(policy_version, require_version=True)
            record = registry.get(ref.name, ref.version)
        except (ValidationError, NotFoundError):
            record = None
        if record is not None and REFERENCE in record.registration.get("files", {}):
            profile = registry.reference(record.name, record.version)
            if profile is not None:
                return RegisteredReference(record.ref, profile)
    if policy_folder is None:
        return None
    folder = Path(policy_folder)
    if not (folder / "manifest.json").is_file():
        return None
    digest = content_hash(folder)
    matches = [v for v in registry.versions() if v.content_hash == digest
               and REFERENCE in v.registration.get("files", {})]
    if not matches:
        return None
    newest = max(matches, key=lambda v: v.created_at_us)
    profile = registry.reference(newest.name, newest.version)
    if profile is None:  # listed in the signed files, so verify() found it; only a race could get here
        raise ConfigError(f"{newest.ref}: its reference profile disappeared while it was read")
    return RegisteredReference(newest.ref, profile)
