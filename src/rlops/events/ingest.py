"""Ingest an edge runtime's decision log into the event log: validated, all or nothing, idempotent.

The file is what :class:`rlops.edge.log.DecisionLog` writes: JSON lines, one batch of decisions per line (format
in :mod:`rlops.edge.log`). Ingesting it:

1. reads every complete line; an incomplete last line (a crash mid-write: its decisions were never returned) is
   skipped and reported;
2. validates every line and every decision in it: the deployment exists and ``policy_version`` names one of its
   revisions, whose schema the contexts must pass (they are stored normalised, defaults filled in); actions,
   indices, probabilities and propensities are consistent; times, ids and unit ids are well-formed. The first
   problem is raised with its line number, and nothing is stored;
3. leaves out decisions whose ids the log already holds (an earlier ingest of the same file) or that repeat
   within the file, so ingesting twice stores each decision once;
4. appends the rest, in batches of :data:`CHUNK` records (each batch is one all-or-nothing frame). If the process
   dies part-way, running the ingest again stores exactly what is missing.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from rlops.edge.log import FORMAT, FORMAT_VERSION
from rlops.errors import NotFoundError, StorageError, ValidationError
from rlops.events.log import EventLog
from rlops.events.records import DecisionRecord, Mode
from rlops.home import Home
from rlops.schema import BoxActions, Schema

#: Decisions appended per event-log frame.
CHUNK = 5_000
MAX_ID_LENGTH = 256
#: Earliest decision time accepted (2000-01-01) and how far ahead of this machine's clock a device's may run, µs.
EARLIEST_TS = 946_684_800_000_000
MAX_CLOCK_AHEAD_US = 86_400_000_000
#: How far a logged distribution's sum may be from 1, and a propensity from its probability.
TOLERANCE = 1e-6
_MODES = {m.value: m for m in Mode}

#: ``(deployment, policy_version) -> schema`` of that revision; raises :class:`NotFoundError` naming what is missing.
SchemaLookup = Callable[[str, str], Schema]
#: ``(phase, done, total)``: called as lines are checked and as records are appended.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class IngestResult:
    """What an ingest found and stored.

    Attributes:
        path: the file.
        lines: complete lines read.
        decisions: decisions in those lines.
        appended: decisions stored by this ingest.
        already_stored: decisions left out because the log already held their ids (or they repeat in the file).
        torn_tail_bytes: bytes of an incomplete last line, skipped (0 if the file ends with a newline).
        by_deployment: decisions stored per deployment.
    """

    path: Path
    lines: int
    decisions: int
    appended: int
    already_stored: int
    torn_tail_bytes: int
    by_deployment: dict[str, int] = field(default_factory=dict)


class _LineError(Exception):
    """A problem in one line: ``field`` inside the line and the rule."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(field, rule)
        self.field, self.rule = field, rule


def _is_number(x: Any) -> bool:
    return (type(x) is float or type(x) is int) and math.isfinite(x)


def _list(line: Mapping[str, Any], key: str, n: int | None = None) -> list[Any]:
    value = line.get(key)
    if not isinstance(value, list) or (n is not None and len(value) != n):
        raise _LineError(key, "expected a list" + ("" if n is None else f" of {n} items, one per decision"))
    return value


