"""The reward join, case by case, each with the number it must give."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pyarrow as pa
import pytest

from rlops.events.join import DeadLetterReason, join, orphan_outcomes
from rlops.events.records import DECISION_SCHEMA, OUTCOME_SCHEMA, Mode
from rlops.rewards import RewardSpec

S = 1_000_000  # microseconds per second


def spec(**overrides: Any) -> RewardSpec:
    data: dict[str, Any] = {"name": "r", "version": 2, "expression": "value", "fields": {"value": {}},
                            "aggregation": "sum", "window": 60, "missing": 0.25}
    data.update(overrides)
    return RewardSpec.from_dict(data)


def decisions(*rows: tuple[str, int], deployment: str = "d", mode: Mode = Mode.SERVED) -> pa.Table:
    return pa.Table.from_pylist([{
        "decision_id": did, "ts": ts, "deployment": deployment, "policy_version": "d@r1", "mode": str(mode),
        "unit_id": "u", "context": '{"price": 2.0}', "actions": ["a", "b"], "action": "a", "action_index": 0,
        "propensity": 0.5, "probabilities": [0.5, 0.5], "candidate_features": None, "latency_us": 1,
    } for did, ts in rows], schema=DECISION_SCHEMA)


def outcomes(*rows: tuple[str, int, dict[str, Any], str]) -> pa.Table:
    import json

    return pa.Table.from_pylist([{"decision_id": d, "ts": ts, "fields": json.dumps(f), "idempotency_key": k}
                                 for d, ts, f, k in rows], schema=OUTCOME_SCHEMA)


def rewards(result: Any) -> dict[str, float]:
    return dict(zip(result.interactions["decision_id"].to_pylist(), result.interactions["reward"].to_pylist(),
                    strict=True))


NOW = 10_000 * S


def test_outcome_inside_window_joins_and_late_one_is_dead_lettered() -> None:
    d = decisions(("d1", 0), ("d2", 0))
    o = outcomes(("d1", 59 * S, {"value": 3.0}, "k1"), ("d2", 61 * S, {"value": 7.0}, "k2"))
    result = join(d, o, spec(), deployment="d", as_of_us=NOW)
    assert rewards(result) == {"d1": 3.0, "d2": 0.25}  # d2's only outcome was late: default reward
    assert result.dead_letters["decision_id"].to_pylist() == ["d2"]
    assert result.dead_letters["reason"][0].as_py().startswith("expired: arrived 61.000 s after the decision")
    assert result.dead_letters["reason_code"].to_pylist() == [DeadLetterReason.EXPIRED]
    assert result.interactions["reward_source"].to_pylist() == ["outcome", "default"]
    assert result.stats.joined == 1 and result.stats.defaulted == 1 and result.stats.dead_letters == 1


def test_out_of_order_outcome_within_window_still_joins() -> None:
    d = decisions(("d1", 100 * S))
    o = outcomes(("d1", 99 * S, {"value": 2.0}, "k1"))  # reported before the decision's timestamp (clock skew)
    assert rewards(join(d, o, spec(), deployment="d", as_of_us=NOW)) == {"d1": 2.0}


def test_duplicates_count_once() -> None:
    d = decisions(("d1", 0))
    o = outcomes(("d1", 1, {"value": 4.0}, "k"), ("d1", 2, {"value": 4.0}, "k"), ("d1", 3, {"value": 100}, "k"))
    result = join(d, o, spec(), deployment="d", as_of_us=NOW)
    assert rewards(result) == {"d1": 4.0}  # first stored wins; sum does not double count
    assert result.stats.duplicates == 2
    assert result.interactions["n_outcomes"].to_pylist() == [1]


def test_unknown_ids_are_dead_lettered_and_never_joined() -> None:
    d = decisions(("d1", 0))
    o = outcomes(("nope", 1, {"value": 1.0}, "k1"), ("d1", 1, {"value": 1.0}, "k2"))
    for_all = join(d, o, spec(), deployment=None, as_of_us=NOW)
    assert for_all.dead_letters["reason"].to_pylist() == ["unknown decision"]
    assert for_all.dead_letters["reason_code"].to_pylist() == [DeadLetterReason.UNKNOWN_DECISION]
    assert rewards(for_all) == {"d1": 1.0}
    assert join(d, o, spec(), deployment="d", as_of_us=NOW).stats.dead_letters == 0
    orphans = orphan_outcomes(d, o)
    assert orphans["decision_id"].to_pylist() == ["nope"] and orphans["deployment"].to_pylist() == [None]


@pytest.mark.parametrize(("aggregation", "expected"), [("sum", 9.0), ("first", 1.0), ("last", 5.0), ("max", 5.0)])
def test_multiple_outcomes_per_decision(aggregation: str, expected: float) -> None:
    d = decisions(("d1", 0))
    o = outcomes(("d1", 10 * S, {"value": 1.0}, "a"), ("d1", 20 * S, {"value": 5.0}, "b"),
                 ("d1", 15 * S, {"value": 3.0}, "c"))
    result = join(d, o, spec(aggregation=aggregation), deployment="d", as_of_us=NOW)
    assert rewards(result) == {"d1": expected}
    assert result.interactions["n_outcomes"].to_pylist() == [3]


def test_default_exclude_and_pending() -> None:
    d = decisions(("closed", 0), ("open", NOW - 10 * S), ("open-with-outcome", NOW - 10 * S))
    o = outcomes(("open-with-outcome", NOW - 5 * S, {"value": 2.0}, "k"))
    result = join(d, o, spec(), deployment="d", as_of_us=NOW)
    assert rewards(result) == {"closed": 0.25}
    assert result.stats.pending == 2
    with_pending = join(d, o, spec(), deployment="d", as_of_us=NOW, include_pending=True)
    assert rewards(with_pending) == {"closed": 0.25, "open-with-outcome": 2.0}
    assert with_pending.interactions["window_closed"].to_pylist() == [True, False]
    excluded = join(d, o, spec(missing="exclude"), deployment="d", as_of_us=NOW)
    assert rewards(excluded) == {} and excluded.stats.excluded == 1


def test_unusable_fields_are_dead_lettered_with_reason() -> None:
    d = decisions(("d1", 0), ("d2", 0), ("d3", 0))
    o = outcomes(("d1", 1, {"other": 1}, "a"), ("d2", 1, {"value": "lots"}, "b"), ("d3", 1, {"value": 1e9}, "c"))
    result = join(d, o, spec(missing="exclude", bounds={"min": 0, "max": 10, "mode": "reject"}), deployment="d",
                  as_of_us=NOW)
    reasons = dict(zip(result.dead_letters["decision_id"].to_pylist(), result.dead_letters["reason"].to_pylist(),
                       strict=True))
    assert "missing field 'value'" in reasons["d1"]
    assert "value" in reasons["d2"]
    assert "above the maximum 10" in reasons["d3"]
    assert set(result.dead_letters["reason_code"].to_pylist()) == {DeadLetterReason.UNUSABLE_FIELDS}
    assert rewards(result) == {}


def test_context_fields_and_clip_bounds() -> None:
    d = decisions(("d1", 0), ("d2", 0))
    o = outcomes(("d1", 1, {"value": 3.0}, "a"), ("d2", 1, {"value": 100.0}, "b"))
    s = spec(expression="value - price", context=["price"], bounds={"min": -5, "max": 5, "mode": "clip"})
    assert rewards(join(d, o, s, deployment="d", as_of_us=NOW)) == {"d1": 1.0, "d2": 5.0}


def test_shadow_and_other_deployments_are_kept_apart() -> None:
    d = pa.concat_tables([decisions(("s1", 0), mode=Mode.SHADOW), decisions(("x1", 0), deployment="other"),
                          decisions(("d1", 0))])
    o = outcomes(("s1", 1, {"value": 1.0}, "a"), ("x1", 1, {"value": 1.0}, "b"), ("d1", 1, {"value": 2.0}, "c"))
    result = join(d, o, spec(), deployment="d", as_of_us=NOW)
    assert rewards(result) == {"d1": 2.0}
    assert result.stats.decisions == 1
    # the shadow decision is deployment "d"'s, but shadow decisions are never returned: its outcome is suspect
    assert result.dead_letters["reason"].to_pylist() == ["outcome for a shadow decision"]
    everything = join(d, o, spec(), deployment=None, as_of_us=NOW)
    assert rewards(everything) == {"x1": 1.0, "d1": 2.0}


def test_spec_version_is_recorded() -> None:
    result = join(decisions(("d1", 0)), outcomes(("d1", 1, {"value": 1.0}, "k")), spec(), deployment="d",
                  as_of_us=NOW)
    assert result.interactions["reward_spec"].to_pylist() == ["r@2"]
    assert asdict(result.stats)["joined"] == 1


def test_backdated_outcome_is_dead_lettered() -> None:
    d = decisions(("d1", 100 * S))
    o = outcomes(("d1", 100 * S - 61 * S, {"value": 9.0}, "k"))  # more than a minute before the decision
    result = join(d, o, spec(), deployment="d", as_of_us=NOW)
    assert rewards(result) == {"d1": 0.25}
    assert result.dead_letters["reason"][0].as_py().startswith("dated 61.000 s before its decision")


def test_same_key_on_different_decisions_counts_for_each() -> None:
    d = decisions(("d1", 0), ("d2", 0))
    o = outcomes(("d1", 1, {"value": 1.0}, "click"), ("d2", 1, {"value": 2.0}, "click"),
                 ("d2", 2, {"value": 5.0}, "click"))
    result = join(d, o, spec(), deployment="d", as_of_us=NOW)
    assert rewards(result) == {"d1": 1.0, "d2": 2.0}
    assert result.stats.duplicates == 1 and result.stats.outcomes == 3


def test_stats_count_only_this_deployments_outcomes() -> None:
    d = pa.concat_tables([decisions(("x1", 0), deployment="other"), decisions(("d1", 0))])
    o = outcomes(("x1", 1, {"value": 1.0}, "k"), ("x1", 2, {"value": 1.0}, "k"), ("nope", 1, {"value": 1.0}, "j"))
    result = join(d, o, spec(), deployment="d", as_of_us=NOW)
    assert (result.stats.outcomes, result.stats.duplicates, result.stats.dead_letters) == (0, 0, 0)
