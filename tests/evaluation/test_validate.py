"""`rlops validate` end to end: OPE against the known click model, the stress suite, gates, the report, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlops.cli.main import main
from rlops.engine import DeploymentSpec, Engine
from rlops.errors import ValidationError
from rlops.evaluation.controllers import schema_for_env
from rlops.evaluation.status import Status
from rlops.evaluation.validate import ValidateOptions, validate
from rlops.policies import LearningBatch, LinUCB, PolicyInput, UniformRandom, save_policy
from rlops.scenarios import SyntheticBandit
from rlops.scenarios.catalog import get_scenario

WORLD = SyntheticBandit(seed=0)
SCHEMA = WORLD.schema
N = 4000


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """A home whose uniform logging policy made N decisions with clicks from the known model; a LinUCB candidate
    trained on half of them; and the candidate's true value on the logged contexts."""
    root = tmp_path_factory.mktemp("validate")
    home, rng = root / "home", np.random.default_rng(0)
    contexts = WORLD.sample_contexts(N, rng)
    with Engine(home) as engine:
        engine.apply(DeploymentSpec.from_dict({
            "name": "news", "schema": SCHEMA.to_dict(), "policy": {"kind": "uniform"},
            "reward": {"name": "click", "version": 1, "expression": "1 if clicked else 0",
                       "fields": {"clicked": {}}, "window": "1h", "missing": 0.0}}))
        decisions = engine.decide_batch("news", contexts, [f"u{i}" for i in range(N)])
    x = SCHEMA.encode([SCHEMA.validate_context(c) for c in contexts])
    actions = np.array([d.action_index for d in decisions])
    clicks = WORLD.sample_clicks(x, actions, rng)
    with Engine(home) as engine:
        engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": bool(c)}}
                             for d, c in zip(decisions, clicks, strict=True)])
    candidate = LinUCB(SCHEMA, alpha=0.1)
    half = N // 2
    candidate.update(LearningBatch(PolicyInput.from_contexts(SCHEMA, contexts[:half]), actions[:half],
                                   clicks[:half].astype(float), np.full(half, 0.2)))
    save_policy(candidate, root / "candidate")
    pi_e = candidate.act(PolicyInput.from_contexts(SCHEMA, contexts), np.random.default_rng(0)).probabilities
    truth = float((pi_e * WORLD.click_probability(x)).sum(axis=1).mean())
    return home, root / "candidate", truth


def test_ope_covers_the_true_value_and_the_gates_judge_it(logged: tuple[Path, Path, float], tmp_path: Path) -> None:
    home, candidate, truth = logged
    run = validate(ValidateOptions(policy=candidate, events=home, measure=False), progress_bar=False)
    ope = run.results["ope"]
    assert ope["rows"] == N
    for name in ("ips", "snips", "dm", "dr", "sndr", "switch-dr", "dros"):
        e = ope["estimates"][name]
        assert e["interval"]["low"] <= truth <= e["interval"]["high"], (name, e, truth)
    assert truth > ope["logging"]["interval"]["high"]  # the candidate really is better than uniform logging
    gates = {g.gate.name: g.status for g in run.gates}
    assert gates["DR lower bound beats the logging policy"] is Status.PASS
    assert gates["p99 act latency under 2 ms"] is Status.SKIP  # not measured
    assert run.status is Status.PASS
    # The uniform logging policy itself does not beat itself: that gate fails, and so does the run.
    save_policy(UniformRandom(SCHEMA), tmp_path / "uniform")
    same = validate(ValidateOptions(policy=tmp_path / "uniform", events=home, measure=False), progress_bar=False)
    assert same.status is Status.FAIL


