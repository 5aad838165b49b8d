"""Profile logged interactions before they train or evaluate anything, and judge what would corrupt either.

Three layers, as everywhere in rlops: :func:`profile` computes a :class:`DataProfile` (per-feature missing,
out-of-range, unknown-category and invalid rates; propensity sanity; reward coverage; duplicates), :func:`judge`
turns it into :class:`DataCheck` verdicts against :class:`DataThresholds`, and the CLI renders them
(``rlops data check``).

The input is an interactions table, as the reward join makes it (``Engine.interactions``) or as
``rlops events export`` writes it (``interactions-<deployment>.parquet``), or any Parquet file with these columns:

- ``context``: the features, as a struct column or JSON text (or, instead, one column per feature);
- ``action`` (the chosen action's name) or ``action_index`` (its index in the schema's actions);
- ``propensity``: the probability the logging policy gave the chosen action;
- optional: ``reward``, ``decision_id``, ``actions`` (the candidate names offered, when they vary by row).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rlops.errors import NotFoundError, StorageError, ValidationError
from rlops.evaluation.status import Status, worst
from rlops.schema import Schema
from rlops.schema.features import CategoricalFeature, VectorFeature

#: Propensities below this make importance weights above 1000: legal, but estimates built on them are fragile.
TINY_PROPENSITY = 1e-3


@dataclass(frozen=True)
class FeatureProfile:
    """How one feature's logged values look against its schema declaration (rates are fractions of rows)."""

    name: str
    type: str
    missing: float  # absent or null
    invalid: float  # present but not of the declared type (a string for a float, a vector of the wrong size)
    out_of_range: float  # numeric, outside the declared [min, max]
    unknown_category: float  # categorical, not in the vocabulary

    @property
    def unusable(self) -> float:
        return self.invalid + self.out_of_range + self.unknown_category


@dataclass(frozen=True)
class PropensityProfile:
    """Counts of propensities that break importance weighting, and of chosen actions outside what was offered."""

    missing: int
    non_positive: int  # <= 0: the action could not have been taken; its weight is infinite
    above_one: int
    tiny: int  # in (0, TINY_PROPENSITY)
    unknown_action: int  # not an action of the schema (or not in the row's candidate list)
    minimum: float | None
    maximum: float | None


@dataclass(frozen=True)
class RewardProfile:
    """Rewards present, and whether they are usable numbers."""

    present: int
    missing: int
    non_finite: int
    mean: float | None
    minimum: float | None
    maximum: float | None

    @property
    def coverage(self) -> float:
        total = self.present + self.missing
        return self.present / total if total else 0.0


@dataclass(frozen=True)
class DataProfile:
    """Everything :func:`profile` measured on one table."""

    rows: int
    features: list[FeatureProfile]
    propensity: PropensityProfile
    reward: RewardProfile
    duplicate_ids: int  # rows whose decision_id appeared on an earlier row
    action_counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DataThresholds:
    """Where a finding turns from fine to a warning to a failure (fractions of rows unless said otherwise).

    Attributes:
        missing_warn / missing_fail: a feature missing on more rows than this (features with a schema default
            are filled, so missing values are legal but change what the policy saw).
        unusable_warn / unusable_fail: a feature invalid, out of range or of an unknown category.
        coverage_warn: rows with a reward; below this, a reward join or the attribution window may be wrong.
        tiny_propensity_warn: rows with a propensity below ``TINY_PROPENSITY``.
    """

    missing_warn: float = 0.01
    missing_fail: float = 0.5
    unusable_warn: float = 0.0
    unusable_fail: float = 0.05
    coverage_warn: float = 0.5
    tiny_propensity_warn: float = 0.01


@dataclass(frozen=True)
class DataCheck:
    """One verdict with the number behind it."""

    check: str
    subject: str
    status: Status
    value: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


# ---- loading --------------------------------------------------------------------------------------------------


def load_interactions(source: Path, deployment: str | None = None) -> pa.Table:
    """An interactions table from a Parquet file, or from a home folder's event log (joined under its reward spec).

    Args:
        source: a ``.parquet`` file, or a home folder (``RLOPS_HOME`` layout).
        deployment: for a home folder, the deployment to read (required when it holds several).
    """
    if source.is_file():
        try:
            return pq.read_table(source)
        except (OSError, pa.ArrowInvalid) as e:
            raise ValidationError("events", f"{source} is not a readable Parquet file: {e}") from e
    from rlops.home import Home

    if not Home.resolve(source).exists:
        raise NotFoundError(f"events: {source} is neither a Parquet file nor an rlops home folder")
    from rlops.engine import Engine

    with Engine(Home.resolve(source).require()) as engine:
        names = engine.store.names()
        if deployment is None:
            if len(names) != 1:
                raise ValidationError("deployment", f"the home folder holds {len(names)} deployments "
                                                    f"({', '.join(names) or 'none'}); name one")
            deployment = names[0]
        try:
            return engine.interactions(deployment, include_pending=True).interactions
        except OSError as e:
            raise StorageError(f"cannot read the event log of {source}: {e}") from e


