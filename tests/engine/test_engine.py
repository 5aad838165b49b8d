"""The in-process engine: deployments, decide, report, learn; bad input never stores anything."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest
import yaml

from rlops.engine import DeploymentSpec, Engine, OutcomeStatus
from rlops.errors import ConfigError, ConflictError, NotFoundError, ValidationError
from rlops.policies import LinUCB, PolicyInput, save_policy
from rlops.scenarios import SyntheticBandit

WORLD = SyntheticBandit(seed=0)
REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}
USER = {"age": 30, "device": "mobile", "returning": True, "activity": 0.5, "taste": [0.1, 0.2, 0.3, 0.4]}


def spec(name: str = "news", **overrides: Any) -> DeploymentSpec:
    data: dict[str, Any] = {"name": name, "schema": WORLD.schema.to_dict(), "reward": REWARD,
                            "policy": {"kind": "linucb", "params": {"alpha": 0.5, "epsilon": 0.1}},
                            "learning": {"online": True}}
    data.update(overrides)
    return DeploymentSpec.from_dict(data)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = Engine(tmp_path / "home")
    e.apply(spec())
    yield e  # type: ignore[misc]
    e.close()


def counts(engine: Engine) -> tuple[int, int]:
    return engine.log.read_decisions().num_rows, engine.log.read_outcomes().num_rows


def test_apply_is_idempotent_and_changes_make_revisions(engine: Engine) -> None:
    again = engine.apply(spec())
    assert (again.revision, again.created) == (1, False)
    changed = engine.apply(spec(policy={"kind": "linucb", "params": {"alpha": 2.0}}))
    assert (changed.revision, changed.created, changed.policy_version) == (2, True, "news@r2")
    assert [r.revision for r in engine.store.history("news")] == [1, 2]
    assert engine.decide("news", USER, "u1").policy_version == "news@r2"  # the live revision serves


def test_apply_from_yaml_file_with_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(WORLD.schema.to_dict()))
    (tmp_path / "reward.yaml").write_text(yaml.safe_dump(REWARD))
    (tmp_path / "d.yaml").write_text("name: files\nschema: schema.yaml\nreward: reward.yaml\n"
                                     "policy: {kind: uniform}\nseed: 3\n")
    with Engine(tmp_path / "home") as e:
        assert e.apply(tmp_path / "d.yaml").created
        assert not e.apply(tmp_path / "d.yaml").created
        assert e.spec("files").seed == 3


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"policy": {"kind": "nope"}}, "unknown kind 'nope'"),
        ({"policy": {"kind": "linucb", "path": "/x"}}, "exactly one of policy.kind, policy.path or policy.version"),
        ({"reward": {**REWARD, "expression": "__import__('os')"}}, "reward"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_deployment_specs_name_the_field(patch: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        spec(**patch)
    assert fragment in str(info.value)


def test_bad_policy_params_store_nothing(engine: Engine) -> None:
    with pytest.raises(ValidationError, match=r"policy\.params"):
        engine.apply(spec(name="other", policy={"kind": "linucb", "params": {"alpah": 1}}))
    assert engine.store.names() == ["news"]


def test_decide_logs_exactly_what_it_returns(engine: Engine) -> None:
    d = engine.decide("news", USER, "user-1")
    assert d.action in WORLD.schema.actions.names  # type: ignore[union-attr]
    assert d.probabilities is not None and d.propensity == pytest.approx(d.probabilities[str(d.action)])
    row = engine.log.read_decisions().to_pylist()[0]
    assert row["decision_id"] == d.decision_id and row["action"] == d.action
    assert row["propensity"] == d.propensity and row["unit_id"] == "user-1" and row["mode"] == "served"
    assert row["policy_version"] == "news@r1"
    assert row["probabilities"] == list(d.probabilities.values())


def test_report_statuses(engine: Engine) -> None:
    d = engine.decide("news", USER, "user-1")
    assert engine.report(d.decision_id, {"clicked": True}).status is OutcomeStatus.ACCEPTED
    assert engine.report(d.decision_id, {"clicked": True}).status is OutcomeStatus.DUPLICATE
    assert engine.report(d.decision_id, {"clicked": False}, idempotency_key="k2").reward == 0.0
    unknown = engine.report("no-such-decision", {"clicked": True})
    assert (unknown.status, unknown.reason) == (OutcomeStatus.DEAD_LETTER, "unknown decision")
    two_hours_later = time.time_ns() // 1000 + 2 * 3600 * 10**6  # past the 1 h window
    late = engine.report(d.decision_id, {"clicked": True}, idempotency_key="late", ts=two_hours_later)
    assert late.status is OutcomeStatus.DEAD_LETTER and late.reason is not None and "expired" in late.reason
    missing = engine.report(d.decision_id, {"other": 1})
    assert missing.status is OutcomeStatus.DEAD_LETTER and "clicked" in str(missing.reason)
    assert counts(engine) == (1, 5)  # the duplicate was not stored; dead letters are, with their reasons
    assert len(engine.dead_letters()) == 3


@pytest.mark.parametrize(
    ("context", "unit", "field"),
    [
        ({**USER, "age": float("nan")}, "u", "context.age"),
        ({**USER, "age": "old"}, "u", "context.age"),
        ({**USER, "shoe_size": 44}, "u", "context.shoe_size"),
        ({k: v for k, v in USER.items() if k != "device"}, "u", "context.device"),
        ({**USER, "device": "x" * 100_000}, "u", "context.device"),
        (USER, "u" * 300, "unit_id"),
        (USER, 17, "unit_id"),
        ("not a dict", "u", "context"),
    ],
)
def test_bad_decide_input_stores_nothing(engine: Engine, context: Any, unit: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        engine.decide("news", context, unit)
    assert info.value.field == field
    assert counts(engine) == (0, 0)


def test_bad_batch_stores_none_of_it(engine: Engine) -> None:
    with pytest.raises(ValidationError, match=r"contexts\[2\]\.age"):
        engine.decide_batch("news", [USER, USER, {**USER, "age": 5}], ["a", "b", "c"])
    assert counts(engine) == (0, 0)


@pytest.mark.parametrize(
    ("outcome", "field"),
    [
        ({"decision_id": "d", "fields": {"clicked": float("inf")}}, "outcome.fields.clicked"),
        ({"decision_id": "d", "fields": {"clicked": [1]}}, "outcome.fields.clicked"),
        ({"decision_id": "d", "fields": {"note": "x" * 5000}}, "outcome.fields.note"),
        ({"decision_id": "d", "fields": "clicked"}, "outcome.fields"),
        ({"decision_id": "", "fields": {}}, "outcome.decision_id"),
        ({"decision_id": 5, "fields": {}}, "outcome.decision_id"),
        ({"decision_id": "d", "fields": {}, "idempotency_key": 3}, "outcome.idempotency_key"),
        ({"decision_id": "d", "fields": {}, "extra": 1}, "outcome.extra"),
        ({"decision_id": "d", "fields": {str(i): i for i in range(101)}}, "outcome.fields"),
    ],
)
def test_bad_outcomes_store_nothing(engine: Engine, outcome: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        engine.report_batch([outcome])
    assert info.value.field == field
    assert counts(engine) == (0, 0)


def test_unknown_deployment(engine: Engine) -> None:
    with pytest.raises(NotFoundError, match="deployment 'nope' does not exist"):
        engine.decide("nope", USER, "u")
    for bad in (None, ["news"], 3):
        with pytest.raises(ValidationError, match="deployment: expected a deployment name"):
            engine.decide(bad, USER, "u")  # type: ignore[arg-type]
    assert counts(engine) == (0, 0)


def test_candidate_deployment(tmp_path: Path) -> None:
    schema = {"features": [{"name": "u", "type": "float"}],
              "actions": {"type": "candidates", "features": [{"name": "price", "type": "float", "min": 0}]}}
    with Engine(tmp_path / "home") as e:
        e.apply(spec(name="shop", schema=schema, policy={"kind": "linear_thompson"}))
        cands = [{"id": "a", "features": {"price": 1.0}}, {"id": "b", "features": {"price": 2.0}}]
        d = e.decide("shop", {"u": 0.5}, "u1", actions=cands)
        assert d.action in ("a", "b") and set(d.probabilities or {}) == {"a", "b"}
        row = e.log.read_decisions().to_pylist()[0]
        assert row["actions"] == ["a", "b"]
        with pytest.raises(ValidationError, match="needs a candidate list"):
            e.decide("shop", {"u": 0.5}, "u1")


def test_state_survives_reopening(tmp_path: Path) -> None:
    with Engine(tmp_path / "home") as e:
        e.apply(spec())
        d = e.decide("news", USER, "u1")
        e.report(d.decision_id, {"clicked": True}, idempotency_key="k")
    with Engine(tmp_path / "home") as e:
        assert e.report(d.decision_id, {"clicked": True}, idempotency_key="k").status is OutcomeStatus.DUPLICATE
        assert e.report(d.decision_id, {"clicked": False}, idempotency_key="k2").status is OutcomeStatus.ACCEPTED
        assert e.interactions("news", include_pending=True).interactions["reward"].to_pylist() == [1.0]


def test_online_learning_moves_the_policy_toward_rewarded_actions(tmp_path: Path) -> None:
    with Engine(tmp_path / "home") as e:
        e.apply(spec(policy={"kind": "linucb", "params": {"alpha": 0.0, "epsilon": 0.5}}))
        before = e.decide("news", USER, "u")
        assert before.probabilities is not None and before.probabilities["travel"] == pytest.approx(0.1)
        for _ in range(10):
            decisions = e.decide_batch("news", [USER] * 50, [f"u{i}" for i in range(50)])
            e.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": d.action == "travel"}}
                            for d in decisions])
            assert e.learn("news", include_pending=True) == 50
            assert e.learn("news", include_pending=True) == 0  # nothing is learned twice
        after = e.decide_batch("news", [USER] * 20, ["u"] * 20)
        # greedy on the only rewarded action: 1 - 0.5 + 0.5/5 on "travel", 0.5/5 on each other action
        assert all(d.probabilities is not None and d.probabilities["travel"] == pytest.approx(0.6) for d in after)
        assert all(d.propensity == pytest.approx(0.6 if d.action == "travel" else 0.1) for d in after)


def test_saved_policy_deployment_serves_that_policy(tmp_path: Path) -> None:
    policy = LinUCB(WORLD.schema, alpha=0.0)
    from rlops.policies import LearningBatch

    batch = PolicyInput.from_contexts(WORLD.schema, [USER] * 20)
    policy.update(LearningBatch(batch, np.full(20, 3), np.ones(20), np.ones(20)))
    folder = save_policy(policy, tmp_path / "trained")
    with Engine(tmp_path / "home") as e:
        e.apply(spec(policy={"path": str(folder)}))
        assert e.decide("news", USER, "u").action == WORLD.schema.actions.names[3]  # type: ignore[union-attr]
        with pytest.raises(ConflictError, match="schema differs"):
            other = {"features": [{"name": "u", "type": "float"}], "actions": {"type": "discrete", "names": ["a"]}}
            e.apply(spec(name="mismatch", schema=other, policy={"path": str(folder)}))


@pytest.mark.parametrize("ts", [10**20, -5, 0, 1.5e15, "now", True])
def test_bad_outcome_time_is_refused_and_the_log_stays_readable(engine: Engine, ts: Any) -> None:
    d = engine.decide("news", USER, "u")
    with pytest.raises(ValidationError) as info:
        engine.report(d.decision_id, {"clicked": True}, ts=ts)
    assert info.value.field == "outcome.ts"
    assert counts(engine) == (1, 0)
    assert engine.interactions("news", include_pending=True).stats.decisions == 1  # still readable


@pytest.mark.parametrize("window", ["abc", -5, 0, float("nan"), True, "200000000d", 10**400, 1e13])
def test_bad_window_is_refused_at_apply(engine: Engine, window: Any) -> None:
    with pytest.raises(ConfigError, match="window"):
        spec(window=window)
    assert [r.revision for r in engine.store.history("news")] == [1]


def test_idempotency_keys_are_scoped_to_their_decision(engine: Engine) -> None:
    a, b = engine.decide_batch("news", [USER, USER], ["u1", "u2"])
    assert engine.report(a.decision_id, {"clicked": True}, idempotency_key="click").status is OutcomeStatus.ACCEPTED
    assert engine.report(b.decision_id, {"clicked": True}, idempotency_key="click").status is OutcomeStatus.ACCEPTED
    assert engine.report(b.decision_id, {"clicked": False}, idempotency_key="click").status is \
        OutcomeStatus.DUPLICATE
    joined = engine.interactions("news", include_pending=True)
    assert sorted(joined.interactions["reward"].to_pylist()) == [1.0, 1.0] and joined.stats.duplicates == 0


def test_learning_uses_only_the_live_revision(engine: Engine) -> None:
    decisions = engine.decide_batch("news", [USER] * 30, [f"u{i}" for i in range(30)])
    engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": True}} for d in decisions])
    reversed_names = {**WORLD.schema.to_dict(), "actions": {"type": "discrete",
                                                            "names": list(reversed(WORLD.schema.actions.names))}}  # type: ignore[union-attr]
    engine.apply(spec(schema=reversed_names))  # revision 2: same names, other order
    assert engine.learn("news", include_pending=True) == 0  # revision 1's indices mean other actions here
    fresh = engine.decide_batch("news", [USER] * 5, [f"v{i}" for i in range(5)])
    engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": False}} for d in fresh])
    assert engine.learn("news", include_pending=True) == 5


def test_concurrent_learning_learns_each_interaction_once(engine: Engine) -> None:
    import threading

    decisions = engine.decide_batch("news", [USER] * 300, [f"u{i}" for i in range(300)])
    engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": True}} for d in decisions])
    policy = engine._runtime("news").policy
    real_update = policy.update  # type: ignore[attr-defined]

    def slow_update(batch: Any) -> None:  # widen the race: without the learn lock every thread would update
        time.sleep(0.2)
        real_update(batch)

    policy.update = slow_update  # type: ignore[attr-defined]
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(engine.learn("news", include_pending=True)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 0, 0, 300]
    model = engine._runtime("news").policy.model  # type: ignore[attr-defined]
    # each action's design matrix counts its rows once: trace(A) - l2*d = sum of squared features of those rows
    assert np.isclose(model.A[:, -1, -1].sum() - 5 * 1.0, 300)  # intercept column: one per learned row


def test_candidate_lists_must_match_contexts(tmp_path: Path) -> None:
    schema = {"features": [{"name": "u", "type": "float"}],
              "actions": {"type": "candidates", "features": [{"name": "price", "type": "float"}]}}
    cands = [{"id": "a", "features": {"price": 1.0}}]
    with Engine(tmp_path / "home") as e:
        e.apply(spec(name="shop", schema=schema, policy={"kind": "uniform"}))
        for contexts, lists in (([{"u": 1.0}] * 2, [cands]), ([{"u": 1.0}], [cands, cands])):
            with pytest.raises(ValidationError, match="candidate lists, one per context"):
                e.decide_batch("shop", contexts, ["u"] * len(contexts), lists)
        assert e.log.read_decisions().num_rows == 0


def test_huge_integers_are_clear_errors(engine: Engine) -> None:
    with pytest.raises(ValidationError, match=r"context\.age: integer is too large"):
        engine.decide("news", {**USER, "age": 10**400}, "u")
    d = engine.decide("news", USER, "u")
    with pytest.raises(ValidationError, match=r"outcome\.fields\.clicked: integer .* is too large"):
        engine.report(d.decision_id, {"clicked": 10**400})
    assert counts(engine) == (1, 0)


@pytest.mark.parametrize("params", [{"alpha": float("nan")}, {"alpha": float("inf")}, {"l2": float("nan")}])
def test_non_finite_hyperparameters_are_refused(engine: Engine, params: dict[str, float]) -> None:
    with pytest.raises(ValidationError, match=r"^policy\.params: "):  # the spec's fault, naming its field
        engine.apply(spec(name="other", policy={"kind": "linucb", "params": params}))
    assert engine.store.names() == ["news"]


def test_two_engines_on_one_home_see_each_others_work(tmp_path: Path) -> None:
    """A server and a CLI (or two workers) share a home: decisions and new revisions cross over within a second."""
    with Engine(tmp_path / "home") as a, Engine(tmp_path / "home") as b:
        a.apply(spec())
        assert b.decide("news", USER, "u0").policy_version == "news@r1"
        d = a.decide("news", USER, "u1")
        time.sleep(1.05)
        assert b.report(d.decision_id, {"clicked": True}).status is OutcomeStatus.ACCEPTED  # made by engine a
        a.apply(spec(policy={"kind": "uniform"}))
        time.sleep(1.05)
        assert b.decide("news", USER, "u2").policy_version == "news@r2"


def test_backdated_outcome_is_answered_as_the_join_will_treat_it(engine: Engine) -> None:
    d = engine.decide("news", USER, "u")
    two_minutes_earlier = time.time_ns() // 1000 - 120 * 10**6
    result = engine.report(d.decision_id, {"clicked": True}, ts=two_minutes_earlier)
    assert result.status is OutcomeStatus.DEAD_LETTER and "before its decision" in str(result.reason)
    assert engine.interactions("news", include_pending=True).dead_letters["reason_code"].to_pylist() == [
        "backdated"]


def test_integers_beyond_float_precision_are_refused(tmp_path: Path) -> None:
    schema = {"features": [{"name": "n", "type": "int"}], "actions": {"type": "discrete", "names": ["a", "b"]}}
    with Engine(tmp_path / "home") as e:
        e.apply(spec(name="ints", schema=schema, policy={"kind": "uniform"}))
        for value in (10**400, 2**60, -(2**54)):
            with pytest.raises(ValidationError, match=r"context\.n: integer of \d+ digits is too large"):
                e.decide("ints", {"n": value}, "u")
        assert e.decide("ints", {"n": 2**53}, "u").action in ("a", "b")
        assert e.log.read_decisions()["context"].to_pylist() == ['{"n":9007199254740992}']


def test_junk_ids_never_make_the_engine_reread_the_log(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.decide("news", USER, "u")  # loads the index once
    reads = []
    real = engine.log.update_decision_index
    monkeypatch.setattr(engine.log, "update_decision_index", lambda *a: reads.append(1) or real(*a))
    time.sleep(1.05)
    for junk in ("nope", "x" * 200, "ZZZZZZZZZZZZZZZZZZZZZZZZZZ"):
        assert engine.report(junk, {"clicked": True}).reason == "unknown decision"
    assert reads == []
    # Well-formed but old ids (as an edge device's ingested decisions are) cost at most one update a second.
    for i in range(20):
        old = f"01ARZ3NDEKTSV4RRFFQ69G5F{i:02d}"
        assert engine.report(old, {"clicked": True}).reason == "unknown decision"
    assert reads == [1]


def test_an_ingested_older_decision_is_found_by_a_running_engine(tmp_path: Path) -> None:
    """Decisions minted earlier, stored later (edge logs): a running engine recognises their outcomes."""
    from rlops.engine.engine import now_us
    from rlops.events import DecisionRecord, EventLog, Mode
    from rlops.events.ids import new_id

    with Engine(tmp_path / "home") as engine:
        engine.apply(spec())
        engine.decide("news", USER, "u")  # the index is read now
        minted = new_id()  # an id minted before the index read's cut-off...
        time.sleep(1.1)
        d = engine.decide("news", USER, "u2")  # a template for a well-formed record
        assert d.probabilities is not None
        with EventLog(engine.home.events) as other:  # ...and stored afterwards, as `rlops events ingest` would
            other.append([DecisionRecord(
                decision_id=minted, ts=now_us(), deployment="news", policy_version=d.policy_version,
                mode=Mode.SERVED, unit_id="edge", context=USER, actions=list(d.probabilities), action=str(d.action),
                action_index=d.action_index, propensity=d.propensity, probabilities=list(d.probabilities.values()),
                latency_us=10)])
        assert engine.report(minted, {"clicked": True}).status is OutcomeStatus.ACCEPTED


def test_streams_make_independent_random_draws(tmp_path: Path) -> None:
    """Workers sharing a home pass different streams; without one, two engines would draw the same actions."""

    def actions(stream: int | None, folder: str) -> list[int]:
        with Engine(tmp_path / folder, stream=stream) as e:
            e.apply(spec(policy={"kind": "uniform"}))
            return [e.decide("news", USER, f"u{i}").action_index for i in range(40)]

    assert actions(None, "a") == actions(None, "b")  # same seed and revision: the same stream, reproducibly
    assert actions(7, "c") == actions(7, "d")
    assert actions(7, "e") != actions(8, "f") != actions(None, "g")


def test_incremental_learning_matches_learning_from_the_whole_join(tmp_path: Path) -> None:
    """Passes that read only what the log gained learn exactly what one pass over the whole join learns, and an
    arm keeps what it learned when a new revision keeps its policy."""
    from rlops.policies import LearningBatch

    rng = np.random.default_rng(4)
    with Engine(tmp_path / "home", fsync=False) as e:
        e.apply(spec())
        learned = 0
        for round_ in range(3):
            contexts = WORLD.sample_contexts(200, rng)
            decisions = e.decide_batch("news", contexts, [f"u{round_}-{i}" for i in range(200)])
            # a third of the outcomes arrive a round late: their decisions wait in the feed meanwhile
            late = decisions[:70]
            e.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": bool(rng.random() < 0.4)}}
                            for d in decisions[70:]])
            learned += e.learn("news", include_pending=True)
            e.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": bool(rng.random() < 0.4)}}
                            for d in late])
            if round_ == 1:  # a new revision that keeps production's policy: nothing is forgotten
                e.apply(spec(canary={"policy": {"kind": "uniform"}, "fraction": 0.01}))
        learned += e.learn("news", include_pending=True)
        served = e.log.read_decisions()["policy_version"].to_pylist()
        assert 550 < served.count("news@r1") < 600  # the uniform canary (it does not learn) took a few
        assert learned == served.count("news@r1") == e.learned_count("news")
        assert e.learn("news", include_pending=True) == 0
        production = e.policy("news")
        joined = e.interactions("news", include_pending=True).interactions
        mine = joined.filter(pc.equal(joined["policy_version"], "news@r1"))
        fresh = LinUCB(WORLD.schema, alpha=0.5, epsilon=0.1)
        contexts = [json.loads(c) for c in mine["context"].to_pylist()]
        fresh.update(LearningBatch(PolicyInput.from_contexts(WORLD.schema, contexts),
                                   mine["action_index"].to_numpy(), mine["reward"].to_numpy(),
                                   mine["propensity"].to_numpy()))
        for key, value in fresh.state().items():
            assert np.allclose(production.state()[key], value), key


def test_learning_waits_for_windows_and_keeps_only_what_it_needs(tmp_path: Path) -> None:
    """Without all_outcomes_reported, a decision is learned once its window closes, with its outcome or with the
    spec's default; the learning feed keeps no decisions of deployments that do not learn."""
    with Engine(tmp_path / "home", fsync=False) as e:
        e.apply(spec(window="1s"))
        e.apply(spec(name="other", learning={"online": False}))
        users = WORLD.sample_contexts(50, np.random.default_rng(0))
        mine = e.decide_batch("news", users, [f"u{i}" for i in range(50)])
        e.decide_batch("other", users, [f"u{i}" for i in range(50)])
        e.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": True}} for d in mine[:25]])
        assert e.learn("news") == 0  # windows still open: the 25 clicks so far are not a fair sample
        time.sleep(1.3)
        assert e.learn("news") == 50  # 25 clicks and 25 defaults (missing: 0.0)
        assert e.learn("news") == 0
        assert set(e._feed.decisions) <= {"news"} and all(t.num_rows == 0 for t in e._feed.decisions.values())
