"""Encryption at rest: keys, the sealed formats, and a real home folder whose files hold no plaintext data."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pytest

from rlops import encryption
from rlops.encryption import (
    ENV_VAR,
    DataKey,
    DecryptionError,
    KeyNotFoundError,
    Keyring,
    KeySource,
    KeyWatch,
    load_keyring,
    open_bytes,
    read_plain,
    seal,
    sha256_plain,
    write_key_file,
)
from rlops.engine import Engine
from rlops.errors import ConfigError, StorageError
from rlops.events import DecisionRecord, EventLog, Mode, OutcomeRecord
from rlops.events.frames import (
    HEADER_SIZE,
    KIND_AESGCM_JSON_BATCH,
    KIND_JSON_BATCH,
    MAGIC,
    decode_rows,
    encode_batch,
    row_to_record,
    scan_segment,
)
from rlops.events.log import IndexCursor
from rlops.home import Home
from rlops.registry import Registry
from rlops.security.rotation import create_key
from tests.encrypted_home import SECRET, digests, fill, raw_files


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def decision(i: int, context: dict[str, object] | None = None) -> DecisionRecord:
    return DecisionRecord(decision_id=f"d-{i:05d}", ts=1_700_000_000_000_000 + i, deployment="shop",
                          policy_version="v1", mode=Mode.SERVED, unit_id=f"u{i}",
                          context=context or {"segment": f"{SECRET}-{i}"}, actions=["left", "right"], action="left",
                          action_index=0, propensity=0.5, probabilities=[0.5, 0.5], latency_us=10)


def keyring(*keys: DataKey) -> Keyring:
    return Keyring(keys or (DataKey.generate(),), KeySource.ENVIRONMENT)


# ---- keys ----


def test_no_key_means_encryption_off(tmp_path: Path) -> None:
    ring = load_keyring(tmp_path / "keys", environ={})
    assert not ring.enabled and ring.source is KeySource.NONE
    assert seal(b"plain", ring) == b"plain"


def test_keys_from_the_environment_current_first(tmp_path: Path) -> None:
    new, old = DataKey.generate(), DataKey.generate()
    ring = load_keyring(tmp_path, environ={ENV_VAR: f"{new.to_base64()}, {old.to_base64()}"})
    assert ring.source is KeySource.ENVIRONMENT and ring.key_ids == [new.key_id, old.key_id]
    assert ring.current.key_id == new.key_id


@pytest.mark.parametrize("value, words", [("not base64!", "not valid base64"),
                                          ("AAAA", "decodes to 3 bytes")])
def test_a_bad_key_in_the_environment_is_named(value: str, words: str) -> None:
    with pytest.raises(ConfigError, match=f"{ENV_VAR}.*{words}"):
        load_keyring(None, environ={ENV_VAR: value})


def test_key_file_round_trip_and_permissions(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    key = DataKey.generate()
    path = write_key_file(keys, [key], create=True)
    assert path.stat().st_mode & 0o777 == 0o600
    ring = load_keyring(keys, environ={})
    assert ring.source is KeySource.FILE and ring.key_ids == [key.key_id] and ring.path == path
    with pytest.raises(Exception, match="exists already"):
        write_key_file(keys, [DataKey.generate()], create=True)
    path.chmod(0o640)
    with pytest.raises(ConfigError, match=r"readable by others.*chmod 600"):
        load_keyring(keys, environ={})


def test_the_same_key_twice_is_refused(tmp_path: Path) -> None:
    key = DataKey.generate()
    with pytest.raises(ConfigError, match="listed twice"):
        load_keyring(None, environ={ENV_VAR: f"{key.to_base64()},{key.to_base64()}"})


def test_a_watch_follows_the_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encryption, "RELOAD_S", 0.0)
    keys = tmp_path / "keys"
    watch = KeyWatch(keys)
    assert not watch.get().enabled
    first = DataKey.generate()
    write_key_file(keys, [first])
    assert watch.get().key_ids == [first.key_id]
    (keys / encryption.KEY_FILE).unlink()  # a vanished key file never turns encryption off under a writer
    assert watch.get().key_ids == [first.key_id]


# ---- sealed files ----


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 32, 50])
def test_sealed_files_round_trip_at_chunk_boundaries(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encryption, "CHUNK_BYTES", 16)
    ring = keyring()
    data = os.urandom(size)
    sealed = seal(data, ring)
    chunks = size // 16 + 1  # the last chunk is always short (possibly empty)
    overhead = encryption.NONCE_BYTES + encryption.TAG_BYTES
    assert sealed.startswith(encryption.FILE_MAGIC)
    assert len(sealed) == encryption.FILE_HEADER_BYTES + size + chunks * overhead
    assert open_bytes(sealed, ring) == data
    assert open_bytes(b"PAR1" + data, ring) == b"PAR1" + data  # plaintext passes through


def test_changed_cut_or_reordered_ciphertext_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encryption, "CHUNK_BYTES", 16)
    ring = keyring()
    sealed = bytearray(seal(os.urandom(40), ring))
    record = encryption.NONCE_BYTES + 16 + encryption.TAG_BYTES
    head = encryption.FILE_HEADER_BYTES
    flipped = bytes(sealed[:-1]) + bytes([sealed[-1] ^ 1])
    cut = bytes(sealed[: head + 2 * record])  # the last chunk dropped at a chunk boundary
    swapped = bytes(sealed[:head] + sealed[head + record : head + 2 * record] + sealed[head : head + record]
                    + sealed[head + 2 * record :])
    for bad in (flipped, cut, swapped):
        with pytest.raises(DecryptionError, match=r"(authentication tag|cut short)"):
            open_bytes(bad, ring, "part.parquet")


def test_a_file_sealed_with_another_key_names_that_key(tmp_path: Path) -> None:
    theirs = DataKey.generate()
    path = tmp_path / "f"
    path.write_bytes(seal(b"data", keyring(theirs)))
    with pytest.raises(KeyNotFoundError, match=f"{path}: encrypted with data key {theirs.key_id}") as e:
        read_plain(path, keyring())
    assert e.value.key_id == theirs.key_id
    with pytest.raises(KeyNotFoundError, match="no data key is configured"):
        read_plain(path, Keyring())


def test_hashes_are_of_the_plaintext(tmp_path: Path) -> None:
    plain, sealed = tmp_path / "a", tmp_path / "b"
    plain.write_bytes(b"x" * 3_000_000)
    ring = keyring()
    sealed.write_bytes(seal(plain.read_bytes(), ring))
    assert sha256_plain(plain, ring) == sha256_plain(sealed, ring)


# ---- frames ----


def test_sealed_frames_round_trip_and_count_without_a_key() -> None:
    ring = keyring()
    records = [decision(0), decision(1), OutcomeRecord("d-00000", 2, {"clicked": 1}, "k")]
    frame = encode_batch(records, ring).frame
    assert frame[8] == KIND_AESGCM_JSON_BATCH and SECRET.encode() not in frame
    data = MAGIC + frame + encode_batch([decision(2)]).frame  # sealed and plaintext frames may follow each other
    scan = scan_segment(data, keyring=ring)
    assert [row_to_record(r) for r in decode_rows(scan.payloads)] == [*records, decision(2)]
    counted = scan_segment(data, decrypt=False)
    assert (counted.decisions, counted.outcomes, counted.tail_bytes) == (3, 1, 0)
    with pytest.raises(KeyNotFoundError, match=ring.current.key_id):
        scan_segment(data)
    with pytest.raises(KeyNotFoundError):
        scan_segment(data, keyring=keyring())


def test_a_tampered_frame_is_treated_like_a_corrupt_one() -> None:
    """A changed ciphertext whose CRC was fixed up still fails its tag: the walk stops there, as at a bad CRC."""
    ring = keyring()
    first = encode_batch([decision(0)], ring).frame
    second = bytearray(encode_batch([decision(1)], ring).frame)
    second[-1] ^= 1
    struct.pack_into("<I", second, 4, zlib.crc32(bytes(second[8:])))
    scan = scan_segment(MAGIC + first + bytes(second), keyring=ring)
    assert scan.decisions == 1 and scan.good_end == len(MAGIC) + len(first) and scan.tail_bytes == len(second)
    counts_changed = bytearray(first)
    struct.pack_into("<I", counts_changed, HEADER_SIZE - 8, 5)  # the plaintext count is authenticated too
    struct.pack_into("<I", counts_changed, 4, zlib.crc32(bytes(counts_changed[8:])))
    assert scan_segment(MAGIC + bytes(counts_changed), keyring=ring).decisions == 0


def test_the_log_seals_frames_and_parts_and_reads_them_back(tmp_path: Path) -> None:
    ring = keyring()
    with EventLog(tmp_path / "ev", keyring=ring) as log:
        log.append([decision(i) for i in range(5)])
        log.rotate()
        log.compact()
        log.append([decision(5), OutcomeRecord("d-00001", 9, {"clicked": 1}, "k")])
        assert log.read_decisions().num_rows == 6 and log.read_outcomes().num_rows == 1
        assert log.stats().decisions == 6 and log.stats().parquet_parts == 2
        assert sorted(log.decision_index()) == [f"d-{i:05d}" for i in range(6)]
    for path in (tmp_path / "ev").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    with pytest.raises(KeyNotFoundError, match=ring.current.key_id):
        EventLog(tmp_path / "ev", keyring=Keyring()).read_decisions()


def test_incremental_reads_resume_inside_sealed_segments(tmp_path: Path) -> None:
    ring = keyring()
    with EventLog(tmp_path / "ev", keyring=ring) as log:
        cursor = IndexCursor()
        log.append([decision(0)])
        first, _ = log.read_since(cursor)
        log.append([decision(1), decision(2)])
        second, _ = log.read_since(cursor)  # resumes at the cursor's offset, past the first sealed frame
        assert first.column("decision_id").to_pylist() == ["d-00000"]
        assert second.column("decision_id").to_pylist() == ["d-00001", "d-00002"]


def test_a_log_written_before_the_key_stays_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Turning encryption on mid-segment: the writer picks the key up and the segment holds both kinds."""
    monkeypatch.setattr(encryption, "RELOAD_S", 0.0)
    home = Home(tmp_path / "h").ensure()
    with EventLog(home.events) as log:
        log.append([decision(0)])
        create_key(home)
        log.append([decision(1)])
        segment = next(home.events.glob("segments/*.seg")).read_bytes()
        assert segment[len(MAGIC) + 8] == KIND_JSON_BATCH and SECRET.encode() + b"-0" in segment
        assert SECRET.encode() + b"-1" not in segment
        assert log.read_decisions().column("decision_id").to_pylist() == ["d-00000", "d-00001"]


