"""Ingesting an edge decision log: every line validated first, nothing half-ingested, idempotent, joinable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlops.edge import EdgePolicy
from rlops.engine import Engine, OutcomeStatus
from rlops.errors import ValidationError
from rlops.events.ingest import ingest_into_home
from rlops.home import Home
from tests.edge.homes import deploy, deploy_and_export
from tests.export.cases import contexts


@pytest.fixture
def edge_log(tmp_path: Path) -> tuple[Home, Path, list[str]]:
    """A home with deployment 'shop', and a decision log of 1 + 40 + 3 decisions made at the edge."""
    home, export = deploy_and_export(tmp_path / "home", "softmax_ridge", tmp_path / "edge" / "shop.onnx")
    log = tmp_path / "edge" / "decisions.jsonl"
    with EdgePolicy.load(export.model_path, seed=0, log=log) as policy:
        ids = [policy.decide(contexts(1)[0], unit_id="user-0").decision_id]
        ids += policy.decide_batch(contexts(40, seed=1), unit_ids=[f"user-{i}" for i in range(40)]).decision_ids
        ids += policy.decide_batch({"age": [20.5, 33, 70.0], "device": ["tv", "mobile", "tablet"],
                                    "visits": [1, 2, 3], "taste": [[0.0] * 3] * 3}).decision_ids
    return home, log, ids


def stored(home: Home) -> list[dict[str, Any]]:
    with Engine(home) as engine:
        return engine.log.read_decisions().to_pylist()  # type: ignore[no-any-return]


def test_ingest_stores_every_decision_with_its_ids_times_and_version(edge_log: tuple[Home, Path, list[str]]) -> None:
    home, log, ids = edge_log
    result = ingest_into_home(log, home)
    assert (result.lines, result.decisions, result.appended, result.already_stored) == (3, 44, 44, 0)
    assert result.by_deployment == {"shop": 44} and result.torn_tail_bytes == 0
    rows = {r["decision_id"]: r for r in stored(home)}
    assert set(rows) == set(ids)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    first = rows[ids[0]]
    assert (first["deployment"], first["policy_version"], first["mode"], first["unit_id"]) == (
        "shop", "shop@r1", "served", "user-0")
    assert first["ts"].timestamp() * 1e6 == pytest.approx(lines[0]["ts"], abs=1)
    assert first["action"] == first["actions"][first["action_index"]]
    assert first["probabilities"] == lines[0]["probabilities"][0]
    # contexts are stored as the schema normalises them: defaults filled in, ints in float features as floats
    third = json.loads(rows[ids[42]]["context"])
    assert third == {"age": 33.0, "device": "mobile", "returning": False, "visits": 2, "taste": [0.0, 0.0, 0.0]}


def test_ingesting_twice_stores_each_decision_once(edge_log: tuple[Home, Path, list[str]]) -> None:
    home, log, _ = edge_log
    ingest_into_home(log, home)
    again = ingest_into_home(log, home)
    assert (again.appended, again.already_stored) == (0, 44)
    assert len(stored(home)) == 44


def test_outcomes_for_edge_decisions_join_after_ingest(edge_log: tuple[Home, Path, list[str]]) -> None:
    home, log, ids = edge_log
    ingest_into_home(log, home)
    with Engine(home) as engine:
        assert engine.report(ids[5], {"clicked": True}).status is OutcomeStatus.ACCEPTED
        joined = engine.interactions("shop", include_pending=True)
        assert (joined.stats.decisions, joined.stats.joined, joined.stats.pending) == (44, 1, 43)
        reward = {r["decision_id"]: r["reward"] for r in joined.interactions.to_pylist()}
        assert reward[ids[5]] == 1.0


def test_an_incomplete_last_line_is_skipped_and_reported(edge_log: tuple[Home, Path, list[str]]) -> None:
    home, log, _ = edge_log
    with log.open("ab") as f:
        f.write(b'{"format": "rlops.edge.decisions", "decision_id": ["01J')
    result = ingest_into_home(log, home)
    assert result.appended == 44 and result.torn_tail_bytes == len(b'{"format": "rlops.edge.decisions", '
                                                                   b'"decision_id": ["01J')


def _corrupt(log: Path, line: int, change: dict[str, Any]) -> None:
    lines = log.read_text().splitlines()
    data = json.loads(lines[line - 1])
    for key, value in change.items():
        if "." in key:
            outer, inner = key.split(".", 1)
            data[outer][inner] = value
        else:
            data[key] = value
    lines[line - 1] = json.dumps(data)
    log.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("change", "message"), [
    ({"context.age": [20.0] * 39 + [400.0]}, "line 2: decisions[39].context.age: 400.0 is above the maximum 90.0"),
    ({"context.colour": ["red"] * 40}, "line 2: decisions[0].context.colour: unknown field"),
    ({"deployment": "elsewhere"}, "line 2: policy_version: deployment 'elsewhere' does not exist"),
    ({"policy_version": "shop@r7"}, "line 2: policy_version: 'shop@r7' is not a revision of deployment 'shop'"),
    ({"action_index": [9] * 40}, "line 2: action_index[0]: expected an index in [0, 4)"),
    ({"propensity": [0.0] * 40}, "line 2: propensity[0]: expected a finite number > 0"),
    ({"propensity": [0.9] * 40}, "line 2: propensity[0]: 0.9 is not the probability"),
    ({"probabilities": [[0.5, 0.5, 0.5, 0.5]] * 40}, "line 2: probabilities[0]: sum to 2.0, not 1"),
    ({"unit_id": ["u"]}, "line 2: unit_id: expected a list of 40 items"),
    ({"actions": ["a", "b"]}, "line 2: actions: expected the revision's actions"),
    ({"ts": 12}, "line 2: ts: expected an integer between"),
    ({"mode": "maybe"}, "line 2: mode: expected one of ['served', 'shadow']"),
    ({"format_version": 9}, "line 2: format_version: expected an integer between 1 and 1"),
    ({"decision_id": [""] * 40}, "line 2: decision_id[0]: expected a non-empty string"),
])
def test_a_bad_line_names_its_number_and_nothing_is_stored(edge_log: tuple[Home, Path, list[str]],
                                                          change: dict[str, Any], message: str) -> None:
    home, log, _ = edge_log
    _corrupt(log, 2, change)
    with pytest.raises(ValidationError) as error:
        ingest_into_home(log, home)
    assert f"{log} {message}" in str(error.value)
    assert stored(home) == []


def test_a_line_that_is_not_json_is_refused(edge_log: tuple[Home, Path, list[str]]) -> None:
    home, log, _ = edge_log
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], "{oops", lines[1]]) + "\n")
    with pytest.raises(ValidationError, match=r"line 2: not valid JSON"):
        ingest_into_home(log, home)
    assert stored(home) == []


def test_a_repeated_id_with_other_content_is_refused(edge_log: tuple[Home, Path, list[str]]) -> None:
    home, log, ids = edge_log
    lines = log.read_text().splitlines()
    data = json.loads(lines[0])
    data["unit_id"] = ["someone-else"]
    log.write_text("\n".join([*lines, json.dumps(data)]) + "\n")
    with pytest.raises(ValidationError, match=f"line 4: decision_id: {ids[0]} appears earlier in the file"):
        ingest_into_home(log, home)
    log.write_text("\n".join([*lines, lines[0]]) + "\n")  # the same line twice is harmless
    assert ingest_into_home(log, home).appended == 44


def test_box_decisions_ingest_with_their_vectors(tmp_path: Path) -> None:
    home, export = deploy_and_export(tmp_path / "home", "sb3_sac", tmp_path / "sac.onnx", name="arm")
    log = tmp_path / "arm.jsonl"
    with EdgePolicy.load(export.model_path, seed=0, log=log) as policy:
        batch = policy.decide_batch(contexts(10))
    assert ingest_into_home(log, home).appended == 10
    rows = {r["decision_id"]: r for r in stored(home)}
    row = rows[batch.decision_ids[3]]
    assert row["action_index"] == -1 and row["probabilities"] is None
    assert json.loads(row["action"]) == batch.action_vectors[3].tolist()  # type: ignore[union-attr]
    assert row["propensity"] == pytest.approx(float(batch.propensity[3]))


def test_decisions_of_an_older_revision_ingest_under_that_revision(tmp_path: Path) -> None:
    home, export = deploy_and_export(tmp_path / "home", "softmax_ridge", tmp_path / "p.onnx")
    log = tmp_path / "d.jsonl"
    with EdgePolicy.load(export.model_path, log=log) as policy:
        policy.decide_batch(contexts(5))
    deploy(home.root, "epsilon_greedy_linear")  # revision 2 goes live meanwhile
    assert ingest_into_home(log, home).appended == 5
    assert {r["policy_version"] for r in stored(home)} == {"shop@r1"}
    assert np.isfinite([r["propensity"] for r in stored(home)]).all()


def test_pii_fields_of_edge_decisions_are_dropped_or_hashed_on_ingest(edge_log: tuple[Home, Path, list[str]],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Edge contexts may carry the schema's PII fields; the home's log keeps only what their policy allows."""
    from rlops.events import ingest as ingest_module
    from rlops.security.pii import load_pii_key, pii_token

    home, log, _ = edge_log
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    for line in lines:
        n = len(line["decision_id"])
        line["context"]["email"] = [f"person{i}@example.org" for i in range(n)]
        line["context"]["name"] = [f"Person Number {i}" for i in range(n)]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    real = ingest_module.revision_lookup

    def with_pii(h: Home) -> Any:
        lookup, close = real(h)
        def schema(d: str, v: str) -> Any:
            return type(lookup(d, v)).model_validate({**lookup(d, v).to_dict(),
                                                      "pii": {"email": "hash", "name": "drop"}})

        return schema, close

    monkeypatch.setattr(ingest_module, "revision_lookup", with_pii)
    assert ingest_into_home(log, home).appended == 44
    contexts = [json.loads(r["context"]) for r in stored(home)]
    key = load_pii_key(home.keys)
    assert all("name" not in c and c["email"].startswith("hmac:") for c in contexts)
    assert pii_token(key, "email", "person0@example.org") in {c["email"] for c in contexts}
    assert not any(b"@example.org" in p.read_bytes() for p in home.events.rglob("*") if p.is_file())
