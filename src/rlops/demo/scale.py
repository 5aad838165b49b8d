"""The demo's scale-out part: the same work on Ray as on this machine.

1. The stress suite of the HVAC scenario (the registered PPO policy against the thermostat, when the lifecycle part
   registered one; else the thermostat against itself) on two local processes and on a private Ray instance: the
   reports must be equal, number for number.
2. A LinUCB deployment of the bandit (``demo-ray``, beside the bandit part's, whose numbers it leaves alone)
   served by two Ray Serve replicas (``rlops serve --backend ray --replicas 2``), decided for by concurrent
   clients: every answered decision is in the event log, written by both replicas.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlops.client import Client
from rlops.demo.bandit import spec as bandit_spec
from rlops.demo.keys import client_keys
from rlops.engine import Engine
from rlops.errors import NotFoundError
from rlops.evaluation.stress import ControllerSource, StressConfig, run_stress
from rlops.events.layout import Layout, stem_writer
from rlops.home import Home
from rlops.scale import Backend, ray_session
from rlops.scenarios import SyntheticBandit
from rlops.service.runner import ServiceProcess

Say = Callable[[str], None]
#: The deployment the replicas serve.
DEPLOYMENT = "demo-ray"


@dataclass
class ScaleResult:
    """What the summary shows."""

    candidate: str = ""
    tasks: int = 0
    local_seconds: float = 0.0
    ray_start_seconds: float = 0.0
    ray_seconds: float = 0.0
    identical: bool = False
    mean_difference: float = 0.0
    replicas: int = 2
    decisions: int = 0
    logged: int = 0
    writers: int = 0
    serve_seconds: float = 0.0


def _candidate(home: Path) -> tuple[ControllerSource | None, str]:
    """The newest registered HVAC PPO version (verified) as a controller, or None (the thermostat)."""
    from rlops.demo.lifecycle import MODEL
    from rlops.evaluation.controllers import ActMode, PolicyFolderController
    from rlops.registry import Registry
    from rlops.registry.artifact import POLICY

    if not Home(home).exists:  # a new home: nothing registered yet
        return None, "the thermostat"
    with Registry(Home(home)) as registry:
        try:
            record = registry.verify(MODEL)
        except NotFoundError:
            return None, "the thermostat"
        folder = registry.folder(record.name, record.version) / POLICY
    return PolicyFolderController(folder, ActMode.GREEDY), str(record.ref)


def run(home: Path, *, fast: bool = False, seed: int = 0, say: Say = print) -> ScaleResult:
    """Run both halves on ``home`` (a home folder, made if missing)."""
    from rlops.evaluation.variations import ObservationNoise, Variation
    from rlops.scenarios.catalog import get_scenario

    result = ScaleResult()
    spec = get_scenario("hvac")
    candidate, result.candidate = _candidate(home)
    config = StressConfig(episodes=2 if fast else 4, seed=seed,
                          variations=[Variation(name="noise-5%", observation_noise=ObservationNoise(scale=0.05))])
    result.tasks = 2 * config.episodes
    say(f"stress suite of {result.candidate} on 2 local processes")
    started = time.perf_counter()
    local = run_stress(spec, candidate or spec.baseline, None, config, workers=2, progress=False)
    result.local_seconds = time.perf_counter() - started
    say("the same on a private Ray instance (2 actors)")
    started = time.perf_counter()
    with ray_session(num_cpus=2):
        result.ray_start_seconds = time.perf_counter() - started
        started = time.perf_counter()
        on_ray = run_stress(spec, candidate or spec.baseline, None, config, workers=2, progress=False,
                            backend=Backend.RAY)
        result.ray_seconds = time.perf_counter() - started
    result.identical = on_ray.to_dict() == local.to_dict()
    result.mean_difference = on_ray.variation("nominal").difference.estimate

    n = 200 if fast else 600
    segments = Layout(home / "events")
    before = set(segments.segment_stems())
    with Engine(home) as engine:
        engine.apply(bandit_spec(DEPLOYMENT, {"kind": "linucb", "params": {"alpha": 0.5, "epsilon": 0.05}},
                                 online=False))
    say(f"serving deployment {DEPLOYMENT!r} on {result.replicas} Ray Serve replicas")
    with client_keys(home, DEPLOYMENT, 1) as (key,), \
            ServiceProcess(home, replicas=result.replicas, start_timeout=180) as url:
        world = SyntheticBandit()
        contexts = world.sample_contexts(n, np.random.default_rng(seed + 77))
        started = time.perf_counter()
        with Client(url, api_key=key, timeout=30) as client, ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda i: client.decide(DEPLOYMENT, contexts[i], unit_id=f"scale-{i}").decision_id,
                                range(n)))
        result.serve_seconds = time.perf_counter() - started
    result.decisions = len(ids)
    with Engine(home) as engine:
        logged = set(engine.log.read_decisions()["decision_id"].to_pylist())
    result.logged = sum(i in logged for i in ids)
    # The writers of the segments this part's servers made.
    result.writers = len({stem_writer(s) for s in segments.segment_stems() if s not in before})
    return result