def _int(line: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = line.get(key)
    if type(value) is not int or not low <= value <= high:
        raise _LineError(key, f"expected an integer between {low} and {high}, got {value!r:.60}")
    return value


def _str(line: Mapping[str, Any], key: str) -> str:
    value = line.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise _LineError(key, f"expected a non-empty string of at most {MAX_ID_LENGTH} characters")
    return value


def _contexts(line: Mapping[str, Any], schema: Schema, n: int) -> list[dict[str, Any]]:
    columns = line.get("context")
    if not isinstance(columns, dict):
        raise _LineError("context", "expected an object of feature columns")
    for name, values in columns.items():
        if not isinstance(values, list) or len(values) != n:
            raise _LineError(f"context.{str(name)[:64]}", f"expected a list of {n} values, one per decision")
    rows = [{name: values[i] for name, values in columns.items()} for i in range(n)]
    try:
        return [schema.validate_context(row, path=f"decisions[{i}].context") for i, row in enumerate(rows)]
    except ValidationError as e:
        raise _LineError(e.field, e.rule) from e


def _discrete(line: Mapping[str, Any], propensity: list[Any], k: int, n: int) -> tuple[list[int], list[Any]]:
    if "action" in line:
        raise _LineError("action", "is for box actions; discrete decisions give action_index")
    indices = _list(line, "action_index", n)
    probabilities = _list(line, "probabilities", n)
    for i, (a, p, row) in enumerate(zip(indices, propensity, probabilities, strict=True)):
        if type(a) is not int or not 0 <= a < k:
            raise _LineError(f"action_index[{i}]", f"expected an index in [0, {k}), got {a!r:.60}")
        if not isinstance(row, list) or len(row) != k or not all(_is_number(q) and q >= 0 for q in row):
            raise _LineError(f"probabilities[{i}]", f"expected {k} finite probabilities >= 0")
        if abs(math.fsum(row) - 1.0) > TOLERANCE:
            raise _LineError(f"probabilities[{i}]", f"sum to {math.fsum(row)!r}, not 1")
        if p > 1.0 + TOLERANCE or abs(p - row[a]) > TOLERANCE:
            raise _LineError(f"propensity[{i}]", f"{p!r} is not the probability {row[a]!r} of the chosen action")
    return indices, probabilities


def _box(line: Mapping[str, Any], dim: int, n: int) -> list[list[float]]:
    if line.get("action_index") is not None or line.get("probabilities") is not None:
        raise _LineError("action_index", "box decisions give action (vectors), not action_index or probabilities")
    vectors = _list(line, "action", n)
    for i, vector in enumerate(vectors):
        if not isinstance(vector, list) or len(vector) != dim or not all(map(_is_number, vector)):
            raise _LineError(f"action[{i}]", f"expected a vector of {dim} finite numbers")
    return [[float(x) for x in v] for v in vectors]


def parse_line(line: Any, lookup: SchemaLookup, now_us: int) -> list[DecisionRecord]:
    """The decision records of one parsed line, or :class:`_LineError` naming the first problem."""
    if not isinstance(line, dict):
        raise _LineError("line", f"expected a JSON object, got {type(line).__name__}")
    if line.get("format") != FORMAT:
        raise _LineError("format", f"expected {FORMAT!r}, got {line.get('format')!r:.60}")
    _int(line, "format_version", 1, FORMAT_VERSION)
    deployment, version = _str(line, "deployment"), _str(line, "policy_version")
    try:
        schema = lookup(deployment, version)
    except NotFoundError as e:
        raise _LineError("policy_version", str(e)) from e
    given_mode = line.get("mode")
    mode = _MODES.get(given_mode) if isinstance(given_mode, str) else None
    if mode is None:
        raise _LineError("mode", f"expected one of {sorted(_MODES)}, got {line.get('mode')!r:.60}")
    ts = _int(line, "ts", EARLIEST_TS, now_us + MAX_CLOCK_AHEAD_US)
    latency = _int(line, "latency_us", 0, 2**63 - 1)
    names = schema.action_names()
    if line.get("actions") != names:
        raise _LineError("actions", f"expected the revision's actions {names[:20]}, got {line.get('actions')!r:.200}")
    ids = _list(line, "decision_id")
    n = len(ids)
    if n == 0:
        raise _LineError("decision_id", "expected at least one decision")
    for i, decision_id in enumerate(ids):
        if not isinstance(decision_id, str) or not decision_id or len(decision_id) > MAX_ID_LENGTH:
            raise _LineError(f"decision_id[{i}]", f"expected a non-empty string of at most {MAX_ID_LENGTH} characters")
    units = _list(line, "unit_id", n)
    for i, unit in enumerate(units):
        if not isinstance(unit, str) or len(unit) > MAX_ID_LENGTH:
            raise _LineError(f"unit_id[{i}]", f"expected a string of at most {MAX_ID_LENGTH} characters")
    propensity = _list(line, "propensity", n)
    for i, p in enumerate(propensity):
        if not _is_number(p) or p <= 0:
            raise _LineError(f"propensity[{i}]", f"expected a finite number > 0, got {p!r:.60}")
    contexts = _contexts(line, schema, n)
    records = []
    if isinstance(schema.actions, BoxActions):
        vectors = _box(line, schema.actions.dim, n)
        for i in range(n):
            records.append(DecisionRecord(ids[i], ts, deployment, version, mode, units[i], contexts[i], [], vectors[i],
                                          -1, float(propensity[i]), None, None, latency))
        return records
    indices, probabilities = _discrete(line, propensity, len(names), n)
    for i in range(n):
        records.append(DecisionRecord(ids[i], ts, deployment, version, mode, units[i], contexts[i], list(names),
                                      names[indices[i]], indices[i], float(propensity[i]),
                                      [float(q) for q in probabilities[i]], None, latency))
    return records


def read_lines(path: Path) -> tuple[list[bytes], int]:
    """The file's complete lines and the size of an incomplete last line (0 if it ends with a newline)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise NotFoundError(f"{path}: no such decision log") from e
    except OSError as e:
        raise StorageError(f"cannot read {path}: {e.strerror or e}") from e
    end = data.rfind(b"\n") + 1
    return data[:end].split(b"\n")[:-1], len(data) - end


def ingest_file(path: str | os.PathLike[str], log: EventLog, lookup: SchemaLookup, *,
                progress: Progress | None = None,
                protect: Callable[[Schema, dict[str, Any]], dict[str, Any]] | None = None) -> IngestResult:
    """Validate a whole decision log and append the decisions the event log does not hold yet.

    Args:
        path: the JSON-lines file an edge runtime wrote.
        log: the event log to append to.
        lookup: the schema of a deployment's revision, by policy version.
        progress: called with ``("checking", lines done, lines)`` and ``("storing", records done, records)``.
        protect: what the log may keep of a validated context (the schema's PII policies; see
            :class:`rlops.security.pii.PiiFilter`); default: the context as it is.

    Raises:
        ValidationError: a line is malformed or a decision breaks a rule; the field names the file, the line number
            and the decision (``FILE line 3: decisions[7].context.age``). Nothing is stored.
        NotFoundError: the file does not exist.
        StorageError: the file or the log cannot be read or written.
    """
    path = Path(path)
    lines, torn = read_lines(path)
    now = time.time_ns() // 1000
    stored = log.decision_index()
    seen: dict[str, DecisionRecord] = {}
    fresh: list[DecisionRecord] = []
    total = skipped = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            records = parse_line(orjson.loads(raw), lookup, now)
        except orjson.JSONDecodeError as e:
            raise ValidationError(f"{path} line {number}", f"not valid JSON: {e}") from e
        except _LineError as e:
            raise ValidationError(f"{path} line {number}: {e.field}", e.rule) from e
        if protect is not None:
            records = [dataclasses.replace(r, context=protect(lookup(r.deployment, r.policy_version), r.context))
                       for r in records]
        for record in records:
            total += 1
            earlier = seen.get(record.decision_id)
            if earlier is not None and earlier != record:
                raise ValidationError(f"{path} line {number}: decision_id",
                                      f"{record.decision_id} appears earlier in the file with different content")
            if earlier is not None or record.decision_id in stored:
                skipped += 1
                continue
            seen[record.decision_id] = record
            fresh.append(record)
        if progress is not None:
            progress("checking", number, len(lines))
    by_deployment: dict[str, int] = {}
    for start in range(0, len(fresh), CHUNK):
        chunk = fresh[start:start + CHUNK]
        log.append(chunk)
        for record in chunk:
            by_deployment[record.deployment] = by_deployment.get(record.deployment, 0) + 1
        if progress is not None:
            progress("storing", start + len(chunk), len(fresh))
    return IngestResult(path, len(lines), total, len(fresh), skipped, torn, by_deployment)


def revision_lookup(home: Home) -> tuple[SchemaLookup, Callable[[], None]]:
    """A :data:`SchemaLookup` over ``home``'s deployments (revisions cached), and a function closing it."""
    from rlops.engine.store import DeploymentStore  # the engine sits above the events; only this helper needs it

    store = DeploymentStore(f"sqlite:///{home.meta_db}")
    cache: dict[tuple[str, str], Schema] = {}

    def lookup(deployment: str, version: str) -> Schema:
        key = (deployment, version)
        if key not in cache:
            revisions = store.history(deployment)
            if not revisions:
                raise NotFoundError(f"deployment {deployment!r} does not exist in {home.root}")
            match = [r for r in revisions if r.policy_version == version]
            if not match:
                raise NotFoundError(f"{version!r} is not a revision of deployment {deployment!r} (it has "
                                    f"{revisions[0].policy_version} to {revisions[-1].policy_version})")
            cache[key] = match[0].deployment_spec().schema_
        return cache[key]

    return lookup, store.close


def ingest_into_home(path: str | os.PathLike[str], home: Home, *, progress: Progress | None = None) -> IngestResult:
    """:func:`ingest_file` into ``home``'s event log, checking decisions against its deployments' revisions."""
    from rlops.security.pii import PiiFilter, load_pii_key

    lookup, close = revision_lookup(home)
    filters: dict[int, PiiFilter] = {}

    def protect(schema: Schema, context: dict[str, Any]) -> dict[str, Any]:
        if not schema.pii:
            return context
        made = filters.get(id(schema))
        if made is None:
            hashing = any(p == "hash" for p in schema.pii.values())
            made = filters[id(schema)] = PiiFilter(schema, load_pii_key(home.keys) if hashing else None)
        return made.protect(context)

    try:
        with EventLog(home.events) as log:
            return ingest_file(path, log, lookup, progress=progress, protect=protect)
    finally:
        close()
