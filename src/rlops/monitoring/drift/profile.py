"""The reference profile stored with a policy version: what its training or validation data looked like.

Per context feature, from the encoded matrix (:meth:`rlops.schema.Schema.encode`): for a numeric column (float,
int, each element of a vector) the reference's quantile bin edges and counts per bin (so PSI and Jensen-Shannon
use the same bins on live data), its mean and standard deviation, and a sorted sample of up to ``sample_size``
values (all of them when there are no more; otherwise the quantiles at levels ``(i + 0.5) / sample_size``, whose
CDF is within ``1 / (2 * sample_size)`` of the reference's), from which the Kolmogorov-Smirnov and Wasserstein
distances are computed; for a categorical or bool feature, the count of each category. The same for the action
distribution (categorical for discrete actions, numeric per dimension for continuous ones) and for the reward, and
a seeded sample of encoded rows for the multivariate domain classifier.

Everything is plain numbers, saved as ``reference_profile.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rlops.errors import ConfigError, StorageError, ValidationError
from rlops.monitoring.drift.grid import GridLocator
from rlops.schema import BoolFeature, CategoricalFeature, Schema
from rlops.schema.actions import BoxActions, CandidateActions, DiscreteActions

#: File name of a saved profile, next to a policy version's other files.
FILENAME = "reference_profile.json"
FORMAT_VERSION = 1


class FeatureKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """A numeric column of the reference.

    Attributes:
        name: column name (``temperature``, ``embedding[3]``, ``action[0]``, ``reward``).
        column: index in the encoded matrix (-1 for actions and rewards, which come as their own arrays).
        count: reference values.
        mean: their mean.
        std: their population standard deviation.
        edges: interior bin edges (the reference's quantiles at ``k / n_bins``, distinct); bins are
            ``(-inf, e0], (e0, e1], ..., (e_last, inf)``.
        counts: reference values per bin, ``len(edges) + 1`` of them.
        sample: sorted sample of the reference (see the module docstring).
        exact: the sample is the whole reference.
    """

    name: str
    column: int
    count: int
    mean: float
    std: float
    edges: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]
    sample: npt.NDArray[np.float64]
    exact: bool
    kind: FeatureKind = field(default=FeatureKind.NUMERIC, init=False)

    @classmethod
    def build(cls, name: str, values: npt.NDArray[np.float64], column: int = -1, n_bins: int = 10,
              sample_size: int = 2000) -> NumericProfile:
        ordered = np.sort(np.asarray(values, dtype=np.float64))
        edges = np.unique(np.quantile(ordered, np.arange(1, n_bins) / n_bins))
        counts = np.bincount(np.searchsorted(edges, ordered, side="left"), minlength=edges.size + 1)
        exact = ordered.size <= sample_size
        if exact:
            sample = ordered
        else:
            levels = (np.arange(sample_size) + 0.5) / sample_size
            sample = np.quantile(ordered, levels, method="inverted_cdf")
        return cls(name=name, column=column, count=int(ordered.size), mean=float(ordered.mean()),
                   std=float(ordered.std()), edges=edges, counts=counts.astype(np.int64), sample=sample, exact=exact)

    @cached_property
    def grid(self) -> npt.NDArray[np.float64]:
        """Distinct sample values and edges: where the live CDF is evaluated."""
        return np.unique(np.concatenate((self.sample, self.edges)))

    @cached_property
    def grid_cdf(self) -> npt.NDArray[np.float64]:
        """The sample's CDF at each grid point."""
        return np.searchsorted(self.sample, self.grid, side="right") / self.sample.size

    @cached_property
    def edge_index(self) -> npt.NDArray[np.int64]:
        """Position of each bin edge in :attr:`grid`."""
        return np.searchsorted(self.grid, self.edges).astype(np.int64)

    @property
    def scale(self) -> float:
        """What Wasserstein distances are divided by: the standard deviation, or 1 for a constant reference."""
        return self.std if self.std > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "name": self.name, "column": self.column, "count": self.count,
                "mean": self.mean, "std": self.std, "edges": self.edges.tolist(), "counts": self.counts.tolist(),
                "sample": self.sample.tolist(), "exact": self.exact}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericProfile:
        return cls(name=str(data["name"]), column=int(data["column"]), count=int(data["count"]),
                   mean=float(data["mean"]), std=float(data["std"]), edges=np.asarray(data["edges"], dtype=float),
                   counts=np.asarray(data["counts"], dtype=np.int64), sample=np.asarray(data["sample"], dtype=float),
                   exact=bool(data["exact"]))


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """A categorical or bool feature (or discrete actions) of the reference.

    Attributes:
        name: feature name (``color``, ``is_member``, ``action``).
        columns: its one-hot columns in the encoded matrix, one per category; a bool feature has one column
            (its value) and two categories; empty for actions, which come as indices.
        categories: category names, in column order.
        counts: reference count per category.
    """

    name: str
    columns: tuple[int, ...]
    categories: tuple[str, ...]
    counts: npt.NDArray[np.int64]
    kind: FeatureKind = field(default=FeatureKind.CATEGORICAL, init=False)

    @property
    def is_bool(self) -> bool:
        return len(self.columns) == 1

    def live_counts(self, column_sums: npt.NDArray[np.float64], rows: int) -> npt.NDArray[np.int64]:
        """Counts per category from the sums of :attr:`columns` over ``rows`` encoded rows."""
        if self.is_bool:
            true = round(float(column_sums[0]))
            return np.array([rows - true, true], dtype=np.int64)
        return np.rint(column_sums).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "name": self.name, "columns": list(self.columns),
                "categories": list(self.categories), "counts": self.counts.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalProfile:
        return cls(name=str(data["name"]), columns=tuple(int(c) for c in data["columns"]),
                   categories=tuple(str(c) for c in data["categories"]),
                   counts=np.asarray(data["counts"], dtype=np.int64))


