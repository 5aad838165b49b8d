"""Decision ids for the edge runtime: the event log's id layout, minted a batch at a time.

Same layout as :func:`rlops.events.ids.new_id` (ULID: 48-bit millisecond time, then 80 bits that start random and
count up within a millisecond, 26 Crockford base32 characters), so ids minted at the edge sort by time with the
service's and pass its checks. It is reimplemented here because importing :mod:`rlops.events` loads pyarrow, and
because a batch of ids is one random draw and one numpy pass rather than one base32 call per id.

Ids minted by one process are strictly increasing; ids from different processes or devices sort by millisecond.
"""

from __future__ import annotations

import base64
import os
import threading
import time

import numpy as np

#: The Crockford alphabet, then a space at index 32 that separates ids in the text one pass decodes.
_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ ", dtype=np.uint8)
_RANDOM_BITS = 80
_lock = threading.Lock()
_last_ms = 0
_next_rand = 0


_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET[:32].tobytes())
#: Below this many ids, one base32 call per id is faster than the numpy pass.
_SMALL = 8


def _reset_after_fork() -> None:
    """A forked child must not continue its parent's sequence (both could mint the same id in one millisecond)."""
    global _lock, _last_ms, _next_rand
    _lock = threading.Lock()
    _last_ms, _next_rand = 0, 0


os.register_at_fork(after_in_child=_reset_after_fork)


def _reserve(n: int) -> tuple[int, int]:
    """``(ms, first random part)`` of ``n`` consecutive ids; the random parts are ``first .. first + n - 1``."""
    global _last_ms, _next_rand
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms, first = _last_ms, _next_rand  # same millisecond (or a clock step back): keep counting up
        else:
            first = int.from_bytes(os.urandom(10), "big") >> 1  # leave headroom for the increments
        if first + n >= 1 << _RANDOM_BITS:  # the counter would overflow: move on to the next millisecond
            ms, first = ms + 1, int.from_bytes(os.urandom(10), "big") >> 1
        _last_ms, _next_rand = ms, first + n
    return ms, first


def _digits(value: int, length: int) -> list[int]:
    """``value`` as ``length`` base-32 digits, most significant first."""
    return [(value >> (5 * (length - 1 - j))) & 31 for j in range(length)]


#: Ids minted per vectorised pass: the low four digits (20 bits) then carry at most once into the rest.
_CHUNK = 1 << 19


def new_ids(n: int) -> list[str]:
    """``n`` new, strictly increasing 26-character ids (an empty list for ``n <= 0``)."""
    if n <= 0:
        return []
    ms, first = _reserve(n)
    if n < _SMALL:
        # 130 bits padded to 160 (four 5-byte base32 groups, 32 digits): keep the last 26 digits.
        return [base64.b32encode(((ms << 80) | (first + i)).to_bytes(20, "big")).translate(_TO_CROCKFORD)[-26:]
                .decode() for i in range(n)]
    out: list[str] = []
    for done in range(0, n, _CHUNK):
        out.extend(_encode_run(ms, first + done, min(_CHUNK, n - done)))
    return out


def _encode_run(ms: int, first: int, n: int) -> list[str]:
    """Ids ``(ms, first + i)`` for ``i < n <= _CHUNK``: 130 bits as 26 five-bit digits (2 zero bits, 48 of time,
    80 of counter). Only the low 20 bits of the counter count up, carrying at most once into the upper 60, so
    every id is one of two 22-character prefixes plus four characters computed in numpy."""
    low = (first & 0xFFFFF) + np.arange(n, dtype=np.int64)
    carried = low > 0xFFFFF
    chars = np.empty((n, 27), dtype=np.uint8)
    for c, rows in ((0, slice(None)), (1, carried)):
        if c == 0 or carried[-1]:  # the counter only increases: if any row carried, the last one did
            chars[rows, :22] = _ALPHABET[_digits(ms, 10) + _digits((first >> 20) + c, 12)]
    for j in range(4):
        chars[:, 22 + j] = _ALPHABET[(low >> (15 - 5 * j)) & 31]
    chars[:, 26] = 32  # a space after each id: one split() cuts the text into ids
    return chars.tobytes().decode("ascii").split()
