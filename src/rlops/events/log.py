"""The durable event log: append decisions and outcomes with group commit, read them back as Arrow tables.

How it works (file layout in :mod:`rlops.events.layout`, frame format in :mod:`rlops.events.frames`):

- Each :class:`EventLog` instance writes only its own segment files, holding an exclusive ``flock`` on the one it
  is writing, so any number of processes (server workers, a CLI) can append to one folder without any
  cross-process lock on the hot path.
- An append encodes its batch into one self-checking frame outside any lock, queues it under a short lock and
  takes a sequence number.
- Group commit (leader/follower): if no round is running, the appender leads one: it takes every queued frame,
  writes them all with one ``pwritev``, runs one ``fdatasync`` and wakes the appenders it covered. Otherwise it
  sleeps until a round covers its sequence number, or until it can lead the next one. Frames queued while a round
  syncs go together into the next round, so with many appenders one sync acknowledges many appends, and one
  group encodes while the other syncs.
- Appenders never make a syscall themselves. Measured with 8 threads on 2 CPUs, one ``pwrite`` per append under
  a lock halved throughput: every syscall releases the GIL, and getting it back behind busy threads is slow.
- With a data key configured (:mod:`rlops.encryption`), the appender seals its frame's payload while it encodes
  it, outside the lock, so encryption adds nothing to the round; Parquet parts are sealed files.
- Segments rotate past ``segment_bytes`` (or on :meth:`EventLog.rotate`); a rotated segment is sealed (unlocked)
  as soon as its data is synced. :meth:`EventLog.compact` turns sealed segments into Parquet parts.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rlops.encryption import FILE_MAGIC, KeyNotFoundError, Keyring, KeyWatch, is_sealed, open_bytes, read_plain
from rlops.errors import StorageError, ValidationError
from rlops.events.compaction import CompactionResult, compact
from rlops.events.frames import (
    TAG_DECISION,
    TAG_OUTCOME,
    SegmentScan,
    decode_rows,
    encode_batch,
    row_to_record,
    scan_segment,
)
from rlops.events.ids import new_id
from rlops.events.layout import Layout, Snapshot
from rlops.events.parts import PartFile, PartStore
from rlops.events.records import DECISION_SCHEMA, OUTCOME_SCHEMA, DecisionRecord, OutcomeRecord
from rlops.events.segment import ActiveSegment, read_segment
from rlops.events.tables import conform, decision_records, decision_table, outcome_records, outcome_table

MiB = 1 << 20
#: Segment files grow by allocations of this many bytes (at most ``segment_bytes``), so that syncs do not have to
#: journal a new file size every time.
PREALLOC_BYTES = 4 * MiB
#: Default size past which a writer starts a new segment, bytes.
DEFAULT_SEGMENT_BYTES = 64 * MiB
#: How often a writer that appends looks for a rotation request (``ROOT/rotate.request``), seconds.
ROTATION_CHECK_S = 1.0


#: What the decision index keeps of a decision: (deployment, ts in microseconds, id of the key that asked or None,
#: index of the chosen action: -1 for box actions).
DecisionRef = tuple[str, int, str | None, int]


@dataclass
class IndexCursor:
    """How far :meth:`EventLog.update_decision_index` has read: bytes per segment, and the Parquet parts done."""

    offsets: dict[str, int] = field(default_factory=dict)
    parts: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class EventStats:
    """What the log holds at one moment (records as stored; other writers may be appending meanwhile).

    Attributes:
        decisions: decision records in segments and Parquet parts.
        outcomes: outcome records in segments and Parquet parts.
        segments: segment files not yet compacted (sealed and active, of every writer).
        parquet_parts: Parquet part files (a compacted segment has two: decisions and outcomes).
        segment_bytes: bytes in those segments.
        parquet_bytes: bytes in those parts.
        tail_bytes: bytes after the last good frame of a segment: torn writes of crashed writers, or frames other
            writers are in the middle of writing. Never returned by readers.
    """

    decisions: int
    outcomes: int
    segments: int
    parquet_parts: int
    segment_bytes: int
    parquet_bytes: int
    tail_bytes: int

    @property
    def bytes(self) -> int:
        """Total bytes on disk: segments plus Parquet parts."""
        return self.segment_bytes + self.parquet_bytes


def part_source(part: PartFile | Path, keyring: Keyring | None = None) -> Path | pa.NativeFile:
    """What pyarrow should read a Parquet part from: the file itself (a local path, or a random-access file of the
    parts' filesystem), or its decrypted bytes when it is sealed.

    Every reader of a part goes through this (or :func:`_read_part`).

    Raises:
        FileNotFoundError: the part is gone.
        KeyNotFoundError: it is sealed with a key that ``keyring`` does not hold (the message names the file).
        DecryptionError: it fails its authentication tag (changed after it was written).
    """
    if isinstance(part, Path):
        with part.open("rb") as f:
            sealed = is_sealed(f.read(len(FILE_MAGIC)))
        return pa.BufferReader(read_plain(part, keyring or Keyring())) if sealed else part
    source = part.source()
    if isinstance(source, Path):
        return part_source(source, keyring)
    head = source.read(len(FILE_MAGIC))
    if not is_sealed(head):
        source.seek(0)
        return source
    source.close()
    return pa.BufferReader(open_bytes(part.read_bytes(), keyring or Keyring(), str(part)))


def _scan(path: Path, data: bytes, keyring: Keyring, *, resume: bool = False) -> SegmentScan:
    """:func:`scan_segment` of a segment's bytes, naming the file when a key is missing."""
    try:
        return scan_segment(data, resume=resume, keyring=keyring)
    except KeyNotFoundError as e:
        raise e.at(path) from None


def _read_part(path: PartFile, columns: list[str] | None = None, keyring: Keyring | None = None) -> pa.Table | None:
    """A Parquet part in the current layout (columns added since it was written read as their defaults), or None if
    it does not exist (raises StorageError if it is damaged, KeyNotFoundError if it is sealed with a key that
    ``keyring`` does not hold)."""
    schema = DECISION_SCHEMA if path.kind == "decisions" else OUTCOME_SCHEMA
    try:
        part = pq.ParquetFile(part_source(path, keyring))
        present = set(part.schema_arrow.names)
        wanted = schema.names if columns is None else columns
        table = part.read(columns=[c for c in wanted if c in present])
    except FileNotFoundError:
        return None
    except pa.ArrowInvalid as e:
        raise StorageError(f"{path} is not a readable Parquet part ({e}); restore it from a backup") from e
    if len(table.schema.names) == len(wanted):
        return table
    return conform(table, pa.schema([schema.field(c) for c in wanted]))


def read_part(path: PartFile, columns: list[str] | None = None, keyring: Keyring | None = None) -> pa.Table | None:
    """A Parquet part in the current layout, or None if it does not exist: what every reader of the log reads
    (erasure and retention rewrite parts from it; see :func:`_read_part` for the errors)."""
    return _read_part(path, columns, keyring)


def _first_per_decision(table: pa.Table) -> pa.Table:
    """Keep the first row of each decision_id (a safety net: the log should never hold two)."""
    n = table.num_rows
    if n == 0 or pc.count_distinct(table.column("decision_id")).as_py() == n:
        return table
    rows = table.append_column("__row", pa.array(range(n), pa.int64()))
    keep = rows.group_by("decision_id").aggregate([("__row", "min")]).column("__row_min")
    return table.take(pc.take(keep, pc.sort_indices(keep)))


class EventLog:
    """An append-only, crash-safe log of decisions and outcomes in one folder, shared by any number of processes.

    Args:
        root: the folder (created with its sub-folders if missing), usually ``Home.events``.
        segment_bytes: a writer starts a new segment once its current one reaches this size, bytes. Default 64 MiB.
        fsync: when True (default) :meth:`append` returns only after the records are on stable storage (they
            survive ``kill -9`` and a power cut). When False it returns after the write to the OS, which survives
            ``kill -9`` of the process but not a power cut or kernel crash.
        keyring: the data keys that seal what is written and open what is read. Default None: ``$RLOPS_DATA_KEY``,
            else the key file of the home folder the log lives in (``ROOT/../keys/data_key``, followed when it
            changes), else none: no encryption.
        parts_uri: where compacted Parquet parts live: a local path or a pyarrow filesystem URI
            (``file:///srv/parts``, ``s3://bucket/prefix?region=eu-west-1``; see :mod:`rlops.events.parts`), or a
            :class:`~rlops.events.parts.PartStore` on a filesystem object built by hand. Default None:
            ``$RLOPS_EVENTS_URI``, else ``ROOT/parquet``. Segments always stay in ``root``.

    Raises:
        ConfigError: ``parts_uri`` (or ``$RLOPS_EVENTS_URI``) is not a URI pyarrow can open.
        StorageError: the folder cannot be created.
        ValidationError: ``segment_bytes`` is not a positive integer.

    Open the log after forking worker processes, not before: a forked child would share the parent's segment file
    and lock. Several instances (in one or many processes) may append to the same folder.

    Example:
        >>> with EventLog(tmp_path / "events") as log:  # doctest: +SKIP
        ...     log.append([decision])
        ...     table = log.read_decisions()
    """

    def __init__(self, root: str | os.PathLike[str], *, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 fsync: bool = True, keyring: Keyring | None = None,
                 parts_uri: str | PartStore | None = None) -> None:
        if not isinstance(segment_bytes, int) or isinstance(segment_bytes, bool) or segment_bytes <= 0:
            raise ValidationError("segment_bytes", f"must be a positive number of bytes, not {segment_bytes!r}")
        self.root = Path(root)
        self._layout = Layout(self.root, parts_uri)
        try:
            self._layout.ensure()
        except OSError as e:
            raise StorageError(f"cannot create the event log folder {self.root} (parts at {self._layout.parts}): "
                               f"{e}") from e
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._keys = KeyWatch(self.root.parent / "keys", fixed=keyring)
        # Preallocation only pays off when syncing; without fsync it would just leave zeros to cut off.
        self._prealloc = min(PREALLOC_BYTES, segment_bytes) if fsync else 0
        # One lock guards the shared state below and is never held during I/O; appenders wait on _cond for a round
        # to cover them.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: list[bytes] = []  # encoded frames not yet written, in sequence order
        self._seq = 0  # sequence number of the last batch queued
        self._resolved = 0  # every sequence number <= this one has a verdict: durable, or in _failures
        self._failures: list[tuple[int, int, BaseException]] = []  # (after, through, error) ranges that failed
        self._syncing = False  # a leader is running a round
        self._closed = False
        # Touched only by the leader of a round (rounds never overlap), so outside the lock.
        self._active: ActiveSegment | None = None
        self._count = 0
        self._rotation_checked = -1e18  # monotonic time the leader last looked for a rotation request

    # ---- writing ----------------------------------------------------------------------------------------------

    def append(self, records: Sequence[DecisionRecord | OutcomeRecord]) -> None:
        """Append a batch of records; when this returns they are durable (see ``fsync``). Thread-safe.

        The batch is written as one frame: after a crash it is either entirely there or entirely absent.

        Args:
            records: decisions and/or outcomes; an empty batch does nothing.

        Raises:
            ValidationError: a record cannot be stored (the message names ``records[i].field``); nothing from the
                batch is written.
            StorageError: the write or the sync failed, or the log is closed. Nothing is acknowledged; after a
                failed sync the records may still appear in the log (as with any database whose commit reports an
                I/O error).
        """
        if not records:
            return
        self._commit(encode_batch(records, self._keys.get()).frame)

    def _commit(self, frame: bytes) -> None:
        """Queue ``frame`` and return once a round has written (and synced) it, leading that round if needed."""
        with self._lock:
            if self._closed:
                raise StorageError(f"the event log at {self.root} is closed")
            self._pending.append(frame)
            self._seq += 1
            seq = self._seq
            while self._resolved < seq:
                if not self._syncing:
                    self._syncing = True
                    break
                self._cond.wait()
            else:
                self._raise_if_failed(seq)
                return
        # We lead: the round writes and syncs every queued frame, ours included.
        self._round()
        with self._lock:
            self._raise_if_failed(seq)

    @property
    def layout(self) -> Layout:
        """Where the log keeps its files (segments in :attr:`root`, parts in :attr:`Layout.parts`)."""
        return self._layout

    @property
    def parts(self) -> PartStore:
        """The filesystem of the compacted Parquet parts."""
        return self._layout.parts

    @property
    def keyring(self) -> Keyring:
        """The data keys this log seals and opens with (empty: no encryption); follows the key file."""
        return self._keys.get()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called (appends then raise :class:`StorageError`)."""
        return self._closed

    def rotate(self) -> None:
        """Seal the segment being written (a compaction may then take it); the next append starts a new one.

        Cheap: no data is copied; it waits for the round in progress, if any, and seals the file.

        Raises:
            StorageError: queued records could not be written or synced before sealing.
        """
        with self._lock:
            if self._closed:
                raise StorageError(f"the event log at {self.root} is closed")
        error = self._lead(seal=True)
        if error is not None:
            raise StorageError(f"cannot write the event log at {self.root}: {error}") from error

    def rotate_if_requested(self) -> bool:
        """Seal the segment being written if a rotation request covers it; returns whether it did.

        Erasure and retention ask every writer to give up the segments they hold (``ROOT/rotate.request``, see
        :mod:`rlops.events.layout`). An appending writer notices by itself within :data:`ROTATION_CHECK_S`; a
        process that may sit idle with a segment open (a server) calls this now and then (its supervisor does).

        Raises:
            StorageError: queued records could not be written or synced before sealing.
        """
        active = self._active  # a hint read outside the round: a newer segment sealed by mistake costs nothing
        if self._closed or active is None:
            return False
        try:
            if not self._layout.rotation_requested(active.path.stem):
                return False
        except OSError:
            return False
        self.rotate()
        return True

    def _rotation_due(self, active: ActiveSegment) -> bool:
        """Whether a rotation request covers ``active``; looks at most every ROTATION_CHECK_S (leader only)."""
        now = time.monotonic()
        if now - self._rotation_checked < ROTATION_CHECK_S:
            return False
        self._rotation_checked = now
        try:
            return self._layout.rotation_requested(active.path.stem)
        except OSError:  # an unreadable request must never fail an append
            return False

    def close(self) -> None:
        """Write what is queued, seal the current segment and release its lock.

        Idempotent; later appends raise StorageError. A failure here was already reported to the appenders whose
        records it concerned.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._lead(seal=True)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ---- group commit -----------------------------------------------------------------------------------------

    def _lead(self, *, seal: bool) -> BaseException | None:
        """Run one round as soon as no other round runs; return its error."""
        with self._lock:
            while self._syncing:
                self._cond.wait()
            self._syncing = True
        return self._round(seal=seal)

    def _round(self, *, seal: bool = False) -> BaseException | None:
        """Write every queued frame with one ``pwritev``, sync once, and resolve their sequence numbers.

        The caller has set ``_syncing``, which makes this thread the only one touching segment files. Frames queued
        while this round writes and syncs wait for the next round, whose leader is the first of their appenders to
        find no round running: with many appenders, one group syncs while the next encodes.

        Args:
            seal: seal the active segment afterwards (rotate, close).
        """
        target: int | None = None
        error: BaseException | None = None
        try:
            with self._lock:
                frames, self._pending = self._pending, []
                target = self._seq
                seal = seal or self._closed
            if frames:
                try:
                    self._write(frames)
                except OSError as e:
                    error = e
            active = self._active
            if active is not None and (seal or active.size >= self._segment_bytes or self._rotation_due(active)):
                active.seal()
                self._active = None
        except BaseException as e:
            error = e
            raise
        finally:
            with self._lock:
                self._syncing = False
                if target is not None:
                    if error is not None:
                        self._record_failure(target, error)
                    self._resolved = max(self._resolved, target)
                self._cond.notify_all()
        return error

    def _write(self, frames: list[bytes]) -> None:
        """Write frames to the active segment (created if needed) and sync it; leader only, raises OSError."""
        segment = self._active
        if segment is None:
            self._count += 1
            stem = f"{new_id()}-{os.getpid()}-{self._count}"
            segment = self._active = ActiveSegment.create(self._layout.segments, stem, self._prealloc)
        try:
            segment.write(frames)
            if self._fsync:
                segment.sync()
        except OSError:
            # A write that could not be cut back leaves garbage that would hide every later frame, and after a
            # failed fsync the file's state is unknown (a retry may falsely succeed): move to a fresh segment.
            # A write that was cut back cleanly keeps the segment.
            if segment.broken or not segment.synced:
                segment.seal()
                self._active = None
            raise

    def _record_failure(self, target: int, error: BaseException) -> None:
        """Remember that sequence numbers ``(_resolved, target]`` failed (hold the lock).

        Consecutive failed rounds (a full disk fails every round) extend one range, so the list stays short.
        """
        if self._failures and self._failures[-1][1] == self._resolved:
            self._failures[-1] = (self._failures[-1][0], target, error)
        else:
            self._failures.append((self._resolved, target, error))

    def _raise_if_failed(self, seq: int) -> None:
        for after, through, error in self._failures:
            if after < seq <= through:
                raise StorageError(f"cannot write the event log at {self.root}: {error}") from error

    # ---- compaction -------------------------------------------------------------------------------------------

    def compact(self) -> CompactionResult:
        """Convert every sealed segment (of any writer) into Parquet parts and delete it.

        Safe to run while this and other processes append, and from several processes at once; a crash at any
        point loses and duplicates nothing. Active segments are left alone: call :meth:`rotate` first to include
        this writer's current one.

        Raises:
            StorageError: a file could not be read or written (segments not yet done stay as they are).
        """
        try:
            return compact(self._layout, self._keys.get())
        except OSError as e:
            raise StorageError(f"compaction of {self.root} failed: {e}") from e

    # ---- reading ----------------------------------------------------------------------------------------------

    def _sources(self) -> Iterator[tuple[str, list[list[Any]] | None]]:
        """(stem, tagged rows) for each segment to read, (stem, None) for each compacted one, oldest first."""
        snapshot = Snapshot.take(self._layout)
        segments = set(snapshot.segments)
        for stem in snapshot.stems():
            if stem in segments and not snapshot.committed(stem):
                path = self._layout.segment(stem)
                data = read_segment(path)
                if data is not None:
                    yield stem, decode_rows(_scan(path, data, self.keyring).payloads)
                    continue
                # Gone since the listing: a compaction committed its parts and deleted it.
            yield stem, None

    def _tables(self, tag: int) -> list[pa.Table]:
        """Tables of decisions (``tag`` 1) or outcomes (2) in file order, segments and parts alike."""
        build, folder_part = ((decision_table, self._layout.decision_part) if tag == TAG_DECISION
                              else (outcome_table, self._layout.outcome_part))
        tables: list[pa.Table] = []
        pending: list[list[Any]] = []
        for stem, rows in self._sources():
            if rows is not None:
                pending.extend(row for row in rows if row[0] == tag)
                continue
            if pending:
                tables.append(build(pending))
                pending = []
            part = _read_part(folder_part(stem), keyring=self.keyring)
            if part is not None:
                tables.append(part)
        if pending:
            tables.append(build(pending))
        return tables

    def _read(self, tag: int) -> pa.Table:
        schema = DECISION_SCHEMA if tag == TAG_DECISION else OUTCOME_SCHEMA
        try:
            tables = self._tables(tag)
        except OSError as e:
            raise StorageError(f"cannot read the event log at {self.root}: {e}") from e
        if not tables:
            return schema.empty_table()
        return pa.concat_tables([t.cast(schema) if t.schema != schema else t for t in tables])

    def read_decisions(self) -> pa.Table:
        """Every decision stored, one row per ``decision_id``, in ``DECISION_SCHEMA``, oldest segment first.

        Includes compacted parts, sealed segments and the active segments of every live writer up to their last
        complete frame.

        Raises:
            StorageError: a file could not be read.
        """
        return _first_per_decision(self._read(TAG_DECISION))

    def read_outcomes(self) -> pa.Table:
        """Every outcome stored, in ``OUTCOME_SCHEMA``, in arrival order (``ts``, then file order).

        Not deduplicated by idempotency key: the reward join decides which of several outcomes counts.

        Raises:
            StorageError: a file could not be read.
        """
        table = self._read(TAG_OUTCOME)
        # Arrow's sort_indices is stable, so equal timestamps keep file order.
        return table.take(pc.sort_indices(table, sort_keys=[("ts", "ascending")]))

    def iter_records(self) -> Iterator[DecisionRecord | OutcomeRecord]:
        """Yield every stored record as its dataclass, oldest segment first.

        Records of a segment come in append order; for a compacted segment, its decisions then its outcomes.
        A decision id already yielded is not yielded again.

        Raises:
            StorageError: a file could not be read.
        """
        seen: set[str] = set()
        try:
            for stem, rows in self._sources():
                if rows is not None:
                    records: Iterator[DecisionRecord | OutcomeRecord] = (row_to_record(row) for row in rows)
                else:
                    decisions = _read_part(self._layout.decision_part(stem), keyring=self.keyring)
                    outcomes = _read_part(self._layout.outcome_part(stem), keyring=self.keyring)
                    records = _chain(decisions, outcomes)
                for record in records:
                    if isinstance(record, DecisionRecord):
                        if record.decision_id in seen:
                            continue
                        seen.add(record.decision_id)
                    yield record
        except OSError as e:
            raise StorageError(f"cannot read the event log at {self.root}: {e}") from e

    def decision_index(self) -> dict[str, DecisionRef]:
        """``decision_id -> (deployment, ts in microseconds, key_id, action_index)`` for every stored decision (a fresh
        dict).

        Cheaper than :meth:`read_decisions`: Parquet parts are read for three columns only. To keep an index up
        to date afterwards, use :meth:`update_decision_index`, which reads only what was stored since.

        Raises:
            StorageError: a file could not be read.
        """
        index: dict[str, DecisionRef] = {}
        self.update_decision_index(index, IndexCursor())
        return index

    def _since(self, cursor: IndexCursor) -> Iterator[tuple[str, list[list[Any]] | None]]:
        """What was stored since ``cursor``, moving it on: ``(stem, tagged rows)`` for the new frames of a live
        segment, ``(stem, None)`` for a compacted part not seen yet (the caller reads the part).

        Reads each segment only from where the cursor left it. If the bytes at the cursor do not start a good frame
        (a frame being written right now, or a writer that cut its file back after a failed write and rewrote from
        an earlier point), the segment is read from its start again: rows may then come twice, so callers keep
        what they have by id.
        """
        snapshot = Snapshot.take(self._layout)
        segments = set(snapshot.segments)
        for stem in snapshot.stems():
            if stem in segments and not snapshot.committed(stem):
                start = cursor.offsets.get(stem, 0)
                data = read_segment(self._layout.segment(stem), start, until_zeros=True)
                if data is not None:
                    scan = _scan(self._layout.segment(stem), data, self.keyring, resume=start > 0)
                    if start > 0 and scan.good_end == 0 and data[:1] not in (b"", b"\0"):
                        data = read_segment(self._layout.segment(stem), 0, until_zeros=True)
                        start = 0
                        scan = _scan(self._layout.segment(stem), data, self.keyring) if data is not None else scan
                    yield stem, decode_rows(scan.payloads)
                    if start > 0 or scan.good_end > 0:
                        cursor.offsets[stem] = start + scan.good_end
                    continue
                # Gone since the listing: a compaction committed its parts and deleted it.
            if stem in cursor.parts:
                continue
            yield stem, None
            cursor.parts.add(stem)
            cursor.offsets.pop(stem, None)

    def update_decision_index(self, index: dict[str, DecisionRef], cursor: IndexCursor) -> int:
        """Add to ``index`` the decisions stored (by any writer) since ``cursor``, and move the cursor on.

        Reads each segment only from where the cursor left it, and each Parquet part once, so calling this often
        costs what was written since, not the size of the log.

        Returns:
            How many decisions were added.

        Raises:
            StorageError: a file could not be read.
        """
        before = len(index)
        columns = ["decision_id", "deployment", "ts", "key_id", "action_index"]
        try:
            for stem, rows in self._since(cursor):
                if rows is not None:
                    for row in rows:
                        if row[0] == TAG_DECISION:  # setdefault: a rescan never overwrites
                            index.setdefault(row[1], (row[3], row[2], row[15] if len(row) > 15 else None, row[10]))
                    continue
                part = _read_part(self._layout.decision_part(stem), columns, self.keyring)
                if part is None:
                    continue
                ids = part.column("decision_id").to_pylist()
                deployments = part.column("deployment").to_pylist()
                ts = pc.cast(part.column("ts"), pa.int64()).to_pylist()
                keys = part.column("key_id").to_pylist()
                actions = part.column("action_index").to_pylist()
                for decision_id, deployment, t, key, action in zip(ids, deployments, ts, keys, actions, strict=True):
                    index.setdefault(decision_id, (deployment, t, key, action))
        except OSError as e:
            raise StorageError(f"cannot read the event log at {self.root}: {e}") from e
        return len(index) - before

    def read_since(self, cursor: IndexCursor) -> tuple[pa.Table, pa.Table]:
        """The decisions and the outcomes stored (by any writer) since ``cursor``, and move the cursor on.

        Costs what was written since, not the size of the log. A record may come again after a segment had to be
        rescanned (see :meth:`_since`): keep decisions by id and outcomes by ``(decision_id, idempotency_key)``.

        Raises:
            StorageError: a file could not be read.
        """
        decisions: list[pa.Table] = []
        outcomes: list[pa.Table] = []
        try:
            for stem, rows in self._since(cursor):
                if rows is not None:
                    mine = [r for r in rows if r[0] == TAG_DECISION]
                    theirs = [r for r in rows if r[0] == TAG_OUTCOME]
                    if mine:
                        decisions.append(decision_table(mine))
                    if theirs:
                        outcomes.append(outcome_table(theirs))
                    continue
                for parts, path in ((decisions, self._layout.decision_part(stem)),
                                    (outcomes, self._layout.outcome_part(stem))):
                    part = _read_part(path, keyring=self.keyring)
                    if part is not None:
                        parts.append(part)
        except OSError as e:
            raise StorageError(f"cannot read the event log at {self.root}: {e}") from e

        def concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
            if not tables:
                return schema.empty_table()
            return pa.concat_tables([t.cast(schema) if t.schema != schema else t for t in tables])

        return concat(decisions, DECISION_SCHEMA), concat(outcomes, OUTCOME_SCHEMA)

    def seen_outcome_keys(self) -> set[str]:
        """Idempotency keys of every stored outcome (a fresh set).

        Raises:
            StorageError: a file could not be read.
        """
        keys: set[str] = set()
        try:
            for stem, rows in self._sources():
                if rows is not None:
                    keys.update(row[4] for row in rows if row[0] == TAG_OUTCOME)
                    continue
                part = _read_part(self._layout.outcome_part(stem), ["idempotency_key"], self.keyring)
                if part is not None:
                    keys.update(part.column("idempotency_key").to_pylist())
        except OSError as e:
            raise StorageError(f"cannot read the event log at {self.root}: {e}") from e
        return keys

    def stats(self) -> EventStats:
        """Counts and sizes, without parsing any record (frame headers and Parquet footers only).

        Raises:
            StorageError: a file could not be read.
        """
        decisions = outcomes = segments = parts = segment_bytes = parquet_bytes = tail_bytes = 0
        try:
            snapshot = Snapshot.take(self._layout)
            live = set(snapshot.segments)
            for stem in snapshot.stems():
                if stem in live and not snapshot.committed(stem):
                    data = read_segment(self._layout.segment(stem))
                    if data is not None:
                        scan = scan_segment(data, decrypt=False)
                        decisions += scan.decisions
                        outcomes += scan.outcomes
                        segments += 1
                        segment_bytes += scan.size
                        tail_bytes += scan.tail_bytes
                        continue
                for path, is_decisions in ((self._layout.decision_part(stem), True),
                                           (self._layout.outcome_part(stem), False)):
                    try:
                        size = path.size()
                        rows = pq.read_metadata(part_source(path, self.keyring)).num_rows
                    except FileNotFoundError:
                        continue
                    parts += 1
                    parquet_bytes += size
                    if is_decisions:
                        decisions += rows
                    else:
                        outcomes += rows
        except OSError as e:
            raise StorageError(f"cannot read the event log at {self.root}: {e}") from e
        return EventStats(decisions, outcomes, segments, parts, segment_bytes, parquet_bytes, tail_bytes)


def _chain(decisions: pa.Table | None, outcomes: pa.Table | None) -> Iterator[DecisionRecord | OutcomeRecord]:
    if decisions is not None:
        yield from decision_records(decisions)
    if outcomes is not None:
        yield from outcome_records(outcomes)
