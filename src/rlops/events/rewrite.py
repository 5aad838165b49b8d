"""Remove records from the event log for good (erasure, retention): crash-safe, and safe next to live writers.

Records are removed from committed Parquet parts only, never from a segment in place. One run of
:func:`remove_records`, for a :class:`Selection` of decisions and outcomes, goes in rounds:

1. read the whole log and let the selection look at it (:meth:`Selection.prepare`); nothing selected: done;
2. if live writers hold segments with selected records, ask every writer to seal its segment (``rotate.request``,
   see :mod:`rlops.events.layout`; the caller's own log is rotated at once) and wait for them, up to ``wait_s``;
3. compact: every sealed segment becomes Parquet parts (the normal compaction, quarantine included);
4. rewrite every committed outcomes part that holds selected outcomes, without them;
5. rewrite every committed decisions part that holds selected decisions, without them, except decisions whose
   selected outcomes are still in a segment a writer holds (so that a later run can still link those outcomes);
6. start again at 1: that checks the result, and catches what arrived meanwhile (a late outcome, a segment another
   compactor was busy with). After :data:`ROUNDS` rounds, what remains is reported with where it is.

Outcomes go before decisions because an outcome names only its decision: once the decision is gone, nothing links
its outcomes to the unit (or to the deployment whose retention applies) any more. Each part is replaced the way
compaction writes one (whole: a synced temporary file and a rename, or an object store's atomic put), so a crash
between any two steps leaves every file whole and a state from which running again finishes the job; nothing that
is not selected is ever dropped.

One rewriter at a time (``rewrite.lock``): two rewriting the same part at once would lose one's removals. Writers
and compactors never wait for it: compaction writes parts only for segments it holds locked, never a committed one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from rlops.encryption import KeyNotFoundError, Keyring
from rlops.errors import ConflictError, StorageError
from rlops.events.compaction import write_part
from rlops.events.frames import decode_rows, scan_segment
from rlops.events.layout import Layout, Snapshot, stem_time_ms
from rlops.events.log import EventLog, read_part
from rlops.events.parts import PartFile
from rlops.events.segment import read_segment
from rlops.events.tables import decision_table, outcome_table, split_rows
from rlops.files import write_atomic

#: Rounds of one run (the last one only checks): enough for a late outcome or a busy compactor, bounded for a unit
#: that keeps coming back.
ROUNDS = 3
#: How often the wait looks whether writers have sealed their segments, seconds.
POLL_S = 0.1

#: ``(phase, done, total)``: called as a run moves on (the CLI draws progress bars from it).
Progress = Callable[[str, int, int], None]
#: A boolean column: True for the rows to remove.
Mask: TypeAlias = pa.Array | pa.ChunkedArray


class Selection(Protocol):
    """Which records a run removes. Masks are True for the rows to remove.

    Attributes:
        decision_columns: the columns :meth:`decisions` reads (a part is read whole only if it holds a match).
        outcome_columns: the columns :meth:`outcomes` reads.
    """

    decision_columns: tuple[str, ...]
    outcome_columns: tuple[str, ...]

    def prepare(self, decisions: pa.Table, outcomes: pa.Table) -> None:
        """Look at every stored decision and outcome before a round (e.g. collect the chosen decision ids)."""

    def decisions(self, table: pa.Table) -> Mask:
        """Which rows of a ``DECISION_SCHEMA`` table (or of its selected columns) to remove."""

    def outcomes(self, table: pa.Table) -> Mask:
        """Which rows of an ``OUTCOME_SCHEMA`` table (or of its selected columns) to remove."""


@dataclass(frozen=True)
class HeldSegment:
    """A segment that a live writer still holds, with selected records in it.

    Attributes:
        stem: the segment's name (``ROOT/segments/<stem>.seg``).
        pid: the process id of the writer that created it (part of the name), None if the name is not rlops's.
        decisions: selected decisions in it.
        outcomes: selected outcomes in it.
    """

    stem: str
    pid: int | None
    decisions: int
    outcomes: int


@dataclass(frozen=True)
class Removal:
    """What one :func:`remove_records` run found and did.

    Attributes:
        selected_decisions: selected decisions found at the start (what a dry run reports).
        selected_outcomes: selected outcomes found at the start.
        decisions: decisions removed.
        outcomes: outcomes removed.
        files_rewritten: Parquet parts replaced.
        remaining_decisions: selected decisions still stored at the end (0 when complete).
        remaining_outcomes: selected outcomes still stored at the end.
        held: segments of live writers that still hold some of them.
        dry_run: nothing was changed.
    """

    selected_decisions: int
    selected_outcomes: int
    decisions: int = 0
    outcomes: int = 0
    files_rewritten: int = 0
    remaining_decisions: int = 0
    remaining_outcomes: int = 0
    held: tuple[HeldSegment, ...] = ()
    dry_run: bool = False

    @property
    def complete(self) -> bool:
        """Nothing selected is stored any more (never True for a dry run that found something)."""
        if self.dry_run:
            return self.selected_decisions == 0 and self.selected_outcomes == 0
        return self.remaining_decisions == 0 and self.remaining_outcomes == 0


def _count(mask: Mask) -> int:
    return int(pc.sum(mask).as_py() or 0)


def _mask(mask: Mask) -> Mask:
    """A mask without nulls (a null compares as "keep")."""
    return pc.fill_null(mask, False)


def request_rotation(layout: Layout) -> int:
    """Ask every writer to seal the segments it created up to now; return the requested millisecond.

    The request only ever moves forward (a later run's request covers an earlier one's).
    """
    now_ms = time.time_ns() // 1_000_000
    requested = max(now_ms, layout.requested_rotation_ms() or 0)
    write_atomic(layout.rotate_request, str(requested))
    return requested


@contextlib.contextmanager
def rewrite_lock(layout: Layout, wait_s: float) -> Iterator[None]:
    """Hold ``ROOT/rewrite.lock`` (waiting up to ``wait_s`` seconds for another rewriter to finish).

    Raises:
        ConflictError: another erasure or retention run held it for longer than ``wait_s``.
    """
    deadline = time.monotonic() + wait_s
    fd = os.open(layout.rewrite_lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConflictError(f"another erasure or retention run is rewriting the event log at "
                                        f"{layout.root}; run this again when it has finished") from None
                time.sleep(POLL_S)
        yield
    finally:
        os.close(fd)  # releases the lock


def _locked(layout: Layout, stem: str) -> bool:
    """Whether a writer (or a compactor) holds segment ``stem`` right now (False once it is gone)."""
    try:
        fd = os.open(layout.segment(stem), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def segment_tables(layout: Layout, stem: str, keyring: Keyring) -> tuple[pa.Table, pa.Table] | None:
    """The decisions and outcomes of segment ``stem`` up to its last good frame, None if it is gone."""
    path = layout.segment(stem)
    data = read_segment(path)
    if data is None:
        return None
    try:
        scan = scan_segment(data, keyring=keyring)
    except KeyNotFoundError as e:
        raise e.at(path) from None
    decisions, outcomes = split_rows(decode_rows(scan.payloads))
    return decision_table(decisions), outcome_table(outcomes)


def _pid(stem: str) -> int | None:
    parts = stem.split("-")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() and stem_time_ms(stem) is not None else None


def held_segments(layout: Layout, keyring: Keyring, selection: Selection) -> tuple[list[HeldSegment], set[str]]:
    """Segments that live writers hold and that contain selected records, and the decision ids of the selected
    outcomes in them."""
    held: list[HeldSegment] = []
    outcome_ids: set[str] = set()
    snapshot = Snapshot.take(layout)
    for stem in snapshot.segments:
        if snapshot.committed(stem) or not _locked(layout, stem):
            continue
        tables = segment_tables(layout, stem, keyring)
        if tables is None:
            continue
        decisions, outcomes = tables
        d_mask, o_mask = _mask(selection.decisions(decisions)), _mask(selection.outcomes(outcomes))
        n_d, n_o = _count(d_mask), _count(o_mask)
        if n_d or n_o:
            held.append(HeldSegment(stem, _pid(stem), n_d, n_o))
            outcome_ids.update(outcomes.filter(o_mask)["decision_id"].to_pylist())
    return held, outcome_ids


def _wait(layout: Layout, held: list[HeldSegment], deadline: float, progress: Progress) -> None:
    """Wait until the writers of ``held`` have sealed them, or until ``deadline`` (monotonic)."""
    waiting = [h.stem for h in held]
    while True:
        waiting = [stem for stem in waiting if _locked(layout, stem)]
        progress("waiting for writers to seal their segments", len(held) - len(waiting), len(held))
        if not waiting or time.monotonic() >= deadline:
            return
        time.sleep(POLL_S)


def _replace(path: PartFile, table: pa.Table, keyring: Keyring) -> None:
    """:func:`write_part`, once more if a concurrent compactor's clean-up took the temporary file meanwhile."""
    for attempt in range(3):
        try:
            write_part(path, table, keyring)
            return
        except FileNotFoundError:
            if attempt == 2:
                raise


