"""Gates: declared conditions on validation results, each judged PASS, WARN, FAIL (or SKIP) with its numbers.

A gates file (YAML) lists conditions over the metrics a validation run computed. Metrics are addressed by dotted
paths into the run's results (``rlops validate`` writes all of them to ``report.json``; ``docs/validation.md``
lists the paths), and ``*`` matches every key at one level, so one gate can cover every stress variation:

.. code-block:: yaml

    gates:
      - name: DR lower bound beats the logging policy
        metric: ope.estimates.dr.interval.low
        op: ">"
        than: ope.logging.value
      - name: tail return under stress is not 5% worse than the baseline's
        metric: stress.variations.*.candidate.cvar
        op: ">="
        than: stress.variations.*.baseline.cvar
        tolerance: 0.05          # relative: threshold = other - 5% of |other|
      - name: p99 latency at batch 1
        metric: budget.measurement.p99_ms
        op: "<"
        value: 2.0
        warn_margin: 0.5         # passes by less than this: WARN

A gate whose metric is absent (no scenario given, say) is SKIP, unless ``required: true`` makes it FAIL. A gate
that passes is WARN when it passes by less than ``warn_margin``, or when the estimate it reads carries support
warnings (a ``warnings`` list next to the metric).
"""

from __future__ import annotations

import fnmatch
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlops.configfile import parse_model, read_document
from rlops.evaluation.status import Status, worst


class Op(StrEnum):
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="


_OPS: dict[Op, Callable[[float, float], bool]] = {Op.GT: operator.gt, Op.GE: operator.ge, Op.LT: operator.lt,
                                                  Op.LE: operator.le}


class Gate(BaseModel):
    """One condition: ``metric op threshold``, where the threshold is ``value`` or another metric (``than``).

    Attributes:
        name: shown in reports.
        metric: dotted path to a number in the results; ``*`` matches every key at one level.
        op: the comparison that must hold.
        value: a fixed threshold.
        than: a path to the threshold instead; with ``*`` in both, keys are paired (same variation).
        tolerance: relative slack on a ``than`` threshold: it moves by ``tolerance * |threshold|`` in the
            lenient direction (default 0).
        warn_margin: passing by less than this (absolute, in the metric's units) is a WARN.
        required: a missing metric is a FAIL rather than a SKIP.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=200)
    metric: str = Field(min_length=1)
    op: Op
    value: float | None = None
    than: str | None = None
    tolerance: float = Field(default=0.0, ge=0.0, le=10.0)
    warn_margin: float = Field(default=0.0, ge=0.0)
    required: bool = False

    @model_validator(mode="after")
    def _one_threshold(self) -> Gate:
        if (self.value is None) == (self.than is None):
            raise ValueError("give exactly one of value or than")
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError("value must be a finite number")
        if self.than is not None and self.metric.count("*") not in (0, self.than.count("*")):
            raise ValueError("than must have as many * as metric (keys are paired), or metric none")
        return self


class GatesFile(BaseModel):
    """The gates file: a list of gates."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    gates: list[Gate] = Field(min_length=1)

    @classmethod
    def load(cls, path: str | Path) -> GatesFile:
        return parse_model(cls, read_document(path, "gates"), str(path), "gates")

    @classmethod
    def from_dict(cls, data: Any, source: str = "gates") -> GatesFile:
        return parse_model(cls, data, source, "gates")


@dataclass(frozen=True)
class Check:
    """One comparison a gate made (a gate with ``*`` makes one per matched key)."""

    key: str  # the metric's resolved path
    measured: float
    threshold: float
    status: Status


@dataclass(frozen=True)
class GateResult:
    """A gate's verdict with the numbers behind it."""

    gate: Gate
    status: Status
    checks: list[Check]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.gate.model_dump(mode="json", exclude_defaults=True), "status": self.status.value,
                "reason": self.reason,
                "checks": [{**asdict(c), "status": c.status.value} for c in self.checks]}