def logged_contexts(table: pa.Table, schema: Schema) -> list[dict[str, Any]]:
    """Each row's raw context as a dict (struct column, JSON text, or one column per feature)."""
    names = table.column_names
    if "context" in names:
        column = table["context"]
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            out = []
            for i, text in enumerate(column.to_pylist()):
                try:
                    value = orjson.loads(text) if text is not None else {}
                except orjson.JSONDecodeError as e:
                    raise ValidationError(f"context[{i}]", f"not valid JSON: {e}") from e
                out.append(value if isinstance(value, dict) else {})
            return out
        if pa.types.is_struct(column.type):
            return [row or {} for row in column.to_pylist()]
        raise ValidationError("context", f"expected a struct or JSON text column, got {column.type}")
    present = [f.name for f in schema.features if f.name in names]
    if not present:
        raise ValidationError("context", "no context column and no column named after a schema feature")
    columns = {name: table[name].to_pylist() for name in present}
    return [{name: columns[name][i] for name in present} for i in range(table.num_rows)]


# ---- computing ------------------------------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _classify(feature: Any, value: Any) -> str:
    """``ok``, ``invalid``, ``out_of_range`` or ``unknown_category`` for one present value."""
    if isinstance(feature, CategoricalFeature):
        if not isinstance(value, str):
            return "invalid"
        return "ok" if value in feature.vocabulary or feature.unknown == "other" else "unknown_category"
    if isinstance(feature, VectorFeature):
        if not isinstance(value, list | tuple) or len(value) != feature.size:
            return "invalid"
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            return "invalid"
        lo = -math.inf if feature.min is None else feature.min
        hi = math.inf if feature.max is None else feature.max
        return "ok" if all(lo <= v <= hi for v in value) else "out_of_range"
    if feature.type == "bool":
        return "ok" if isinstance(value, bool) else "invalid"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "invalid"
    if feature.type == "int" and isinstance(value, float) and not value.is_integer():
        return "invalid"
    lo = -math.inf if feature.min is None else feature.min
    hi = math.inf if feature.max is None else feature.max
    return "ok" if lo <= value <= hi else "out_of_range"


def _feature_profiles(contexts: Sequence[dict[str, Any]], schema: Schema,
                      advance: Callable[[int], None]) -> list[FeatureProfile]:
    n = max(len(contexts), 1)
    profiles = []
    for feature in schema.features:
        counts = {"missing": 0, "invalid": 0, "out_of_range": 0, "unknown_category": 0, "ok": 0}
        for context in contexts:
            value = context.get(feature.name)
            counts["missing" if _is_missing(value) else _classify(feature, value)] += 1
        profiles.append(FeatureProfile(feature.name, feature.type, counts["missing"] / n, counts["invalid"] / n,
                                       counts["out_of_range"] / n, counts["unknown_category"] / n))
        advance(1)
    return profiles


def _numbers(table: pa.Table, name: str) -> np.ndarray | None:
    if name not in table.column_names:
        return None
    column = table[name]
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        raise ValidationError(name, f"expected a numeric column, got {column.type}")
    return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def chosen_actions(table: pa.Table, schema: Schema) -> tuple[list[str | None], int]:
    """The chosen action of each row by name, and how many are not actions of the schema or of the row's list."""
    names = schema.action_names()
    if "action" in table.column_names:
        chosen = [None if a is None else str(a) for a in table["action"].to_pylist()]
    elif "action_index" in table.column_names:
        chosen = [names[i] if i is not None and 0 <= i < len(names) else None
                  for i in table["action_index"].to_pylist()]
    else:
        raise ValidationError("action", "no action (or action_index) column")
    offered = table["actions"].to_pylist() if "actions" in table.column_names else None
    known = set(names)
    unknown = 0
    for i, action in enumerate(chosen):
        if action is None or action not in known or (offered is not None and offered[i]
                                                     and action not in offered[i]):
            unknown += 1
    return chosen, unknown


