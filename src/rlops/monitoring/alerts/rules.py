"""Alert rules: the YAML file that says which signal values are worth an alert, and what to do about them.

Example file::

    webhook: http://alerts.internal:9000/rlops     # default for every rule (optional)
    resolve_after: 5m                               # default hysteresis (optional, default 5m)
    rules:
      - name: feature-drift
        signal: drift_psi
        match: {deployment: hvac}
        op: ">"                                     # quote it: a bare > starts a YAML block scalar
        threshold: 0.25
        for: 10m
        severity: warning
        action: retrain
      - name: canary-worse
        signal: guardrail_rollback
        op: ">="
        threshold: 1
        severity: critical
        action: rollback

See ``docs/alerts.md`` for every field.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rlops.configfile import parse_model, read_document
from rlops.rewards import parse_duration

#: Rule names: letters, digits, ``.``, ``_``, ``-``; they key stored alert state, so keep them stable.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_ZERO = re.compile(r"^\s*(0+(\.0*)?|\.0+)\s*[smhd]?\s*$")
_WORD_OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


class Op(StrEnum):
    """How a signal's value is compared with a rule's threshold (``gt``, ``ge``, ``lt``, ``le`` are accepted too)."""

    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="

    def holds(self, value: float, threshold: float) -> bool:
        """``value OP threshold`` (False for NaN)."""
        if self is Op.GT:
            return value > threshold
        if self is Op.GE:
            return value >= threshold
        if self is Op.LT:
            return value < threshold
        return value <= threshold


class AlertSeverity(StrEnum):
    """How urgent an alert is (for people and for the receiving webhook; it changes nothing in evaluation)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Action(StrEnum):
    """What firing an alert does besides storing it and calling the webhook."""

    NOTIFY = "notify"  #: nothing more
    ROLLBACK = "rollback"  #: roll the canary back (through the evaluator's rollback handler)
    RETRAIN = "retrain"  #: trigger retraining (through the evaluator's retrain handler)


def parse_span(value: Any) -> float:
    """A duration in seconds, 0 allowed: ``0``, ``"30s"``, ``"5m"``, ``"1h"``, ``"7d"`` or a number of seconds.

    Raises:
        ValueError: not a duration, negative, or longer than ten years.

    Example:
        >>> parse_span("5m"), parse_span(0)
        (300.0, 0.0)
    """
    if value is None or isinstance(value, bool):
        raise ValueError(f"expected seconds or a duration like '30s', '5m', '1h', got {value!r}")
    if (isinstance(value, int | float) and value == 0) or (isinstance(value, str) and _ZERO.match(value)):
        return 0.0
    return parse_duration(value)


def format_span(seconds: float) -> str:
    """The shortest exact ``30s``/``5m``/``2h``/``1d`` spelling of a duration (``0s`` for none).

    Example:
        >>> format_span(300.0), format_span(90.0), format_span(0.0)
        ('5m', '90s', '0s')
    """
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _check_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host, got {value!r}")
    return value


