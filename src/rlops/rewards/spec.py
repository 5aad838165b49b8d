"""The reward spec: a named, versioned rule turning business outcome fields into one scalar reward.

Example file (``purchase.yaml``)::

    name: purchase
    version: 3
    expression: "clip(revenue - 0.1 * price, -10, 100) + (5 if clicked else 0)"
    fields:
      revenue: {default: 0.0}
      clicked: {default: false}
    context: [price]
    bounds: {min: -10, max: 100, mode: clip}
    aggregation: sum
    window: 1h
    missing: 0.0
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from rlops.configfile import parse_model, read_document, write_document
from rlops.errors import ValidationError
from rlops.rewards.aggregation import Aggregation, aggregate
from rlops.rewards.columns import MISSING, ColumnSource, RowIssue, Scope, extract_column
from rlops.rewards.expression import Expression, ExpressionError, check_name

#: A spec name: letters, digits, ``_`` and ``-``, starting with a letter or digit (``@`` separates the version).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"

_FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]

_FLOAT_MAX = float(np.finfo(np.float64).max)
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*$")


#: Longest attribution window, seconds (10 years): longer ones overflow microsecond arithmetic and mean nothing.
MAX_WINDOW_S = 10 * 365 * 86_400.0


def parse_duration(value: float | str) -> float:
    """Parse an attribution window into seconds.

    Args:
        value: a number of seconds, or a string: a number followed by ``s``, ``m``, ``h`` or ``d`` (``"30s"``,
            ``"15m"``, ``"1.5h"``, ``"7d"``), or a bare number of seconds (``"90"``).

    Returns:
        The duration in seconds, always finite and > 0.

    Raises:
        ValueError: the value is not a duration or is not positive.

    Example:
        >>> parse_duration("15m"), parse_duration(90)
        (900.0, 90.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected seconds or a duration like '30s', '15m', '1h', '7d', got {value!r}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError as e:
            raise ValueError(f"must be at most {MAX_WINDOW_S:.0f} s (10 years), got a {len(str(value))}-digit "
                             f"number") from e
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"expected seconds or a duration like '30s', '15m', '1h', '7d', got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be a positive, finite duration, got {value!r}")
    if seconds > MAX_WINDOW_S:
        raise ValueError(f"must be at most {MAX_WINDOW_S:.0f} s (10 years), got {value!r}")
    return seconds


class BoundsMode(StrEnum):
    """What happens to a reward outside the spec's bounds: ``clip`` it to the bound, or ``reject`` the row."""

    CLIP = "clip"
    REJECT = "reject"