FeatureProfile = NumericProfile | CategoricalProfile


def _feature_from_dict(data: Mapping[str, Any]) -> FeatureProfile:
    if data.get("kind") == FeatureKind.CATEGORICAL.value:
        return CategoricalProfile.from_dict(data)
    return NumericProfile.from_dict(data)


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Everything batch drift compares a live window with. Build it with :meth:`build`.

    Attributes:
        columns: names of the encoded matrix's columns (a live matrix must have exactly these).
        features: one profile per context feature, vectors split into one numeric profile per element.
        actions: the action distribution: one categorical profile for discrete actions, one numeric profile per
            dimension for continuous ones; empty when no actions were given.
        rewards: the reward distribution, when rewards were given.
        rows: a seeded sample of encoded reference rows for the domain classifier (``None`` when not kept).
        n_rows: reference rows.
    """

    columns: tuple[str, ...]
    features: tuple[FeatureProfile, ...]
    actions: tuple[FeatureProfile, ...] = ()
    rewards: NumericProfile | None = None
    rows: npt.NDArray[np.float64] | None = None
    n_rows: int = 0

    @classmethod
    def build(cls, schema: Schema, data: Sequence[Mapping[str, Any]] | npt.ArrayLike, *,
              actions: npt.ArrayLike | None = None, rewards: npt.ArrayLike | None = None, n_bins: int = 10,
              sample_size: int = 2000, row_sample_size: int = 2000, seed: int = 0) -> ReferenceProfile:
        """Profile a policy version's training or validation data.

        Args:
            schema: the decision problem's schema.
            data: raw contexts (validated against ``schema`` here) or their encoded matrix
                ``(n, schema.width)``.
            actions: per row, the chosen action: its index for discrete actions, its vector for continuous ones.
            rewards: per row, the reward.
            n_bins: quantile bins per numeric column for PSI and Jensen-Shannon, >= 2 (default 10, deciles).
            sample_size: sorted reference values kept per numeric column for KS and Wasserstein, >= 10
                (default 2000: the kept CDF is within 0.00025 of the reference's).
            row_sample_size: encoded rows kept for the domain classifier, >= 0 (default 2000; 0 keeps none).
            seed: seed for the row sample.

        Raises:
            ValidationError: naming the argument and the rule (shape, non-finite values, bad action index,
                too few rows).
        """
        _check_int("n_bins", n_bins, 2)
        _check_int("sample_size", sample_size, 10)
        _check_int("row_sample_size", row_sample_size, 0)
        matrix = encode_window(schema, data, "data")
        n = matrix.shape[0]
        if n < 2:
            raise ValidationError("data", f"has {n} rows; a reference profile needs at least 2")
        names = schema.column_names
        features: list[FeatureProfile] = []
        column = 0
        for feature in schema.features:
            width = feature.width
            if isinstance(feature, CategoricalFeature):
                cols = tuple(range(column, column + width))
                counts = np.rint(matrix[:, list(cols)].sum(axis=0)).astype(np.int64)
                categories = tuple(n_.split("=", 1)[1] for n_ in names[column:column + width])
                features.append(CategoricalProfile(feature.name, cols, categories, counts))
            elif isinstance(feature, BoolFeature):
                true = int(matrix[:, column].sum())
                features.append(CategoricalProfile(feature.name, (column,), ("false", "true"),
                                                   np.array([n - true, true], dtype=np.int64)))
            else:
                for c in range(column, column + width):
                    features.append(NumericProfile.build(names[c], matrix[:, c], c, n_bins, sample_size))
            column += width
        action_profiles = _action_profiles(schema, actions, n, n_bins, sample_size) if actions is not None else ()
        reward_profile = None
        if rewards is not None:
            reward_profile = NumericProfile.build("reward", as_values(rewards, "rewards", n), -1, n_bins, sample_size)
        rows = None
        if row_sample_size:
            pick = np.random.default_rng(seed).permutation(n)[:row_sample_size]
            rows = matrix[np.sort(pick)].copy()
        return cls(columns=tuple(names), features=tuple(features), actions=action_profiles, rewards=reward_profile,
                   rows=rows, n_rows=n)

    # ---- derived, cached ----------------------------------------------------------------------------------------

    @cached_property
    def numeric(self) -> tuple[NumericProfile, ...]:
        return tuple(f for f in self.features if isinstance(f, NumericProfile))

    @cached_property
    def categorical(self) -> tuple[CategoricalProfile, ...]:
        return tuple(f for f in self.features if isinstance(f, CategoricalProfile))

    @cached_property
    def locator(self) -> GridLocator:
        """Locates live values of the numeric columns on their grids, all columns at once."""
        return GridLocator([f.grid for f in self.numeric])

    # ---- persistence --------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "n_rows": self.n_rows, "columns": list(self.columns),
                "features": [f.to_dict() for f in self.features], "actions": [a.to_dict() for a in self.actions],
                "rewards": None if self.rewards is None else self.rewards.to_dict(),
                "rows": None if self.rows is None else self.rows.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild from :meth:`to_dict`'s output; a malformed document raises :class:`ConfigError`."""
        try:
            if data.get("format_version") != FORMAT_VERSION:
                raise ConfigError(f"reference profile: format_version {data.get('format_version')!r} is not "
                                  f"{FORMAT_VERSION}")
            rows = data.get("rows")
            rewards = data.get("rewards")
            return cls(columns=tuple(str(c) for c in data["columns"]),
                       features=tuple(_feature_from_dict(f) for f in data["features"]),
                       actions=tuple(_feature_from_dict(a) for a in data.get("actions", [])),
                       rewards=None if rewards is None else NumericProfile.from_dict(rewards),
                       rows=None if rows is None else np.asarray(rows, dtype=np.float64).reshape(len(rows), -1),
                       n_rows=int(data.get("n_rows", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"reference profile: malformed ({type(e).__name__}: {e})") from e

    def save(self, path: str | Path) -> Path:
        """Write the profile atomically and return the file written.

        Args:
            path: a folder (created if needed), which gets ``reference_profile.json``, or a ``.json`` file path.
        """
        target = Path(path)
        if target.suffix != ".json":
            target = target / FILENAME
        folder = target.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=folder, prefix=".reference_profile.", suffix=".tmp")
            with os.fdopen(fd, "w") as out:
                json.dump(self.to_dict(), out, separators=(",", ":"))
            os.replace(temporary, target)
        except OSError as e:
            raise StorageError(f"cannot write {target}: {e.strerror or e}") from e
        return target

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        """Read a profile from ``reference_profile.json`` or from the directory holding it."""
        file = Path(path)
        if file.is_dir():
            file = file / FILENAME
        try:
            data = json.loads(file.read_text())
        except OSError as e:
            raise StorageError(f"cannot read {file}: {e.strerror or e}") from e
        except json.JSONDecodeError as e:
            raise ConfigError(f"{file}: not valid JSON: {e}") from e
        if not isinstance(data, Mapping):
            raise ConfigError(f"{file}: expected a JSON object")
        return cls.from_dict(data)


# ---- input checks shared with batch drift -------------------------------------------------------------------------


def encode_window(schema: Schema | None, data: Sequence[Mapping[str, Any]] | npt.ArrayLike, name: str,
                  width: int | None = None) -> npt.NDArray[np.float64]:
    """Contexts (validated and encoded with ``schema``) or an encoded matrix, as a finite float64 matrix."""
    if isinstance(data, Sequence) and not isinstance(data, str | bytes) and (
            len(data) == 0 or isinstance(data[0], Mapping)):
        if schema is None:
            raise ValidationError(name, "raw contexts need the schema to encode them; pass schema= or a matrix")
        contexts = [schema.validate_context(row, f"{name}[{i}]") for i, row in enumerate(data)]
        return schema.encode(contexts)
    try:
        matrix = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValidationError(name, f"expected contexts or a matrix of numbers ({e})") from e
    expected = width if width is not None else (schema.width if schema is not None else None)
    if matrix.ndim != 2 or (expected is not None and matrix.shape[1] != expected):
        raise ValidationError(name, f"expected a matrix of shape (rows, {expected}), got shape {matrix.shape}")
    return matrix


def check_finite_matrix(matrix: npt.NDArray[np.float64], name: str, columns: Sequence[str], offset: int = 0) -> None:
    finite = np.isfinite(matrix)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise ValidationError(f"{name}[{offset + int(row)}].{columns[int(col)]}",
                              f"{matrix[row, col]} is not a finite number")


def as_values(values: npt.ArrayLike, name: str, rows: int | None = None) -> npt.NDArray[np.float64]:
    """A one-dimensional array of finite numbers, of ``rows`` entries when given."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValidationError(name, f"expected an array of numbers ({e})") from e
    if array.ndim != 1 or (rows is not None and array.size != rows):
        raise ValidationError(name, f"expected {rows if rows is not None else 'a list of'} values, one per row, "
                                    f"got shape {array.shape}")
    finite = np.isfinite(array)
    if not finite.all():
        i = int(np.argmin(finite))
        raise ValidationError(f"{name}[{i}]", f"{array[i]} is not a finite number")
    return array


def action_indices(values: npt.ArrayLike, n_actions: int, rows: int | None = None) -> npt.NDArray[np.int64]:
    array = as_values(values, "actions", rows)
    bad = (array != np.floor(array)) | (array < 0) | (array >= n_actions)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValidationError(f"actions[{i}]", f"{array[i]!r} is not an action index in 0..{n_actions - 1}")
    return array.astype(np.int64)


def action_matrix(values: npt.ArrayLike, dim: int, rows: int | None = None) -> npt.NDArray[np.float64]:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValidationError("actions", f"expected a matrix of numbers ({e})") from e
    if array.ndim == 1 and dim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != dim or (rows is not None and array.shape[0] != rows):
        raise ValidationError("actions", f"expected shape ({rows if rows is not None else 'rows'}, {dim}), got "
                                         f"{array.shape}")
    check_finite_matrix(array, "actions", [f"action[{d}]" for d in range(dim)])
    return array


def _action_profiles(schema: Schema, actions: npt.ArrayLike, rows: int, n_bins: int,
                     sample_size: int) -> tuple[FeatureProfile, ...]:
    space = schema.actions
    if isinstance(space, DiscreteActions):
        index = action_indices(actions, space.n, rows)
        counts = np.bincount(index, minlength=space.n).astype(np.int64)
        return (CategoricalProfile("action", (), tuple(space.names), counts),)
    if isinstance(space, BoxActions):
        matrix = action_matrix(actions, space.dim, rows)
        return tuple(NumericProfile.build(f"action[{d}]", matrix[:, d], -1, n_bins, sample_size)
                     for d in range(space.dim))
    assert isinstance(space, CandidateActions)
    raise ValidationError("actions", "a candidate action space has no fixed set of actions to profile; "
                                     "profile the candidates' features instead")


def _check_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(name, f"must be an integer >= {minimum}, got {value!r}")
