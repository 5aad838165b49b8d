"""Canary, shadow, holdout, promote and rollback on a real engine and registry in a temporary home folder."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlops.engine import DeploymentSpec, Engine
from rlops.engine.deployment import PolicySource
from rlops.errors import ConfigError, ConflictError, ValidationError
from rlops.events import Mode
from rlops.policies import RulePolicy, save_policy
from rlops.registry import Registry, Stage
from rlops.rollout.guardrails import Decision
from rlops.rollout.operations import Rollout, parse_source
from rlops.scenarios import SyntheticBandit
from tests.rollout.rules import always_food, always_news

WORLD = SyntheticBandit(seed=0)
REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}
NEWS = {"kind": "rule", "params": {"target": "tests.rollout.rules:always_news", "epsilon": 0.2}}
FOOD = {"kind": "rule", "params": {"target": "tests.rollout.rules:always_food", "epsilon": 0.2}}
CLICK_RATE = {"news": 0.6, "food": 0.3}  # every other action: 0.45


def spec(**overrides: Any) -> DeploymentSpec:
    data: dict[str, Any] = {"name": "news", "schema": WORLD.schema.to_dict(), "reward": REWARD, "policy": NEWS,
                            "guardrail": {"min_samples": 50, "max_samples": 600}, "all_outcomes_reported": True}
    data.update(overrides)
    return DeploymentSpec.from_dict(data)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = Engine(tmp_path / "home")
    e.apply(spec())
    yield e  # type: ignore[misc]
    e.close()


def traffic(engine: Engine, n: int, seed: int = 0, units: int = 400) -> list[Any]:
    """n decisions for `units` users, each answered with a click drawn from the action's click rate."""
    rng = np.random.default_rng(seed)
    contexts = WORLD.sample_contexts(n, rng)
    ids = [f"user-{i}" for i in rng.integers(0, units, n)]
    out = []
    for start in range(0, n, 100):
        decisions = engine.decide_batch("news", contexts[start:start + 100], ids[start:start + 100])
        clicks = [bool(rng.random() < CLICK_RATE.get(str(d.action), 0.45)) for d in decisions]
        engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": c}}
                             for d, c in zip(decisions, clicks, strict=True)])
        out.extend(zip(ids[start:start + 100], decisions, strict=True))
    return out


def test_canary_is_sticky_and_logs_its_own_propensities(engine: Engine) -> None:
    Rollout(engine, actor="alice").canary("news", PolicySource(**FOOD), 0.3, reason="try food")
    seen: dict[str, set[str]] = defaultdict(set)
    for unit, decision in traffic(engine, 2000):
        seen[unit].add(decision.policy_version)
    assert all(len(versions) == 1 for versions in seen.values())  # a unit never switches arm
    canary_units = sum("news@r2" in v for v in seen.values()) / len(seen)
    assert 0.2 < canary_units < 0.4
    rows = engine.log.read_decisions().to_pylist()
    for row in rows[-500:]:
        favourite = "food" if row["policy_version"] == "news@r2" else "news"
        # epsilon 0.2 over 5 actions: the rule's action 0.84, any other 0.04; each arm logs its own.
        assert row["propensity"] == pytest.approx(0.84 if row["action"] == favourite else 0.04)
    arms = engine.arms("news")
    assert [(a.role, a.policy_version, a.fraction) for a in arms] == [("production", "news@r1", pytest.approx(0.7)),
                                                                     ("canary", "news@r2", 0.3)]


def test_shadow_decides_on_every_context_and_is_never_returned(engine: Engine) -> None:
    Rollout(engine).shadow("news", PolicySource(**FOOD), shadow="challenger", reason="compare")
    served = traffic(engine, 300)
    returned = {d.decision_id for _, d in served}
    assert {d.policy_version for _, d in served} == {"news@r1"}
    table = engine.log.read_decisions().to_pylist()
    shadow = [r for r in table if r["mode"] == Mode.SHADOW]
    assert len(shadow) == 300
    assert not returned & {r["decision_id"] for r in shadow}
    assert {r["policy_version"] for r in shadow} == {"news@r2"}
    # The shadow saw exactly the served contexts, unit by unit.
    served_rows = [r for r in table if r["mode"] == Mode.SERVED]
    assert sorted((r["unit_id"], r["context"]) for r in shadow) == sorted((r["unit_id"], r["context"])
                                                                         for r in served_rows)
    # Shadow decisions never enter the join (nobody acted on them).
    joined = engine.interactions("news", include_pending=True).interactions
    assert set(joined["policy_version"].to_pylist()) == {"news@r1"}


def test_holdout_serves_the_baseline_to_a_fixed_fraction(engine: Engine) -> None:
    Rollout(engine).holdout("news", PolicySource(kind="uniform"), 0.2, reason="measure lift")
    versions = {}
    for unit, decision in traffic(engine, 2000, units=1000):
        assert versions.setdefault(unit, decision.policy_version) == decision.policy_version
    share = sum(v == "news@r2" for v in versions.values()) / len(versions)
    assert 0.15 < share < 0.25