def resolve(results: Mapping[str, Any], pattern: str) -> dict[str, Any]:
    """Every ``path -> value`` in nested ``results`` matching the dotted ``pattern`` (``*`` is one level)."""
    found: dict[str, Any] = {}

    def walk(node: Any, parts: list[str], prefix: str) -> None:
        if not parts:
            found[prefix] = node
            return
        head, rest = parts[0], parts[1:]
        if isinstance(node, Mapping):
            for key in (node if "*" in head else [head] if head in node else []):
                if fnmatch.fnmatchcase(str(key), head):
                    walk(node[key], rest, f"{prefix}.{key}" if prefix else str(key))

    walk(results, pattern.split("."), "")
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _warnings_near(results: Mapping[str, Any], key: str) -> list[Any]:
    """A ``warnings`` list on the metric's object or any object above it (e.g. an estimate's support warnings)."""
    parts = key.split(".")
    for depth in range(len(parts) - 1, 0, -1):
        node = resolve(results, ".".join(parts[:depth])).get(".".join(parts[:depth]))
        if isinstance(node, Mapping) and isinstance(node.get("warnings"), list) and node["warnings"]:
            return list(node["warnings"])
    return []


def _paired(metric_key: str, metric: str, than: str) -> str:
    """``than`` with its ``*`` filled by the keys ``metric``'s ``*`` matched in ``metric_key``."""
    stars = [part for pattern, part in zip(metric.split("."), metric_key.split("."), strict=True) if "*" in pattern]
    out = than
    for star in stars:
        out = out.replace("*", star, 1)
    return out


def evaluate(gate: Gate, results: Mapping[str, Any]) -> GateResult:
    """Judge one gate against nested results."""
    matches = {k: _number(v) for k, v in resolve(results, gate.metric).items()}
    if not matches:
        status = Status.FAIL if gate.required else Status.SKIP
        return GateResult(gate, status, [], f"no metric at {gate.metric}")
    checks: list[Check] = []
    problems: list[str] = []
    compare = _OPS[gate.op]
    lenient = -1.0 if gate.op in (Op.GT, Op.GE) else 1.0
    for key, measured in sorted(matches.items()):
        if gate.value is not None:
            threshold: float | None = gate.value
        else:
            other_key = _paired(key, gate.metric, str(gate.than)) if "*" in gate.metric else str(gate.than)
            other = resolve(results, other_key)
            threshold = _number(next(iter(other.values()))) if len(other) == 1 else None
            if threshold is not None:
                threshold += lenient * gate.tolerance * abs(threshold)
        if measured is None or threshold is None or not (math.isfinite(measured) and math.isfinite(threshold)):
            problems.append(f"{key}: not a finite number to compare")
            checks.append(Check(key, math.nan if measured is None else measured,
                                math.nan if threshold is None else threshold, Status.FAIL))
            continue
        if not compare(measured, threshold):
            status = Status.FAIL
        elif abs(measured - threshold) < gate.warn_margin:
            status = Status.WARN
            problems.append(f"{key}: passes by {abs(measured - threshold):.4g}, less than {gate.warn_margin:g}")
        elif warnings := _warnings_near(results, key):
            status = Status.WARN
            problems.append(f"{key}: {', '.join(map(str, warnings))}")
        else:
            status = Status.PASS
        checks.append(Check(key, measured, threshold, status))
    overall = worst([c.status for c in checks])
    failed = [c for c in checks if c.status is Status.FAIL]
    unusable = [p for p in problems if "not a finite number" in p]
    if unusable:
        reason = "; ".join(unusable[:3])
    elif failed:
        c = failed[0]
        reason = (f"{len(failed)} of {len(checks)} fail; e.g. {c.key} = {c.measured:.4g}, needs {gate.op} "
                  f"{c.threshold:.4g}")
    elif problems:
        reason = "; ".join(problems[:3])
    else:
        c = checks[0] if len(checks) == 1 else min(checks, key=lambda c: abs(c.measured - c.threshold))
        reason = (f"{c.key} = {c.measured:.4g} {gate.op} {c.threshold:.4g}" if len(checks) == 1 else
                  f"all {len(checks)} hold; closest {c.key} = {c.measured:.4g} vs {c.threshold:.4g}")
    return GateResult(gate, overall, checks, reason)


def evaluate_all(gates: GatesFile | list[Gate], results: Mapping[str, Any]) -> list[GateResult]:
    """Judge every gate; see :func:`overall` for the run's verdict."""
    items = gates.gates if isinstance(gates, GatesFile) else gates
    return [evaluate(g, results) for g in items]


def overall(results: list[GateResult]) -> Status:
    """FAIL if any gate fails, else WARN if any warns, else PASS (skipped gates do not count); WARN when every
    gate was skipped, since then nothing was judged at all."""
    judged: list[Status] = [r.status for r in results if r.status is not Status.SKIP]
    return worst(judged) if judged else Status.WARN
