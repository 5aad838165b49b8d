"""Alerts in the metadata database (``HOME/meta.db``; any SQLAlchemy URL).

Two tables: ``alerts`` holds one row per alert that fired (what, where, why, when it resolved, what its action did,
every webhook delivery), kept after it resolves; ``alert_instances`` holds the live state of each (rule, label set)
that is pending or firing, so that a restarted evaluator neither re-fires an alert that is still firing nor forgets
how long a condition has held. An instance that is neither pending nor firing has no row.

Every state change is one transaction guarded by the instance row's version (compare-and-set): two evaluators on
one database cannot both fire the same alert; the one that loses the race skips that change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, Text, delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.exc import IntegrityError, OperationalError

from rlops.errors import NotFoundError, StorageError, ValidationError
from rlops.home import Home
from rlops.metadata import open_database
from rlops.monitoring.alerts.rules import Action, AlertSeverity, Op
from rlops.monitoring.alerts.signals import labels_key

T = TypeVar("T")

_metadata = MetaData()
alerts = Table(
    "alerts",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(100), nullable=False, index=True),
    Column("signal", String(200), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("labels", Text, nullable=False),
    Column("deployment", String(200), nullable=True, index=True),
    Column("value", Float, nullable=False),
    Column("op", String(2), nullable=False),
    Column("threshold", Float, nullable=False),
    Column("message", Text, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("fired_at_us", BigInteger, nullable=False, index=True),
    Column("resolved_at_us", BigInteger, nullable=True),
    Column("resolved_value", Float, nullable=True),
    Column("action", String(16), nullable=False),
    Column("action_result", Text, nullable=True),
    Column("webhook", Text, nullable=True),
    Column("deliveries", Text, nullable=False),
)
instances = Table(
    "alert_instances",
    _metadata,
    Column("rule", String(100), primary_key=True),
    Column("instance", String(64), primary_key=True),  # sha256 of the canonical labels
    Column("labels", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("since_us", BigInteger, nullable=False),
    Column("alert_id", Integer, nullable=True),
    Column("clear_since_us", BigInteger, nullable=True),
    Column("version", Integer, nullable=False),
)


class AlertState(StrEnum):
    """A stored alert's state: it fired and is still firing, or it has resolved."""

    FIRING = "firing"
    RESOLVED = "resolved"


class InstanceState(StrEnum):
    """Where one (rule, label set) stands: the evaluator's state machine."""

    INACTIVE = "inactive"  #: condition false (or never seen): no row
    PENDING = "pending"  #: condition true, waiting for the rule's ``for``
    FIRING = "firing"  #: fired; resolves once the condition has been false for ``resolve_after``


class DeliveryStatus(StrEnum):
    """The webhook status of an alert (of its latest notification)."""

    NONE = "none"  #: the rule has no webhook
    PENDING = "pending"  #: not attempted yet (or the process stopped before it could)
    DELIVERED = "delivered"  #: the receiver answered 2xx
    FAILED = "failed"  #: every attempt failed; see the delivery's error


def now_us() -> int:
    """Microseconds since the epoch (UTC)."""
    return time.time_ns() // 1000


def iso(us: int | None) -> str | None:
    """``2024-05-01T12:00:00.000000Z`` for microseconds since the epoch."""
    if us is None:
        return None
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


@dataclass(frozen=True)
class Delivery:
    """One webhook notification of an alert.

    Attributes:
        state: which transition it announced (``firing`` or ``resolved``).
        status: DELIVERED or FAILED.
        attempts: POSTs made (retries included).
        at_us: when the last attempt ended.
        http_status: the last answer's HTTP status, None when no answer came.
        error: why it failed (None when delivered).
    """

    state: AlertState
    status: DeliveryStatus
    attempts: int
    at_us: int
    http_status: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "status": self.status.value, "attempts": self.attempts,
                "at": iso(self.at_us), "at_us": self.at_us, "http_status": self.http_status, "error": self.error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delivery:
        return cls(AlertState(data["state"]), DeliveryStatus(data["status"]), int(data["attempts"]),
                   int(data["at_us"]), data.get("http_status"), data.get("error"))