def test_promote_then_rollback_restores_production(engine: Engine) -> None:
    rollout = Rollout(engine, actor="bob")
    rollout.canary("news", PolicySource(**FOOD), 0.5, reason="try")
    rollout.promote("news", reason="looks fine")
    assert [a.policy_version for a in engine.arms("news")] == ["news@r2"]
    change = rollout.rollback("news", reason="it was not")
    assert [a.policy_version for a in engine.arms("news")] == ["news@r1"]  # the old policy keeps its version
    history = rollout.history("news")
    assert [(c.action, c.actor) for c in history] == [("canary", "bob"), ("promote", "bob"), ("rollback", "bob")]
    assert change.reason == "it was not"
    with pytest.raises(ConflictError, match="no canary"):
        rollout.promote("news", reason="nothing to promote")
    with pytest.raises(ValidationError, match="reason"):
        rollout.canary("news", PolicySource(**FOOD), 0.1, reason=" ")
    with pytest.raises(ValidationError, match="fraction"):
        rollout.canary("news", PolicySource(**FOOD), 1.5, reason="too much")
    assert len(engine.store.history("news")) == 4  # the refused changes made no revision


def test_guardrail_rolls_back_a_worse_canary(engine: Engine) -> None:
    rollout = Rollout(engine, actor="alice")
    rollout.canary("news", PolicySource(**FOOD), 0.5, reason="bad on purpose")
    traffic(engine, 1500)
    check = rollout.check("news")
    assert check.result is not None and check.result.decision is Decision.ROLLBACK
    assert check.action == "rolled_back"
    assert [a.role for a in engine.arms("news")] == ["production"]
    last = rollout.history("news")[-1]
    assert last.action == "rollback" and last.reason.startswith("guardrail:")
    assert last.details["guardrail"]["decision"] == "rollback"


def test_guardrail_promotes_an_equal_canary(engine: Engine) -> None:
    rollout = Rollout(engine)
    rollout.canary("news", PolicySource(**{**NEWS, "params": {**NEWS["params"], "epsilon": 0.21}}), 0.5,
                   reason="same rule, a little more exploration")
    traffic(engine, 1400, seed=3)
    check = rollout.check("news")
    assert check.action == "promoted", check.result
    assert [a.policy_version for a in engine.arms("news")] == ["news@r2"]


def test_registered_versions_move_through_stages(engine: Engine, tmp_path: Path) -> None:
    folder = save_policy(RulePolicy(WORLD.schema, always_food, epsilon=0.2), tmp_path / "food")
    with Registry(engine.home) as registry:
        v = registry.register("food-model", folder)
    ref = f"food-model@{v.version}"
    rollout = Rollout(engine, actor="carol")
    rollout.shadow("news", parse_source(ref), reason="first look")
    rollout.canary("news", parse_source(ref), 0.1, reason="shadow was fine")
    assert [s.name for s in engine.spec("news").shadows] == []  # graduated from shadow
    rollout.promote("news", reason="guardrail passed")
    assert engine.arms("news")[0].policy_version == ref
    with Registry(engine.home) as registry:
        moves = [(t.from_stage, t.to_stage, t.actor) for t in registry.history("food-model", v.version)]
    assert moves[-3:] == [(Stage.CANDIDATE, Stage.SHADOW, "carol"), (Stage.SHADOW, Stage.CANARY, "carol"),
                          (Stage.CANARY, Stage.PRODUCTION, "carol")]


def test_tampered_registered_version_is_refused_and_the_server_keeps_serving(engine: Engine, tmp_path: Path) -> None:
    folder = save_policy(RulePolicy(WORLD.schema, always_food), tmp_path / "food")
    with Registry(engine.home) as registry:
        v = registry.register("food-model", folder)
        version_folder = registry.folder("food-model", v.version)
    ref = f"food-model@{v.version}"
    manifest = next(version_folder.rglob("manifest.json"))
    original = manifest.read_text()
    manifest.write_text(original.replace('"epsilon": 0.0', '"epsilon": 0.5'))
    with pytest.raises((ValidationError, ConfigError)):
        Rollout(engine).canary("news", parse_source(ref), 0.5, reason="tampered")
    assert len(engine.store.history("news")) == 1
    # Tampered after it was deployed: the running engine keeps the revision it serves.
    manifest.write_text(original)
    Rollout(engine).canary("news", parse_source(ref), 0.5, reason="clean now")
    with Engine(engine.home) as fresh:
        assert fresh.serving_revision("news") == 2
        manifest.write_text(original.replace('"epsilon": 0.0', '"epsilon": 0.5'))
        fresh._runtimes.clear()  # a new process would start here: it refuses the tampered version
        with pytest.raises(ConfigError):
            fresh.arms("news")
    manifest.write_text(original)


