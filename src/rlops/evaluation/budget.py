"""Resource budgets: a policy's latency, memory and size, measured in a clean process and judged against limits.

Measuring (compute) happens in a **separate process** running this Python (``python -m
rlops.evaluation._measure``), so the numbers belong to the policy and not to whatever the caller has loaded:

- **latency**: the time of one decision's policy work, ``PolicyInput.from_contexts`` (validate and encode) plus
  ``policy.act``, for a batch of 1 and for a batch of ``batch_size`` contexts; ``warmup`` untimed calls first, then
  ``iterations`` timed calls on fresh contexts sampled from the policy's schema (:func:`sample_contexts`); p50, p99
  and mean in milliseconds. Math libraries are held to ``threads`` threads (default 1: one core per serving process,
  the unit of :mod:`rlops.evaluation.capacity`).
- **memory**: the measuring process's peak resident set size (its high-water mark, ``getrusage``), which is what
  one serving process needs, and the growth of its resident set from just before to just after loading the policy
  (the policy's own share, including libraries it imports, e.g. torch).
- **artifact**: the bytes of every file in the policy folder.

Judging (:func:`check_budget`) compares each measured number with the :class:`ResourceBudget`'s limit and gives
each item a :class:`~rlops.evaluation.status.Status` (``pass``, ``fail``, or ``skip`` when no limit is declared);
``memory_mb`` is compared with the peak resident set.

Example:
    >>> m = measure_resources("policies/hvac-ppo", batch_size=32)  # doctest: +SKIP
    >>> report = check_budget(m, ResourceBudget(p99_ms=5, memory_mb=800))  # doctest: +SKIP
    >>> report.passed  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rlops.configfile import parse_model, read_document
from rlops.errors import ConfigError, NotFoundError
from rlops.evaluation.status import Status
from rlops.schema import Schema
from rlops.schema.actions import CandidateActions
from rlops.schema.features import (
    BoolFeature,
    CategoricalFeature,
    Feature,
    FloatFeature,
    IntFeature,
    VectorFeature,
)

MB = 1024 * 1024

# ---- the budget ----------------------------------------------------------------------------------------------------


class ResourceBudget(BaseModel):
    """Declared limits; a limit left out is not checked.

    Attributes:
        p99_ms: the 99th percentile of single-decision latency, in milliseconds.
        batch_p99_ms: the 99th percentile of the latency of a batch of ``batch_size``, in milliseconds.
        memory_mb: the peak resident memory of a process serving the policy, in MiB.
        artifact_mb: the policy folder's size on disk, in MiB.
        batch_size: the batch ``batch_p99_ms`` is measured at (>= 1), default 32.

    Example (YAML)::

        p99_ms: 5
        batch_p99_ms: 25
        batch_size: 32
        memory_mb: 1024
        artifact_mb: 50
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    p99_ms: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    batch_p99_ms: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    memory_mb: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    artifact_mb: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    batch_size: int = Field(default=32, ge=1, le=100_000)

    @classmethod
    def from_dict(cls, data: Any, source: str = "budget") -> ResourceBudget:
        """Build from parsed YAML/JSON; a malformed budget raises :class:`ConfigError` naming the field."""
        return parse_model(cls, data, source, "resource budget")

    @classmethod
    def load(cls, path: str | Path) -> ResourceBudget:
        """Load from a ``.yaml``/``.yml`` or ``.json`` file."""
        return cls.from_dict(read_document(path, "resource budget"), source=str(path))


class BudgetItemName(StrEnum):
    """The items of a budget, named as its fields."""

    P99_MS = "p99_ms"
    BATCH_P99_MS = "batch_p99_ms"
    MEMORY_MB = "memory_mb"
    ARTIFACT_MB = "artifact_mb"


