"""Where the event log keeps its files, and the rule that says which copy of a segment's records is current.

Layout of an event-log folder ``ROOT``::

    ROOT/
      segments/<stem>.seg                 append-only frame files; <stem> = <time-ordered id>-<pid>-<n>
      segments/<stem>.seg.new             a segment being created (renamed to .seg once locked)
      parquet/decisions/<stem>.parquet    compacted decisions of segment <stem>
      parquet/outcomes/<stem>.parquet     compacted outcomes of segment <stem> (written last: the commit mark)
      quarantine/<stem>.tail              unreadable bytes found after the last good frame of a compacted segment
      rotate.request                      "seal every segment created up to this millisecond" (erasure, retention)
      rewrite.lock                        held (flock) by whoever rewrites committed parts (erasure, retention)

A segment is *committed* (compacted) when both of its Parquet parts exist. Readers then read the parts and skip the
segment; otherwise they read the segment and ignore any stray part. Compaction writes the decisions part, then the
outcomes part, and only then deletes the segment, so a crash at any point leaves exactly one current copy.
The parts may live elsewhere than ``ROOT/parquet``: on any pyarrow filesystem (another folder, S3...; see
:mod:`rlops.events.parts`), in the same two folders there. The rule holds there too, because a part is only ever
(re)placed whole (a rename, or an object store's atomic put), and the segment, on the local disk, is deleted only
after both parts are in place. Stems start with a time-ordered id, so sorting stems sorts files by creation time.

Committed parts are rewritten only to remove records (:mod:`rlops.events.rewrite`), by a process holding
``rewrite.lock``, through the same synced write-then-rename as compaction: readers see the old part or the new one.
A writer cannot be made to give up a segment it holds, so a rewriter asks instead: it writes ``rotate.request``, and
every writer seals its segment if it was created at or before that millisecond (on its next append, or when its
process calls :meth:`EventLog.rotate_if_requested`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from rlops.events.ids import id_time_ms, looks_like_id
from rlops.events.parts import PART_SUFFIX as PART_SUFFIX  # re-exported
from rlops.events.parts import PartFile, PartStore
from rlops.files import fsync_dir as fsync_dir  # re-exported: the event log's modules take it from here

SEGMENT_SUFFIX = ".seg"
NEW_SUFFIX = ".seg.new"
TAIL_SUFFIX = ".tail"


def stem_time_ms(stem: str) -> int | None:
    """When the segment ``stem`` was created, ms since the epoch (None for a name rlops did not make)."""
    head = stem[:26]
    return id_time_ms(head) if looks_like_id(head) else None


def stem_writer(stem: str) -> int | None:
    """The process id of the writer that made the segment ``stem`` (None for a name rlops did not make)."""
    parts = stem.split("-")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _stems(folder: Path, suffix: str) -> list[str]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    # Names starting with "." are temporary files of a compaction in progress.
    return sorted(n[: -len(suffix)] for n in names if n.endswith(suffix) and not n.startswith("."))


@dataclass(frozen=True)
class Layout:
    """Paths of one event-log folder, and the store of its Parquet parts.

    Attributes:
        root: the event-log folder (segments, quarantine, requests and locks: always on the local disk).
        parts_uri: where the Parquet parts live: a URI (see :meth:`rlops.events.parts.PartStore.at`) or a store;
            default None: ``$RLOPS_EVENTS_URI``, else ``root/parquet``.
    """

    root: Path
    parts_uri: str | PartStore | None = None

    @cached_property
    def parts(self) -> PartStore:
        """The filesystem of the Parquet parts (resolved on first use; ConfigError for a URI pyarrow cannot open)."""
        if isinstance(self.parts_uri, PartStore):
            return self.parts_uri
        return PartStore.at(self.root, self.parts_uri)

    @property
    def segments(self) -> Path:
        return self.root / "segments"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def rotate_request(self) -> Path:
        return self.root / "rotate.request"

    @property
    def rewrite_lock(self) -> Path:
        return self.root / "rewrite.lock"

    def requested_rotation_ms(self) -> int | None:
        """The millisecond up to which writers are asked to seal the segments they created (None: no request)."""
        try:
            text = self.rotate_request.read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return int(text) if text.strip().isdigit() else None

    def rotation_requested(self, stem: str) -> bool:
        """Whether the rotation request covers segment ``stem`` (created at or before the requested millisecond)."""
        requested = self.requested_rotation_ms()
        if requested is None:
            return False
        created = stem_time_ms(stem)
        return created is None or created <= requested

    def ensure(self) -> None:
        """Create the folders (raises OSError)."""
        self.segments.mkdir(parents=True, exist_ok=True)
        self.parts.ensure()

    def segment(self, stem: str) -> Path:
        return self.segments / f"{stem}{SEGMENT_SUFFIX}"

    def decision_part(self, stem: str) -> PartFile:
        return self.parts.part("decisions", stem)

    def outcome_part(self, stem: str) -> PartFile:
        return self.parts.part("outcomes", stem)

    def segment_stems(self) -> list[str]:
        """Stems of all segment files (sealed and active), oldest first."""
        return _stems(self.segments, SEGMENT_SUFFIX)

    def new_segment_stems(self) -> list[str]:
        """Stems of segments still being created, or left half-created by a crash."""
        return _stems(self.segments, NEW_SUFFIX)

    def decision_part_stems(self) -> set[str]:
        """Stems with a decisions part (lists the parts' filesystem; raises OSError)."""
        return self.parts.stems("decisions")

    def outcome_part_stems(self) -> set[str]:
        """Stems with an outcomes part (lists the parts' filesystem; raises OSError)."""
        return self.parts.stems("outcomes")


@dataclass(frozen=True)
class Snapshot:
    """The files to read at one moment, and which copy of each segment's records is current.

    List segments before parts: a compaction that finishes in between then shows up as a committed segment (read
    from its parts), never as a segment that vanished before its parts were seen.

    Attributes:
        segments: stems of segment files, oldest first.
        decision_parts: stems with a decisions part.
        outcome_parts: stems with an outcomes part.
    """

    segments: list[str]
    decision_parts: set[str]
    outcome_parts: set[str]

    @classmethod
    def take(cls, layout: Layout) -> Snapshot:
        segments = layout.segment_stems()
        return cls(segments, layout.decision_part_stems(), layout.outcome_part_stems())

    def committed(self, stem: str) -> bool:
        """Whether ``stem`` was compacted (both parts exist), so its segment file, if still there, is stale."""
        return stem in self.outcome_parts and stem in self.decision_parts

    def stems(self) -> list[str]:
        """Every stem with a current copy, oldest first."""
        return sorted(set(self.segments) | self.decision_parts | self.outcome_parts)