def test_spec_file_with_rollout_sections_round_trips(tmp_path: Path) -> None:
    data = spec(canary={"policy": FOOD, "fraction": 0.1}, holdout={"policy": {"kind": "uniform"}, "fraction": 0.05},
                shadows=[{"name": "s1", "policy": {"kind": "linucb"}}]).model_dump(mode="json", by_alias=True)
    (tmp_path / "d.json").write_text(json.dumps(data))
    again = DeploymentSpec.load(tmp_path / "d.json")
    assert again.canary is not None and again.canary.fraction == 0.1
    with pytest.raises(ConfigError, match="canary"):
        spec(canary={"policy": FOOD, "fraction": 0.6}, holdout={"policy": FOOD, "fraction": 0.45})
    with pytest.raises(ConfigError, match=r"canary\.policy: the same policy as policy"):
        spec(canary={"policy": NEWS, "fraction": 0.1})  # a canary identical to production compares nothing
    with pytest.raises(ConfigError, match="unique"):
        spec(shadows=[{"name": "s", "policy": FOOD}, {"name": "s", "policy": NEWS}])
    with pytest.raises(ConfigError, match=r"canary\.policy\.kind"):
        spec(canary={"policy": {"kind": "nope"}, "fraction": 0.1})


def test_rules_are_importable() -> None:
    assert always_news({}) == "news" and always_food({}) == "food"


def test_a_newer_revision_that_does_not_load_leaves_the_running_engine_serving(engine: Engine, tmp_path: Path) -> None:
    folder = save_policy(RulePolicy(WORLD.schema, always_food), tmp_path / "food")
    with Registry(engine.home) as registry:
        v = registry.register("food-model", folder)
        version_folder = registry.folder("food-model", v.version)
    traffic(engine, 10)  # the running engine serves revision 1
    with Engine(engine.home) as other:  # another process puts a registered canary in: revision 2
        Rollout(other).canary("news", parse_source(f"food-model@{v.version}"), 0.5, reason="looks fine")
    manifest = next(version_folder.rglob("manifest.json"))
    manifest.write_text(manifest.read_text().replace('"epsilon": 0.0', '"epsilon": 0.5'))  # then it is tampered
    engine._runtimes["news"].checked_at = -1e18  # as if a second had passed
    served = traffic(engine, 50)
    assert engine.serving_revision("news") == 1  # the tampered revision 2 was refused ...
    assert {d.policy_version for _, d in served} == {"news@r1"}  # ... and nothing failed meanwhile


def test_only_clicks_reported_does_not_fool_the_guardrail(tmp_path: Path) -> None:
    """When clients report only clicks (a no-click is the spec's default once the window closes), the outcomes that
    arrived early are all clicks: the guardrail must not judge on them unless told every outcome is reported."""
    with Engine(tmp_path / "home") as e:
        e.apply(spec(all_outcomes_reported=False))
        Rollout(e).canary("news", PolicySource(**FOOD), 0.5, reason="worse, but only clicks are reported")
        rng = np.random.default_rng(0)
        for start in range(0, 1500, 100):
            decisions = e.decide_batch("news", WORLD.sample_contexts(100, rng), [f"u{start + i}" for i in range(100)])
            clicked = [d for d in decisions if rng.random() < CLICK_RATE.get(str(d.action), 0.45)]
            e.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": True}} for d in clicked])
        canary, _, result = Rollout(e).judge("news")
        assert canary == "news@r2" and result is not None
        assert result.decision is Decision.CONTINUE and result.n_canary == 0  # waits for the 1 h windows
        assert Rollout(e).check("news").action == "none"


def test_concurrent_changes_neither_crash_nor_lose_updates(engine: Engine) -> None:
    import threading

    errors: list[BaseException] = []

    def change(i: int) -> None:
        try:
            engine.apply(spec(policy={"kind": "linucb", "params": {"alpha": 0.1 * (i + 1)}}))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=change, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(engine.store.history("news")) == 9
    # A change made on an old revision is refused rather than silently undoing the ones since.
    with pytest.raises(ConflictError, match="changed meanwhile"):
        engine.apply(spec(canary={"policy": FOOD, "fraction": 0.1}), base_revision=3)


def test_a_second_rollback_does_not_flip_back(engine: Engine) -> None:
    rollout = Rollout(engine)
    rollout.canary("news", PolicySource(**FOOD), 0.5, reason="try")
    rollout.promote("news", reason="ok")
    rollout.rollback("news", reason="undo the promotion")
    assert engine.arms("news")[0].policy_version == "news@r1"
    with pytest.raises(ConflictError, match="not a promotion to undo"):
        rollout.rollback("news", reason="again")
    assert engine.arms("news")[0].policy_version == "news@r1"


def test_a_replaced_shadow_goes_back_to_candidate(engine: Engine, tmp_path: Path) -> None:
    with Registry(engine.home) as registry:
        first = registry.register("m", save_policy(RulePolicy(WORLD.schema, always_food), tmp_path / "a"))
        second = registry.register("m", save_policy(RulePolicy(WORLD.schema, always_news, epsilon=0.3),
                                                    tmp_path / "b"))
    rollout = Rollout(engine)
    rollout.shadow("news", parse_source(f"m@{first.version}"), reason="look")
    rollout.shadow("news", parse_source(f"m@{second.version}"), reason="look at the other one instead")
    with Registry(engine.home) as registry:
        assert registry.get("m", first.version).stage is Stage.CANDIDATE
        assert registry.get("m", second.version).stage is Stage.SHADOW