# ---- a real home folder ----


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home").ensure()
    create_key(home)
    return home


def test_no_plaintext_context_value_in_any_file_of_the_home(home: Home) -> None:
    filled = fill(home)
    files = raw_files(home)
    kinds = {p.relative_to(home.root).parts[0] for p in files}
    assert {"events", "registry", "deployments", "keys"} <= kinds
    assert any(p.suffix == ".parquet" for p in files) and any(p.suffix == ".seg" for p in files)
    for path, data in files.items():
        assert SECRET.encode() not in data, f"{path} holds a context value in plaintext"
        assert SECRET.encode("utf-16-le") not in data, path
    with Engine(home.root) as engine:
        decisions = engine.log.read_decisions()
        assert engine.log.read_outcomes().num_rows == filled.outcomes
        import json

        stored = dict(zip(decisions.column("decision_id").to_pylist(),
                          map(json.loads, decisions.column("context").to_pylist()), strict=True))
        assert stored == filled.contexts
    with Registry(home) as registry:
        registry.verify("shop-model", filled.version)
        assert registry.load("shop-model").schema.actions.names == ["left", "right"]
        assert SECRET in registry.details("shop-model").report["note"]  # type: ignore[index]


def test_a_wrong_key_names_the_key_and_changes_nothing(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(home)
    right = load_keyring(home.keys).current.key_id
    before = digests(home)
    monkeypatch.setenv(ENV_VAR, DataKey.generate().to_base64())
    log = EventLog(home.events)
    with pytest.raises(KeyNotFoundError, match=f"encrypted with data key {right}"):
        log.read_decisions()
    with pytest.raises(KeyNotFoundError, match=right):
        log.compact()
    with pytest.raises(KeyNotFoundError, match=right), Registry(home) as registry:
        registry.load("shop-model")
    log.close()
    assert digests(home) == before


def test_a_tampered_part_or_artefact_is_refused(home: Home) -> None:
    fill(home)
    part = next(home.events.glob("parquet/decisions/*.parquet"))
    data = bytearray(part.read_bytes())
    data[-5] ^= 1
    part.write_bytes(bytes(data))
    with pytest.raises(StorageError, match=f"{part}.*authentication tag"), EventLog(home.events) as log:
        log.read_decisions()
    state = next(home.registry.glob("shop-model/v1/policy/state.npz"))
    data = bytearray(state.read_bytes())
    data[100] ^= 1
    state.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"authentication tag.*changed after it was registered"), \
            Registry(home) as registry:
        registry.verify("shop-model", 1)


def test_registry_hashes_cover_the_plaintext(home: Home) -> None:
    """The signed registration pins plaintext hashes: the same as those of an unencrypted registration."""
    fill(home, register=True)
    with Registry(home) as registry:
        record = registry.get("shop-model", 1)
    folder = home.registry / "shop-model" / "v1"
    ring = load_keyring(home.keys)
    for rel, digest in record.registration["files"].items():
        path = folder / rel
        assert path.read_bytes().startswith(encryption.FILE_MAGIC)
        assert sha256_plain(path, ring) == digest


def test_parquet_readers_go_through_one_helper(home: Home) -> None:
    fill(home, register=False)
    from rlops.events.log import part_source

    part = next(home.events.glob("parquet/outcomes/*.parquet"))
    source = part_source(part, load_keyring(home.keys))
    assert isinstance(source, pa.BufferReader)
    import pyarrow.parquet as pq

    assert pq.read_metadata(source).num_rows >= 0
