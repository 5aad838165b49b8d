"""Compute on Ray: the stress suite and `rlops validate --backend ray` give the local backend's numbers for the
same seeds; errors inside actors come back as themselves; Ray is started and stopped only when rlops started it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from rlops.errors import ConfigError, DependencyNotInstalled, StorageError, ValidationError
from rlops.evaluation.controllers import schema_for_env
from rlops.evaluation.stress import StressConfig, run_stress
from rlops.evaluation.variations import ObservationNoise, RareEvents, Variation
from rlops.policies import UniformRandom, save_policy
from rlops.scale import Backend, actor_map, ray_session
from rlops.scale.ray_compute import ray_address
from rlops.scenarios.catalog import get_scenario
from tests.evaluation.stress.envs import LINEAR, Feedback, NoisyFeedback, weak


class Squarer:
    """A task host whose state is built once per actor: counts its own calls to show that the state persists."""

    def __init__(self, offset: int) -> None:
        self.offset, self.calls = offset, 0

    def square(self, x: int) -> tuple[int, int]:
        self.calls += 1
        if x < 0:
            raise ValidationError("x", f"must be >= 0, got {x}")
        if x == 13:
            raise ZeroDivisionError("unlucky")
        return x * x + self.offset, self.calls


def broken_host() -> Squarer:
    raise ConfigError("the host's state could not be built")


def test_the_stress_suite_on_ray_gives_the_local_numbers(ray_local: ModuleType) -> None:
    config = StressConfig(variations=[Variation(name="noisy", observation_noise=ObservationNoise(scale=0.1)),
                                      Variation(name="shocks", rare_events=RareEvents(probability=0.05))],
                          episodes=6, seed=7)
    candidate = NoisyFeedback(1.0)  # random on its own (seeded by reset): the seeds must travel with each task
    local = run_stress(LINEAR, candidate, weak, config, workers=1, progress=False)
    on_ray = run_stress(LINEAR, candidate, weak, config, progress=False, backend=Backend.RAY)
    assert on_ray.to_dict() == local.to_dict()
    returns = [e.total_return for e in on_ray.variation("nominal").candidate.episodes]
    assert len(set(returns)) == 6  # six different episodes, not one repeated
    one_actor = run_stress(LINEAR, candidate, weak, config, workers=1, progress=False, backend=Backend.RAY)
    assert one_actor.to_dict() == local.to_dict()
    other = run_stress(LINEAR, candidate, weak, config.model_copy(update={"seed": 8}), progress=False,
                       backend=Backend.RAY)
    assert other.to_dict() != local.to_dict()
    assert ray_local.is_initialized()  # the suite used the fixture's Ray and left it running


def test_actor_map_runs_every_task_once_on_state_built_once_per_actor(ray_local: ModuleType) -> None:
    got: dict[int, tuple[int, int]] = {}
    actor_map(lambda: Squarer(1), "square", [(x,) for x in range(10)], on_result=got.__setitem__, workers=2)
    assert {i: v for i, (v, _) in got.items()} == {x: x * x + 1 for x in range(10)}
    # two actors, each counting its own calls: together 10, and each went past 1 (state kept between tasks)
    counts = sorted(c for _, c in got.values())
    assert counts.count(1) == 2 and max(counts) >= 5
    _free_cpus_come_back(ray_local)
    # more actors than CPUs: each gets a share of one, and all of them run
    more: dict[int, tuple[int, int]] = {}
    actor_map(lambda: Squarer(0), "square", [(x,) for x in range(7)], on_result=more.__setitem__, workers=7)
    assert sorted(v for v, _ in more.values()) == [x * x for x in range(7)]
    _free_cpus_come_back(ray_local)


def _free_cpus_come_back(ray: ModuleType) -> None:
    deadline = time.monotonic() + 10
    while ray.available_resources().get("CPU", 0.0) < ray.cluster_resources()["CPU"]:
        assert time.monotonic() < deadline, f"actors still hold CPUs: {ray.available_resources()}"
        time.sleep(0.1)


def test_errors_in_actors_come_back_as_themselves(ray_local: ModuleType) -> None:
    with pytest.raises(ValidationError) as caught:
        actor_map(lambda: Squarer(0), "square", [(1,), (-4,), (2,)], on_result=lambda i, v: None, workers=1)
    assert caught.value.field == "x" and caught.value.rule == "must be >= 0, got -4"
    with pytest.raises(ConfigError, match="could not be built"):
        actor_map(broken_host, "square", [(1,)], on_result=lambda i, v: None)
    with pytest.raises(StorageError, match=r"task 1 failed: ZeroDivisionError: unlucky$"):
        actor_map(lambda: Squarer(0), "square", [(1,), (13,)], on_result=lambda i, v: None, workers=1)
    _free_cpus_come_back(ray_local)  # every actor was killed, after errors too
    # the stress suite's own errors too: a controller that cannot be pickled is refused before Ray sees it
    with pytest.raises(ConfigError, match="must pickle"):
        run_stress(LINEAR, lambda env: Feedback(1.0), weak, StressConfig(episodes=2), progress=False,
                   backend=Backend.RAY)


def test_validate_on_ray_writes_the_local_report(ray_local: ModuleType, tmp_path: Path) -> None:
    from rlops.cli.main import main

    spec = get_scenario("recommendation")
    save_policy(UniformRandom(schema_for_env(spec.make())), tmp_path / "uniform")
    variations = tmp_path / "variations.yaml"
    variations.write_text("episodes: 6\nseed: 1\nvariations:\n  - name: noisy\n    observation_noise: {scale: 0.1}\n")
    reports = {}
    for backend in ("local", "ray"):
        out = tmp_path / backend
        code = main(["validate", "--policy", str(tmp_path / "uniform"), "--scenario", "recommendation",
                     "--variations", str(variations), "--workers", "2", "--no-measure", "--out", str(out),
                     "--backend", backend])
        assert code == 1  # uniform play loses to the most-popular baseline on CVaR: the gate fails either way
        reports[backend] = json.loads((out / "report.json").read_text())["stress"]
    assert reports["ray"]["variations"] == reports["local"]["variations"]
    assert set(reports["ray"]["variations"]) == {"nominal", "noisy"}


def test_ray_session_reuses_a_running_ray_and_names_the_cluster(ray_local: ModuleType,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with ray_session() as ray:
        assert ray is ray_local
    assert ray_local.is_initialized()  # not shut down by a session that did not start it
    monkeypatch.setenv("RLOPS_RAY_ADDRESS", "ray://head:10001")
    assert ray_address() == "ray://head:10001"
    assert ray_address("auto") == "auto"
    monkeypatch.setenv("RLOPS_RAY_ADDRESS", "local")
    assert ray_address() is None


def test_without_ray_installed_the_error_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when Ray is not installed
    with pytest.raises(DependencyNotInstalled, match=r"pip install 'rlops\[ray\]'"):
        run_stress(LINEAR, NoisyFeedback(1.0), weak, StressConfig(episodes=2), progress=False, backend=Backend.RAY)


def test_a_private_instance_refuses_clients_without_its_token(ray_local: ModuleType) -> None:
    import os
    import subprocess

    gcs = ray_local.get_runtime_context().gcs_address
    probe = ("import ray, sys\ntry:\n    ray.init(address=sys.argv[1])\n    print('joined')\n"
             "except Exception as e:\n    print('refused', type(e).__name__)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    # A client with Ray's defaults and no token (one with a wrong token is refused too; checked by hand: each
    # refusal waits out Ray's ~20 s of connection retries)
    out = subprocess.run([sys.executable, "-c", probe, gcs], env=env, capture_output=True, text=True,
                         timeout=120).stdout
    assert out.strip().splitlines()[-1].startswith("refused"), out
