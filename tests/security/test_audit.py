"""The audit chain: appends never fork it, and every kind of tampering is named at the right entry."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from rlops.errors import ConfigError, ConflictError, ValidationError
from rlops.home import Home
from rlops.security.audit import (
    GENESIS,
    AuditAction,
    AuditLog,
    HashAlg,
    Problem,
    create_audit_key,
    entry_hash,
    load_audit_key,
    read_jsonl,
    verify_chain,
)

KEY = b"k" * 40


def _fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append(f"user{i % 3}", AuditAction.DEPLOY, f"deployment:d{i}", {"revision": i, "note": "ok"})


def _sql(url: str, statement: str, **params: Any) -> list[Any]:
    """Run ``statement`` on the database behind the log's back (what someone with write access could do)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def test_appends_chain_from_genesis_and_verify(metadata_url: str) -> None:
    with AuditLog(metadata_url) as log:
        first = log.append("alice", AuditAction.REGISTER, "news@1", {"stage": "candidate"})
        second = log.append("bob", "stage_change", "news@1", {"from": "candidate", "to": "shadow"})
        assert (first.seq, first.prev_hash, first.alg) == (1, GENESIS, HashAlg.SHA256)
        assert (second.seq, second.prev_hash) == (2, first.hash)
        assert second.hash == entry_hash(2, second.ts_us, "bob", "stage_change", "news@1",
                                         {"from": "candidate", "to": "shadow"}, first.hash, HashAlg.SHA256)
        assert log.verify().ok and log.verify().entries == 2
        assert log.anchor() == f"2:{second.hash}"
        assert [e.seq for e in log.tail(1)] == [2]


def test_empty_log_verifies(metadata_url: str) -> None:
    with AuditLog(metadata_url) as log:
        assert log.verify() == log.verify() and log.verify().ok and log.verify().entries == 0
        assert log.anchor() is None


def test_concurrent_appends_from_threads_never_fork(metadata_url: str) -> None:
    with AuditLog(metadata_url) as log:
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                for i in range(25):
                    log.append(f"thread{t}", AuditAction.CONFIG_CHANGE, "config", {"i": i})
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert [e.seq for e in log.entries()] == list(range(1, 101))
        result = log.verify()
        assert result.ok and result.entries == 100


def _append_many(url: str, who: str, n: int) -> None:
    with AuditLog(url) as log:
        for i in range(n):
            log.append(who, AuditAction.DEPLOY, "deployment:x", {"i": i})


def test_concurrent_appends_from_processes_never_fork(metadata_url: str) -> None:
    url = metadata_url
    AuditLog(url).close()  # create the table once, as the home folder would have it
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(url, f"p{i}", 15)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with AuditLog(url) as log:
        assert [e.seq for e in log.entries()] == list(range(1, 46))
        assert log.verify().ok


def test_edited_details_are_named(metadata_url: str) -> None:
    with AuditLog(metadata_url) as log:
        _fill(log, 10)
        edited = json.dumps({"revision": 99, "note": "ok"})
        _sql(metadata_url, "UPDATE audit_log SET details = :v WHERE seq = 6", v=edited)
        result = log.verify()
        assert not result.ok and result.first_bad_seq == 6 and result.kind is Problem.ALTERED
        assert result.entries == 5 and result.problem is not None and "entry 6" in result.problem


@pytest.mark.parametrize(("column", "value"), [("actor", "mallory"), ("action", "rollback"), ("target", "other"),
                                              ("ts_us", 1), ("details", "not json"), ("alg", "md5")])
def test_every_column_is_covered(metadata_url: str, column: str, value: object) -> None:
    with AuditLog(metadata_url) as log:
        _fill(log, 5)
        _sql(metadata_url, f"UPDATE audit_log SET {column} = :v WHERE seq = 3", v=value)
        result = log.verify()
        assert (result.ok, result.first_bad_seq) == (False, 3)