def _rewrite(layout: Layout, keyring: Keyring, outcomes: bool, select: Callable[[pa.Table], Mask],
             columns: tuple[str, ...], progress: Progress) -> tuple[int, int]:
    """Rewrite the committed parts of one kind without the rows ``select`` picks; returns (rows removed, files)."""
    snapshot = Snapshot.take(layout)
    stems = sorted(s for s in (snapshot.outcome_parts if outcomes else snapshot.decision_parts)
                   if snapshot.committed(s))
    part = layout.outcome_part if outcomes else layout.decision_part
    what = "outcomes" if outcomes else "decisions"
    removed = files = 0
    for done, stem in enumerate(stems, 1):
        path = part(stem)
        head = read_part(path, list(columns), keyring)
        if head is not None and _count(_mask(select(head))):
            table = read_part(path, None, keyring)
            if table is not None:
                mask = _mask(select(table))
                n = _count(mask)
                if n:
                    _replace(path, table.filter(pc.invert(mask)), keyring)
                    removed += n
                    files += 1
        progress(f"removing {what} from Parquet parts", done, len(stems))
    return removed, files


@dataclass(frozen=True)
class _Except:
    """The selection's decisions, except those with the given ids (their outcomes are still held by a writer)."""

    selection: Selection
    ids: pa.Array

    def __call__(self, table: pa.Table) -> Mask:
        chosen = _mask(self.selection.decisions(table))
        if not len(self.ids):
            return chosen
        return pc.and_(chosen, pc.invert(pc.is_in(table["decision_id"], value_set=self.ids)))