class FieldSpec(BaseModel):
    """One outcome field the expression reads.

    Attributes:
        default: value used when an outcome lacks the field (a number, a boolean, or a string for fields compared
            with strings). ``None`` (the default) means the field is required: an outcome without it gets no reward.
            A field that is present with the value ``null`` is not missing: it is refused like any other bad value.
        description: free text for people.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: StrictBool | StrictInt | _FiniteFloat | StrictStr | None = None
    description: str = ""

    @field_validator("default", mode="before")
    @classmethod
    def _default(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value}")
        if value is not None and not isinstance(value, bool | int | float | str):
            raise ValueError(f"expected a number, boolean or string, got {type(value).__name__}")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _FLOAT_MAX:
            raise ValueError("must be a finite number, got an integer beyond the float range")
        return value


class Bounds(BaseModel):
    """The range a reward must lie in.

    Attributes:
        min: lowest allowed reward, inclusive; ``None`` for no lower bound.
        max: highest allowed reward, inclusive; ``None`` for no upper bound.
        mode: ``clip`` (default) moves an outside reward to the bound; ``reject`` gives the row no reward and a
            reason instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: _FiniteFloat | None = None
    max: _FiniteFloat | None = None
    mode: BoundsMode = BoundsMode.CLIP

    @model_validator(mode="after")
    def _check(self) -> Bounds:
        if self.min is None and self.max is None:
            raise ValueError("set min, max or both (or leave bounds out)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    @property
    def low(self) -> float:
        """The lower bound, ``-inf`` when there is none."""
        return -math.inf if self.min is None else self.min

    @property
    def high(self) -> float:
        """The upper bound, ``+inf`` when there is none."""
        return math.inf if self.max is None else self.max


@dataclass(frozen=True)
class RewardCheck:
    """One outcome's reward, evaluated once, with what the bounds did to it.

    Attributes:
        reward: the reward the join uses (clipped into the bounds), or ``None`` when the outcome gives none.
        unbounded: the expression's value before the bounds (``None`` when it could not be evaluated).
        error: why there is no reward (a missing field, a non-finite value, a rejected out-of-bounds reward).
    """

    reward: float | None
    unbounded: float | None
    error: ValidationError | None

    @property
    def out_of_bounds(self) -> bool:
        """The value lay outside the spec's bounds (clipped, or rejected)."""
        return self.unbounded is not None and self.reward != self.unbounded


@dataclass(frozen=True)
class RewardBatch:
    """Rewards of many outcomes, computed at once.

    Attributes:
        reward: float64 reward per row; NaN where the row has no valid reward.
        reason: per row, ``None`` when the reward is valid, else why not (e.g. ``missing field 'revenue'``).
    """

    reward: np.ndarray
    reason: list[str | None]

    def __len__(self) -> int:
        return len(self.reason)

    @property
    def valid(self) -> np.ndarray:
        """Boolean mask of the rows with a valid reward."""
        return np.fromiter((r is None for r in self.reason), dtype=bool, count=len(self.reason))


class RewardSpec(BaseModel):
    """A named, versioned reward: an expression over outcome fields and context features, plus how to bound,
    combine and attribute it.

    Attributes:
        name: the spec's name (letters, digits, ``_``, ``-``).
        version: integer version >= 1; ``ref`` is ``name@version`` and is stored with every joined reward.
        description: free text for people.
        expression: the reward, in the safe expression language of :mod:`rlops.rewards.expression`.
        fields: outcome fields the expression reads, each with an optional default. Every declared name must be
            read by the expression.
        context: context features the expression reads (values come from the decision's validated context).
        bounds: optional range for the reward and what to do outside it; default no bounds.
        aggregation: how several outcomes of one decision combine; default ``sum``.
        window: attribution window, seconds or a duration string (``"30s"``, ``"15m"``, ``"1h"``, ``"7d"``);
            default ``"1h"``. Outcomes later than this after their decision are not attributed to it.
        missing: reward of a decision with no outcome in its window, or ``"exclude"`` to leave such decisions out;
            default 0.0. A number must lie within the bounds.

    Example:
        >>> spec = RewardSpec.from_dict({"name": "purchase", "version": 3,
        ...     "expression": "clip(revenue - 0.1 * price, -10, 100) + (5 if clicked else 0)",
        ...     "fields": {"revenue": {"default": 0.0}, "clicked": {"default": False}}, "context": ["price"]})
        >>> spec.compute_one({"revenue": 20.0, "clicked": True}, {"price": 50.0})
        20.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1, strict=True)
    description: str = ""
    expression: str
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    context: list[str] = Field(default_factory=list)
    bounds: Bounds | None = None
    aggregation: Aggregation = Aggregation.SUM
    window: StrictInt | StrictFloat | StrictStr = "1h"
    missing: _FiniteFloat | Literal["exclude"] = 0.0

    @field_validator("fields", mode="before")
    @classmethod
    def _empty_fields(cls, value: Any) -> Any:
        # ``revenue:`` with nothing after it in YAML means "declared, no default"
        if isinstance(value, Mapping):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @field_validator("fields")
    @classmethod
    def _field_names(cls, value: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        for name in value:
            why = check_name(name)
            if why is not None:
                raise ValueError(f"field name {why}")
        return value

    @field_validator("context")
    @classmethod
    def _context_names(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in value:
            why = check_name(name)
            if why is not None:
                raise ValueError(f"context name {why}")
            if name in seen:
                raise ValueError(f"context name {name!r} is listed twice")
            seen.add(name)
        return value

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> Any:
        if not isinstance(value, int | float | str) or isinstance(value, bool):
            raise ValueError(f"expected seconds or a duration like '30s', '15m', '1h', '7d', got {value!r}")
        parse_duration(value)
        return value

    @field_validator("missing", mode="before")
    @classmethod
    def _missing(cls, value: Any) -> Any:
        if value == "exclude" and isinstance(value, str):
            return value
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"expected a number or 'exclude', got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number or 'exclude', got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RewardSpec:
        clash = sorted(set(self.fields) & set(self.context))
        if clash:
            raise ValueError(f"context: {clash[0]!r} is declared both as an outcome field and as a context feature; "
                             f"rename one of them")
        try:
            parsed = Expression.parse(self.expression, [*self.fields, *self.context])
        except ExpressionError as e:
            raise ValueError(f"expression: {e.detail}") from e
        for name in [*self.fields, *self.context]:
            if name not in parsed.names:
                where = "fields" if name in self.fields else "context"
                raise ValueError(f"{where}.{name}: declared but the expression does not read it; remove it or use it")
        for name, spec in self.fields.items():
            default = spec.default
            if default is None:
                continue
            if name in parsed.string_names and not isinstance(default, str):
                raise ValueError(f"fields.{name}.default: expected a string, since the expression compares {name!r} "
                                 f"with strings; got {default!r}")
            if name not in parsed.string_names and isinstance(default, str):
                raise ValueError(f"fields.{name}.default: expected a number or boolean, since the expression uses "
                                 f"{name!r} as a number; got {default!r}")
        if (isinstance(self.missing, float) and self.bounds is not None
                and not self.bounds.low <= self.missing <= self.bounds.high):
                raise ValueError(f"missing: {self.missing} is outside the bounds [{self.bounds.min}, "
                                 f"{self.bounds.max}]")
        return self

    # ---- construction -------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, source: str = "reward spec") -> RewardSpec:
        """Build from parsed YAML/JSON.

        Raises:
            ConfigError: naming the source and the field, e.g. ``purchase.yaml: window: expected seconds or a
                duration like '30s', '15m', '1h', '7d', got '1 week'``.
        """
        return parse_model(cls, data, source, "spec")

    @classmethod
    def load(cls, path: str | Path) -> RewardSpec:
        """Load a spec from a ``.yaml``/``.yml`` or ``.json`` file.

        Raises:
            ConfigError: the file cannot be read, is not YAML/JSON, or is not a valid spec.
        """
        return cls.from_dict(read_document(path, "reward spec"), source=str(path))

    def save(self, path: str | Path) -> None:
        """Write as JSON when the suffix is ``.json``, else YAML; :meth:`load` reads it back unchanged."""
        write_document(path, self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-compatible data (what :meth:`from_dict` accepts)."""
        return self.model_dump(mode="json", exclude_none=True)

    # ---- derived ------------------------------------------------------------------------------------------------

    @property
    def ref(self) -> str:
        """``name@version``, the identifier stored with every reward computed by this spec."""
        return f"{self.name}@{self.version}"

    @property
    def window_seconds(self) -> float:
        """The attribution window in seconds."""
        return parse_duration(self.window)

    @property
    def excludes_missing(self) -> bool:
        """Whether decisions without an outcome in their window are left out (``missing: exclude``)."""
        return self.missing == "exclude"

    @property
    def missing_reward(self) -> float | None:
        """Reward of a decision without an outcome in its window; ``None`` when such decisions are excluded."""
        return None if isinstance(self.missing, str) else float(self.missing)

    @cached_property
    def compiled(self) -> Expression:
        """The checked, compiled expression."""
        return Expression.parse(self.expression, [*self.fields, *self.context])

    @cached_property
    def _sources(self) -> list[ColumnSource]:
        strings = self.compiled.string_names
        sources = [ColumnSource(name, Scope.FIELD, name in strings,
                                MISSING if spec.default is None else spec.default)
                   for name, spec in self.fields.items()]
        sources += [ColumnSource(name, Scope.CONTEXT, name in strings) for name in self.context]
        return sources

    # ---- computation --------------------------------------------------------------------------------------------

    def _evaluate(self, outcome_fields: Sequence[Any], contexts: Sequence[Any] | None,
                  apply_bounds: bool = True) -> tuple[np.ndarray, dict[int, RowIssue]]:
        n = len(outcome_fields)
        if contexts is None:
            contexts = [{}] * n if self.context else []
        elif len(contexts) != n:
            raise ValidationError("contexts", f"has {len(contexts)} rows but outcome_fields has {n}")
        issues: dict[int, RowIssue] = {}
        env: dict[str, np.ndarray] = {}
        for source in self._sources:
            rows = outcome_fields if source.scope is Scope.FIELD else contexts
            column, column_issues = extract_column(rows, source)
            env[source.name] = column
            if column_issues:
                issues = {**column_issues, **issues}  # an earlier problem of the same row wins
        reward = self.compiled.evaluate(env, n)
        bad = np.zeros(n, dtype=bool)
        if issues:
            bad[list(issues)] = True
        non_finite = ~np.isfinite(reward) & ~bad
        if non_finite.any():
            # three possible values, so three shared issues rather than one per row
            for value, rows in ((math.nan, np.isnan(reward)), (math.inf, reward == math.inf),
                                (-math.inf, reward == -math.inf)):
                issue = RowIssue("reward", f"the expression gave {value}, not a finite number",
                                 f"reward is {value}, not a finite number")
                issues.update(dict.fromkeys(np.flatnonzero(rows & non_finite).tolist(), issue))
            bad |= non_finite
        bounds = self.bounds
        if bounds is not None and apply_bounds:
            if bounds.mode is BoundsMode.CLIP:
                reward = np.clip(reward, bounds.low, bounds.high)
            else:
                for i in np.flatnonzero(((reward < bounds.low) | (reward > bounds.high)) & ~bad).tolist():
                    rule = _outside_rule(float(reward[i]), bounds)
                    issues[i] = RowIssue("reward", rule, f"reward {rule}")
                    bad[i] = True
        reward[bad] = np.nan
        return reward, issues

    def compute(self, outcome_fields: Sequence[Mapping[str, Any]],
                contexts: Sequence[Mapping[str, Any]] | None = None) -> RewardBatch:
        """Compute the rewards of many outcomes at once, vectorised.

        A bad row never raises: it gets NaN and a reason (a missing field without default, a value of the wrong type
        or not finite, a non-finite result, or, with ``bounds.mode: reject``, a result outside the bounds).

        Args:
            outcome_fields: the ``fields`` of each outcome.
            contexts: the context of each outcome's decision, same length; may be ``None`` when the spec reads no
                context (else every row gets a "missing context feature" reason).

        Returns:
            The rewards and per-row reasons.

        Raises:
            ValidationError: ``contexts`` has a different length from ``outcome_fields``.
        """
        reward, issues = self._evaluate(outcome_fields, contexts)
        reason: list[str | None] = [None] * len(reward)
        for i, issue in issues.items():
            reason[i] = issue.reason
        return RewardBatch(reward, reason)

    def compute_one(self, fields: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> float:
        """Compute the reward of one outcome, e.g. to answer a client at report time.

        Raises:
            ValidationError: naming the value, e.g. ``outcome.fields.revenue: is missing and has no default``,
                ``context.price: expected a number or boolean, got str`` or ``reward: 120.0 is above the maximum
                100.0``.
        """
        reward, issues = self._evaluate([fields], None if context is None else [context])
        if issues:
            issue = issues[0]
            raise ValidationError(issue.path, issue.rule)
        return float(reward[0])

    def check_one(self, fields: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> RewardCheck:
        """Evaluate one outcome once: its reward under the bounds, its value before them, or why it has none."""
        reward, issues = self._evaluate([fields], None if context is None else [context], apply_bounds=False)
        if issues:
            issue = issues[0]
            return RewardCheck(None, None, ValidationError(issue.path, issue.rule))
        value = float(reward[0])
        bounds = self.bounds
        if bounds is None or bounds.low <= value <= bounds.high:
            return RewardCheck(value, value, None)
        if bounds.mode is BoundsMode.CLIP:
            return RewardCheck(min(max(value, bounds.low), bounds.high), value, None)
        return RewardCheck(None, value, ValidationError("reward", _outside_rule(value, bounds)))

    def aggregate(self, rewards: np.ndarray, group: np.ndarray, ts: np.ndarray, n_groups: int) -> np.ndarray:
        """Combine per-outcome rewards into one per decision with this spec's aggregation.

        See :func:`rlops.rewards.aggregation.aggregate`: NaN rewards are ignored, groups without a valid row are NaN.
        """
        return aggregate(rewards, group, ts, n_groups, self.aggregation)


def _outside_rule(value: float, bounds: Bounds) -> str:
    return (f"{value!r} is below the minimum {bounds.low!r}" if value < bounds.low
            else f"{value!r} is above the maximum {bounds.high!r}")


__all__ = ["NAME_PATTERN", "Aggregation", "Bounds", "BoundsMode", "FieldSpec", "RewardBatch", "RewardCheck",
           "RewardSpec",
           "parse_duration"]