def test_command_writes_the_report_and_exits_by_the_gates(logged: tuple[Path, Path, float], tmp_path: Path) -> None:
    home, candidate, _ = logged
    gates = tmp_path / "gates.yaml"
    gates.write_text("gates:\n  - name: p99\n    metric: budget.measurement.p99_ms\n    op: '<'\n    value: 50\n"
                     "  - name: dr\n    metric: ope.estimates.dr.interval.low\n    op: '>'\n"
                     "    than: ope.logging.value\n")
    out = tmp_path / "report"
    assert main(["validate", "--policy", str(candidate), "--events", str(home), "--gates", str(gates),
                 "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "pass" and [g["status"] for g in report["gates"]] == ["pass", "pass"]
    assert 0 < report["budget"]["measurement"]["p50_ms"] < 50
    assert "<svg" in (out / "report.html").read_text()
    gates.write_text("gates:\n  - name: impossible\n    metric: budget.measurement.p99_ms\n    op: '<'\n"
                     "    value: 0.000001\n")
    assert main(["validate", "--policy", str(candidate), "--gates", str(gates), "--out", str(out)]) == 1


def test_stress_suite_on_a_scenario(tmp_path: Path) -> None:
    spec = get_scenario("recommendation")
    save_policy(UniformRandom(schema_for_env(spec.make())), tmp_path / "uniform")
    variations = tmp_path / "variations.yaml"
    variations.write_text("episodes: 6\nseed: 1\nvariations:\n  - name: noisy\n    observation_noise: {scale: 0.1}\n")
    out = tmp_path / "report"
    code = main(["validate", "--policy", str(tmp_path / "uniform"), "--scenario", "recommendation",
                 "--variations", str(variations), "--workers", "1", "--no-measure", "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert set(report["stress"]["variations"]) == {"nominal", "noisy"}
    cvar_gate = next(g for g in report["gates"] if "CVaR" in g["gate"]["name"])
    assert len(cvar_gate["checks"]) == 2
    # Uniform play against the most-popular baseline: its CVaR is worse, so the gate fails and so does the command.
    assert cvar_gate["status"] == "fail" and code == 1


def test_bad_inputs_are_refused_before_any_computation(logged: tuple[Path, Path, float], tmp_path: Path) -> None:
    home, candidate, _ = logged
    with Engine(home) as engine:
        table = engine.interactions("news", include_pending=True).interactions
    broken = table.set_column(table.schema.get_field_index("propensity"), "propensity",
                              pa.array([0.0] + [0.2] * (table.num_rows - 1)))
    pq.write_table(broken, tmp_path / "zero.parquet")
    with pytest.raises(ValidationError, match="propensity <= 0") as info:
        validate(ValidateOptions(policy=candidate, events=tmp_path / "zero.parquet", measure=False))
    assert info.value.field == "events"
    other = SCHEMA.model_copy(update={"actions": SCHEMA.actions.model_copy(update={"names": list("abcde")})})
    save_policy(UniformRandom(other), tmp_path / "other")
    with pytest.raises(ValidationError, match="action space does not match") as info:
        validate(ValidateOptions(policy=tmp_path / "other", events=home, measure=False))
    assert info.value.field == "events.action"
    with pytest.raises(Exception, match="no-such-scenario"):
        validate(ValidateOptions(policy=candidate, scenario="no-such-scenario", measure=False))


def test_reward_bounds_refuse_rewards_outside_and_give_a_lower_bound(logged: tuple[Path, Path, float]) -> None:
    home, candidate, truth = logged
    run = validate(ValidateOptions(policy=candidate, events=home, measure=False, reward_bounds=(0.0, 1.0)),
                   progress_bar=False)
    bound = run.results["ope"]["lower_bound"]
    assert bound["method"] == "empirical_bernstein" and 0.0 <= bound["low"] <= truth
    assert bound["low"] <= run.results["ope"]["estimates"]["ips"]["interval"]["low"] + 1e-9  # more conservative
    with pytest.raises(ValidationError) as info:  # clicks of 0 are outside [0.5, 1]: refused, nothing estimated
        validate(ValidateOptions(policy=candidate, events=home, measure=False, reward_bounds=(0.5, 1.0)))
    assert info.value.field == "events.reward"


def test_rows_without_a_reward_are_left_out_and_counted(logged: tuple[Path, Path, float], tmp_path: Path) -> None:
    home, candidate, truth = logged
    with Engine(home) as engine:
        table = engine.interactions("news", include_pending=True).interactions
    rewards = table["reward"].to_pylist()
    holes = pa.array([None if i % 10 == 0 else r for i, r in enumerate(rewards)], type=pa.float64())
    pq.write_table(table.set_column(table.schema.get_field_index("reward"), "reward", holes), tmp_path / "h.parquet")
    run = validate(ValidateOptions(policy=candidate, events=tmp_path / "h.parquet", measure=False), progress_bar=False)
    assert run.results["ope_rows_without_reward"] == N // 10
    assert run.results["ope"]["rows"] == N - N // 10
    dr = run.results["ope"]["estimates"]["dr"]["interval"]
    assert dr["low"] <= truth <= dr["high"]
