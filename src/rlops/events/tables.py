"""Arrow tables of the event log: decoded rows to ``DECISION_SCHEMA`` / ``OUTCOME_SCHEMA`` tables and back to records.

The JSON-text columns (``context``, ``candidate_features``, ``fields`` and the ``action`` of box actions) hold the
compact JSON the log writes (:data:`rlops.events.frames.dumps`), so the same record always gives the same text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rlops.events.frames import DECISION_ROW, OUTCOME_ROW, TAG_DECISION, dumps, pad_row
from rlops.events.records import ADDED_DEFAULTS, DECISION_SCHEMA, OUTCOME_SCHEMA, DecisionRecord, Mode, OutcomeRecord

_DECISION_NAMES = DECISION_SCHEMA.names
_OUTCOME_NAMES = OUTCOME_SCHEMA.names


def split_rows(rows: Sequence[list[Any]]) -> tuple[list[list[Any]], list[list[Any]]]:
    """Split tagged rows into (decision rows, outcome rows), keeping the order within each."""
    decisions: list[list[Any]] = []
    outcomes: list[list[Any]] = []
    for row in rows:
        (decisions if row[0] == TAG_DECISION else outcomes).append(row)
    return decisions, outcomes


def decision_table(rows: Sequence[list[Any]]) -> pa.Table:
    """A ``DECISION_SCHEMA`` table from tagged decision rows."""
    if not rows:
        return DECISION_SCHEMA.empty_table()
    if any(len(row) != DECISION_ROW for row in rows):
        rows = [pad_row(row) for row in rows]
    # Transposing once with zip(*rows) is several times faster than appending to 16 lists row by row.
    (_, ids, ts, deployment, version, mode, unit, context, actions, action, index, propensity, probabilities,
     candidates, latency, key_id, consent) = zip(*rows, strict=True)
    columns: list[Any] = [
        ids, ts, deployment, version, mode, unit,
        [dumps(c) for c in context],
        actions,
        [a if isinstance(a, str) else dumps(a) for a in action],
        index, propensity, probabilities,
        [None if c is None else dumps(c) for c in candidates],
        latency, key_id, consent,
    ]
    return pa.Table.from_pydict(dict(zip(_DECISION_NAMES, columns, strict=True)), schema=DECISION_SCHEMA)


def outcome_table(rows: Sequence[list[Any]]) -> pa.Table:
    """An ``OUTCOME_SCHEMA`` table from tagged outcome rows."""
    if not rows:
        return OUTCOME_SCHEMA.empty_table()
    if any(len(row) != OUTCOME_ROW for row in rows):
        rows = [pad_row(row) for row in rows]
    _, ids, ts, fields, keys, key_id, quarantine = zip(*rows, strict=True)
    columns = [ids, ts, [dumps(f) for f in fields], keys, key_id, quarantine]
    return pa.Table.from_pydict(dict(zip(_OUTCOME_NAMES, columns, strict=True)), schema=OUTCOME_SCHEMA)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` (a Parquet part, possibly written before some columns existed) in ``schema``: missing columns
    added with their defaults (:data:`ADDED_DEFAULTS`), columns in the schema's order. Columns the schema does not
    have are an error of the caller, not of old data, and are left for the cast to refuse."""
    if table.schema.names == schema.names:
        return table
    names = set(table.schema.names)
    for name in schema.names:
        if name not in names and name in ADDED_DEFAULTS:
            table = table.append_column(schema.field(name),
                                        pa.array([ADDED_DEFAULTS[name]] * table.num_rows, schema.field(name).type))
    return table.select([n for n in schema.names if n in table.schema.names])


def _as_pydict(table: pa.Table) -> dict[str, list[Any]]:
    # Timestamps come back as datetime objects from to_pydict; records hold integer microseconds.
    index = table.schema.get_field_index("ts")
    return dict(table.set_column(index, "ts", pc.cast(table.column("ts"), pa.int64())).to_pydict())


def decision_records(table: pa.Table) -> Iterator[DecisionRecord]:
    """The records of a ``DECISION_SCHEMA`` table (inverse of :func:`decision_table`)."""
    if table.num_rows == 0:
        return
    d = _as_pydict(conform(table, DECISION_SCHEMA))
    for (decision_id, ts, deployment, version, mode, unit, context, actions, action, index, propensity,
         probabilities, candidates, latency, key_id, consent) in zip(*(d[name] for name in _DECISION_NAMES),
                                                                     strict=True):
        yield DecisionRecord(
            decision_id=decision_id, ts=ts, deployment=deployment, policy_version=version, mode=Mode(mode),
            unit_id=unit, context=json.loads(context), actions=actions,
            action=json.loads(action) if index == -1 else action, action_index=index, propensity=propensity,
            probabilities=probabilities, candidate_features=None if candidates is None else json.loads(candidates),
            latency_us=latency, key_id=key_id, consent=consent)


def outcome_records(table: pa.Table) -> Iterator[OutcomeRecord]:
    """The records of an ``OUTCOME_SCHEMA`` table (inverse of :func:`outcome_table`)."""
    if table.num_rows == 0:
        return
    d = _as_pydict(conform(table, OUTCOME_SCHEMA))
    for decision_id, ts, fields, key, key_id, quarantine in zip(*(d[name] for name in _OUTCOME_NAMES), strict=True):
        yield OutcomeRecord(decision_id=decision_id, ts=ts, fields=json.loads(fields), idempotency_key=key,
                            key_id=key_id, quarantine=quarantine)


def served_in(table: pa.Table, deployment: str, start_us: int | None = None, end_us: int | None = None) -> pa.Table:
    """Rows of ``table`` (decisions or interactions) served by ``deployment`` with ``start_us <= ts < end_us``
    (shadow decisions left out: nobody acted on them)."""
    mask = pc.and_(pc.equal(table["deployment"], deployment), pc.equal(table["mode"], Mode.SERVED.value))
    ts = pc.cast(table["ts"], pa.int64())
    if start_us is not None:
        mask = pc.and_(mask, pc.greater_equal(ts, start_us))
    if end_us is not None:
        mask = pc.and_(mask, pc.less(ts, end_us))
    return table.filter(mask)


def parse_time_us(text: str, field: str) -> int:
    """A time given as integer microseconds since the epoch or ISO 8601 (naive means UTC), in microseconds.

    Raises:
        ValidationError: naming ``field``.
    """
    import datetime as dt

    from rlops.errors import ValidationError

    text = text.strip()
    if text.lstrip("-").isdigit():
        value = int(text)
    else:
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as e:
            raise ValidationError(field, f"{text[:40]!r} is neither an ISO 8601 time nor microseconds since the "
                                         "epoch") from e
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        value = round(moment.timestamp() * 1_000_000)
    if not 0 <= value < _MAX_TIME_US:
        raise ValidationError(field, "must lie between 1970 and 9999")
    return value


#: Microseconds since the epoch of 10000-01-01, past any time a timestamp column holds.
_MAX_TIME_US = 253_402_300_800_000_000
