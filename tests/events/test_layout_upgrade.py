"""Logs written before the record layouts grew (decisions: key_id, consent; outcomes: key_id, quarantine) read back
with the new fields' defaults, from segments and from Parquet parts alike, next to records in the new layout."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rlops.events import DECISION_SCHEMA, OUTCOME_SCHEMA, DecisionRecord, EventLog, Mode, OutcomeRecord
from rlops.events.frames import KIND_JSON_BATCH, MAGIC, TAG_DECISION, TAG_OUTCOME
from rlops.events.log import IndexCursor

OLD_DECISION = [TAG_DECISION, "d-old", 1_700_000_000_000_001, "news", "v1", "served", "u-old", {"age": 3},
                ["a", "b"], "b", 1, 0.5, [0.5, 0.5], None, 12]
OLD_OUTCOME = [TAG_OUTCOME, "d-old", 1_700_000_000_000_009, {"clicked": True}, "k-old"]


def old_segment(path: Path) -> None:
    """A segment file exactly as the first release wrote it: rows of 15 and 5 fields."""
    payload = json.dumps([OLD_DECISION, OLD_OUTCOME], separators=(",", ":")).encode()
    header = struct.Struct("<IIBII")
    counts = header.pack(len(payload), 0, KIND_JSON_BATCH, 1, 1)[8:]
    crc = zlib.crc32(payload, zlib.crc32(counts))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(MAGIC + header.pack(len(payload), crc, KIND_JSON_BATCH, 1, 1) + payload)


def new_records() -> list[DecisionRecord | OutcomeRecord]:
    decision = DecisionRecord("d-new", 1_700_000_000_000_100, "news", "v2", Mode.SERVED, "u-new", {"age": 4},
                              ["a", "b"], "a", 0, 0.25, [0.25, 0.75], key_id="abcdef012345", consent=False)
    outcome = OutcomeRecord("d-new", 1_700_000_000_000_200, {"clicked": False}, "k-new", key_id="abcdef012345",
                            quarantine="reward above the spec's bound")
    return [decision, outcome]


def check(log: EventLog) -> None:
    decisions = log.read_decisions().to_pylist()
    by_id = {d["decision_id"]: d for d in decisions}
    assert (by_id["d-old"]["key_id"], by_id["d-old"]["consent"]) == (None, True)
    assert (by_id["d-new"]["key_id"], by_id["d-new"]["consent"]) == ("abcdef012345", False)
    outcomes = {o["idempotency_key"]: o for o in log.read_outcomes().to_pylist()}
    assert (outcomes["k-old"]["key_id"], outcomes["k-old"]["quarantine"]) == (None, None)
    assert outcomes["k-new"]["quarantine"] == "reward above the spec's bound"
    records = list(log.iter_records())
    old = next(r for r in records if isinstance(r, DecisionRecord) and r.decision_id == "d-old")
    assert old.unit_id == "u-old" and old.key_id is None and old.consent is True
    assert new_records()[0] in records and new_records()[1] in records
    assert log.decision_index() == {"d-old": ("news", 1_700_000_000_000_001, None, 1),
                                    "d-new": ("news", 1_700_000_000_000_100, "abcdef012345", 0)}
    since_d, since_o = log.read_since(IndexCursor())
    assert since_d.schema == DECISION_SCHEMA and since_o.schema == OUTCOME_SCHEMA
    assert sorted(since_d["consent"].to_pylist()) == [False, True]


def test_old_segment_reads_with_defaults(tmp_path: Path) -> None:
    old_segment(tmp_path / "ev" / "segments" / "01aaaaaaaaaaaaaaaaaaaaaaaa-1-0.seg")
    with EventLog(tmp_path / "ev") as log:
        log.append(new_records())
        check(log)


def test_old_parquet_parts_read_with_defaults(tmp_path: Path) -> None:
    """Parts compacted by the first release lack the new columns; they read as the defaults, and compacting new
    segments next to them gives parts that agree."""
    with EventLog(tmp_path / "ev") as log:
        log.append(new_records())
        log.rotate()
        log.compact()
    old_d = pa.Table.from_pylist([{
        "decision_id": "d-old", "ts": OLD_DECISION[2], "deployment": "news", "policy_version": "v1", "mode": "served",
        "unit_id": "u-old", "context": '{"age":3}', "actions": ["a", "b"], "action": "b", "action_index": 1,
        "propensity": 0.5, "probabilities": [0.5, 0.5], "candidate_features": None, "latency_us": 12}],
        schema=pa.schema([f for f in DECISION_SCHEMA if f.name not in ("key_id", "consent")]))
    old_o = pa.Table.from_pylist([{"decision_id": "d-old", "ts": OLD_OUTCOME[2], "fields": '{"clicked":true}',
                                   "idempotency_key": "k-old"}],
                                 schema=pa.schema([f for f in OUTCOME_SCHEMA if f.name in
                                                   ("decision_id", "ts", "fields", "idempotency_key")]))
    stem = "00aaaaaaaaaaaaaaaaaaaaaaaa-1-0"  # sorts first, as an older segment would
    pq.write_table(old_d, tmp_path / "ev" / "parquet" / "decisions" / f"{stem}.parquet")
    pq.write_table(old_o, tmp_path / "ev" / "parquet" / "outcomes" / f"{stem}.parquet")
    with EventLog(tmp_path / "ev") as log:
        check(log)