def _selected(log: EventLog, selection: Selection) -> tuple[int, int]:
    decisions, outcomes = log.read_decisions(), log.read_outcomes()
    selection.prepare(decisions, outcomes)
    return _count(_mask(selection.decisions(decisions))), _count(_mask(selection.outcomes(outcomes)))


def _quiet(_phase: str, _done: int, _total: int) -> None:
    pass


def remove_records(log: EventLog, selection: Selection, *, wait_s: float = 30.0, dry_run: bool = False,
                   progress: Progress | None = None) -> Removal:
    """Remove the selected records from every file of the log (see the module docstring for how).

    Args:
        log: the log; its own segment is rotated first when it holds selected records (a server passes its
            engine's log, a command opens one).
        selection: what to remove.
        wait_s: how long to wait for other writers to seal segments holding selected records, and for another
            rewriter to finish, seconds (default 30; 0: do not wait, report them as held).
        dry_run: only count what is selected; change nothing.
        progress: called with ``(phase, done, total)`` as the run moves on.

    Returns:
        What was found, removed, and what remains (with the segments holding it): check :attr:`Removal.complete`.

    Raises:
        ConflictError: another erasure or retention run kept the log busy for longer than ``wait_s``.
        StorageError: a file could not be read or written (every file is still whole; run it again).
        KeyNotFoundError: a file is encrypted with a data key that is not configured.
    """
    report = progress or _quiet
    layout = log.layout
    keyring = log.keyring
    selected = _selected(log, selection)
    if dry_run or selected == (0, 0):
        return Removal(*selected, dry_run=dry_run)
    deadline = time.monotonic() + wait_s
    removed_d = removed_o = files = 0
    try:
        with rewrite_lock(layout, wait_s):
            remaining = selected
            for round_ in range(ROUNDS):
                if round_:
                    remaining = _selected(log, selection)
                    if remaining == (0, 0):
                        break
                held, _ = held_segments(layout, keyring, selection)
                if held:
                    request_rotation(layout)
                    if not log.closed:
                        log.rotate()
                    _wait(layout, held, deadline, report)
                report("compacting sealed segments", 0, 1)
                log.compact()
                report("compacting sealed segments", 1, 1)
                n, f = _rewrite(layout, keyring, True, selection.outcomes, selection.outcome_columns, report)
                removed_o, files = removed_o + n, files + f
                _, waiting_outcomes = held_segments(layout, keyring, selection)
                keep = _Except(selection, pa.array(sorted(waiting_outcomes), pa.string()))
                columns = tuple(dict.fromkeys((*selection.decision_columns, "decision_id")))
                n, f = _rewrite(layout, keyring, False, keep, columns, report)
                removed_d, files = removed_d + n, files + f
            else:
                remaining = _selected(log, selection)
            held, _ = held_segments(layout, keyring, selection) if remaining != (0, 0) else ([], set())
    except OSError as e:
        if isinstance(e, StorageError):
            raise
        raise StorageError(f"cannot rewrite the event log at {log.root}: {e} (every file is still whole; run it "
                           "again)") from e
    return Removal(*selected, decisions=removed_d, outcomes=removed_o, files_rewritten=files,
                   remaining_decisions=remaining[0], remaining_outcomes=remaining[1], held=tuple(held))
