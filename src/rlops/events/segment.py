"""The writer's side of one segment file: create it under an exclusive ``flock``, append frames, sync, seal.

The ``flock`` is what tells a compactor (in any process) that the segment is still being written: a compactor
only takes segments it can lock with ``LOCK_EX | LOCK_NB``, which succeeds once the writer has sealed the segment
(unlocked it) or died (the kernel drops the lock with the process).

Space is preallocated ahead of the writes (zeros, which readers treat as the end of the frames) and the unused
rest is cut off when the segment is sealed.

The file is created as ``<stem>.seg.new``, locked, given its magic, and only then renamed to ``<stem>.seg``:
a compactor never sees a ``.seg`` that is not yet locked by its writer.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from rlops.events.frames import MAGIC
from rlops.events.layout import NEW_SUFFIX, SEGMENT_SUFFIX, fsync_dir

_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


def _fdatasync(fd: int) -> None:
    # fdatasync skips the metadata a reader does not need (mtime) but keeps the size; macOS has only fsync.
    # Looked up on every call so tests can count syncs by patching os.
    getattr(os, "fdatasync", os.fsync)(fd)


class ActiveSegment:
    """A segment file this process writes; not thread-safe (the event log serialises access).

    Attributes:
        path: the ``.seg`` file.
        size: bytes written so far (the offset of the next frame).
        synced: False once a sync has failed (or while one runs).
        broken: a failed write could not be rolled back, so nothing more may be written after it.
    """

    def __init__(self, path: Path, fd: int, prealloc: int = 0) -> None:
        self.path = path
        self._fd = fd
        self._prealloc = prealloc
        self._allocated = 0
        self.size = len(MAGIC)
        self.synced = True
        self.broken = False
        self._dir_synced = False

    @classmethod
    def create(cls, folder: Path, stem: str, prealloc: int = 0) -> ActiveSegment:
        """Create, lock and name a new segment (raises OSError).

        Args:
            folder: the segments folder.
            stem: the new segment's name without suffix.
            prealloc: allocate the file this many bytes at a time ahead of the writes (0: never). Syncing writes
                into allocated space is cheaper than syncing a file that grows: the size does not change.
        """
        new = folder / f"{stem}{NEW_SUFFIX}"
        fd = os.open(new, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.pwrite(fd, MAGIC, 0)
            path = folder / f"{stem}{SEGMENT_SUFFIX}"
            os.rename(new, path)
        except OSError:
            os.close(fd)
            new.unlink(missing_ok=True)
            raise
        return cls(path, fd, prealloc)

    def write(self, frames: list[bytes]) -> None:
        """Write ``frames`` at the end with as few syscalls as possible; on failure cut the file back, re-raise.

        If even the cut fails, :attr:`broken` is set and the caller must move to a new segment: anything written
        after the garbage would be unreadable (readers stop at the first bad frame).
        """
        start = self.size
        total = sum(len(f) for f in frames)
        if self._prealloc and start + total > self._allocated:
            self._allocate(start + total)
        try:
            _write_all(self._fd, frames, start)
        except OSError:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                self.broken = True
            self._allocated = min(self._allocated, start)
            raise
        self.size = start + total

    def _allocate(self, needed: int) -> None:
        """Extend the allocation past ``needed``; on any failure stop preallocating (writes will still work)."""
        length = max(self._prealloc, needed - self._allocated)
        try:
            os.posix_fallocate(self._fd, self._allocated, length)
        except OSError:
            # Not supported here, or the disk is full: the write itself will tell which.
            self._prealloc = 0
            return
        self._allocated += length

    def sync(self) -> None:
        """Make everything written so far durable, including the file's name the first time (raises OSError).

        After a failure :attr:`synced` stays False for good: the kernel may have dropped the dirty pages and a
        later fsync can report success without them.
        """
        self.synced = False
        _fdatasync(self._fd)
        if not self._dir_synced:
            fsync_dir(self.path.parent)
            self._dir_synced = True
        self.synced = True

    def seal(self) -> None:
        """Release the lock and close: from now on a compactor may take this segment. Idempotent."""
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        if self._allocated > self.size:
            # Drop the unused preallocated zeros. Not synced: if the cut is lost, readers skip zeros anyway.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self.size)
        # Nothing useful can be done if these fail: the data was synced (or its failure reported) before sealing,
        # and closing releases the lock even if the explicit unlock failed.
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(fd)


def _write_all(fd: int, frames: list[bytes], offset: int) -> None:
    """``pwritev`` all of ``frames`` at ``offset``, continuing after short writes (raises OSError)."""
    buffers: list[bytes | memoryview] = list(frames)
    while buffers:
        n = os.pwritev(fd, buffers[:_IOV_MAX], offset)
        if n <= 0:
            raise OSError(errno.EIO, "write made no progress")
        offset += n
        # Drop what was written; keep the unwritten rest of a buffer cut short.
        i = 0
        while i < len(buffers) and n >= len(buffers[i]):
            n -= len(buffers[i])
            i += 1
        buffers = buffers[i:]
        if n:
            buffers[0] = memoryview(buffers[0])[n:]


#: Chunk size of :func:`read_segment` with ``until_zeros``.
READ_CHUNK = 256 * 1024


def read_segment(path: Path, offset: int = 0, *, until_zeros: bool = False) -> bytes | None:
    """The file from ``offset`` to its end, or None if it is gone (compacted since it was listed).

    With ``until_zeros``, stop after the first chunk that ends in zero bytes: an active segment is preallocated
    with zeros up to several MiB past its data, and an incremental reader wants only the data. (A chunk that
    happens to end inside a frame's zero bytes ends the read early; the scan then stops at the last whole frame and
    the next read resumes there.)
    """
    try:
        with path.open("rb") as f:
            f.seek(offset)
            if not until_zeros:
                return f.read()
            chunks = []
            while chunk := f.read(READ_CHUNK):
                chunks.append(chunk)
                if chunk[-1] == 0:
                    break
            return b"".join(chunks)
    except FileNotFoundError:
        return None