# ---- measurements --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResourceMeasurement:
    """What the measuring process found (times in milliseconds, memory and sizes in MiB).

    Attributes:
        policy: the policy folder.
        kind: the policy's kind.
        batch_size: the batch the ``batch_*`` latencies were measured at.
        iterations: timed calls per latency measurement.
        warmup: untimed calls before each.
        threads: math-library threads the process was held to.
        p50_ms, p99_ms, mean_ms: single-decision latency.
        batch_p50_ms, batch_p99_ms, batch_mean_ms: latency of one batch of ``batch_size``.
        peak_rss_mb: the process's peak resident set size.
        baseline_rss_mb: its resident set just before loading the policy (Python, numpy, rlops).
        policy_rss_mb: the growth of the resident set from loading the policy.
        artifact_mb: the policy folder's size on disk.
        latency_histogram: the single-decision latencies as ``{"edges": [...], "counts": [...]}`` (30 bins; the
            slowest 0.1% are counted in the last bin).
    """

    policy: str
    kind: str
    batch_size: int
    iterations: int
    warmup: int
    threads: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    batch_p50_ms: float
    batch_p99_ms: float
    batch_mean_ms: float
    peak_rss_mb: float
    baseline_rss_mb: float
    policy_rss_mb: float
    artifact_mb: float
    latency_histogram: dict[str, list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResourceMeasurement:
        return cls(**data)


@dataclass(frozen=True)
class BudgetItem:
    """One judged item: the measured number, the declared limit (``None``: not declared) and the verdict."""

    name: BudgetItemName
    measured: float
    limit: float | None
    unit: str
    status: Status


@dataclass(frozen=True)
class BudgetReport:
    """Every budget item with its verdict, and the measurement behind them."""

    measurement: ResourceMeasurement
    items: tuple[BudgetItem, ...]

    @property
    def passed(self) -> bool:
        """True when no item failed."""
        return all(i.status is not Status.FAIL for i in self.items)

    def item(self, name: BudgetItemName | str) -> BudgetItem:
        key = BudgetItemName(name)
        return next(i for i in self.items if i.name is key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "items": [{"name": i.name.value, "measured": i.measured, "limit": i.limit, "unit": i.unit,
                       "status": i.status.value} for i in self.items],
            "measurement": self.measurement.to_dict(),
        }


def check_budget(measurement: ResourceMeasurement, budget: ResourceBudget) -> BudgetReport:
    """Judge a measurement against a budget: each item passes when measured <= limit.

    Raises:
        ConfigError: the budget's ``batch_size`` differs from the one measured (measure at the budget's).
    """
    if budget.batch_p99_ms is not None and budget.batch_size != measurement.batch_size:
        raise ConfigError(f"batch_size: the budget's is {budget.batch_size} but the latency was measured at "
                          f"{measurement.batch_size}; measure with batch_size={budget.batch_size}")
    rows = [
        (BudgetItemName.P99_MS, measurement.p99_ms, budget.p99_ms, "ms"),
        (BudgetItemName.BATCH_P99_MS, measurement.batch_p99_ms, budget.batch_p99_ms, "ms"),
        (BudgetItemName.MEMORY_MB, measurement.peak_rss_mb, budget.memory_mb, "MiB"),
        (BudgetItemName.ARTIFACT_MB, measurement.artifact_mb, budget.artifact_mb, "MiB"),
    ]
    return BudgetReport(measurement, tuple(BudgetItem(name, measured, limit, unit, _status(measured, limit))
                                          for name, measured, limit, unit in rows))


def _status(measured: float, limit: float | None) -> Status:
    if limit is None:
        return Status.SKIP
    return Status.PASS if measured <= limit else Status.FAIL


def artifact_size_mb(folder: str | Path) -> float:
    """The size on disk of every file under ``folder``, in MiB."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / MB


def measure_resources(
    folder: str | Path,
    *,
    batch_size: int = 32,
    iterations: int = 500,
    warmup: int = 50,
    seed: int = 0,
    threads: int = 1,
    timeout: float = 600.0,
) -> ResourceMeasurement:
    """Measure a saved policy in a fresh process (see the module docstring for what is measured and how).

    Args:
        folder: a policy folder written by :func:`rlops.policies.save_policy`.
        batch_size: the batch of the batched latency (>= 1), default 32.
        iterations: timed calls per latency (>= 10), default 500.
        warmup: untimed calls first (>= 0), default 50.
        seed: seeds the sampled contexts and the policy's draws, default 0.
        threads: math-library threads (>= 1), default 1.
        timeout: seconds before the measuring process is stopped, default 600.

    Raises:
        NotFoundError: ``folder`` is not a policy folder.
        ConfigError: a setting is out of range, or the policy failed to load or act (the message is the
            measuring process's error).
    """
    folder = Path(folder)
    if not (folder / "manifest.json").is_file():
        raise NotFoundError(f"policy: {folder} is not a policy folder (no manifest.json)")
    if batch_size < 1 or iterations < 10 or warmup < 0 or threads < 1:
        raise ConfigError(f"measure: need batch_size >= 1, iterations >= 10, warmup >= 0 and threads >= 1; got "
                          f"{batch_size}, {iterations}, {warmup}, {threads}")
    command = [sys.executable, "-m", "rlops.evaluation._measure", "--policy", str(folder.resolve()),
               "--batch-size", str(batch_size), "--iterations", str(iterations), "--warmup", str(warmup),
               "--seed", str(seed)]
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[name] = str(threads)
    # The child imports what this process can (e.g. a rule policy's function from the caller's project).
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as e:
        raise ConfigError(f"measure: {folder} took longer than {timeout:.0f} s to measure; lower iterations") from e
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        message = lines[-1] if lines else f"exit code {proc.returncode}"
        raise ConfigError(f"measure: {folder}: {message.removeprefix('error: ')}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["threads"] = threads
    return ResourceMeasurement.from_dict(data)


# ---- contexts sampled from a schema --------------------------------------------------------------------------------

def _float(rng: np.random.Generator, low: float | None, high: float | None) -> float:
    if low is not None and high is not None:
        return float(rng.uniform(low, high)) if high > low else float(low)
    if low is not None:
        return float(low + abs(rng.standard_normal()))
    if high is not None:
        return float(high - abs(rng.standard_normal()))
    return float(rng.standard_normal())


def _int(rng: np.random.Generator, low: int | None, high: int | None) -> int:
    lo = low if low is not None else (high - 100 if high is not None else -100)
    hi = high if high is not None else lo + 100
    return int(rng.integers(lo, hi, endpoint=True))


def _value(feature: Feature, rng: np.random.Generator) -> Any:
    if isinstance(feature, FloatFeature):
        return _float(rng, feature.min, feature.max)
    if isinstance(feature, IntFeature):
        return _int(rng, feature.min, feature.max)
    if isinstance(feature, BoolFeature):
        return bool(rng.random() < 0.5)
    if isinstance(feature, CategoricalFeature):
        return feature.vocabulary[int(rng.integers(len(feature.vocabulary)))]
    if isinstance(feature, VectorFeature):
        return [_float(rng, feature.min, feature.max) for _ in range(feature.size)]
    raise ConfigError(f"schema.features.{feature.name}: cannot sample type {feature.type!r}")  # pragma: no cover


def sample_contexts(schema: Schema, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """``n`` valid contexts drawn feature by feature from the schema's types and bounds.

    Floats are uniform between both bounds (a standard normal beyond a missing bound), ints uniform between their
    bounds (a range of 100 beyond a missing one), bools fair coins, categoricals uniform over the vocabulary,
    vectors element by element like floats. Only the shape and validity matter here, not realism.
    """
    return [{f.name: _value(f, rng) for f in schema.features} for _ in range(n)]


def sample_candidates(schema: Schema, n: int, rng: np.random.Generator,
                      k: int = 8) -> list[list[dict[str, Any]]] | None:
    """For candidate action spaces, ``n`` lists of ``min(k, max_candidates)`` sampled candidates; else ``None``."""
    space = schema.actions
    if not isinstance(space, CandidateActions):
        return None
    size = min(k, space.max_candidates)
    return [[{"id": f"c{j}", "features": {f.name: _value(f, rng) for f in space.features}} for j in range(size)]
            for _ in range(n)]
