"""The event log: round trips, torn tails, rotation, compaction (and crashes inside it), validation, concurrency."""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlops.errors import StorageError, ValidationError
from rlops.events import (
    DECISION_SCHEMA,
    OUTCOME_SCHEMA,
    CompactionResult,
    DecisionRecord,
    EventLog,
    Mode,
    OutcomeRecord,
)
from rlops.events import compaction as compaction_module
from rlops.events import frames as frames_module
from rlops.events import log as log_module
from rlops.events.frames import HEADER_SIZE, MAGIC, encode_batch
from rlops.events.log import IndexCursor

WRITER = Path(__file__).with_name("writer_proc.py")


def discrete(i: int, deployment: str = "hvac") -> DecisionRecord:
    return DecisionRecord(
        decision_id=f"d-{i:05d}", ts=1_700_000_000_000_000 + i, deployment=deployment, policy_version="v1",
        mode=Mode.SERVED, unit_id=f"u{i % 3}", context={"temp": 20.5 + i, "n": i, "on": i % 2 == 0, "zone": "nörd"},
        actions=["heat", "cool", "off"], action="cool", action_index=1, propensity=0.25,
        probabilities=[0.5, 0.25, 0.25], latency_us=40 + i)


def candidates(i: int) -> DecisionRecord:
    return DecisionRecord(
        decision_id=f"c-{i:05d}", ts=1_700_000_000_100_000 + i, deployment="shop", policy_version="linucb-2",
        mode=Mode.SHADOW, unit_id="user-7", context={"hour": 13, "basket": [1.5, 2.0]},
        actions=["sku-1", "sku-9"], action="sku-9", action_index=1, propensity=0.7, probabilities=[0.3, 0.7],
        candidate_features=[{"price": 3.5, "tags": ["x"]}, {"price": 1.25, "tags": []}], latency_us=120)


def box(i: int) -> DecisionRecord:
    return DecisionRecord(
        decision_id=f"b-{i:05d}", ts=1_700_000_000_200_000 + i, deployment="arm", policy_version="ppo-1",
        mode=Mode.SERVED, unit_id="robot", context={"pos": [0.1, -0.2, 0.3]}, actions=[], action=[0.5, -1.0 / 3],
        action_index=-1, propensity=2.75, probabilities=None, candidate_features=None, latency_us=900)


def outcome(i: int, decision: str, ts: int | None = None, key: str | None = None) -> OutcomeRecord:
    return OutcomeRecord(decision_id=decision, ts=1_700_000_001_000_000 + i if ts is None else ts,
                         fields={"clicked": i % 2 == 0, "revenue": i * 1.5, "note": "é"},
                         idempotency_key=f"k-{i}" if key is None else key)


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content: to show that something left the log unchanged."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def segments(root: Path) -> list[Path]:
    return sorted((root / "segments").glob("*.seg"))


# ---- round trips ------------------------------------------------------------------------------------------------


def test_round_trip_of_every_record_kind(tmp_path: Path) -> None:
    records: list[DecisionRecord | OutcomeRecord] = [discrete(0), candidates(1), box(2), outcome(0, "d-00000"),
                                                     discrete(3), outcome(1, "b-00002")]
    with EventLog(tmp_path / "ev") as log:
        log.append(records[:3])
        log.append(records[3:4])
        log.append(records[4:])
        assert list(log.iter_records()) == records
        decisions, outcomes = log.read_decisions(), log.read_outcomes()
    assert decisions.schema == DECISION_SCHEMA
    assert outcomes.schema == OUTCOME_SCHEMA
    rows = {r["decision_id"]: r for r in decisions.to_pylist()}
    assert set(rows) == {"d-00000", "c-00001", "b-00002", "d-00003"}
    assert json.loads(rows["d-00000"]["context"]) == {"temp": 20.5, "n": 0, "on": True, "zone": "nörd"}
    assert rows["d-00000"]["actions"] == ["heat", "cool", "off"]
    assert rows["d-00000"]["probabilities"] == [0.5, 0.25, 0.25]
    assert rows["d-00000"]["candidate_features"] is None
    assert rows["d-00000"]["mode"] == "served"
    assert json.loads(rows["c-00001"]["candidate_features"]) == [{"price": 3.5, "tags": ["x"]},
                                                                  {"price": 1.25, "tags": []}]
    assert rows["c-00001"]["mode"] == "shadow"
    assert json.loads(rows["b-00002"]["action"]) == [0.5, -1.0 / 3]  # exact float round trip
    assert rows["b-00002"]["action_index"] == -1
    assert rows["b-00002"]["probabilities"] is None
    assert decisions.column("ts").cast(pa.int64()).to_pylist()[0] == 1_700_000_000_000_000
    assert outcomes.column("idempotency_key").to_pylist() == ["k-0", "k-1"]
    assert json.loads(outcomes.column("fields")[1].as_py()) == {"clicked": False, "revenue": 1.5, "note": "é"}


