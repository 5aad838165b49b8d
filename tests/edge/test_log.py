"""The edge decision log: one line per call, written before returning, torn tails cut, one writer per file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rlops.edge import DecisionLog, EdgePolicy
from rlops.errors import StorageError, ValidationError
from rlops.export import export_policy
from tests.export.cases import CASES, contexts


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return export_policy(CASES["linucb_epsilon"](), tmp_path / "m.onnx", policy_version="shop@r1",
                         deployment="shop").model_path


def test_each_call_appends_one_line_with_every_decision(model: Path, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "decisions.jsonl"
    with EdgePolicy.load(model, seed=1, log=log) as policy:
        one = policy.decide(contexts(1)[0], unit_id="user-1")
        batch = policy.decide_batch(contexts(3, seed=2), unit_ids=["u1", "u2", "u3"])
        policy.decide_batch({"age": [20.0, 30.0], "device": np.array(["tv", "mobile"]),
                            "visits": np.array([1, 2]), "taste": np.zeros((2, 3))})
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 3
    first, second, third = lines
    assert first["decision_id"] == [one.decision_id] and first["unit_id"] == ["user-1"]
    assert (first["deployment"], first["policy_version"], first["mode"]) == ("shop", "shop@r1", "served")
    assert first["actions"] == ["a", "b", "c", "d"] and first["action_index"] == [one.action_index]
    assert first["probabilities"] == [list(one.probabilities.values())]  # type: ignore[union-attr]
    assert first["context"]["returning"] == [False]  # the single path logs the validated context
    assert second["decision_id"] == batch.decision_ids and second["propensity"] == batch.propensity.tolist()
    assert second["action_index"] == batch.action_index.tolist() and second["unit_id"] == ["u1", "u2", "u3"]
    assert third["context"]["device"] == ["tv", "mobile"] and third["context"]["returning"] == [False, False]
    assert third["unit_id"] == ["", ""]
    assert abs(third["ts"] - time.time_ns() // 1000) < 60_000_000


def test_a_torn_last_line_is_cut_when_the_log_is_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"complete": 1}\n{"torn": ')
    log = DecisionLog(path)
    assert log.cut_bytes == len(b'{"torn": ')
    log.append(b'{"next": 2}\n')
    log.close()
    assert path.read_bytes() == b'{"complete": 1}\n{"next": 2}\n'
    path.write_bytes(b"no newline at all")
    DecisionLog(path).close()
    assert path.read_bytes() == b""


def test_one_writer_per_file(tmp_path: Path) -> None:
    first = DecisionLog(tmp_path / "d.jsonl")
    with pytest.raises(StorageError, match="open for writing in another process"):
        DecisionLog(tmp_path / "d.jsonl")
    first.close()
    with pytest.raises(StorageError, match="is closed"):
        first.append(b"{}\n")
    DecisionLog(tmp_path / "d.jsonl").close()  # free again once closed


def test_a_decision_that_cannot_be_logged_is_not_returned(model: Path, tmp_path: Path) -> None:
    log = tmp_path / "d.jsonl"
    policy = EdgePolicy.load(model, log=log)
    with pytest.raises(ValidationError, match=r"contexts\[1\].age"):
        policy.decide_batch([contexts(1)[0], {**contexts(1)[0], "age": 200.0}])
    policy.close()
    assert log.read_text() == ""  # a bad batch decides and logs nothing


WRITER = """
import sys
from rlops.edge import EdgePolicy
from tests.export.cases import contexts
policy = EdgePolicy.load(sys.argv[1], seed=0, log=sys.argv[2])
batch = contexts(64)
print("ready", flush=True)
while True:
    policy.decide_batch(batch)
"""


def test_kill_9_mid_writing_leaves_a_log_that_ingests(model: Path, tmp_path: Path) -> None:
    """SIGKILL while a writer appends: every complete line is whole; at most the last is torn."""
    log = tmp_path / "d.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(model), str(log)], stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2], env={**os.environ, "PYTHONPATH": "."})
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 30
    while (not log.exists() or log.stat().st_size < 200_000) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    data = log.read_bytes()
    complete = data[: data.rfind(b"\n") + 1].splitlines()
    assert len(complete) >= 5
    assert all(len(json.loads(line)["decision_id"]) == 64 for line in complete)
    reopened = DecisionLog(log)  # cuts whatever the kill left half-written
    reopened.close()
    assert log.read_bytes() == data[: data.rfind(b"\n") + 1]