def test_edit_rehashed_without_key_breaks_the_next_link(metadata_url: str) -> None:
    with AuditLog(metadata_url) as log:
        _fill(log, 5)
        e = next(x for x in log.entries() if x.seq == 3)
        forged = entry_hash(3, e.ts_us, "mallory", e.action, e.target, e.details, e.prev_hash, HashAlg.SHA256)
        _sql(metadata_url, "UPDATE audit_log SET actor = 'mallory', hash = :h WHERE seq = 3", h=forged)
        result = log.verify()
        assert (result.first_bad_seq, result.kind) == (4, Problem.BROKEN_LINK)


def test_deleted_middle_row_is_caught_at_the_next_entry(metadata_url: str) -> None:
    with AuditLog(metadata_url) as log:
        _fill(log, 10)
        _sql(metadata_url, "DELETE FROM audit_log WHERE seq = 4")
        result = log.verify()
        assert (result.ok, result.first_bad_seq, result.kind) == (False, 5, Problem.REMOVED)
        assert result.problem is not None and "(4)" in result.problem


def test_deleted_and_renumbered_rows_are_caught(metadata_url: str) -> None:
    with AuditLog(metadata_url) as log:
        _fill(log, 6)
        _sql(metadata_url, "DELETE FROM audit_log WHERE seq = 3")
        for seq in (4, 5, 6):  # one by one: PostgreSQL checks the key after each row, not at the end
            _sql(metadata_url, "UPDATE audit_log SET seq = seq - 1 WHERE seq = :s", s=seq)
        result = log.verify()
        assert (result.ok, result.first_bad_seq) == (False, 3)  # renumbering changes what the hash covers


def test_swapped_rows_are_caught(metadata_url: str) -> None:
    with AuditLog(metadata_url) as log:
        _fill(log, 8)
        cols = "ts_us, actor, action, target, details, alg, prev_hash, hash"
        names = [c.strip() for c in cols.split(",")]
        a = _sql(metadata_url, f"SELECT {cols} FROM audit_log WHERE seq = 3")[0]
        b = _sql(metadata_url, f"SELECT {cols} FROM audit_log WHERE seq = 6")[0]
        sets = ", ".join(f"{c} = :{c}" for c in names)
        _sql(metadata_url, f"UPDATE audit_log SET {sets} WHERE seq = 3", **dict(zip(names, b, strict=True)))
        _sql(metadata_url, f"UPDATE audit_log SET {sets} WHERE seq = 6", **dict(zip(names, a, strict=True)))
        result = log.verify()
        assert (result.ok, result.first_bad_seq) == (False, 3)


def test_tail_truncation_needs_the_anchor(metadata_url: str) -> None:
    with AuditLog(metadata_url) as log:
        _fill(log, 6)
        anchor = log.anchor()
        assert anchor is not None and log.verify(anchor=anchor).ok
        _sql(metadata_url, "DELETE FROM audit_log WHERE seq >= 5")
        assert log.verify().ok  # a shorter chain is still a valid chain...
        result = log.verify(anchor=anchor)  # ...which only the anchor kept elsewhere shows
        assert (result.ok, result.first_bad_seq, result.kind) == (False, 6, Problem.TRUNCATED)
        log.append("alice", AuditAction.ERASURE, "unit:42")  # a new entry 5 ...
        log.append("alice", AuditAction.ERASURE, "unit:43")  # ... and 6: not the anchored one
        result = log.verify(anchor=anchor)
        assert (result.first_bad_seq, result.kind) == (6, Problem.TRUNCATED)
    with pytest.raises(ValidationError, match="anchor"):
        verify_chain([], anchor="nope")


def test_hmac_chain_catches_a_plain_sha256_rewrite(metadata_url: str) -> None:
    with AuditLog(metadata_url, key=KEY) as log:
        _fill(log, 5)
        assert {e.alg for e in log.entries()} == {HashAlg.HMAC_SHA256} and log.verify().ok
        # Someone who can write the database but has no key edits entry 2 and recomputes every hash after it.
        prev = GENESIS
        for e in list(log.entries()):
            actor = "mallory" if e.seq == 2 else e.actor
            digest = entry_hash(e.seq, e.ts_us, actor, e.action, e.target, e.details, prev, HashAlg.SHA256)
            _sql(metadata_url, "UPDATE audit_log SET actor = :a, alg = 'sha256', prev_hash = :p, hash = :h "
                 "WHERE seq = :s", a=actor, p=prev, h=digest, s=e.seq)
            prev = digest
        assert AuditLog(metadata_url).verify().ok  # keyless, it looks fine
        result = log.verify()
        assert (result.ok, result.first_bad_seq, result.kind) == (False, 1, Problem.UNKEYED)
        # Keeping the alg label but guessing the key fails too.
        _sql(metadata_url, "UPDATE audit_log SET alg = 'hmac-sha256'")
        assert log.verify().kind is Problem.ALTERED


