"""Time-ordered unique ids (ULID layout: 48-bit millisecond time + 80 random bits, Crockford base32).

Ids made in one process are strictly increasing; ids from different processes sort by millisecond.
"""

from __future__ import annotations

import base64
import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


_STANDARD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TO_CROCKFORD = bytes.maketrans(_STANDARD, _ALPHABET.encode())


def _encode(value: int, length: int) -> str:
    """``value`` as ``length`` Crockford base32 digits, most significant first."""
    # base64's base32 works on whole 5-byte groups: pad the value to 40-bit multiples, then keep the tail.
    n_bytes = (length * 5 + 39) // 40 * 5
    digits = base64.b32encode(value.to_bytes(n_bytes, "big")).translate(_TO_CROCKFORD)
    return digits[-length:].decode()


def _reset_after_fork() -> None:
    """A forked child must not continue its parent's sequence (both could mint the same id in one millisecond)."""
    global _lock, _last_ms, _last_rand
    _lock = threading.Lock()
    _last_ms, _last_rand = 0, 0


os.register_at_fork(after_in_child=_reset_after_fork)


def new_id() -> str:
    """A 26-character id that sorts by creation time."""
    global _last_ms, _last_rand
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1  # same millisecond: keep strictly increasing
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # leave headroom for increments
        _last_ms, _last_rand = ms, rand
    return _encode((ms << 80) | rand, 26)  # one base32 pass: 10 digits of time, 16 of randomness


def id_time_ms(identifier: str) -> int:
    """Milliseconds since the epoch encoded in an id made by :func:`new_id`."""
    value = 0
    for ch in identifier[:10]:
        value = value * 32 + _ALPHABET.index(ch)
    return value


_ALPHABET_SET = frozenset(_ALPHABET)


def looks_like_id(text: str) -> bool:
    """Whether ``text`` has the shape of an id made by :func:`new_id` (26 Crockford base32 characters)."""
    return len(text) == 26 and _ALPHABET_SET.issuperset(text)
