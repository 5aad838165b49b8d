"""Binary frames of the event log: how a batch of records becomes bytes on disk, and back.

A segment file is an 8-byte magic (:data:`MAGIC`) followed by frames. One frame holds one appended batch::

    <u32 length> <u32 crc32> <u8 kind> <u32 decisions> <u32 outcomes> <payload: `length` bytes>

All integers are little-endian. ``crc32`` covers every byte after itself (kind, both counts and the payload), so a
frame checks itself: a torn write (the process or the machine died mid-``write``) or a flipped bit shows up as a
short frame or a CRC mismatch, and the reader stops there. ``kind`` is :data:`KIND_JSON_BATCH`: the payload is one
UTF-8 JSON array of rows, a row being a JSON array that starts with a tag (1 decision, 2 outcome) followed by the
record's fields in declaration order. The counts in the header let :meth:`EventLog.stats` count records without
parsing JSON.

With a data key configured (:mod:`rlops.encryption`) ``kind`` is :data:`KIND_AESGCM_JSON_BATCH`: the payload is
that JSON sealed with AES-256-GCM, ``<8-byte key id> <12-byte nonce> <ciphertext and 16-byte tag>``, the kind and
both counts being its associated data. The header stays plaintext (stats still count without a key) but cannot be
changed undetected, the CRC still catches torn writes before any decryption, and a frame whose tag fails is treated
like one whose CRC fails. Both kinds may follow each other in one segment.

One frame per batch (not per record) means one ``json`` call, one CRC and one ``write`` per append, and a batch is
all-or-nothing on a crash.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from rlops.encryption import MAX_MESSAGE, DecryptionError, Keyring
from rlops.errors import ValidationError
from rlops.events.records import DecisionRecord, Mode, OutcomeRecord

#: First bytes of every segment file (format name and version).
MAGIC = b"RLOPSEG1"
#: Payload kind: a JSON array of tagged rows.
KIND_JSON_BATCH = 1
#: Payload kind: a JSON array of tagged rows sealed with AES-256-GCM (see :mod:`rlops.encryption`).
KIND_AESGCM_JSON_BATCH = 2
_KINDS = (KIND_JSON_BATCH, KIND_AESGCM_JSON_BATCH)
TAG_DECISION = 1
TAG_OUTCOME = 2

_HEADER = struct.Struct("<IIBII")
# The header bytes after the CRC (kind and counts): what the CRC covers first and what a sealed payload authenticates.
_AAD = struct.Struct("<BII")
#: Largest payload one frame holds (the length is a u32), bytes.
MAX_PAYLOAD = 2**32 - 1
HEADER_SIZE = _HEADER.size
# Bytes of the header that the CRC covers (kind and counts), as an offset into the header.
_CRC_FROM = 8

_MODES = frozenset(m.value for m in Mode)

# One encoder object, reused: ``json.dumps`` builds a new one on every call when options are given.
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode
dumps = _encode
"""Compact JSON text exactly as the log stores it (``allow_nan=False``); also used for the JSON-text columns."""


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """One frame, ready to write.

    Attributes:
        frame: the frame bytes (header and payload).
        decisions: number of decision records in it.
        outcomes: number of outcome records in it.
    """

    frame: bytes
    decisions: int
    outcomes: int


def _bad(index: int, field: str, rule: str) -> ValidationError:
    return ValidationError(f"records[{index}].{field}", rule)


def _is_number(x: object) -> bool:
    # bool is an int subclass but Arrow cannot store true/false in a float column; reject it.
    return isinstance(x, float | int) and not isinstance(x, bool)


def _check_str(value: object, index: int, field: str, *, empty: bool = True) -> None:
    if not isinstance(value, str):
        raise _bad(index, field, f"must be a string, not {type(value).__name__}")
    if not empty and not value:
        raise _bad(index, field, "must not be empty")


_INT64 = 1 << 63


def _check_int(value: object, index: int, field: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(index, field, f"must be an integer, not {type(value).__name__}")
    if not -_INT64 <= value < _INT64:
        # Arrow stores these columns as int64; a larger value would be written and then make every read fail.
        raise _bad(index, field, f"{value} does not fit in a 64-bit integer")


def _check_dict(value: object, index: int, field: str) -> None:
    if not isinstance(value, dict):
        raise _bad(index, field, f"must be a dict, not {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            # json would silently turn 1 into "1" and the record would not read back equal.
            raise _bad(index, f"{field}[{key!r}]", "keys must be strings")


def _check_numbers(value: object, index: int, field: str) -> None:
    if not isinstance(value, list):
        raise _bad(index, field, f"must be a list of numbers, not {type(value).__name__}")
    for j, x in enumerate(value):
        if not _is_number(x):
            raise _bad(index, f"{field}[{j}]", f"must be a number, not {type(x).__name__}")


_NUMBER_TYPES = frozenset((float, int))
_STRINGS = itertools.repeat(str)  # an endless second argument for map(isinstance, ...); safe to share


def _plain_decision(r: DecisionRecord) -> bool:
    """True if ``r`` is plainly valid (exact builtin types); False sends it to :func:`_check_decision`.

    The common case costs about one microsecond this way: exact type tests and C-level ``map`` instead of one
    function call per field. Anything unusual (subclasses such as numpy floats, candidate features, a plain-string
    mode) takes the slow path, which accepts it or names the field that is wrong.
    """
    action = r.action
    probabilities = r.probabilities
    propensity = r.propensity
    return (
        type(r.decision_id) is str and r.decision_id != "" and type(r.ts) is int and 0 <= r.ts < _INT64
        and type(r.deployment) is str and type(r.policy_version) is str and type(r.unit_id) is str
        and (r.mode is Mode.SERVED or r.mode is Mode.SHADOW)
        and type(r.context) is dict and all(map(isinstance, r.context, _STRINGS))
        and type(r.actions) is list and all(map(isinstance, r.actions, _STRINGS))
        and type(r.action_index) is int and type(r.latency_us) is int
        and ((type(action) is str and r.action_index >= 0)
             or (type(action) is list and r.action_index == -1 and set(map(type, action)) <= _NUMBER_TYPES))
        and type(propensity) is float and 0.0 < propensity < math.inf
        and (probabilities is None
             or (type(probabilities) is list and set(map(type, probabilities)) <= _NUMBER_TYPES))
        and r.candidate_features is None
        and (r.key_id is None or type(r.key_id) is str) and type(r.consent) is bool
    )


def _check_decision(r: DecisionRecord, i: int) -> None:
    """Reject what the log could store but not read back into DECISION_SCHEMA (or not read back equal)."""
    _check_str(r.decision_id, i, "decision_id", empty=False)
    _check_int(r.ts, i, "ts")
    _check_str(r.deployment, i, "deployment")
    _check_str(r.policy_version, i, "policy_version")
    if not isinstance(r.mode, str) or r.mode not in _MODES:
        raise _bad(i, "mode", f"must be one of {sorted(_MODES)}, not {r.mode!r}")
    _check_str(r.unit_id, i, "unit_id")
    _check_dict(r.context, i, "context")
    actions = r.actions
    if not isinstance(actions, list):
        raise _bad(i, "actions", f"must be a list of strings, not {type(actions).__name__}")
    for j, name in enumerate(actions):
        if not isinstance(name, str):
            raise _bad(i, f"actions[{j}]", f"must be a string, not {type(name).__name__}")
    _check_int(r.action_index, i, "action_index")
    # In Arrow ``action`` is one string column: the name, or the JSON text of a box vector. The reader tells the
    # two apart by ``action_index == -1``, so the pairing is enforced here.
    if isinstance(r.action, str):
        if r.action_index < 0:
            raise _bad(i, "action_index", "must be >= 0 for a named action (-1 is reserved for box actions)")
    elif isinstance(r.action, list):
        _check_numbers(r.action, i, "action")
        if r.action_index != -1:
            raise _bad(i, "action_index", "must be -1 for a box (vector) action")
    else:
        raise _bad(i, "action", f"must be an action name or a list of numbers, not {type(r.action).__name__}")
    p = r.propensity
    if not _is_number(p) or not (0.0 < p < math.inf):
        raise _bad(i, "propensity", f"must be a finite number > 0, not {p!r}")
    if r.probabilities is not None:
        _check_numbers(r.probabilities, i, "probabilities")
    if r.candidate_features is not None:
        if not isinstance(r.candidate_features, list):
            raise _bad(i, "candidate_features", "must be a list of dicts or None")
        for j, features in enumerate(r.candidate_features):
            _check_dict(features, i, f"candidate_features[{j}]")
    _check_int(r.latency_us, i, "latency_us")
    if r.key_id is not None:
        _check_str(r.key_id, i, "key_id")
    if not isinstance(r.consent, bool):
        raise _bad(i, "consent", f"must be true or false, not {type(r.consent).__name__}")


def _check_outcome(r: OutcomeRecord, i: int) -> None:
    _check_str(r.decision_id, i, "decision_id", empty=False)
    _check_int(r.ts, i, "ts")
    _check_dict(r.fields, i, "fields")
    _check_str(r.idempotency_key, i, "idempotency_key", empty=False)
    if r.key_id is not None:
        _check_str(r.key_id, i, "key_id")
    if r.quarantine is not None:
        _check_str(r.quarantine, i, "quarantine", empty=False)


def _locate_json_error(records: Sequence[DecisionRecord | OutcomeRecord], error: Exception) -> ValidationError:
    """Find the field that json refused (slow path, only after a failure) and name it."""
    for i, r in enumerate(records):
        if isinstance(r, DecisionRecord):
            parts: dict[str, Any] = {"context": r.context, "action": r.action, "propensity": r.propensity,
                                     "probabilities": r.probabilities, "candidate_features": r.candidate_features}
        else:
            parts = {"fields": r.fields}
        for name, value in parts.items():
            items = value.items() if isinstance(value, dict) else [(None, value)]
            for key, item in items:
                try:
                    _encode(item)
                except (TypeError, ValueError, RecursionError) as e:
                    field = name if key is None else f"{name}.{key}"
                    reason = "must be a finite number" if isinstance(e, ValueError) else "cannot be stored as JSON"
                    return _bad(i, field, f"{reason} ({e})")
    return ValidationError("records", f"cannot be stored as JSON ({error})")


def encode_batch(records: Sequence[DecisionRecord | OutcomeRecord], keyring: Keyring | None = None) -> EncodedBatch:
    """Check and encode a batch of records into one frame.

    Args:
        records: decisions and outcomes, in the order they should be read back.
        keyring: with a data key, the payload is sealed with it (:data:`KIND_AESGCM_JSON_BATCH`); default None:
            plaintext.

    Returns:
        The frame and its record counts.

    Raises:
        ValidationError: a record cannot be stored and read back equal (wrong type, NaN or infinite float,
            a value json cannot encode, propensity <= 0, ...; the message names ``records[i].field``), or the
            batch is larger than :data:`MAX_PAYLOAD` bytes.
    """
    rows: list[tuple[Any, ...]] = []
    n_decisions = 0
    for i, r in enumerate(records):
        if isinstance(r, DecisionRecord):
            if not _plain_decision(r):
                _check_decision(r, i)
            rows.append((TAG_DECISION, r.decision_id, r.ts, r.deployment, r.policy_version, r.mode, r.unit_id,
                         r.context, r.actions, r.action, r.action_index, r.propensity, r.probabilities,
                         r.candidate_features, r.latency_us, r.key_id, r.consent))
            n_decisions += 1
        elif isinstance(r, OutcomeRecord):
            _check_outcome(r, i)
            rows.append((TAG_OUTCOME, r.decision_id, r.ts, r.fields, r.idempotency_key, r.key_id, r.quarantine))
        else:
            raise ValidationError(f"records[{i}]", f"must be a DecisionRecord or an OutcomeRecord, not "
                                                   f"{type(r).__name__}")
    try:
        payload = _encode(rows).encode()
    except (TypeError, ValueError, RecursionError) as e:
        raise _locate_json_error(records, e) from e
    n_outcomes = len(rows) - n_decisions
    return EncodedBatch(build_frame(payload, n_decisions, n_outcomes, keyring), n_decisions, n_outcomes)


def build_frame(payload: bytes, decisions: int, outcomes: int, keyring: Keyring | None = None) -> bytes:
    """One frame (header and payload) holding a JSON ``payload`` of ``decisions`` + ``outcomes`` rows, sealed when
    ``keyring`` has a key (raises ValidationError when it is larger than a frame holds)."""
    keys = keyring if keyring is not None and keyring.enabled else None
    limit = MAX_PAYLOAD if keys is None else MAX_MESSAGE  # AES-GCM here takes at most 2 GiB per message
    if len(payload) > limit:
        raise ValidationError("records", f"the batch encodes to {len(payload):,} bytes, more than one frame holds "
                                         f"({limit:,}); append it in smaller batches")
    kind = KIND_JSON_BATCH if keys is None else KIND_AESGCM_JSON_BATCH
    aad = _AAD.pack(kind, decisions, outcomes)
    if keys is not None:
        payload = keys.seal(payload, aad)
    crc = zlib.crc32(payload, zlib.crc32(aad))
    return _HEADER.pack(len(payload), crc, kind, decisions, outcomes) + payload


@dataclass(frozen=True, slots=True)
class SegmentScan:
    """What a segment's bytes hold, up to the first frame that is incomplete or fails its check.

    Attributes:
        payloads: the payload of every good frame, in file order (views into the scanned buffer; decrypted bytes for
            sealed frames, unless the scan was asked not to decrypt).
        decisions: decision records in the good frames.
        outcomes: outcome records in the good frames.
        good_end: offset just past the last good frame (the magic's end for a segment with no frames; 0 when
            even the magic is missing or wrong).
        data_end: offset just past the last non-zero byte at or after ``good_end``: the bytes in between are a
            torn write or damage; zeros after it are preallocated space.
        size: bytes scanned.
    """

    payloads: list[memoryview | bytes]
    decisions: int
    outcomes: int
    good_end: int
    data_end: int
    size: int

    @property
    def tail_bytes(self) -> int:
        """Non-zero bytes after the last good frame (never returned by any reader)."""
        return self.data_end - self.good_end


def scan_segment(data: bytes, *, resume: bool = False, keyring: Keyring | None = None,
                 decrypt: bool = True) -> SegmentScan:
    """Walk the frames of a segment's bytes, stopping at the first incomplete or corrupt one.

    Never raises on bad data: a torn tail is what a crash mid-append leaves, and it held nothing acknowledged.
    Preallocated space reads as zeros, which end the walk like a torn frame (a zero ``kind`` is never valid).
    A sealed frame whose authentication tag fails (changed after it was written) ends the walk the same way.

    Args:
        data: the segment's bytes from its start, or (``resume=True``) from a previous scan's ``good_end`` on.
        resume: ``data`` starts at a frame boundary past the magic; offsets in the result are relative to it.
        keyring: the data keys that decrypt sealed frames (default None: no key).
        decrypt: False: only walk and count (:meth:`EventLog.stats`); sealed payloads stay sealed.

    Raises:
        KeyNotFoundError: a sealed frame needs a key that ``keyring`` does not hold (never treated as damage:
            nothing is skipped or quarantined because a key is missing).
    """
    size = len(data)
    if not resume and data[: len(MAGIC)] != MAGIC:
        return SegmentScan([], 0, 0, 0, len(data.rstrip(b"\0")), size)
    view = memoryview(data)
    payloads: list[memoryview | bytes] = []
    decisions = outcomes = 0
    pos = 0 if resume else len(MAGIC)
    unpack = _HEADER.unpack_from
    crc32 = zlib.crc32
    while pos + HEADER_SIZE <= size:
        length, crc, kind, n_dec, n_out = unpack(view, pos)
        end = pos + HEADER_SIZE + length
        if end > size or kind not in _KINDS:
            break
        if crc32(view[pos + _CRC_FROM : end]) != crc:
            break
        payload: memoryview | bytes = view[pos + HEADER_SIZE : end]
        if kind == KIND_AESGCM_JSON_BATCH and decrypt:
            try:
                payload = (keyring or _NO_KEYS).open(payload, bytes(view[pos + _CRC_FROM : pos + HEADER_SIZE]))
            except DecryptionError:
                break
        payloads.append(payload)
        decisions += n_dec
        outcomes += n_out
        pos = end
    # Usually the rest is preallocated zeros (counted without copying); only real damage needs the copy.
    data_end = pos if data.count(0, pos) == size - pos else pos + len(bytes(view[pos:]).rstrip(b"\0"))
    return SegmentScan(payloads, decisions, outcomes, pos, data_end, size)


_NO_KEYS = Keyring()


@dataclass(frozen=True, slots=True)
class Frame:
    """One good frame of a segment, as :func:`iter_frames` finds it.

    Attributes:
        kind: :data:`KIND_JSON_BATCH` or :data:`KIND_AESGCM_JSON_BATCH`.
        decisions: decision rows in it.
        outcomes: outcome rows in it.
        payload: the payload as stored (sealed for a sealed frame).
        end: offset just past the frame.
    """

    kind: int
    decisions: int
    outcomes: int
    payload: memoryview
    end: int

    @property
    def aad(self) -> bytes:
        """The associated data a sealed payload authenticates (kind and counts)."""
        return _AAD.pack(self.kind, self.decisions, self.outcomes)

    @property
    def key_id(self) -> str | None:
        """Id of the key that sealed it, None for a plaintext frame."""
        return bytes(self.payload[:8]).hex() if self.kind == KIND_AESGCM_JSON_BATCH else None


def iter_frames(data: bytes) -> Iterator[Frame]:
    """The frames of a whole segment's bytes that pass their CRC, stopping where :func:`scan_segment` would before
    decrypting (payloads are not decrypted or checked beyond the CRC)."""
    if data[: len(MAGIC)] != MAGIC:
        return
    view = memoryview(data)
    size = len(data)
    pos = len(MAGIC)
    while pos + HEADER_SIZE <= size:
        length, crc, kind, n_dec, n_out = _HEADER.unpack_from(view, pos)
        end = pos + HEADER_SIZE + length
        if end > size or kind not in _KINDS or zlib.crc32(view[pos + _CRC_FROM : end]) != crc:
            return
        yield Frame(kind, n_dec, n_out, view[pos + HEADER_SIZE : end], end)
        pos = end


def decode_rows(payloads: Iterable[memoryview | bytes]) -> list[list[Any]]:
    """Parse frame payloads into tagged rows, in order (one ``orjson.loads`` for all of them).

    Reading uses orjson (several times faster than ``json`` on these payloads); writing keeps the standard
    library's encoder because it refuses NaN and infinities, which orjson would silently write as ``null``.
    """
    chunks = list(payloads)
    if not chunks:
        return []
    batches: list[list[list[Any]]] = orjson.loads(b"[" + b",".join(chunks) + b"]")
    if len(batches) == 1:
        return batches[0]
    return [row for batch in batches for row in batch]


#: Length of a tagged row (tag included) in the current layout.
DECISION_ROW = 17
OUTCOME_ROW = 7
# What rows written before a field existed read as: decisions gained (key_id, consent), outcomes (key_id,
# quarantine). Rows only ever grow at the end, so a short row is padded with the defaults of what it lacks.
_DECISION_TAIL: tuple[Any, ...] = (None, True)
_OUTCOME_TAIL: tuple[Any, ...] = (None, None)


def pad_row(row: list[Any]) -> list[Any]:
    """``row`` in the current layout: a row written by an older version gets the defaults of the fields it lacks
    (in place; a current row is returned as it is)."""
    if row[0] == TAG_DECISION:
        if len(row) < DECISION_ROW:
            row.extend(_DECISION_TAIL[len(row) - DECISION_ROW:])
    elif len(row) < OUTCOME_ROW:
        row.extend(_OUTCOME_TAIL[len(row) - OUTCOME_ROW:])
    return row


def row_to_record(row: list[Any]) -> DecisionRecord | OutcomeRecord:
    """Rebuild the record a tagged row came from."""
    row = pad_row(row)
    if row[0] == TAG_DECISION:
        return DecisionRecord(row[1], row[2], row[3], row[4], Mode(row[5]), row[6], row[7], row[8], row[9], row[10],
                              row[11], row[12], row[13], row[14], row[15], row[16])
    return OutcomeRecord(row[1], row[2], row[3], row[4], row[5], row[6])
