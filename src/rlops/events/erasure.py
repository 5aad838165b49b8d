"""Erasure of one unit from the event log: its decisions, their outcomes, and quarantined bytes that mention it.

A unit's records are its decisions (``unit_id``) and every outcome of those decisions (outcomes carry only the
``decision_id``, so the unit's decision ids are collected first, from the whole log, before anything is removed).
They are removed by :func:`rlops.events.rewrite.remove_records`, which says how this stays crash-safe and works
next to live writers.

Quarantined tails (``quarantine/<stem>.tail``) are the bytes of writes that crashed half-way: never acknowledged,
never read back, kept only for diagnosis. A tail is deleted when it mentions the unit (its id as stored: raw UTF-8
or JSON-escaped) or when its content cannot be searched (sealed with a data key, or holding an encrypted frame:
with the key its plaintext could be recovered). Deleting a tail loses nothing anyone was told was stored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from rlops.encryption import FILE_MAGIC, is_sealed
from rlops.errors import ValidationError
from rlops.events.frames import HEADER_SIZE, KIND_JSON_BATCH
from rlops.events.layout import TAIL_SUFFIX, Layout, fsync_dir
from rlops.events.log import EventLog
from rlops.events.rewrite import Mask, Progress, Removal, remove_records

#: Longest unit id the engine accepts (``Engine.decide``), characters.
MAX_UNIT_ID = 256
# Offset of the ``kind`` byte in a frame header (after the u32 length and the u32 CRC).
_KIND_AT = 8


def check_unit_id(unit_id: object, field_name: str = "unit_id") -> str:
    """``unit_id`` if it can name a unit, else a :class:`ValidationError` naming ``field_name``."""
    if not isinstance(unit_id, str) or not unit_id.strip() or len(unit_id) > MAX_UNIT_ID:
        raise ValidationError(field_name, f"must be a non-empty unit id of at most {MAX_UNIT_ID} characters (the "
                                          f"unit_id its decisions were made for)")
    return unit_id


def unit_needles(unit_id: str) -> tuple[bytes, ...]:
    """The byte strings a unit id is stored as: raw UTF-8 (Parquet, SQLite) and JSON-escaped (segments, logs)."""
    forms = (unit_id, json.dumps(unit_id)[1:-1], json.dumps(unit_id, ensure_ascii=False)[1:-1])
    return tuple(dict.fromkeys(form.encode() for form in forms))


@dataclass
class UnitSelection:
    """The decisions made for ``unit_id`` and every outcome of them (a :class:`~rlops.events.rewrite.Selection`).

    Attributes:
        unit_id: the unit.
        decision_ids: the unit's decision ids seen so far (collected again before every round; ids seen in an
            earlier round stay, so an outcome that arrives late for an already removed decision still goes).
    """

    unit_id: str
    decision_ids: set[str] = field(default_factory=set)
    decision_columns: tuple[str, ...] = ("unit_id",)
    outcome_columns: tuple[str, ...] = ("decision_id",)

    def prepare(self, decisions: pa.Table, outcomes: pa.Table) -> None:
        mine = decisions.filter(pc.fill_null(self.decisions(decisions), False))
        self.decision_ids.update(mine["decision_id"].to_pylist())

    def decisions(self, table: pa.Table) -> Mask:
        return pc.equal(table["unit_id"], self.unit_id)

    def outcomes(self, table: pa.Table) -> Mask:
        return pc.is_in(table["decision_id"], value_set=pa.array(sorted(self.decision_ids), pa.string()))


@dataclass(frozen=True)
class UnitErasure:
    """What :func:`erase_unit_records` did.

    Attributes:
        removal: the records found, removed and remaining (see :class:`~rlops.events.rewrite.Removal`).
        decision_ids: the unit's decision ids (to drop from in-memory caches; never written anywhere).
        tails_deleted: quarantined tails deleted because they mentioned the unit or could not be searched.
    """

    removal: Removal
    decision_ids: frozenset[str]
    tails_deleted: int

    @property
    def complete(self) -> bool:
        return self.removal.complete


def _searchable(data: bytes) -> bool:
    """Whether a tail's bytes are plaintext (not a sealed file, not starting with an encrypted frame)."""
    if is_sealed(data[: len(FILE_MAGIC)]):
        return False
    return len(data) < HEADER_SIZE or data[_KIND_AT] == KIND_JSON_BATCH


def delete_tails(layout: Layout, needles: tuple[bytes, ...]) -> int:
    """Delete the quarantined tails (and temporary tail files of crashed compactions) that contain one of
    ``needles`` or cannot be searched; return how many (raises OSError)."""
    folder = layout.quarantine
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 0
    deleted = 0
    for name in names:
        if not (name.endswith(TAIL_SUFFIX) or name.endswith(f"{TAIL_SUFFIX}.tmp")):
            continue
        path = folder / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        if not _searchable(data) or any(needle in data for needle in needles):
            path.unlink(missing_ok=True)
            deleted += 1
    if deleted:
        fsync_dir(folder)
    return deleted


def erase_unit_records(log: EventLog, unit_id: str, *, wait_s: float = 30.0,
                       progress: Progress | None = None) -> UnitErasure:
    """Remove every decision of ``unit_id``, every outcome of those decisions, and quarantined bytes that mention
    it, from every file of ``log``.

    Args:
        log: the event log (a server passes its engine's: its own segment is rotated first).
        unit_id: the unit.
        wait_s: how long to wait for live writers to seal segments holding the unit's records, seconds.
        progress: called with ``(phase, done, total)``.

    Returns:
        What was removed and what remains (:attr:`UnitErasure.complete` says whether anything does).

    Raises:
        ValidationError: ``unit_id`` is empty or too long (nothing is changed).
        ConflictError: another erasure or retention run kept the log busy for longer than ``wait_s``.
        StorageError: a file could not be read or written (every file is still whole; run it again).
    """
    unit_id = check_unit_id(unit_id)
    selection = UnitSelection(unit_id)
    removal = remove_records(log, selection, wait_s=wait_s, progress=progress)
    tails = delete_tails(log.layout, unit_needles(unit_id))
    return UnitErasure(removal, frozenset(selection.decision_ids), tails)
