"""`rlops data check`: exact profiles of hand-made tables, verdicts, and the command on a home folder and a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlops.cli.main import main
from rlops.engine import DeploymentSpec, Engine
from rlops.errors import ValidationError
from rlops.evaluation.data_check import judge, load_interactions, overall, profile
from rlops.evaluation.status import Status
from rlops.scenarios import SyntheticBandit

WORLD = SyntheticBandit(seed=0)
SCHEMA = WORLD.schema
GOOD = {"age": 30, "device": "mobile", "returning": True, "activity": 0.5, "taste": [0.1, 0.2, 0.3, 0.4]}


def _rows() -> list[dict[str, Any]]:
    rows = [{"decision_id": f"d{i}", "context": dict(GOOD), "action": "news", "propensity": 0.2, "reward": 1.0}
            for i in range(20)]
    rows[0]["context"]["age"] = 140  # out of range (max 90)
    rows[1]["context"]["device"] = "watch"  # unknown category
    rows[2]["context"]["age"] = "old"  # invalid
    del rows[3]["context"]["activity"]  # missing
    rows[4]["context"]["activity"] = None  # missing
    rows[5]["context"]["taste"] = [0.1, 0.2]  # invalid: wrong size
    rows[6]["propensity"] = 0.0
    rows[7]["propensity"] = 1.5
    rows[8]["action"] = "weather"  # not an action
    rows[9]["decision_id"] = "d10"  # a duplicate id
    rows[11]["reward"] = None
    rows[12]["propensity"] = 0.0005  # tiny
    return rows


def _table(rows: list[dict[str, Any]], form: str) -> pa.Table:
    data: dict[str, Any] = {k: [r[k] for r in rows] for k in ("decision_id", "action", "propensity", "reward")}
    if form == "json":
        data["context"] = [json.dumps(r["context"]) for r in rows]
    else:  # flat columns, one per feature (values of mixed type stored as JSON-able strings would not round-trip)
        for f in SCHEMA.features:
            data[f.name] = [r["context"].get(f.name) for r in rows]
    return pa.Table.from_pydict(data) if form == "json" else pa.table({k: pa.array(v, type=pa.string())
                                                                       if k == "age" else v
                                                                       for k, v in data.items()})


def test_profile_counts_exactly_what_was_planted() -> None:
    data = profile(_table(_rows(), "json"), SCHEMA)
    by_name = {f.name: f for f in data.features}
    assert data.rows == 20
    assert (by_name["age"].out_of_range, by_name["age"].invalid) == (1 / 20, 1 / 20)
    assert by_name["device"].unknown_category == 1 / 20
    assert by_name["activity"].missing == 2 / 20 and by_name["activity"].unusable == 0
    assert by_name["taste"].invalid == 1 / 20
    assert by_name["returning"].missing == by_name["returning"].unusable == 0
    p = data.propensity
    assert (p.non_positive, p.above_one, p.tiny, p.unknown_action, p.missing) == (1, 1, 1, 1, 0)
    assert (p.minimum, p.maximum) == (0.0, 1.5)
    assert (data.reward.present, data.reward.missing, data.reward.coverage) == (19, 1, 19 / 20)
    assert data.duplicate_ids == 1
    assert data.action_counts == {"news": 19, "weather": 1}


def test_verdicts_fail_on_what_corrupts_and_warn_on_what_deserves_a_look() -> None:
    checks = {(c.check, c.subject): c.status for c in judge(profile(_table(_rows(), "json"), SCHEMA))}
    for key in [("propensity <= 0", "propensity"), ("propensity > 1", "propensity"),
                ("action unknown", "action"), ("duplicate ids", "decision_id"), ("values", "age")]:
        assert checks[key] is Status.FAIL, key  # age: 2 of 20 unusable is over the 5% failure line
    assert checks[("values", "device")] is Status.WARN  # 1 of 20 is exactly the 5% line: a warning, not a failure
    assert checks[("missing", "activity")] is Status.WARN  # 10%: legal with a default, but worth a look
    assert checks[("propensity < 0.001", "propensity")] is Status.WARN
    assert checks[("values", "returning")] is Status.PASS
    assert checks[("reward coverage", "reward")] is Status.PASS


def test_clean_logs_pass_everything(tmp_path: Path) -> None:
    rows = [{"decision_id": f"d{i}", "context": dict(GOOD), "action": "tech", "propensity": 0.2, "reward": 0.0}
            for i in range(10)]
    checks = judge(profile(_table(rows, "json"), SCHEMA))
    assert overall(checks) is Status.PASS and len(checks) == 2 * len(SCHEMA.features) + 8


def test_context_forms_agree() -> None:
    rows = [{"decision_id": f"d{i}", "context": dict(GOOD), "action": "food", "propensity": 0.5, "reward": 1.0}
            for i in range(6)]
    rows[0]["context"]["device"] = "watch"
    rows[1]["context"]["activity"] = None
    as_json = profile(_table(rows, "json"), SCHEMA)
    as_struct = profile(pa.Table.from_pylist(rows), SCHEMA)
    flat = {k: [r[k] for r in rows] for k in ("decision_id", "action", "propensity", "reward")}
    flat |= {f.name: [r["context"].get(f.name) for r in rows] for f in SCHEMA.features}
    as_columns = profile(pa.table(flat), SCHEMA)
    assert as_json.features == as_struct.features == as_columns.features
    assert as_json.features[1].unknown_category == 1 / 6


def test_missing_columns_are_named() -> None:
    table = pa.Table.from_pylist([{"context": json.dumps(GOOD), "action": "news"}])
    with pytest.raises(ValidationError) as info:
        profile(table, SCHEMA)
    assert info.value.field == "propensity"
    with pytest.raises(ValidationError) as info:
        profile(pa.Table.from_pylist([{"context": json.dumps(GOOD), "propensity": 0.5}]), SCHEMA)
    assert info.value.field == "action"


def test_command_on_a_home_folder_and_on_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    rng = np.random.default_rng(0)
    with Engine(home) as engine:
        engine.apply(DeploymentSpec.from_dict({
            "name": "news", "schema": SCHEMA.to_dict(), "policy": {"kind": "uniform"},
            "reward": {"name": "click", "version": 1, "expression": "1 if clicked else 0",
                       "fields": {"clicked": {}}, "window": "1h", "missing": 0.0}}))
        for context in WORLD.sample_contexts(50, rng):
            d = engine.decide("news", context, "u")
            engine.report(d.decision_id, {"clicked": bool(rng.random() < 0.3)})
    assert len(load_interactions(home)) == 50
    assert main(["data", "check", "--events", str(home), "--json", str(tmp_path / "ok.json")]) == 0
    assert "PASS" in capsys.readouterr().out
    assert json.loads((tmp_path / "ok.json").read_text())["status"] == "pass"

    bad = tmp_path / "bad.parquet"
    pq.write_table(_table(_rows(), "json"), bad)
    schema_file = tmp_path / "schema.yaml"
    SCHEMA.save(schema_file)
    assert main(["data", "check", "--events", str(bad), "--schema", str(schema_file)]) == 1
    out = capsys.readouterr().out
    assert "propensity <= 0" in out and "duplicate ids" in out and "FAIL" in out
    assert main(["data", "check", "--events", str(bad)]) == 1
    assert "schema" in capsys.readouterr().err
    assert main(["data", "check", "--events", str(tmp_path / "nope")]) == 1
    assert "neither a Parquet file nor an rlops home folder" in capsys.readouterr().err