@dataclass(frozen=True)
class AlertRecord:
    """One stored alert.

    Attributes:
        id: unique, increasing.
        rule: the rule that fired.
        signal: the signal it read.
        severity: the rule's severity.
        labels: the signal's labels: which deployment, feature, version...
        value: the signal's value when the alert fired.
        op: the rule's comparison.
        threshold: the rule's threshold.
        message: one line saying what happened.
        state: FIRING or RESOLVED.
        fired_at_us: when it fired (microseconds since the epoch, UTC).
        resolved_at_us: when it resolved (None while firing).
        resolved_value: the value that resolved it.
        action: the rule's action.
        action_result: what the action handler said (None until it ran).
        webhook: the URL it is POSTed to (None: no webhook).
        deliveries: every webhook notification, oldest first.
    """

    id: int
    rule: str
    signal: str
    severity: AlertSeverity
    labels: dict[str, str]
    value: float
    op: Op
    threshold: float
    message: str
    state: AlertState
    fired_at_us: int
    resolved_at_us: int | None
    resolved_value: float | None
    action: Action
    action_result: str | None
    webhook: str | None
    deliveries: tuple[Delivery, ...] = field(default=())

    @property
    def deployment(self) -> str | None:
        """The ``deployment`` label, if any."""
        return self.labels.get("deployment")

    @property
    def webhook_status(self) -> DeliveryStatus:
        """NONE without a webhook, PENDING before the first attempt, else the latest delivery's status."""
        if self.webhook is None:
            return DeliveryStatus.NONE
        return self.deliveries[-1].status if self.deliveries else DeliveryStatus.PENDING

    def to_dict(self, *, deliveries: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (times both as microseconds and ISO text; a non-finite value becomes null).

        Args:
            deliveries: include the delivery history (the webhook payload leaves it out).
        """
        data: dict[str, Any] = {
            "id": self.id, "rule": self.rule, "signal": self.signal, "severity": self.severity.value,
            "labels": dict(self.labels), "deployment": self.deployment, "value": _finite(self.value),
            "op": self.op.value, "threshold": self.threshold, "message": self.message, "state": self.state.value,
            "fired_at": iso(self.fired_at_us), "fired_at_us": self.fired_at_us,
            "resolved_at": iso(self.resolved_at_us), "resolved_at_us": self.resolved_at_us,
            "resolved_value": _finite(self.resolved_value), "action": self.action.value,
            "action_result": self.action_result, "webhook": self.webhook,
            "webhook_status": self.webhook_status.value,
        }
        if deliveries:
            data["deliveries"] = [d.to_dict() for d in self.deliveries]
        return data


@dataclass(frozen=True)
class AlertInstance:
    """The stored state of one (rule, label set) that is pending or firing.

    Attributes:
        rule: the rule's name.
        labels: the signal's labels.
        state: PENDING or FIRING.
        since_us: when the condition was first seen true (the start of ``for``).
        alert_id: the alert record while FIRING.
        clear_since_us: while FIRING, when the condition was first seen false again (the start of
            ``resolve_after``); None while it holds.
        version: bumped by every change (the compare-and-set guard).
    """

    rule: str
    labels: dict[str, str]
    state: InstanceState
    since_us: int
    alert_id: int | None
    clear_since_us: int | None
    version: int

    @property
    def key(self) -> str:
        return labels_key(self.labels)


@dataclass(frozen=True)
class NewAlert:
    """What the evaluator knows of an alert it is about to fire (the store adds the id and the state)."""

    rule: str
    signal: str
    severity: AlertSeverity
    labels: dict[str, str]
    value: float
    op: Op
    threshold: float
    message: str
    action: Action
    webhook: str | None


def _digest(labels: Mapping[str, str]) -> str:
    return hashlib.sha256(labels_key(labels).encode()).hexdigest()


def _record(row: Any) -> AlertRecord:
    return AlertRecord(row.id, row.rule, row.signal, AlertSeverity(row.severity), json.loads(row.labels),
                       row.value, Op(row.op), row.threshold, row.message, AlertState(row.state), row.fired_at_us,
                       row.resolved_at_us, row.resolved_value, Action(row.action), row.action_result, row.webhook,
                       tuple(Delivery.from_dict(d) for d in json.loads(row.deliveries)))


def _instance(row: Any) -> AlertInstance:
    return AlertInstance(row.rule, json.loads(row.labels), InstanceState(row.state), row.since_us, row.alert_id,
                         row.clear_since_us, row.version)


class _LostRace(Exception):
    """Another evaluator changed the instance first: roll this transaction back and skip the change."""


class AlertStore:
    """The alert tables.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///HOME/meta.db`` (see :meth:`for_home`).

    Raises:
        StorageError: the tables cannot be created.
    """

    def __init__(self, url: str) -> None:
        self.engine: SqlEngine = open_database(url, _metadata, "alert")

    @classmethod
    def for_home(cls, home: Home) -> AlertStore:
        """The store in ``home``'s metadata database."""
        return cls(home.metadata_url)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ---- reads ----

    def get(self, alert_id: int) -> AlertRecord:
        """The alert with this id.

        Raises:
            NotFoundError: there is none.
        """
        with self.engine.connect() as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
        if row is None:
            raise NotFoundError(f"alert {alert_id} does not exist (see 'rlops alerts')")
        return _record(row)

    def list_alerts(self, *, state: AlertState | None = None, since_us: int | None = None,
                    deployment: str | None = None, rule: str | None = None,
                    limit: int | None = None) -> list[AlertRecord]:
        """Stored alerts, newest first.

        Args:
            state: only FIRING or only RESOLVED alerts (default: both).
            since_us: only alerts active at some time at or after this (fired after it, resolved after it, or
                still firing).
            deployment: only alerts whose ``deployment`` label is this.
            rule: only alerts of this rule.
            limit: at most this many (> 0; default: all).

        Raises:
            ValidationError: ``limit`` < 1.
        """
        if limit is not None and limit < 1:
            raise ValidationError("limit", f"must be at least 1, got {limit}")
        query = select(alerts).order_by(alerts.c.fired_at_us.desc(), alerts.c.id.desc())
        if state is not None:
            query = query.where(alerts.c.state == state.value)
        if since_us is not None:
            query = query.where(alerts.c.resolved_at_us.is_(None) | (alerts.c.resolved_at_us >= since_us))
        if deployment is not None:
            query = query.where(alerts.c.deployment == deployment)
        if rule is not None:
            query = query.where(alerts.c.rule == rule)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query)]

    def instances(self, rules: Iterable[str] | None = None) -> list[AlertInstance]:
        """Pending and firing instances (of these rules only, when given)."""
        query = select(instances).order_by(instances.c.rule, instances.c.since_us)
        if rules is not None:
            query = query.where(instances.c.rule.in_(list(rules)))
        with self.engine.connect() as conn:
            return [_instance(r) for r in conn.execute(query)]

    def instance_state(self, rule: str, labels: Mapping[str, str]) -> InstanceState:
        """Where (``rule``, ``labels``) stands now: INACTIVE, PENDING or FIRING."""
        query = select(instances.c.state).where(instances.c.rule == rule, instances.c.instance == _digest(labels))
        with self.engine.connect() as conn:
            state = conn.execute(query).scalar()
        return InstanceState.INACTIVE if state is None else InstanceState(state)

    # ---- state changes (used by the evaluator; each returns None or False when another writer won) ----

    def _transaction(self, body: Callable[[Connection], T]) -> T | None:
        try:
            with self.engine.begin() as conn:
                return body(conn)
        except (_LostRace, IntegrityError):
            return None
        except OperationalError as e:
            raise StorageError(f"metadata database: cannot store alert state: {e.orig}") from e

    @staticmethod
    def _guarded(conn: Connection, statement: Any) -> None:
        if conn.execute(statement).rowcount != 1:
            raise _LostRace

    @staticmethod
    def _where(instance: AlertInstance) -> Any:
        return ((instances.c.rule == instance.rule) & (instances.c.instance == _digest(instance.labels))
                & (instances.c.version == instance.version))

    def start_pending(self, rule: str, labels: Mapping[str, str], at_us: int) -> bool:
        """INACTIVE -> PENDING (the condition was first seen true at ``at_us``); False when it was not INACTIVE."""
        def body(conn: Connection) -> bool:
            conn.execute(instances.insert().values(rule=rule, instance=_digest(labels), labels=labels_key(labels),
                                                   state=InstanceState.PENDING.value, since_us=at_us, version=1))
            return True

        return bool(self._transaction(body))

    def fire(self, alert: NewAlert, previous: AlertInstance | None, at_us: int) -> AlertRecord | None:
        """INACTIVE or PENDING -> FIRING: store the alert record and point the instance at it, atomically.

        Args:
            alert: the alert's content.
            previous: the PENDING instance (None when it was INACTIVE).
            at_us: the firing time.

        Returns:
            The new record, or None when another writer changed the instance first.
        """
        def body(conn: Connection) -> AlertRecord:
            inserted = conn.execute(alerts.insert().values(
                rule=alert.rule, signal=alert.signal, severity=alert.severity.value, labels=labels_key(alert.labels),
                deployment=alert.labels.get("deployment"), value=alert.value, op=alert.op.value,
                threshold=alert.threshold, message=alert.message, state=AlertState.FIRING.value, fired_at_us=at_us,
                action=alert.action.value, webhook=alert.webhook, deliveries="[]")).inserted_primary_key
            if inserted is None:  # pragma: no cover - every SQLAlchemy dialect reports an autoincrement key
                raise StorageError("metadata database: the new alert got no id")
            alert_id = inserted[0]
            firing = {"state": InstanceState.FIRING.value, "alert_id": alert_id, "clear_since_us": None}
            if previous is None:
                conn.execute(instances.insert().values(rule=alert.rule, instance=_digest(alert.labels),
                                                       labels=labels_key(alert.labels), since_us=at_us, version=1,
                                                       **firing))
            else:
                self._guarded(conn, update(instances).where(self._where(previous))
                              .values(version=previous.version + 1, **firing))
            return _record(conn.execute(select(alerts).where(alerts.c.id == alert_id)).one())

        return self._transaction(body)

    def set_clearing(self, instance: AlertInstance, clear_since_us: int | None) -> bool:
        """Record (or forget, with None) when a FIRING instance's condition was first seen false again."""
        def body(conn: Connection) -> bool:
            self._guarded(conn, update(instances).where(self._where(instance))
                          .values(clear_since_us=clear_since_us, version=instance.version + 1))
            return True

        return bool(self._transaction(body))

    def drop_pending(self, instance: AlertInstance) -> bool:
        """PENDING -> INACTIVE (the condition stopped holding before ``for`` was over)."""
        def body(conn: Connection) -> bool:
            self._guarded(conn, delete(instances).where(self._where(instance)))
            return True

        return bool(self._transaction(body))

    def resolve(self, instance: AlertInstance, at_us: int, value: float) -> AlertRecord | None:
        """FIRING -> INACTIVE: the record becomes RESOLVED at ``at_us`` with ``value``; None when another writer won."""
        def body(conn: Connection) -> AlertRecord:
            self._guarded(conn, delete(instances).where(self._where(instance)))
            conn.execute(update(alerts).where(alerts.c.id == instance.alert_id)
                         .values(state=AlertState.RESOLVED.value, resolved_at_us=at_us, resolved_value=value))
            return _record(conn.execute(select(alerts).where(alerts.c.id == instance.alert_id)).one())

        return self._transaction(body)

    # ---- what happened after firing ----

    def record_action(self, alert_id: int, result: str) -> AlertRecord:
        """Store what the alert's action handler said."""
        with self.engine.begin() as conn:
            conn.execute(update(alerts).where(alerts.c.id == alert_id).values(action_result=result))
        return self.get(alert_id)

    def record_delivery(self, alert_id: int, delivery: Delivery) -> AlertRecord:
        """Append a webhook notification's outcome to the alert's deliveries."""
        with self.engine.begin() as conn:
            # write first, read second: the transaction takes SQLite's write lock (waiting for it if need be) before
            # it reads, so it never has to upgrade a read snapshot another writer has moved past
            conn.execute(update(alerts).where(alerts.c.id == alert_id).values(deliveries=alerts.c.deliveries))
            row = conn.execute(select(alerts.c.deliveries).where(alerts.c.id == alert_id)).first()
            if row is None:
                raise NotFoundError(f"alert {alert_id} does not exist (see 'rlops alerts')")
            history = [*json.loads(row.deliveries), delivery.to_dict()]
            conn.execute(update(alerts).where(alerts.c.id == alert_id).values(deliveries=json.dumps(history)))
        return self.get(alert_id)
