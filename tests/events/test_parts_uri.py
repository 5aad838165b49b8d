"""Parquet parts on a pyarrow filesystem URI (``RLOPS_EVENTS_URI`` / ``EventLog(parts_uri=...)``): a local folder
other than the home's, and an in-memory non-local store (fsspec's, through pyarrow's ``FSSpecHandler``)."""

from __future__ import annotations

import errno
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from rlops.cli.main import main
from rlops.encryption import FILE_MAGIC, DataKey
from rlops.engine import DeploymentSpec, Engine
from rlops.errors import ConfigError, StorageError
from rlops.events import DecisionRecord, EventLog, Mode, OutcomeRecord
from rlops.events import compaction as compaction_module
from rlops.events.erasure import erase_unit_records
from rlops.events.log import IndexCursor
from rlops.events.parts import ENV_VAR, KINDS, PartStore
from rlops.events.retention import expire_records
from rlops.scenarios import SyntheticBandit

T0 = 1_700_000_000_000_000
DAY_US = 86_400_000_000
REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}
CONTEXT = {"age": 30.0, "device": "mobile", "returning": False, "activity": 0.5, "taste": [0.0, 0.0, 0.0, 0.0]}


def decision(i: int, unit: str = "u", deployment: str = "news", ts: int | None = None) -> DecisionRecord:
    return DecisionRecord(f"d-{i:05d}", T0 + i if ts is None else ts, deployment, f"{deployment}@r1", Mode.SERVED,
                          unit, {"i": i}, ["a", "b"], "a", 0, 0.5, [0.5, 0.5])


def outcome(i: int) -> OutcomeRecord:
    return OutcomeRecord(f"d-{i:05d}", T0 + 1000 + i, {"clicked": True}, f"k-{i}")


def parts_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.parquet"))


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return (tmp_path / "elsewhere" / "parts").as_uri()  # file:///.../elsewhere/parts, outside the log's folder


def fill(log: EventLog) -> None:
    log.append([decision(0, "alice"), decision(1, "bob"), decision(2, "alice")])
    log.append([outcome(0), outcome(1)])
    log.rotate()