def test_key_added_later_verifies_with_unkeyed_until(metadata_url: str) -> None:
    with AuditLog(metadata_url) as log:
        _fill(log, 3)
    with AuditLog(metadata_url, key=KEY) as log:
        _fill(log, 2)
        assert log.verify().kind is Problem.UNKEYED
        assert log.verify(unkeyed_until=3).ok
        assert log.verify(unkeyed_until=2).first_bad_seq == 3
    result = AuditLog(metadata_url).verify()
    assert (result.first_bad_seq, result.kind) == (4, Problem.NO_KEY)


def test_key_from_environment_and_file(tmp_path: Path) -> None:
    home = Home(tmp_path)
    assert load_audit_key(home.keys, environ={}) is None
    assert load_audit_key(home.keys, environ={"RLOPS_AUDIT_KEY": "x" * 32}) == b"x" * 32
    with pytest.raises(ConfigError, match="at least 32"):
        load_audit_key(home.keys, environ={"RLOPS_AUDIT_KEY": "short"})
    path = create_audit_key(home.keys)
    assert path.stat().st_mode & 0o077 == 0
    key = load_audit_key(home.keys, environ={})
    assert key is not None and len(key) == 64
    with pytest.raises(ConflictError):
        create_audit_key(home.keys)
    with AuditLog.for_home(home, environ={}) as log:
        assert log.append("alice", AuditAction.KEY_CREATE, "key:audit").alg is HashAlg.HMAC_SHA256
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_audit_key(home.keys, environ={})


def test_export_round_trips_and_verifies_offline(tmp_path: Path, metadata_url: str) -> None:
    with AuditLog(metadata_url, key=KEY) as log:
        _fill(log, 6)
        stored = list(log.entries())
        out = tmp_path / "out" / "audit.jsonl"
        assert log.export(out) == 6
        exported = list(read_jsonl(out))
        assert exported == stored
        assert verify_chain(exported, KEY).ok
        first = json.loads(out.read_text().splitlines()[0])
        assert first["ts"].endswith("+00:00") and first["details"] == {"revision": 0, "note": "ok"}
        middle = stored[2].ts_us, stored[4].ts_us
        assert log.export(out, start_us=middle[0], end_us=middle[1]) == 2
        part = list(read_jsonl(out))
        assert [e.seq for e in part] == [3, 4]
        assert not verify_chain(part, KEY).ok  # a slice does not start at the genesis...
        assert verify_chain(part, KEY, from_genesis=False).ok  # ...but is internally consistent
        lines = out.read_text().splitlines()
        out.write_text(lines[0] + "\n" + lines[1].replace('"note": "ok"', '"note": "ko"') + "\n")
        assert verify_chain(read_jsonl(out), KEY, from_genesis=False).first_bad_seq == 4


def test_bad_input_is_refused_and_nothing_stored(tmp_path: Path, metadata_url: str) -> None:
    with AuditLog(metadata_url) as log:
        for kwargs, name in [({"actor": "", "action": "deploy"}, "actor"),
                             ({"actor": "a", "action": "Deploy!"}, "action"),
                             ({"actor": "a", "action": "deploy", "target": "t" * 501}, "target"),
                             ({"actor": "a", "action": "deploy", "details": {"x": float("nan")}}, "details"),
                             ({"actor": "a", "action": "deploy", "details": {"x": object()}}, "details")]:
            with pytest.raises(ValidationError) as info:
                log.append(**kwargs)  # type: ignore[arg-type]
            assert info.value.field == name
        assert log.count() == 0
    with pytest.raises(ValidationError, match=r"bad\.jsonl:1"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text("[1, 2]\n")
        list(read_jsonl(bad))