class AlertRule(BaseModel):
    """One rule: when ``signal OP threshold`` has held for ``for``, fire an alert per label set.

    Attributes:
        name: unique in the file; letters, digits, ``.``, ``_``, ``-`` (at most 100). Alerts are keyed by it.
        signal: the :class:`~rlops.monitoring.alerts.signals.Signal` name the rule reads.
        match: label equality filter: only signals whose labels include all of these (default: every signal of
            that name).
        op: ``>``, ``>=``, ``<`` or ``<=`` (or ``gt``, ``ge``, ``lt``, ``le``).
        threshold: a finite number.
        for_s: (key ``for``) how long the condition must hold before the alert fires: seconds or ``30s``/``5m``/
            ``1h``; default 0 (fire on the first evaluation that sees it).
        resolve_after_s: (key ``resolve_after``) how long the condition must be false before a firing alert
            resolves; default: the file's ``resolve_after``.
        severity: ``info``, ``warning`` (default) or ``critical``.
        action: ``notify`` (default), ``rollback`` or ``retrain``.
        webhook: URL to POST the alert to; default: the file's ``webhook`` (none: no POST).
        description: free text added to the alert's message.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    name: str = Field(pattern=NAME_PATTERN)
    signal: str = Field(min_length=1, max_length=200)
    match: dict[str, str] = Field(default_factory=dict)
    op: Op
    threshold: float = Field(allow_inf_nan=False)
    for_s: float = Field(default=0.0, alias="for")
    resolve_after_s: float | None = Field(default=None, alias="resolve_after")
    severity: AlertSeverity = AlertSeverity.WARNING
    action: Action = Action.NOTIFY
    webhook: str | None = None
    description: str = Field(default="", max_length=2000)

    @field_validator("op", mode="before")
    @classmethod
    def _op_words(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = _WORD_OPS.get(value.strip(), value.strip())
        if value not in set(_WORD_OPS.values()):
            raise ValueError(f"must be one of '>', '>=', '<', '<=' (or gt, ge, lt, le), got {value!r}; in YAML quote "
                             "it (op: \">\"): a bare > starts a block of text")
        return value

    @field_validator("for_s", "resolve_after_s", mode="before")
    @classmethod
    def _span(cls, value: Any) -> float | None:
        return None if value is None else parse_span(value)

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_url(value)

    def condition(self) -> str:
        """The rule's condition as text, e.g. ``drift_psi{deployment=hvac} > 0.25 for 10m``."""
        match = "{" + ",".join(f"{k}={v}" for k, v in sorted(self.match.items())) + "}" if self.match else ""
        held = f" for {format_span(self.for_s)}" if self.for_s else ""
        return f"{self.signal}{match} {self.op.value} {self.threshold:g}{held}"


class AlertRules(BaseModel):
    """An alert rules file.

    Attributes:
        rules: at least one :class:`AlertRule`; names unique.
        webhook: default webhook URL of rules that set none (default: none).
        resolve_after_s: (key ``resolve_after``) default hysteresis of rules that set none: a firing alert
            resolves once its condition has been false this long (default ``5m``; ``0`` resolves on the first
            evaluation that sees it false).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    rules: tuple[AlertRule, ...] = Field(min_length=1)
    webhook: str | None = None
    resolve_after_s: float = Field(default=300.0, alias="resolve_after")

    @field_validator("resolve_after_s", mode="before")
    @classmethod
    def _span(cls, value: Any) -> float:
        return parse_span(value)

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_url(value)

    @model_validator(mode="after")
    def _unique(self) -> AlertRules:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule names must be unique; {rule.name!r} appears twice")
            seen.add(rule.name)
        return self

    @classmethod
    def from_dict(cls, data: Any, source: str = "alert rules") -> AlertRules:
        """Validate a parsed mapping; a bad one is a :class:`~rlops.errors.ConfigError` naming the field."""
        return parse_model(cls, data, source, "alert rules")

    @classmethod
    def load(cls, path: str | Path) -> AlertRules:
        """Read and validate a YAML (or ``.json``) rules file.

        Raises:
            ConfigError: the file cannot be read, is not YAML, or breaks a rule; the message names the file and
                the field, e.g. ``rules.yaml: rules.0.threshold: Input should be a valid number``.
        """
        return cls.from_dict(read_document(path, "alert rules"), str(path))

    def rule(self, name: str) -> AlertRule:
        """The rule called ``name`` (``KeyError`` when there is none)."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def webhook_for(self, rule: AlertRule) -> str | None:
        """The URL ``rule``'s alerts are POSTed to: its own, else the file's, else None."""
        return rule.webhook if rule.webhook is not None else self.webhook

    def resolve_after_for(self, rule: AlertRule) -> float:
        """Seconds ``rule``'s condition must be false before its alert resolves: its own, else the file's."""
        return rule.resolve_after_s if rule.resolve_after_s is not None else self.resolve_after_s