def _crash_before_the_outcomes_part(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make compaction fail on its second durable write (a segment's outcomes part), as a crash there would."""
    real = compaction_module._write_durably
    calls: list[Any] = []

    def crash_on_second(target: Any, data: pa.Table | bytes) -> int:
        calls.append(target)
        if len(calls) == 2:
            raise OSError(errno.EIO, "simulated crash before the outcomes part")
        return real(target, data)

    monkeypatch.setattr(compaction_module, "_write_durably", crash_on_second)

def test_parts_go_to_the_uri_and_read_back_equal(tmp_path: Path, uri: str) -> None:
    root = tmp_path / "events"
    with EventLog(root, parts_uri=uri) as log:
        fill(log)
        before = (log.read_decisions(), log.read_outcomes(), list(log.iter_records()), log.decision_index())
        result = log.compact()
        assert (result.segments, result.decisions, result.outcomes) == (1, 3, 2)
        after = (log.read_decisions(), log.read_outcomes(), list(log.iter_records()), log.decision_index())
        assert after[0].equals(before[0]) and after[1].equals(before[1]) and after[2:] == before[2:]
        assert log.read_since(IndexCursor())[0].num_rows == 3
        assert log.seen_outcome_keys() == {"k-0", "k-1"}
        stats = log.stats()
        assert (stats.decisions, stats.outcomes, stats.segments, stats.parquet_parts) == (3, 2, 0, 2)
        assert str(log.parts) == str(tmp_path / "elsewhere" / "parts")
    assert parts_under(root) == []  # nothing compacted stays in the log's folder
    found = parts_under(tmp_path / "elsewhere" / "parts")
    assert [p.parent.name for p in found] == ["decisions", "outcomes"]
    assert pq.read_table(found[0]).num_rows == 3
    # a second process with the same URI sees the same log, and without it only the segments (none left)
    assert EventLog(root, parts_uri=uri).read_decisions().num_rows == 3
    assert EventLog(root).read_decisions().num_rows == 0


def test_the_environment_variable_names_the_store(tmp_path: Path, uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, uri)
    with EventLog(tmp_path / "events") as log:
        fill(log)
        log.compact()
    assert len(parts_under(tmp_path / "elsewhere")) == 2
    monkeypatch.setenv(ENV_VAR, "nope://bucket/x")
    with pytest.raises(ConfigError, match=ENV_VAR):
        EventLog(tmp_path / "other")


def test_a_crash_between_the_two_parts_leaves_exactly_one_current_copy(tmp_path: Path, uri: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "events"
    with EventLog(root, parts_uri=uri) as log:
        fill(log)
        expected = list(log.iter_records())
    _crash_before_the_outcomes_part(monkeypatch)
    with pytest.raises(StorageError, match="simulated crash"):
        EventLog(root, parts_uri=uri).compact()
    monkeypatch.undo()
    assert [p.parent.name for p in parts_under(tmp_path / "elsewhere")] == ["decisions"]  # stray, not committed
    log = EventLog(root, parts_uri=uri)
    assert list(log.iter_records()) == expected  # read from the segment, the stray part ignored
    assert (log.stats().segments, log.stats().parquet_parts) == (1, 0)
    assert log.compact().segments == 1
    assert list(log.iter_records()) == expected
    assert len(parts_under(tmp_path / "elsewhere")) == 2 and not list((root / "segments").glob("*.seg"))


def test_erasure_and_retention_rewrite_the_parts_on_the_uri(tmp_path: Path, uri: str) -> None:
    with EventLog(tmp_path / "events", parts_uri=uri) as log:
        fill(log)
        log.append([decision(3, "carol", ts=T0 - 100 * DAY_US), decision(4, "carol", deployment="shop")])
        log.rotate()
        log.compact()
        before = {p: p.read_bytes() for p in parts_under(tmp_path / "elsewhere")}
        erased = erase_unit_records(log, "alice", wait_s=1)
        assert erased.complete and (erased.removal.decisions, erased.removal.outcomes) == (2, 1)
        assert erased.removal.files_rewritten == 2
        assert log.read_decisions()["unit_id"].to_pylist() == ["bob", "carol", "carol"]
        assert log.read_outcomes()["decision_id"].to_pylist() == ["d-00001"]
        expired = expire_records(log, {"news": T0 - DAY_US}, wait_s=1)
        assert expired.complete and expired.decisions == 1
        assert log.read_decisions()["decision_id"].to_pylist() == ["d-00001", "d-00004"]
    after = {p: p.read_bytes() for p in parts_under(tmp_path / "elsewhere")}
    assert after.keys() == before.keys() and after != before
    assert not any(b"alice" in data for data in after.values())
    assert parts_under(tmp_path / "events") == []


def test_encryption_seals_the_parts_on_the_uri(tmp_path: Path, uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLOPS_DATA_KEY", DataKey.generate().to_base64())
    with EventLog(tmp_path / "events", parts_uri=uri) as log:
        fill(log)
        log.compact()
        assert log.read_decisions().num_rows == 3 and log.stats().decisions == 3
        assert erase_unit_records(log, "bob", wait_s=1).complete
        assert log.read_decisions()["unit_id"].to_pylist() == ["alice", "alice"]
    found = parts_under(tmp_path / "elsewhere")
    assert len(found) == 2 and all(p.read_bytes().startswith(FILE_MAGIC) for p in found)


def test_key_rotation_reseals_the_parts_on_the_uri(tmp_path: Path, uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from rlops.home import Home
    from rlops.security.rotation import rotate, status

    monkeypatch.setenv(ENV_VAR, uri)
    home = Home.resolve(tmp_path / "home")
    old, new = DataKey.generate(), DataKey.generate()
    monkeypatch.setenv("RLOPS_DATA_KEY", old.to_base64())
    with EventLog(home.events) as log:
        fill(log)
        log.compact()
    monkeypatch.setenv("RLOPS_DATA_KEY", f"{new.to_base64()},{old.to_base64()}")
    assert len([f for f in status(home).files if f.kind.value == "parquet part" and old.key_id in f.keys]) == 2
    result = rotate(home, settle_s=0)
    assert result.rekeyed == 2 and result.complete and result.removable == [old.key_id]
    monkeypatch.setenv("RLOPS_DATA_KEY", new.to_base64())
    assert EventLog(home.events).read_decisions().num_rows == 3


@pytest.fixture
def home_on_uri(tmp_path: Path, uri: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ENV_VAR, uri)
    root = tmp_path / "home"
    with Engine(root) as engine:
        engine.apply(DeploymentSpec.from_dict({"name": "news", "schema": SyntheticBandit().schema.to_dict(),
                                               "reward": REWARD, "policy": {"kind": "uniform"}}))
        for i in range(6):
            made = engine.decide("news", CONTEXT, f"unit-{i}")
            if i % 2:
                engine.report(made.decision_id, {"clicked": True})
    return root


def test_cli_compact_stats_and_export_read_the_parts_on_the_uri(home_on_uri: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "compact", "--home", str(home_on_uri)]) == 0
    assert len(parts_under(tmp_path / "elsewhere")) == 2 and parts_under(home_on_uri / "events") == []
    capsys.readouterr()
    assert main(["events", "stats", "--home", str(home_on_uri)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "6 decisions and 3 outcomes in 0 segment(s) and 2 Parquet part(s)" in out
    assert "Parquet parts at" in out and "elsewhere" in out
    assert main(["events", "export", "--out", str(tmp_path / "x"), "--home", str(home_on_uri)]) == 0
    assert pq.read_table(tmp_path / "x" / "decisions.parquet").num_rows == 6
    interactions = pq.read_table(tmp_path / "x" / "interactions-news.parquet")  # the others are still pending
    assert interactions.num_rows == 3 and sum(interactions["reward"].to_pylist()) == 3


# ---- a non-local store: fsspec's in-memory filesystem through pyarrow ------------------------------------------


@pytest.fixture(params=[False, True], ids=["tmp-then-move", "atomic-put"])
def memory_store(request: pytest.FixtureRequest) -> Iterator[PartStore]:
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    prefix = f"/bucket-{uuid.uuid4().hex}/events"
    fs = pafs.SubTreeFileSystem(prefix, pafs.PyFileSystem(pafs.FSSpecHandler(memory)))
    yield PartStore.of(fs, f"memory://{prefix}", atomic_put=request.param)
    memory.rm(prefix.split("/events")[0], recursive=True)


def _names(store: PartStore) -> list[str]:
    return sorted(i.path for kind in KINDS for i in store.names(kind))


def test_a_non_local_store_holds_the_parts(tmp_path: Path, memory_store: PartStore,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "events"
    with EventLog(root, parts_uri=memory_store) as log:
        fill(log)
        before = (log.read_decisions(), list(log.iter_records()))
        log.compact()
        assert log.read_decisions().equals(before[0]) and list(log.iter_records()) == before[1]
        stem = log.layout.segment_stems() or sorted(memory_store.stems("outcomes"))
        assert _names(memory_store) == [f"decisions/{stem[0]}.parquet", f"outcomes/{stem[0]}.parquet"]
        assert parts_under(root) == [] and log.stats().parquet_parts == 2
        erased = erase_unit_records(log, "alice", wait_s=1)
        assert erased.complete and log.read_decisions()["unit_id"].to_pylist() == ["bob"]
        assert len(_names(memory_store)) == 2  # rewritten in place, no temporary file left

        # a crash between the two parts of the next segment: one current copy, then compaction finishes
        log.append([decision(7, "dave"), outcome(7)])
        log.rotate()
        _crash_before_the_outcomes_part(monkeypatch)
        with pytest.raises(StorageError):
            log.compact()
        monkeypatch.undo()
        assert log.read_decisions()["unit_id"].to_pylist() == ["bob", "dave"]
        assert log.read_outcomes()["decision_id"].to_pylist() == ["d-00001", "d-00007"]
        assert log.compact().segments == 1 and len(_names(memory_store)) == 4
        assert log.read_decisions()["unit_id"].to_pylist() == ["bob", "dave"]


def test_a_non_local_store_with_a_data_key_holds_sealed_parts(tmp_path: Path, memory_store: PartStore,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLOPS_DATA_KEY", DataKey.generate().to_base64())
    with EventLog(tmp_path / "events", parts_uri=memory_store) as log:
        fill(log)
        log.compact()
        assert log.read_decisions().num_rows == 3 and log.stats().decisions == 3
        for kind in KINDS:
            for stem in memory_store.stems(kind):
                assert memory_store.part(kind, stem).head(len(FILE_MAGIC)) == FILE_MAGIC
