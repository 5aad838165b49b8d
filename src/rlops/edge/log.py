"""The edge runtime's decision log: an append-only JSON-lines file the service ingests later.

One line per ``decide``/``decide_batch`` call, written with one ``write`` (and, with ``fsync=True``, synced)
before the decisions are returned. A line is a batch in columns, so that writing it costs one JSON call::

    {"format": "rlops.edge.decisions", "format_version": 1, "deployment": "pricing",
     "policy_version": "pricing@r3", "mode": "served", "ts": 1732000000000000, "latency_us": 41,
     "actions": ["a", "b", "c"],
     "decision_id": ["01JD...", ...], "unit_id": ["user-7", ...],
     "context": {"age": [31, ...], "segment": ["north", ...]},
     "action_index": [2, ...],            (box actions: "action": [[0.1, -0.3], ...] instead)
     "propensity": [0.8, ...],
     "probabilities": [[0.1, 0.1, 0.8], ...]}          (null for box actions)

``ts`` is microseconds since the epoch (UTC); ``latency_us`` is the batch's model time per decision; ``context``
holds the contexts as given (``rlops events ingest`` validates them again against the schema of the revision named
by ``policy_version`` and stores them normalised, defaults filled in).

Crash safety: a crash can leave at most the last line incomplete (no newline). Opening the log cuts such a torn
tail off before appending, and ingest skips an incomplete last line, so a half-written batch is never ingested;
the decisions in it were never returned to the caller.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlops.errors import StorageError

FORMAT = "rlops.edge.decisions"
FORMAT_VERSION = 1

def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


try:  # orjson (an rlops dependency) writes a batch about ten times faster; the runtime works without it
    import orjson

    def _for_orjson(value: Any) -> Any:
        """orjson writes numeric numpy arrays itself (C-contiguous ones); strings and objects go as lists."""
        if isinstance(value, np.ndarray):
            return np.ascontiguousarray(value) if value.dtype.kind in "biuf" else value.tolist()
        return value

    def _dumps(line: dict[str, Any]) -> bytes:
        line["context"] = {k: _for_orjson(v) for k, v in line["context"].items()}
        return orjson.dumps({k: _for_orjson(v) for k, v in line.items()}, option=orjson.OPT_SERIALIZE_NUMPY)

except ImportError:  # pragma: no cover - orjson is installed with rlops
    _encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode

    def _dumps(line: dict[str, Any]) -> bytes:
        line["context"] = {k: _plain(v) for k, v in line["context"].items()}
        return _encode({k: _plain(v) for k, v in line.items()}).encode()


def encode_line(*, deployment: str | None, policy_version: str, mode: str, ts: int, latency_us: int,
                actions: Sequence[str], decision_ids: Sequence[str], unit_ids: Sequence[str],
                context: dict[str, Any], propensity: np.ndarray, action_index: np.ndarray | None,
                action: np.ndarray | None, probabilities: np.ndarray | None) -> bytes:
    """One log line (with its newline) for a batch of decisions; arrays are written as JSON lists."""
    line: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "deployment": deployment,
        "policy_version": policy_version, "mode": mode, "ts": ts, "latency_us": latency_us, "actions": list(actions),
        "decision_id": list(decision_ids), "unit_id": list(unit_ids), "context": context,
        "propensity": propensity, "probabilities": probabilities,
    }
    if action is not None:
        line["action"] = action
    else:
        line["action_index"] = action_index
    return _dumps(line) + b"\n"


def _cut_torn_tail(fd: int) -> int:
    """Truncate bytes after the last newline (a line a crash left incomplete); return how many were cut."""
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(0, end - (1 << 16))
        chunk = os.pread(fd, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    else:
        keep = 0
    if keep < size:
        os.ftruncate(fd, keep)
    return size - keep


class DecisionLog:
    """An append-only decision log file (see the module docstring for its format).

    Args:
        path: the file (created with its folder if missing; appended to if it exists).
        fsync: sync every line to stable storage before returning (survives a power cut); default False, which
            survives a crash of the process (the line is in the kernel) but not of the machine.

    Raises:
        StorageError: the file cannot be opened, or another process holds it open for writing.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise StorageError(f"cannot open the decision log {self.path}: {e.strerror or e}") from e
        try:
            _lock_exclusively(self._fd, self.path)
            self.cut_bytes = _cut_torn_tail(self._fd)
        except BaseException:
            os.close(self._fd)
            raise

    def append(self, line: bytes) -> None:
        """Append one complete line; when this returns it is written (and synced, with ``fsync``).

        Raises:
            StorageError: the write failed or the log is closed; the torn line, if any, is cut off on reopening.
        """
        with self._lock:
            if self._fd is None:
                raise StorageError(f"the decision log {self.path} is closed")
            view = memoryview(line)
            try:
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                if self.fsync:
                    os.fsync(self._fd)
            except OSError as e:
                raise StorageError(f"cannot write the decision log {self.path}: {e.strerror or e}") from e

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _lock_exclusively(fd: int, path: Path) -> None:
    """One writer per file: a second process cutting a "torn" tail could cut another's line in flight."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Windows
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        raise StorageError(f"the decision log {path} is open for writing in another process; give each process "
                           f"its own file") from e
