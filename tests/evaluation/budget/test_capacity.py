"""Capacity plans against hand-computed M/M/c cases, the batched rule, and which resource binds."""

from __future__ import annotations

import math

import pytest

from rlops.errors import ConfigError
from rlops.evaluation.budget import ResourceMeasurement
from rlops.evaluation.capacity import Binding, erlang_c, plan_capacity, wait_quantile_s


def _measured(mean_ms: float = 2.0, p99_ms: float = 5.0, batch_mean_ms: float = 8.0, batch_p99_ms: float = 12.0,
              rss: float = 300.0, batch_size: int = 32) -> ResourceMeasurement:
    return ResourceMeasurement(
        policy="p", kind="k", batch_size=batch_size, iterations=100, warmup=10, threads=1, p50_ms=mean_ms,
        p99_ms=p99_ms, mean_ms=mean_ms, batch_p50_ms=batch_mean_ms, batch_p99_ms=batch_p99_ms,
        batch_mean_ms=batch_mean_ms, peak_rss_mb=rss, baseline_rss_mb=50.0, policy_rss_mb=rss - 50.0,
        artifact_mb=1.0)


def test_erlang_c_by_hand() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # one server: an arrival waits with probability rho
    # c = 2, a = 1: B(1) = 1/2, B(2) = (1/2) / (2 + 1/2) = 1/5, C = (1/5) / (1 - (1/2)(4/5)) = 1/3
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9)
    assert erlang_c(3, 3.0) == 1.0 and erlang_c(3, 0.0) == 0.0


def test_wait_quantile_by_hand() -> None:
    # c = 3, lambda = 1000/s, mu = 500/s: C = 4/9, W99 = ln(44.44) / (1500 - 1000) s
    assert wait_quantile_s(3, 1000, 500) == pytest.approx(math.log(400 / 9) / 500)
    assert wait_quantile_s(30, 1000, 500) == 0.0  # nearly nobody waits: the p99 wait is zero
    assert wait_quantile_s(2, 1000, 500) == math.inf


def test_throughput_binds_when_the_target_is_loose() -> None:
    # mean 2 ms -> 500/s per process, 350/s at 70%: ceil(1000/350) = 3; estimated p99 = 7.588 + 5 ms <= 20 ms
    plan = plan_capacity(_measured(), qps=1000, p99_ms=20)
    assert plan.processes == 3 and plan.cores == 3
    assert plan.binding is Binding.CPU and plan.feasible
    assert plan.process_qps == pytest.approx(350)
    assert plan.utilisation == pytest.approx(2 / 3)
    assert plan.estimated_p99_ms == pytest.approx(1000 * math.log(400 / 9) / 500 + 5.0)
    assert plan.memory_mb == 900.0 and plan.machines is None


def test_the_tail_target_adds_processes() -> None:
    # at 3 processes the p99 is 12.59 ms > 10 ms; at 4: C = 4/23, W99 = ln(17.39)/1000 s = 2.856 ms -> 7.856 ms
    plan = plan_capacity(_measured(), qps=1000, p99_ms=10)
    assert plan.processes == 4 and plan.binding is Binding.TAIL_LATENCY and plan.feasible
    assert plan.estimated_p99_ms == pytest.approx(1000 * math.log(100 * 4 / 23) / 1000 + 5.0)
    assert any("tail latency binds" in n for n in plan.notes)


def test_a_single_decision_slower_than_the_target_is_infeasible() -> None:
    plan = plan_capacity(_measured(p99_ms=5.0), qps=1000, p99_ms=4)
    assert not plan.feasible and plan.binding is Binding.LATENCY
    assert plan.processes == 3  # still says what throughput alone would need
    assert "no number of processes helps" in plan.notes[0]


def test_the_utilisation_ceiling_changes_the_count() -> None:
    assert plan_capacity(_measured(), qps=1000, p99_ms=50, utilisation=0.5).processes == 4  # 250/s each
    assert plan_capacity(_measured(), qps=1, p99_ms=50).processes == 1


def test_batched_plan() -> None:
    # batches of 32 in 8 ms: 4000/s per process, 2800/s at 70%: ceil(10000/2800) = 4; p99 ~ 2 x 12 ms
    plan = plan_capacity(_measured(), qps=10_000, p99_ms=30, batch=32)
    assert plan.batch_size == 32 and plan.processes == 4 and plan.feasible and plan.binding is Binding.CPU
    assert plan.estimated_p99_ms == 24.0
    assert plan.process_qps == pytest.approx(2800)
    late = plan_capacity(_measured(), qps=10_000, p99_ms=20, batch=32)
    assert not late.feasible and late.binding is Binding.LATENCY
    with pytest.raises(ConfigError, match="batch: 16 was not measured"):
        plan_capacity(_measured(), qps=10, p99_ms=30, batch=16)


def test_machines_and_memory() -> None:
    # 10 processes (3500/s at 350/s each); machines of 4 cores: 3 by CPU
    plan = plan_capacity(_measured(), qps=3500, p99_ms=50, cores=4)
    assert plan.processes == 10 and plan.machines == 3 and plan.binding is Binding.CPU
    # with 1000 MiB per machine only 3 processes of 300 MiB fit: 4 machines, memory binds
    plan = plan_capacity(_measured(), qps=3500, p99_ms=50, cores=4, memory_mb=1000)
    assert plan.machines == 4 and plan.binding is Binding.MEMORY and plan.feasible
    # plenty of memory: the cores bind again
    assert plan_capacity(_measured(), qps=3500, p99_ms=50, cores=4, memory_mb=64_000).binding is Binding.CPU
    # a process larger than a machine
    plan = plan_capacity(_measured(rss=2000), qps=100, p99_ms=50, cores=4, memory_mb=1000)
    assert not plan.feasible and plan.binding is Binding.MEMORY


@pytest.mark.parametrize(("qps", "p99", "settings", "message"), [
    (0, 10, {}, "qps: must be a finite number > 0"),
    (-5, 10, {}, "qps"),
    (math.inf, 10, {}, "qps"),
    (10, 0, {}, "p99_ms"),
    (10, 10, {"utilisation": 1.0}, "utilisation"),
    (10, 10, {"cores": 0}, "cores"),
    (10, 10, {"memory_mb": 0}, "memory_mb"),
])
def test_bad_targets_are_named(qps: float, p99: float, settings: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_capacity(_measured(), qps=qps, p99_ms=p99, **settings)  # type: ignore[arg-type]


def test_plan_to_dict() -> None:
    data = plan_capacity(_measured(p99_ms=5.0), qps=1000, p99_ms=4).to_dict()
    assert data["binding"] == "latency" and data["feasible"] is False
    assert isinstance(data["notes"], list)