def test_empty_log_reads_empty_tables_with_the_schemas(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ev")
    assert log.read_decisions().schema == DECISION_SCHEMA and log.read_decisions().num_rows == 0
    assert log.read_outcomes().schema == OUTCOME_SCHEMA and log.read_outcomes().num_rows == 0
    assert list(log.iter_records()) == []
    assert log.decision_index() == {} and log.seen_outcome_keys() == set()
    log.append([])
    assert segments(tmp_path / "ev") == []  # nothing was created for nothing
    log.close()


def test_fsync_off_still_writes_before_returning(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ev", fsync=False)
    log.append([discrete(0)])
    # Another instance (as another process would) sees it before close.
    assert [r.decision_id for r in EventLog(tmp_path / "ev").iter_records()] == ["d-00000"]
    log.close()


def test_outcomes_come_in_ts_order_then_file_order_and_are_not_deduplicated(tmp_path: Path) -> None:
    with EventLog(tmp_path / "ev") as log:
        log.append([outcome(0, "a", ts=30), outcome(1, "b", ts=10), outcome(2, "c", ts=30, key="same")])
        log.rotate()
        log.append([outcome(3, "d", ts=10), outcome(4, "e", ts=30, key="same")])
        table = log.read_outcomes()
    assert table.column("decision_id").to_pylist() == ["b", "d", "a", "c", "e"]
    assert table.column("idempotency_key").to_pylist().count("same") == 2


def test_decisions_are_deduplicated_keeping_the_first(tmp_path: Path) -> None:
    first = discrete(1)
    second = dataclasses.replace(first, policy_version="v2")
    with EventLog(tmp_path / "ev") as log:
        log.append([first, discrete(2)])
        log.append([second])
        table = log.read_decisions()
        assert [r for r in log.iter_records()] == [first, discrete(2)]
        assert log.stats().decisions == 3  # stats count what is stored
    assert table.column("decision_id").to_pylist() == ["d-00001", "d-00002"]
    assert table.column("policy_version").to_pylist() == ["v1", "v1"]


def test_index_and_keys_cover_segments_and_parquet(tmp_path: Path) -> None:
    with EventLog(tmp_path / "ev") as log:
        log.append([discrete(1, "a"), outcome(1, "d-00001")])
        log.rotate()
        assert log.compact().segments == 1
        log.append([discrete(2, "b"), outcome(2, "d-00002"), outcome(3, "d-00002")])
        assert log.decision_index() == {"d-00001": ("a", 1_700_000_000_000_001, None, 1),
                                        "d-00002": ("b", 1_700_000_000_000_002, None, 1)}
        assert log.seen_outcome_keys() == {"k-1", "k-2", "k-3"}


def test_incremental_index_reads_only_what_is_new_and_matches_a_full_read(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = EventLog(tmp_path / "ev"), EventLog(tmp_path / "ev")
    index: dict[str, tuple[str, int]] = {}
    cursor = IndexCursor()
    a.append([discrete(1, "a")])
    assert a.update_decision_index(index, cursor) == 1
    b.append([discrete(2, "b")])
    a.append([discrete(3, "a"), outcome(3, "d-00003")])
    bytes_read: list[int] = []
    real = log_module.read_segment
    monkeypatch.setattr(log_module, "read_segment",
                        lambda path, offset=0, **kw: (lambda d: bytes_read.append(len(d or b"")) or d)(
                            real(path, offset, **kw)))
    assert a.update_decision_index(index, cursor) == 2
    # Writer a's segment is read from where the last update stopped: its first frame is not read again.
    assert sum(bytes_read) < sum(p.stat().st_size for p in segments(tmp_path / "ev"))
    assert a.update_decision_index(index, cursor) == 0  # nothing new: nothing added
    b.rotate()
    a.rotate()
    assert a.compact().segments == 2  # both now Parquet parts, already indexed from their segments
    b.append([discrete(4, "b")])
    assert a.update_decision_index(index, cursor) == 1
    assert index == a.decision_index()
    assert len(index) == 4
    a.close()
    b.close()


def test_a_cursor_off_a_frame_boundary_rescans_instead_of_stalling(tmp_path: Path) -> None:
    """A writer that cut its file back after a failed write and rewrote it leaves readers' cursors mid-frame: the
    next update must notice and scan the segment again, not stop there for good."""
    writer, reader = EventLog(tmp_path / "ev"), EventLog(tmp_path / "ev")
    index: dict[str, tuple[str, int]] = {}
    cursor = IndexCursor()
    writer.append([discrete(1)])
    reader.update_decision_index(index, cursor)
    (stem, offset), = cursor.offsets.items()
    cursor.offsets[stem] = offset - 7  # as if the bytes before the cursor had been rewritten with other frames
    writer.append([discrete(2)])
    assert reader.update_decision_index(index, cursor) == 1 and "d-00002" in index
    assert cursor.offsets[stem] > offset  # back on a boundary, past the new frame
    writer.close()
    reader.close()


def test_several_instances_share_a_folder(tmp_path: Path) -> None:
    a, b = EventLog(tmp_path / "ev"), EventLog(tmp_path / "ev")
    a.append([discrete(1)])
    b.append([discrete(2)])
    a.append([discrete(3)])
    assert len(segments(tmp_path / "ev")) == 2  # one per writer
    assert sorted(a.read_decisions().column("decision_id").to_pylist()) == ["d-00001", "d-00002", "d-00003"]
    a.close()
    b.close()


def test_closed_log_refuses_appends(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ev")
    log.append([discrete(0)])
    log.close()
    log.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        log.append([discrete(1)])
    assert EventLog(tmp_path / "ev").stats().decisions == 1


def test_segment_bytes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="segment_bytes"):
        EventLog(tmp_path / "ev", segment_bytes=0)


# ---- torn and damaged tails ---------------------------------------------------------------------------------------


def _three_batches(root: Path) -> Path:
    with EventLog(root) as log:
        log.append([discrete(0), discrete(1)])
        log.append([outcome(0, "d-00000")])
        log.append([discrete(2), box(3)])
    (segment,) = segments(root)
    return segment


@pytest.mark.parametrize("cut", [1, 7, HEADER_SIZE + 5])
def test_torn_tail_keeps_the_complete_frames(tmp_path: Path, cut: int) -> None:
    segment = _three_batches(tmp_path / "ev")
    data = segment.read_bytes()
    segment.write_bytes(data[:-cut])  # the last append was cut short by a crash
    log = EventLog(tmp_path / "ev")
    assert [r.decision_id for r in log.iter_records()] == ["d-00000", "d-00001", "d-00000"]
    assert log.read_decisions().column("decision_id").to_pylist() == ["d-00000", "d-00001"]
    assert log.read_outcomes().num_rows == 1
    stats = log.stats()
    assert (stats.decisions, stats.outcomes) == (2, 1)
    assert stats.tail_bytes > 0


def test_flipped_byte_in_last_frame_hides_only_that_frame(tmp_path: Path) -> None:
    segment = _three_batches(tmp_path / "ev")
    data = bytearray(segment.read_bytes())
    data[-10] ^= 0x01  # inside the JSON payload of the last frame: still parses, but the CRC catches it
    segment.write_bytes(bytes(data))
    log = EventLog(tmp_path / "ev")
    assert [r.decision_id for r in log.iter_records()] == ["d-00000", "d-00001", "d-00000"]
    assert log.stats().decisions == 2


def test_garbage_instead_of_a_segment_reads_as_empty(tmp_path: Path) -> None:
    segment = _three_batches(tmp_path / "ev")
    segment.write_bytes(b"not a segment at all")
    log = EventLog(tmp_path / "ev")
    assert log.read_decisions().num_rows == 0
    assert log.stats().tail_bytes == len(b"not a segment at all")


def test_preallocated_zeros_are_not_counted_as_damage(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ev")
    log.append([discrete(0)])
    (segment,) = segments(tmp_path / "ev")
    assert segment.stat().st_size > len(MAGIC) + 1000  # preallocated ahead of the writes
    stats = log.stats()
    assert (stats.decisions, stats.tail_bytes) == (1, 0)
    log.close()
    assert segment.stat().st_size < 1000  # sealing cut the unused space off


# ---- rotation and compaction --------------------------------------------------------------------------------------


def test_rotation_by_size(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    frame = len(encode_batch([discrete(10)]).frame)
    with EventLog(root, segment_bytes=2000) as log:
        for i in range(40):
            log.append([discrete(i)])
        paths = segments(root)
        assert len(paths) == 40 // math.ceil((2000 - len(MAGIC)) / frame) + 1
        # A writer moves on once its segment reaches the limit, so sealed ones end within a frame past it.
        assert all(2000 <= p.stat().st_size < 2000 + frame for p in paths[:-1])
        result = log.compact()  # takes the sealed ones, skips the active one
        assert (result.segments, result.skipped) == (len(paths) - 1, 1)
        assert log.stats().decisions == 40
    assert [r.decision_id for r in EventLog(root).iter_records()] == [f"d-{i:05d}" for i in range(40)]


def test_compaction_moves_everything_to_parquet(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    records: list[DecisionRecord | OutcomeRecord] = [discrete(0), candidates(1), box(2), outcome(0, "d-00000"),
                                                     outcome(1, "c-00001", ts=5)]
    with EventLog(root) as log:
        log.append(records[:2])
        log.rotate()
        log.append(records[2:])
        before = (log.read_decisions(), log.read_outcomes())
        log.rotate()
        result = log.compact()
        assert result == CompactionResult(segments=2, decisions=3, outcomes=2, bytes=result.bytes,
                                          parquet_bytes=result.parquet_bytes)
        assert result.bytes > 0 and result.parquet_bytes > 0
        assert segments(root) == []
        assert len(list((root / "parquet" / "decisions").glob("*.parquet"))) == 2
        after = (log.read_decisions(), log.read_outcomes())
        assert after[0].equals(before[0]) and after[1].equals(before[1])
        assert sorted(map(repr, log.iter_records())) == sorted(map(repr, records))
        stats = log.stats()
        assert (stats.decisions, stats.outcomes, stats.segments, stats.parquet_parts) == (3, 2, 0, 4)
        # Parts are plain Parquet with the declared schema, readable without rlops.
        part = pq.read_table(next((root / "parquet" / "decisions").glob("*.parquet")))
        assert part.schema.equals(DECISION_SCHEMA)
        assert log.compact() == CompactionResult()  # nothing left to do


def test_compaction_while_another_thread_appends(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    log = EventLog(root, segment_bytes=4000)
    stop = threading.Event()
    appended: list[str] = []

    def writer() -> None:
        i = 0
        while not stop.is_set() or i < 200:
            log.append([discrete(i), outcome(i, f"d-{i:05d}")])
            appended.append(f"d-{i:05d}")
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    compacted = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline or compacted == 0:
        compacted += log.compact().segments
    stop.set()
    thread.join()
    log.rotate()
    log.compact()
    assert compacted > 0
    ids = log.read_decisions().column("decision_id").to_pylist()
    assert sorted(ids) == sorted(appended) and len(ids) == len(set(ids))
    keys = Counter(log.read_outcomes().column("idempotency_key").to_pylist())
    assert set(keys.values()) == {1} and len(keys) == len(appended)
    assert log.stats().decisions == len(appended)
    log.close()


def test_crash_between_parquet_rename_and_segment_unlink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ev"
    with EventLog(root) as log:
        log.append([discrete(0), discrete(1), outcome(0, "d-00000")])
    expected = list(EventLog(root).iter_records())

    def crash(path: os.PathLike[str]) -> None:
        raise OSError(errno.EIO, "simulated crash before unlink", str(path))

    monkeypatch.setattr(os, "unlink", crash)
    with pytest.raises(StorageError, match="simulated crash"):
        EventLog(root).compact()
    monkeypatch.undo()
    assert len(segments(root)) == 1 and len(list(root.rglob("*.parquet"))) == 2  # both copies exist
    log = EventLog(root)
    assert list(log.iter_records()) == expected
    assert log.read_decisions().num_rows == 2 and log.read_outcomes().num_rows == 1
    assert (log.stats().decisions, log.stats().outcomes, log.stats().segments) == (2, 1, 0)
    result = log.compact()
    assert (result.recovered, result.segments) == (1, 0)
    assert segments(root) == []
    assert list(log.iter_records()) == expected


def test_crash_between_the_two_part_renames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ev"
    with EventLog(root) as log:
        log.append([discrete(0), outcome(0, "d-00000"), outcome(1, "d-00000")])
    real = compaction_module._write_durably
    calls = []

    def crash_on_second(path: Path, data: pa.Table | bytes) -> int:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.EIO, "simulated crash before the outcomes part")
        return real(path, data)

    monkeypatch.setattr(compaction_module, "_write_durably", crash_on_second)
    with pytest.raises(StorageError):
        EventLog(root).compact()
    monkeypatch.undo()
    assert len(list(root.rglob("*.parquet"))) == 1  # a stray decisions part, not committed
    log = EventLog(root)
    assert log.read_decisions().num_rows == 1 and log.read_outcomes().num_rows == 2
    assert log.compact().segments == 1
    assert log.read_decisions().num_rows == 1 and log.read_outcomes().num_rows == 2


def test_compaction_skips_a_live_writer_in_another_process(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    proc = subprocess.Popen([sys.executable, str(WRITER), str(root), "write", "--writer", "5", "--count", "3",
                             "--hold"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        lines = []
        for line in proc.stdout:
            if line.strip() == "ready":
                break
            lines.append(line.split()[1])
        with EventLog(root) as log:
            log.append([discrete(0)])
            log.rotate()
            result = log.compact()
            assert (result.segments, result.skipped) == (1, 1)  # ours compacted, theirs left alone
            assert len(segments(root)) == 1
            ids = set(log.read_decisions().column("decision_id").to_pylist())
            assert ids == {"d-00000"} | {i for i in lines if not i.startswith("o-")}
            proc.stdin.close()
            assert proc.wait(timeout=30) == 0
            result = log.compact()  # the writer has sealed its segment by closing
            assert (result.segments, result.skipped) == (1, 0)
            assert set(log.read_decisions().column("decision_id").to_pylist()) == ids
            assert log.read_outcomes().num_rows == 2  # indexes 0 and 2 of 3 single-decision batches
    finally:
        proc.kill()
        proc.wait()


def test_compaction_removes_leftovers_of_dead_processes(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    EventLog(root).close()
    old = root / "segments" / "01OLD-1-1.seg.new"
    old.write_bytes(MAGIC)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    young = root / "segments" / "01NEW-1-1.seg.new"
    young.write_bytes(MAGIC)
    tmp = root / "parquet" / "decisions" / ".01GONE-1-1.parquet.tmp"
    tmp.write_bytes(b"half a parquet file")
    EventLog(root).compact()
    assert not old.exists() and not tmp.exists()
    assert young.exists()  # may belong to a writer that is creating it right now


def test_compaction_quarantines_a_torn_tail(tmp_path: Path) -> None:
    segment = _three_batches(tmp_path / "ev")
    segment.write_bytes(segment.read_bytes()[:-5])
    result = EventLog(tmp_path / "ev").compact()
    assert result.segments == 1 and result.quarantined_bytes > 0
    (tail,) = (tmp_path / "ev" / "quarantine").iterdir()
    assert tail.stat().st_size == result.quarantined_bytes
    assert EventLog(tmp_path / "ev").stats().decisions == 2


# ---- validation ---------------------------------------------------------------------------------------------------


def _replace(record: DecisionRecord, **changes: object) -> DecisionRecord:
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


BAD = {
    "propensity": _replace(discrete(9), propensity=math.nan),
    "propensity-zero": _replace(discrete(9), propensity=0.0),
    "context.when": _replace(discrete(9), context={"when": object()}),
    "context.temp": _replace(discrete(9), context={"temp": math.inf}),
    "probabilities[1]": _replace(discrete(9), probabilities=[0.5, True, 0.25]),
    "ts": _replace(discrete(9), ts="yesterday"),
    "action_index": _replace(box(9), action_index=0),
    "context[1]": _replace(discrete(9), context={1: 2.0}),
    "mode": _replace(discrete(9), mode="live"),
    "candidate_features[0].price": _replace(candidates(9), candidate_features=[{"price": math.nan}]),
}


@pytest.mark.parametrize("field", list(BAD))
def test_bad_records_raise_and_leave_the_log_unchanged(tmp_path: Path, field: str) -> None:
    root = tmp_path / "ev"
    log = EventLog(root)
    log.append([discrete(0)])
    before = files(root)
    with pytest.raises(ValidationError) as info:
        log.append([discrete(1), BAD[field], outcome(0, "d-00000")])
    assert info.value.field.startswith("records[1].")
    assert field.split("-")[0].split("[")[0].split(".")[0] in info.value.field
    assert files(root) == before
    log.append([discrete(2)])
    assert [r.decision_id for r in log.iter_records()] == ["d-00000", "d-00002"]
    log.close()


def test_bad_outcome_and_wrong_type_are_named(tmp_path: Path) -> None:
    with EventLog(tmp_path / "ev") as log:
        with pytest.raises(ValidationError, match=r"records\[0\]\.fields\.at"):
            log.append([OutcomeRecord("d", 1, {"at": {1, 2}}, "k")])
        with pytest.raises(ValidationError, match=r"records\[1\]"):
            log.append([discrete(0), {"decision_id": "x"}])  # type: ignore[list-item]
        assert log.stats().decisions == 0


def test_a_batch_too_large_for_one_frame_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames_module, "MAX_PAYLOAD", 1000)
    with EventLog(tmp_path / "ev") as log:
        log.append([discrete(0)])  # small enough
        with pytest.raises(ValidationError, match="smaller batches"):
            log.append([discrete(i) for i in range(1, 10)])
        assert log.stats().decisions == 1


def test_subclasses_of_builtin_types_are_accepted(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    record = _replace(discrete(0), propensity=np.float64(0.25), probabilities=[np.float64(0.5), 0.25, 0.25],
                      mode="served")
    with EventLog(tmp_path / "ev") as log:
        log.append([record])
        (back,) = log.iter_records()
    assert isinstance(back, DecisionRecord)
    assert back.propensity == 0.25 and back.mode is Mode.SERVED


# ---- concurrency and group commit ---------------------------------------------------------------------------------


def test_many_threads_append_every_record_exactly_once(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    log = EventLog(root, segment_bytes=20_000)

    def writer(t: int) -> None:
        for i in range(100):
            n = t * 1000 + i
            log.append([discrete(n), outcome(n, f"d-{n:05d}")] if i % 3 else [discrete(n)])

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    log.close()
    log = EventLog(root)
    ids = log.read_decisions().column("decision_id").to_pylist()
    assert sorted(ids) == sorted(f"d-{t * 1000 + i:05d}" for t in range(8) for i in range(100))
    assert log.stats().decisions == 800
    keys = log.read_outcomes().column("idempotency_key").to_pylist()
    assert len(keys) == len(set(keys)) == 8 * 66
    # Each thread's records keep their order.
    for t in range(8):
        mine = [i for i in ids if int(i[2:]) // 1000 == t]
        assert mine == sorted(mine)


def test_group_commit_shares_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncs: list[int] = []
    real = os.fdatasync

    def slow_sync(fd: int) -> None:
        syncs.append(fd)
        time.sleep(0.002)  # a slow disk makes appenders pile up behind each sync
        real(fd)

    monkeypatch.setattr(os, "fdatasync", slow_sync)
    log = EventLog(tmp_path / "ev")
    barrier = threading.Barrier(8)

    def writer(t: int) -> None:
        barrier.wait()
        for i in range(25):
            log.append([discrete(t * 100 + i)])

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    log.close()
    assert EventLog(tmp_path / "ev").stats().decisions == 200
    assert 0 < len(syncs) <= 200 / 2  # 200 appends, far fewer syncs


def test_one_sync_per_append_when_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncs: list[int] = []
    real = os.fdatasync

    def counting_sync(fd: int) -> None:
        syncs.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting_sync)
    with EventLog(tmp_path / "ev") as log:
        for i in range(5):
            log.append([discrete(i)])
    assert len(syncs) == 5  # every acknowledged append was synced


def test_no_sync_at_all_without_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncs: list[int] = []
    monkeypatch.setattr(os, "fdatasync", syncs.append)
    monkeypatch.setattr(os, "fsync", syncs.append)
    with EventLog(tmp_path / "ev", fsync=False) as log:
        log.append([discrete(0)])
    assert syncs == []


# ---- I/O failures -------------------------------------------------------------------------------------------------


def test_failed_write_is_cut_back_and_later_appends_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ev"
    log = EventLog(root)
    log.append([discrete(0)])
    real = os.pwritev

    def disk_full(fd: int, buffers: list[bytes], offset: int) -> int:
        real(fd, [bytes(buffers[0])[:10]], offset)  # part of the frame reaches the file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwritev", disk_full)
    with pytest.raises(StorageError, match="No space left"):
        log.append([discrete(1)])
    monkeypatch.undo()
    log.append([discrete(2)])
    assert len(segments(root)) == 1  # same segment: the garbage was cut off
    assert [r.decision_id for r in log.iter_records()] == ["d-00000", "d-00002"]
    assert log.stats().tail_bytes == 0
    log.close()


def test_failed_cut_moves_to_a_new_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ev"
    log = EventLog(root)
    log.append([discrete(0)])
    real = os.pwritev

    def disk_full(fd: int, buffers: list[bytes], offset: int) -> int:
        real(fd, [b"\x07" * 12], offset)
        raise OSError(errno.ENOSPC, "No space left on device")

    def no_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "cannot truncate")

    monkeypatch.setattr(os, "pwritev", disk_full)
    monkeypatch.setattr(os, "ftruncate", no_truncate)
    with pytest.raises(StorageError):
        log.append([discrete(1)])
    monkeypatch.undo()
    log.append([discrete(2)])
    assert len(segments(root)) == 2
    assert sorted(r.decision_id for r in log.iter_records()) == ["d-00000", "d-00002"]
    assert log.stats().tail_bytes == 12  # the garbage stays at the end of the old segment, where it hides nothing
    log.close()


def test_failed_sync_is_reported_and_the_segment_abandoned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ev"
    log = EventLog(root)
    log.append([discrete(0)])

    def broken_sync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken_sync)
    with pytest.raises(StorageError, match="Input/output error"):
        log.append([discrete(1)])
    monkeypatch.undo()
    log.append([discrete(2)])
    assert len(segments(root)) == 2  # never trusted the file whose sync failed again
    assert log.compact().segments == 1  # and sealed it
    ids = log.read_decisions().column("decision_id").to_pylist()
    assert "d-00000" in ids and "d-00002" in ids
    log.close()


def test_damaged_parquet_part_is_a_storage_error(tmp_path: Path) -> None:
    with EventLog(tmp_path / "ev") as log:
        log.append([discrete(0)])
        log.rotate()
        log.compact()
    (part,) = (tmp_path / "ev" / "parquet" / "decisions").glob("*.parquet")
    part.write_bytes(b"PAR1 broken")
    with pytest.raises(StorageError, match="not a readable Parquet part"):
        EventLog(tmp_path / "ev").read_decisions()


def test_unwritable_folder_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError):
        EventLog(tmp_path / "file" / "ev")


def test_a_segment_names_the_process_that_wrote_it(tmp_path: Path) -> None:
    from rlops.events.layout import Layout, stem_writer

    with EventLog(tmp_path / "events") as log:
        log.append([discrete(0)])
        (stem,) = Layout(tmp_path / "events").segment_stems()
    assert stem_writer(stem) == os.getpid()
    assert stem_writer("notes") is None and stem_writer("a-b-c") is None
