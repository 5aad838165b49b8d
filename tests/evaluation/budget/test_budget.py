"""Resource budgets: measured in a separate process, with sensible numbers, judged against declared limits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rlops.errors import ConfigError, NotFoundError
from rlops.evaluation.budget import (
    BudgetItemName,
    ResourceBudget,
    ResourceMeasurement,
    artifact_size_mb,
    check_budget,
    measure_resources,
)
from rlops.evaluation.status import Status
from rlops.policies import LinUCB, RulePolicy, save_policy
from rlops.scenarios import bandit_schema
from rlops.schema import Schema
from tests.evaluation.budget.rules import PID_FILE_VARIABLE, broken, record_pid

RULE_SCHEMA = Schema.model_validate({"features": [{"name": "x", "type": "float", "min": 0, "max": 1}],
                                     "actions": {"type": "discrete", "names": ["a", "b"]}})


@pytest.fixture(scope="module")
def linucb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ResourceMeasurement]:
    folder = save_policy(LinUCB(bandit_schema()), tmp_path_factory.mktemp("budget") / "linucb")
    return folder, measure_resources(folder, batch_size=16, iterations=100, warmup=10)


def test_the_measurement_is_sensible(linucb: tuple[Path, ResourceMeasurement]) -> None:
    folder, m = linucb
    assert m.kind == "linucb" and m.batch_size == 16 and m.iterations == 100 and m.threads == 1
    # orders of magnitude only: a LinUCB decision takes microseconds to milliseconds, never seconds
    assert 0 < m.p50_ms <= m.p99_ms < 1000
    assert 0 < m.batch_p50_ms <= m.batch_p99_ms < 5000
    assert m.batch_mean_ms > m.mean_ms  # 16 contexts to validate and score instead of 1
    assert 10 < m.baseline_rss_mb <= m.peak_rss_mb < 4096
    assert 0 <= m.policy_rss_mb < m.peak_rss_mb
    assert m.artifact_mb == pytest.approx(sum(p.stat().st_size for p in folder.iterdir()) / 2**20)
    assert m.artifact_mb == artifact_size_mb(folder) > 0
    assert ResourceMeasurement.from_dict(json.loads(json.dumps(m.to_dict()))) == m


def test_a_tiny_budget_fails_and_a_generous_one_passes(linucb: tuple[Path, ResourceMeasurement]) -> None:
    _, m = linucb
    tiny = check_budget(m, ResourceBudget(p99_ms=1e-6, batch_p99_ms=1e-6, memory_mb=1, artifact_mb=1e-9,
                                          batch_size=16))
    assert not tiny.passed
    assert [i.status for i in tiny.items] == [Status.FAIL] * 4
    generous = check_budget(m, ResourceBudget(p99_ms=10_000, batch_p99_ms=10_000, memory_mb=100_000,
                                              artifact_mb=1_000, batch_size=16))
    assert generous.passed and [i.status for i in generous.items] == [Status.PASS] * 4
    item = generous.item("memory_mb")
    assert item.measured == m.peak_rss_mb and item.limit == 100_000 and item.unit == "MiB"
    partial = check_budget(m, ResourceBudget(p99_ms=10_000))
    assert partial.passed
    assert partial.item(BudgetItemName.ARTIFACT_MB).status is Status.SKIP
    data = json.loads(json.dumps(tiny.to_dict()))
    assert data["passed"] is False and data["items"][0] == {"name": "p99_ms", "measured": m.p99_ms, "limit": 1e-6,
                                                            "unit": "ms", "status": "fail"}


def test_a_limit_exactly_at_the_measurement_passes(linucb: tuple[Path, ResourceMeasurement]) -> None:
    _, m = linucb
    assert check_budget(m, ResourceBudget(p99_ms=m.p99_ms)).item("p99_ms").status is Status.PASS


def test_the_batch_limit_must_be_measured_at_its_batch_size(linucb: tuple[Path, ResourceMeasurement]) -> None:
    _, m = linucb
    with pytest.raises(ConfigError, match="batch_size: the budget's is 32 but the latency was measured at 16"):
        check_budget(m, ResourceBudget(batch_p99_ms=5.0))


def test_the_policy_runs_in_another_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = save_policy(RulePolicy(RULE_SCHEMA, record_pid), tmp_path / "rule")
    pid_file = tmp_path / "pid"
    monkeypatch.setenv(PID_FILE_VARIABLE, str(pid_file))
    m = measure_resources(folder, batch_size=2, iterations=10, warmup=0)
    assert m.kind == "rule"
    assert int(pid_file.read_text()) != os.getpid()


def test_failures_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not a policy folder"):
        measure_resources(tmp_path / "absent")
    folder = save_policy(RulePolicy(RULE_SCHEMA, broken), tmp_path / "broken")
    with pytest.raises(ConfigError, match="sensor table missing"):
        measure_resources(folder, iterations=10, warmup=0)
    with pytest.raises(ConfigError, match="iterations >= 10"):
        measure_resources(folder, iterations=1)


def test_a_budget_file_loads_and_bad_values_are_named(tmp_path: Path) -> None:
    path = tmp_path / "budget.yaml"
    path.write_text("p99_ms: 5\nbatch_p99_ms: 20\nbatch_size: 64\nmemory_mb: 512\n")
    budget = ResourceBudget.load(path)
    assert budget == ResourceBudget(p99_ms=5, batch_p99_ms=20, batch_size=64, memory_mb=512)
    path.write_text("p99_ms: -1\n")
    with pytest.raises(ConfigError, match=r"budget\.yaml: p99_ms: Input should be greater than 0"):
        ResourceBudget.load(path)
    path.write_text("latency: 3\n")
    with pytest.raises(ConfigError, match="latency: unknown key"):
        ResourceBudget.load(path)


@pytest.mark.slow  # imports torch in the measuring process: several seconds
def test_loading_an_sb3_policy_shows_in_memory(tmp_path: Path) -> None:
    import stable_baselines3 as sb3

    from rlops.policies import SB3Policy
    from tests.evaluation.stress.envs import Chain, chain_schema

    model = sb3.PPO("MlpPolicy", Chain(), n_steps=32, batch_size=32, policy_kwargs={"net_arch": [8]}, device="cpu")
    folder = save_policy(SB3Policy(chain_schema(), model), tmp_path / "ppo")
    m = measure_resources(folder, batch_size=8, iterations=20, warmup=5)
    assert m.kind == "sb3"
    assert m.policy_rss_mb > 50  # torch and SB3 come in with the policy, not before
    assert m.peak_rss_mb >= m.baseline_rss_mb + m.policy_rss_mb - 1


def test_the_latency_histogram_counts_every_timed_call(linucb: tuple[Path, ResourceMeasurement]) -> None:
    _, m = linucb
    assert m.latency_histogram is not None
    edges, counts = m.latency_histogram["edges"], m.latency_histogram["counts"]
    assert len(edges) == len(counts) + 1 == 31 and edges == sorted(edges)
    assert sum(counts) == m.iterations
    assert edges[0] <= m.p50_ms <= edges[-1]