def profile(table: pa.Table, schema: Schema, progress: Callable[[int], None] | None = None) -> DataProfile:
    """Measure a logged interactions table against ``schema`` (see the module docstring for the columns).

    Args:
        table: the interactions.
        schema: the deployment's schema (features and actions).
        progress: called with a number of completed steps (one per feature, then one for the rest).

    Raises:
        ValidationError: a required column is missing or of the wrong type.
    """
    advance = progress or (lambda _: None)
    rows = table.num_rows
    features = _feature_profiles(logged_contexts(table, schema), schema, advance)
    propensity = _numbers(table, "propensity")
    if propensity is None:
        raise ValidationError("propensity", "no propensity column: the logging policy's probabilities are needed "
                                            "for off-policy evaluation")
    finite = propensity[np.isfinite(propensity)]
    chosen, unknown_action = chosen_actions(table, schema)
    props = PropensityProfile(
        missing=int((~np.isfinite(propensity)).sum()),
        non_positive=int((finite <= 0).sum()),
        above_one=int((finite > 1.0 + 1e-9).sum()),
        tiny=int(((finite > 0) & (finite < TINY_PROPENSITY)).sum()),
        unknown_action=unknown_action,
        minimum=float(finite.min()) if finite.size else None,
        maximum=float(finite.max()) if finite.size else None,
    )
    reward = _numbers(table, "reward")
    if reward is None:
        rewards = RewardProfile(0, rows, 0, None, None, None)
    else:
        null = np.asarray(table["reward"].is_null().to_numpy(zero_copy_only=False), dtype=bool)
        values = reward[~null]
        good = values[np.isfinite(values)]
        rewards = RewardProfile(present=int((~null).sum()), missing=int(null.sum()),
                                non_finite=int((~np.isfinite(values)).sum()),
                                mean=float(good.mean()) if good.size else None,
                                minimum=float(good.min()) if good.size else None,
                                maximum=float(good.max()) if good.size else None)
    duplicates = 0
    if "decision_id" in table.column_names:
        duplicates = rows - len(pc.unique(table["decision_id"]))
    counts: dict[str, int] = {}
    for action in chosen:
        key = "<unknown>" if action is None else action
        counts[key] = counts.get(key, 0) + 1
    advance(1)
    return DataProfile(rows, features, props, rewards, duplicates, dict(sorted(counts.items())))


# ---- judging --------------------------------------------------------------------------------------------------


def _level(value: float, warn: float, fail: float) -> Status:
    if value > fail:
        return Status.FAIL
    return Status.WARN if value > warn else Status.PASS


def judge(data: DataProfile, thresholds: DataThresholds | None = None) -> list[DataCheck]:
    """Verdicts: FAIL for what would corrupt training or evaluation, WARN for what deserves a look."""
    t = thresholds or DataThresholds()
    checks: list[DataCheck] = []
    if data.rows == 0:
        return [DataCheck("rows", "table", Status.FAIL, 0, "no interactions: nothing to train or evaluate on")]
    for f in data.features:
        checks.append(DataCheck("missing", f.name, _level(f.missing, t.missing_warn, t.missing_fail), f.missing,
                                f"{f.missing:.2%} of rows lack it"))
        detail = ", ".join(f"{what} {rate:.2%}" for what, rate in (("invalid", f.invalid),
                                                                    ("out of range", f.out_of_range),
                                                                    ("unknown category", f.unknown_category))
                           if rate) or "every present value is valid"
        checks.append(DataCheck("values", f.name, _level(f.unusable, t.unusable_warn, t.unusable_fail), f.unusable,
                                detail))
    p = data.propensity
    for name, count, why in (
        ("propensity missing", p.missing, "importance weights cannot be computed"),
        ("propensity <= 0", p.non_positive, "the logged action had no chance under the logging policy"),
        ("propensity > 1", p.above_one, "not a probability"),
        ("action unknown", p.unknown_action, "not an action of the schema or not among the row's candidates"),
    ):
        checks.append(DataCheck(name, "propensity" if "propensity" in name else "action",
                                Status.FAIL if count else Status.PASS, count,
                                f"{count:,} rows: {why}" if count else "none"))
    tiny_rate = p.tiny / data.rows
    checks.append(DataCheck(f"propensity < {TINY_PROPENSITY:g}", "propensity",
                            Status.WARN if tiny_rate > t.tiny_propensity_warn else Status.PASS, p.tiny,
                            f"{p.tiny:,} rows ({tiny_rate:.2%}): weights above {1 / TINY_PROPENSITY:,.0f}"))
    r = data.reward
    checks.append(DataCheck("reward non-finite", "reward", Status.FAIL if r.non_finite else Status.PASS,
                            r.non_finite, f"{r.non_finite:,} rows" if r.non_finite else "none"))
    coverage_status = (Status.FAIL if r.present == 0
                       else Status.WARN if r.coverage < t.coverage_warn else Status.PASS)
    checks.append(DataCheck("reward coverage", "reward", coverage_status, r.coverage,
                            f"{r.present:,} of {data.rows:,} rows have a reward"))
    checks.append(DataCheck("duplicate ids", "decision_id", Status.FAIL if data.duplicate_ids else Status.PASS,
                            data.duplicate_ids, f"{data.duplicate_ids:,} rows repeat an earlier decision_id"
                            if data.duplicate_ids else "none"))
    return checks


def overall(checks: list[DataCheck]) -> Status:
    """The worst verdict of all checks."""
    return worst([c.status for c in checks])
