"""Data-key rotation: every file moves under the new key, interruptions lose nothing, active segments are skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlops import encryption
from rlops.encryption import ENV_VAR, DataKey, KeyNotFoundError, Keyring, KeySource, load_keyring, seal
from rlops.engine import Engine
from rlops.errors import StorageError
from rlops.events import EventLog
from rlops.home import Home
from rlops.registry import Registry
from rlops.security import rotation
from rlops.security.rotation import FileKind, create_key, rotate, status
from tests.encrypted_home import SECRET, Filled, digests, fill, raw_files


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home").ensure()
    create_key(home)
    return home


def read_everything(home: Home, filled: Filled, ring: Keyring | None = None) -> None:
    """Every decision, outcome and artefact reads back as it was stored."""
    with EventLog(home.events, keyring=ring) as log:
        decisions = log.read_decisions()
        stored = dict(zip(decisions.column("decision_id").to_pylist(),
                          map(json.loads, decisions.column("context").to_pylist()), strict=True))
        assert stored == filled.contexts
        assert log.read_outcomes().num_rows == filled.outcomes
    with Registry(home, keyring=ring) as registry:
        registry.load("shop-model", filled.version)  # verifies signature and plaintext hashes
    with Engine(home.root) as engine:  # deployment policies load
        decided = engine.decide("shop", {"segment": "a", "x": 0.5}, "someone")
    filled.contexts[decided.decision_id] = {"segment": "a", "x": 0.5}


def test_rotation_round_trip(home: Home) -> None:
    filled = fill(home)
    old = load_keyring(home.keys)
    before = status(home)
    assert before.pending() == [] and {f.kind for f in before.files} == set(FileKind) - {FileKind.TAIL}
    result = rotate(home, settle_s=0)
    new = load_keyring(home.keys)
    assert result.complete and result.created and result.retired == old.key_ids
    assert new.key_ids == [result.key_id] and result.key_id != old.current.key_id
    assert result.rekeyed == len(before.files)
    after = status(home)
    assert all(f.keys == {result.key_id} for f in after.files)
    read_everything(home, filled)
    for path, data in raw_files(home).items():
        assert SECRET.encode() not in data, path
    with pytest.raises(KeyNotFoundError, match=result.key_id), EventLog(home.events, keyring=old) as log:
        log.read_decisions()  # the old key alone opens nothing any more: it can go


def test_an_interrupted_rotation_loses_nothing_and_a_rerun_finishes(home: Home,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    filled = fill(home)
    old = load_keyring(home.keys).current.key_id
    real = rotation._rekey
    calls = []

    def fail_midway(*args: object) -> rotation.Rekeyed:
        calls.append(1)
        if len(calls) == 4:
            raise OSError(28, "No space left on device")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(rotation, "_rekey", fail_midway)
    with pytest.raises(StorageError, match="nothing was lost: run it again"):
        rotate(home, settle_s=0)
    monkeypatch.undo()
    ring = load_keyring(home.keys)
    assert len(ring.keys) == 2 and ring.key_ids[1] == old  # the old key stays until everything moved
    used = {k for f in status(home).files for k in f.keys}
    assert used == set(ring.key_ids)  # some files under each key...
    read_everything(home, filled)  # ...and everything reads
    assert not any(p.name.endswith(".rekey") for p in home.root.rglob("*"))
    result = rotate(home, settle_s=0)
    assert result.complete and not result.created and result.key_id == ring.current.key_id
    assert result.retired == [old] and load_keyring(home.keys).key_ids == [result.key_id]
    read_everything(home, filled)


def test_an_active_segment_is_skipped_and_said_so(home: Home) -> None:
    filled = fill(home, register=False)
    with Engine(home.root) as engine:  # a live writer holds the segment it appends to
        decision = engine.decide("shop", {"segment": f"{SECRET}-live", "x": 0.5}, "u")
        filled.contexts[decision.decision_id] = {"segment": f"{SECRET}-live", "x": 0.5}
        old = load_keyring(home.keys).current.key_id
        result = rotate(home, settle_s=0)
        assert not result.complete and result.kept == [old] and result.retired == []
        assert len(result.active) == 1 and result.active[0].suffix == ".seg"
        assert [f.path for f in result.remaining] == result.active
        assert load_keyring(home.keys).key_ids == [result.key_id, old]
    again = rotate(home, settle_s=0)  # the writer has sealed its segment on close: now it can be rewritten
    assert again.complete and again.retired == [old] and not again.created
    with EventLog(home.events) as log:
        assert log.read_decisions().num_rows == len(filled.contexts)


def test_rotation_encrypts_files_written_before_encryption(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    filled = fill(home)
    assert any(SECRET.encode() in data for data in raw_files(home).values())
    assert all(f.keys == {None} for f in status(home).files)
    key = create_key(home)
    result = rotate(home, new_key=False, settle_s=0)
    assert result.complete and result.key_id == key.key_id and not result.created
    for path, data in raw_files(home).items():
        assert SECRET.encode() not in data, path
    read_everything(home, filled)


def test_a_file_under_an_unknown_key_stops_the_rotation_before_anything_changes(home: Home) -> None:
    fill(home, register=False)
    stranger = DataKey.generate()
    part = next(home.events.glob("parquet/decisions/*.parquet"))
    part.write_bytes(seal(b"not even parquet", Keyring((stranger,), KeySource.ENVIRONMENT)))
    before = digests(home)
    with pytest.raises(KeyNotFoundError, match=f"{part}.*{stranger.key_id}"):
        rotate(home, settle_s=0)
    assert digests(home) == before


def test_keys_from_the_environment_are_not_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = DataKey.generate()
    monkeypatch.setenv(ENV_VAR, old.to_base64())
    home = Home(tmp_path / "home").ensure()
    filled = fill(home)
    new = DataKey.generate()
    monkeypatch.setenv(ENV_VAR, f"{new.to_base64()},{old.to_base64()}")
    result = rotate(home, settle_s=0)
    assert result.complete and not result.created and result.key_id == new.key_id
    assert result.retired == [] and result.removable == [old.key_id]
    monkeypatch.setenv(ENV_VAR, new.to_base64())
    read_everything(home, filled)


def test_a_running_writer_picks_up_the_new_key(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encryption, "RELOAD_S", 0.0)
    filled = fill(home, register=False)
    with Engine(home.root) as engine:
        result = rotate(home, settle_s=0)
        assert result.complete and engine.log.keyring.key_ids == [result.key_id]
        decided = engine.decide("shop", {"segment": f"{SECRET}-after", "x": 0.5}, "u")
        filled.contexts[decided.decision_id] = {"segment": f"{SECRET}-after", "x": 0.5}
        active = [f for f in status(home).files if f.active]
        assert len(active) == 1 and active[0].keys == {result.key_id}
    with EventLog(home.events) as log:
        assert log.read_decisions().num_rows == len(filled.contexts)
