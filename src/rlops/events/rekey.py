"""Re-encrypting the event log's files under the current data key: what a key rotation does to the events.

- A *sealed* segment (its writer sealed it, or died: the same ``flock`` test compaction uses) is rewritten frame
  by frame: each good frame's payload is opened (with whichever key sealed it; plaintext frames as they are) and
  sealed again under the current key with the same counts. Unreadable tail bytes (a torn write, or a frame whose
  tag fails) go to ``quarantine/`` as a sealed file, as compaction does with them.
- A Parquet part (on whatever filesystem the parts live, :mod:`rlops.events.parts`) or a quarantined tail is opened
  and sealed again as a whole.
- An *active* segment (locked by a live writer) is never touched: :attr:`Rekeyed.ACTIVE`. Its writer seals it
  sooner or later, and a later rotation (or compaction into sealed Parquet) takes care of it.

Every rewrite writes a hidden temporary file next to the old one, syncs it, renames it over the old one and syncs
the folder (a part on an object store is replaced by one atomic put), so an interruption leaves each file either as
it was or fully re-encrypted, and both stay readable while the old key is still configured. Each rewrite holds the
log's rewrite lock (``ROOT/rewrite.lock``, the one erasure and retention hold while they rewrite parts), so a
rotation never puts back records an erasure removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from rlops.encryption import (
    FILE_HEADER_BYTES,
    FILE_MAGIC,
    KEY_ID_BYTES,
    DecryptionError,
    Keyring,
    file_key_id,
    is_sealed,
    open_bytes,
    seal,
    write_durably,
)
from rlops.events.frames import KIND_AESGCM_JSON_BATCH, MAGIC, Frame, build_frame, iter_frames
from rlops.events.layout import TAIL_SUFFIX, Layout, fsync_dir
from rlops.events.parts import KINDS, PartFile

#: The lock file every in-place rewriter of the log's files holds (``ROOT/rewrite.lock``).
REWRITE_LOCK = "rewrite.lock"
#: Suffix of the temporary files of a rewrite (hidden names: readers and compaction ignore them).
TMP_SUFFIX = ".rekey"


class Rekeyed(StrEnum):
    """What :func:`rekey_segment` / :func:`rekey_file` did to one file."""

    DONE = "re-encrypted"
    CURRENT = "already current"
    ACTIVE = "active (skipped)"
    GONE = "gone"


@contextlib.contextmanager
def rewrite_lock(layout: Layout) -> Iterator[None]:
    """Hold the log's rewrite lock (blocking): only one in-place rewrite of a part or sealed segment at a time."""
    fd = os.open(layout.root / REWRITE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@dataclass(frozen=True)
class SegmentKeys:
    """Which keys a segment's frames are sealed with, read from its frames without decrypting anything.

    Attributes:
        keys: the key id of each good frame's seal (None for a plaintext frame), as a set.
        tail_bytes: non-zero bytes after the last frame that passes its CRC.
        active: a live writer holds it.
    """

    keys: frozenset[str | None]
    tail_bytes: int
    active: bool


def _tail(data: bytes, good_end: int) -> bytes:
    return data[good_end:].rstrip(b"\0")


def _frames_end(data: bytes, frames: list[Frame]) -> int:
    """Offset past the last good frame (0 when even the magic is missing, as :func:`scan_segment` has it)."""
    if frames:
        return frames[-1].end
    return len(MAGIC) if data[: len(MAGIC)] == MAGIC else 0


def segment_keys(layout: Layout, stem: str) -> SegmentKeys | None:
    """The keys of a segment's frames, or None if it is gone (compacted since it was listed)."""
    path = layout.segment(stem)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            active = False
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            active = True
        with open(fd, "rb", closefd=False) as f:
            data = f.read()
    finally:
        os.close(fd)
    frames = list(iter_frames(data))
    return SegmentKeys(frozenset(f.key_id for f in frames), len(_tail(data, _frames_end(data, frames))), active)


def _quarantine(layout: Layout, stem: str, tail: bytes, keyring: Keyring) -> None:
    layout.quarantine.mkdir(exist_ok=True)
    path = layout.quarantine / f"{stem}{TAIL_SUFFIX}"
    n = 1
    while path.exists():
        path = layout.quarantine / f"{stem}-{n}{TAIL_SUFFIX}"
        n += 1
    write_durably(path, seal(tail, keyring))


def rekey_segment(layout: Layout, stem: str, keyring: Keyring) -> Rekeyed:
    """Rewrite a sealed segment with every frame sealed under the current key (see the module docstring).

    Raises:
        KeyNotFoundError: a frame needs a key that ``keyring`` does not hold (the segment is left as it is).
        OSError: the rewrite failed (the segment is left as it was).
    """
    path = layout.segment(stem)
    current = keyring.current.key_id
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return Rekeyed.GONE
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return Rekeyed.ACTIVE
        if os.fstat(fd).st_nlink == 0:
            return Rekeyed.GONE  # compacted between our open and our lock
        if layout.decision_part(stem).exists() and layout.outcome_part(stem).exists():
            # Committed by a compaction that died before deleting it: stale, and what compaction would delete.
            os.unlink(path)
            fsync_dir(layout.segments)
            return Rekeyed.GONE
        with open(fd, "rb", closefd=False) as f:
            data = f.read()
        frames = list(iter_frames(data))
        if not _tail(data, _frames_end(data, frames)) and all(f.key_id == current for f in frames):
            return Rekeyed.CURRENT
        out = [MAGIC]
        kept_end = _frames_end(data, [])
        for frame in frames:
            payload: bytes | memoryview = frame.payload
            if frame.kind == KIND_AESGCM_JSON_BATCH:
                try:
                    payload = keyring.open(payload, frame.aad, str(path))
                except DecryptionError:
                    break  # like a corrupt frame: it and everything after it go to quarantine
            out.append(build_frame(bytes(payload), frame.decisions, frame.outcomes, keyring))
            kept_end = frame.end
        tail = _tail(data, kept_end)
        with rewrite_lock(layout):
            if tail:
                _quarantine(layout, stem, tail, keyring)
            write_durably(path, b"".join(out))
        return Rekeyed.DONE
    finally:
        os.close(fd)


def rekey_file(layout: Layout, path: Path | PartFile, keyring: Keyring) -> Rekeyed:
    """Seal a Parquet part or a quarantined tail again under the current key (plaintext ones are sealed).

    Raises:
        KeyNotFoundError: it needs a key that ``keyring`` does not hold (left as it is).
        DecryptionError: it fails its authentication tag (left as it is: restore it from a backup).
        OSError: the rewrite failed (left as it was).
    """
    current = keyring.current.key_id
    if isinstance(path, PartFile) and path.local is not None:
        path = path.local  # written as before: keeps the file's mode
    with rewrite_lock(layout):
        try:
            if part_key_id(path) == current:
                return Rekeyed.CURRENT
            data = path.read_bytes()
        except FileNotFoundError:
            return Rekeyed.GONE
        plain = open_bytes(data, keyring, str(path)) if is_sealed(data) else data
        if isinstance(path, PartFile):
            path.write(seal(plain, keyring))
        else:
            write_durably(path, seal(plain, keyring))
    return Rekeyed.DONE


def part_key_id(path: Path | PartFile) -> str | None:
    """The id of the key that sealed a part or a local file, None if it is plaintext (raises OSError)."""
    if isinstance(path, Path):
        return file_key_id(path)
    head = path.head(FILE_HEADER_BYTES)
    if not is_sealed(head) or len(head) < FILE_HEADER_BYTES:
        return None
    return head[len(FILE_MAGIC) : len(FILE_MAGIC) + KEY_ID_BYTES].hex()


def remove_leftovers(layout: Layout) -> int:
    """Delete temporary files of interrupted rewrites (call while no rewrite runs); returns how many."""
    removed = sum(layout.parts.remove_hidden(kind, TMP_SUFFIX) for kind in KINDS)
    for folder in (layout.segments, layout.quarantine):
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(folder):
                if name.startswith(".") and name.endswith(TMP_SUFFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(folder / name)
                        removed += 1
    return removed
