"""Compaction: sealed segments become Parquet parts, atomically, while writers keep appending elsewhere.

For each segment the compactor can lock (``flock(LOCK_EX | LOCK_NB)``: its writer sealed it or died):

1. read it up to the last good frame;
2. write the decisions part whole (locally: a temporary file, fsync, rename, fsync of the folder; on an object
   store: one atomic put; see :mod:`rlops.events.parts`);
3. the same for the outcomes part; its arrival is the commit point (see :mod:`rlops.events.layout`);
4. keep any unreadable tail bytes in ``quarantine/`` (they held nothing acknowledged, but bytes are not thrown
   away silently);
5. delete the segment and fsync the segments folder.

With a data key (:mod:`rlops.encryption`) every file written here (parts, quarantined tails) is a sealed file
under the current key, and sealed frames are decrypted on the way in; a segment that needs a key which is not
configured is left as it is (KeyNotFoundError), never quarantined.

A crash anywhere leaves either the segment as the current copy (with, at worst, a stray part that readers ignore
and the next compaction overwrites) or the committed parts plus a stale segment that readers skip and the next
compaction deletes. Writers are never blocked: they only ever write to segments they hold locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rlops.encryption import KeyNotFoundError, Keyring, seal
from rlops.events.frames import decode_rows, scan_segment
from rlops.events.layout import NEW_SUFFIX, TAIL_SUFFIX, Layout, fsync_dir
from rlops.events.parts import KINDS, TMP_SUFFIX, PartFile, write_local
from rlops.events.tables import decision_table, outcome_table, split_rows

#: A ``.seg.new`` file older than this (seconds) was left by a writer that died while creating it. Younger ones may
#: belong to a writer between ``open`` and ``flock`` (microseconds), so they are left alone.
ORPHAN_AGE_S = 60.0


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """What one :meth:`EventLog.compact` call did.

    Attributes:
        segments: segments converted to Parquet and deleted.
        decisions: decision records moved to Parquet.
        outcomes: outcome records moved to Parquet.
        bytes: segment bytes deleted (including segments whose parts an interrupted compaction had already
            committed).
        parquet_bytes: bytes of the Parquet parts written.
        recovered: stale segments deleted because an interrupted compaction had already committed their parts.
        skipped: segments left alone because a live writer (or another compactor) holds them.
        quarantined_bytes: unreadable tail bytes (torn writes) moved to ``quarantine/``.
    """

    segments: int = 0
    decisions: int = 0
    outcomes: int = 0
    bytes: int = 0
    parquet_bytes: int = 0
    recovered: int = 0
    skipped: int = 0
    quarantined_bytes: int = 0


def sealed(data: pa.Table | bytes, keyring: Keyring | None) -> pa.Table | bytes:
    """``data`` as a part (a table) or a tail (bytes) is to be written by :func:`_write_durably`: unchanged without a
    data key, else the sealed bytes of its Parquet file (or of the bytes) under the current key."""
    if keyring is None or not keyring.enabled:
        return data
    if not isinstance(data, bytes):
        sink = pa.BufferOutputStream()
        pq.write_table(data, sink)
        data = sink.getvalue().to_pybytes()
    return seal(data, keyring)


def _write_durably(target: PartFile | Path, data: pa.Table | bytes) -> int:
    """Write ``data`` to a part (:meth:`PartFile.write`) or a local file (:func:`write_local`) so that a crash
    leaves the old file or the new one; return the size.

    Pass ``sealed(data, keyring)`` to write it encrypted when a data key is configured.
    """
    if isinstance(target, PartFile):
        return target.write(data)
    return write_local(target, data)


def write_part(part: PartFile, table: pa.Table, keyring: Keyring | None) -> int:
    """Replace ``part`` with ``table`` the way compaction writes parts (sealed with a data key; whole, see
    :meth:`PartFile.write`); return its size. Erasure and retention rewrite committed parts with it."""
    return _write_durably(part, sealed(table, keyring))


def _compact_locked(layout: Layout, stem: str, fd: int, counts: Counter[str], keyring: Keyring | None) -> None:
    """Compact one segment whose lock we hold."""
    path = layout.segment(stem)
    size = os.fstat(fd).st_size
    if layout.decision_part(stem).exists() and layout.outcome_part(stem).exists():
        # An earlier compaction committed the parts and died before deleting the segment.
        os.unlink(path)
        fsync_dir(layout.segments)
        counts["recovered"] += 1
        counts["bytes"] += size
        return
    with open(fd, "rb", closefd=False) as f:
        data = f.read()
    try:
        scan = scan_segment(data, keyring=keyring)
    except KeyNotFoundError as e:
        raise e.at(path) from None
    decisions, outcomes = split_rows(decode_rows(scan.payloads))
    counts["parquet_bytes"] += _write_durably(layout.decision_part(stem), sealed(decision_table(decisions), keyring))
    counts["parquet_bytes"] += _write_durably(layout.outcome_part(stem), sealed(outcome_table(outcomes), keyring))
    if scan.tail_bytes:
        layout.quarantine.mkdir(exist_ok=True)
        _write_durably(layout.quarantine / f"{stem}{TAIL_SUFFIX}", sealed(data[scan.good_end : scan.data_end], keyring))
        counts["quarantined_bytes"] += scan.tail_bytes
    os.unlink(path)
    fsync_dir(layout.segments)
    counts["segments"] += 1
    counts["decisions"] += len(decisions)
    counts["outcomes"] += len(outcomes)
    counts["bytes"] += len(data)


def _remove_leftovers(layout: Layout) -> None:
    """Delete temporary files of dead compactions and segments whose creation was interrupted."""
    live = set(layout.segment_stems())
    for kind in KINDS:
        # ".<stem>.parquet.tmp": only the holder of <stem>'s lock writes it, and a segment is deleted only
        # after its parts are in place, so a temporary file of a deleted segment is garbage.
        layout.parts.remove_hidden(kind, f".parquet{TMP_SUFFIX}", keep=live)
    now = time.time()
    for stem in layout.new_segment_stems():
        path = layout.segments / f"{stem}{NEW_SUFFIX}"
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            if now - os.fstat(fd).st_mtime < ORPHAN_AGE_S:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            # Only a header was ever written to it: records go to a segment after its rename to .seg.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        finally:
            os.close(fd)


def compact(layout: Layout, keyring: Keyring | None = None) -> CompactionResult:
    """Move every sealed segment of ``layout`` into Parquet parts (raises OSError; see the module docstring).

    ``keyring``: the data keys (decrypt sealed frames; seal what is written); default None: no encryption.
    """
    counts: Counter[str] = Counter()  # keyed by CompactionResult field
    for stem in layout.segment_stems():
        try:
            fd = os.open(layout.segment(stem), os.O_RDONLY)
        except FileNotFoundError:
            continue  # another compactor finished it since we listed it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                counts["skipped"] += 1
                continue
            if os.fstat(fd).st_nlink == 0:
                continue  # deleted by another compactor between our open and our lock
            _compact_locked(layout, stem, fd, counts, keyring)
        finally:
            os.close(fd)
    _remove_leftovers(layout)
    return CompactionResult(**counts)
