"""The lifecycle demo on the building-HVAC scenario: train, validate, register, serve, canary, drift, retrain, promote.

1. **Train** a Stable-Baselines3 agent on the HVAC scenario (``rlops.training``, the scenario's recipe with the
   demo's step budget) and save it as an rlops policy.
2. **Validate** it: the stress suite against the thermostat (nominal weather, sensor noise, a one-step actuator
   delay) and a latency measurement, judged by the default gates (``rlops.evaluation.validate``).
3. **Register** it as version 1 (signed, with lineage and its report) and move it to canary.
4. **Serve**: the real ``rlops serve`` in its own process. Simulated buildings are the clients: half keep their
   thermostat (the control arm), half ask the service for every 15-minute heating/cooling decision over HTTP and
   report the energy cost and comfort violation of each step as the outcome.
5. **Canary**: a sequential guardrail (``rlops.rollout.guardrails``) compares the canary's reward per decision with
   the thermostat's, batch by batch, with an anytime-valid confidence sequence.
6. **Weather shift** halfway: the outdoor temperature drops by ``shift_k`` kelvin for every building.
7. **Drift**: the live contexts of the shifted phase are compared with the reference profile of the training
   weather (``rlops.monitoring.drift``); the alert fires on the outdoor temperature.
8. **Retrain**: the agent is fine-tuned from version 1 on the shifted weather, validated on it, registered as
   version 2 (parent 1) and hot-swapped into the running server.
9. **Promote**: when the guardrail finds version 2 not worse than the thermostat, it goes to production (version 1
   retires); if it finds it worse, it is rolled back instead, and the summary says so.

The traffic split is made by the simulated buildings themselves (a building is in one arm for the whole demo):
the service's own sticky canary routing belongs to the rollout work still to come. Everything else is the real
code path: HTTP, durable logging, reward join, registry signatures, gates.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Say = Callable[[str], None]

DEPLOYMENT = "hvac"
MODEL = "hvac-ppo"
REWARD = {"name": "hvac-cost", "version": 1, "expression": "-(energy_cost + comfort_violation)",
          "fields": {"energy_cost": {}, "comfort_violation": {"default": 0.0}}, "window": "1h", "missing": 0.0}


@dataclass(frozen=True)
class LifecycleConfig:
    """Sizes of the demo (the defaults fit in a few minutes on two cores).

    Attributes:
        buildings: simulated buildings, half per arm (at least 2).
        days: simulated days per building in each of the three phases (one episode is a day of 96 steps).
        train_steps: environment steps to train version 1.
        retrain_steps: environment steps to fine-tune version 2 on the shifted weather.
        shift_k: change of the outdoor temperature in the shifted phases, kelvin.
        stress_episodes: episodes per stress-suite variation in validation.
        seed: seeds training, weather and validation.
    """

    buildings: int = 4
    days: int = 2
    train_steps: int = 40_000
    retrain_steps: int = 20_000
    shift_k: float = -8.0
    stress_episodes: int = 8
    seed: int = 0

    @classmethod
    def fast(cls) -> LifecycleConfig:
        return cls(buildings=2, days=1, train_steps=2_048, retrain_steps=1_024, stress_episodes=3)


@dataclass(frozen=True)
class ArmPhase:
    """One arm in one phase: per-day means of the scenario's KPIs, and the reward per decision."""

    phase: str
    arm: str
    policy: str
    days: int
    cost_per_day: float
    energy_kwh_per_day: float
    comfort_degree_hours_per_day: float
    reward_per_decision: float


@dataclass
class LifecycleResult:
    """Everything the summary shows."""

    arms: list[ArmPhase] = field(default_factory=list)
    gates: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # version -> (gate, status, why)
    reports: dict[str, Path] = field(default_factory=dict)
    guardrails: list[tuple[str, str, str]] = field(default_factory=list)  # (phase, decision, reason)
    drift: list[tuple[str, str, float]] = field(default_factory=list)  # (feature, severity, psi)
    alerts: list[str] = field(default_factory=list)
    stages: list[tuple[str, str, str]] = field(default_factory=list)  # (version, stage, reason)
    url: str = ""
    decisions_over_http: int = 0
    seconds: float = 0.0


def _shifted(spec: Any, shift_k: float) -> Any:
    """The scenario with its weather shifted (``outdoor_offset`` set, whatever the other constants)."""

    def factory(params: Any = None, **options: Any) -> Any:
        base = params if params is not None else spec.default_params()
        return spec.env_factory(params=dataclasses.replace(base, outdoor_offset=base.outdoor_offset + shift_k),
                                **options)

    return dataclasses.replace(spec, env_factory=factory, id=f"{spec.id}+weather{shift_k:+g}K")


def _save_policy(model: Any, env: Any, folder: Path) -> Path:
    from rlops.evaluation.controllers import schema_for_env
    from rlops.policies import SB3Policy, save_policy

    return save_policy(SB3Policy(schema_for_env(env, name="hvac"), model, deterministic=True), folder)


def _validate(policy: Path, spec: Any, config: LifecycleConfig, out: Path
              ) -> tuple[list[tuple[str, str, str]], Path, str]:
    from rlops.evaluation.report import write_report
    from rlops.evaluation.stress import StressConfig
    from rlops.evaluation.validate import ValidateOptions, validate
    from rlops.evaluation.variations import ActionDelay, ObservationNoise, Variation

    stress = StressConfig(episodes=config.stress_episodes, seed=config.seed, variations=[
        Variation(name="noise-5%", observation_noise=ObservationNoise(scale=0.05)),
        Variation(name="delay-1", action_delay=ActionDelay(steps=1))])
    run = validate(ValidateOptions(policy=policy, scenario=spec, stress=stress, workers=1, seed=config.seed,
                                   command=None), progress_bar=False)
    _, html = write_report(run.results, out)
    return [(g.gate.name, g.status.value, g.reason) for g in run.gates], html, run.status.value


def _building(index: int, arm: str, url: str | None, spec: Any, days: int, seed: int, deployment: str,
              out: dict[str, list[float]], errors: list[str]) -> None:
    """One building: ``days`` episodes, under its thermostat or under the service (decide + report per step)."""
    from rlops.client import Client
    from rlops.evaluation.controllers import observation_to_context, schema_for_env

    env = spec.make()
    schema = schema_for_env(env, name="hvac")
    thermostat = spec.baseline(env)
    client = Client(url) if url else None
    try:
        for day in range(days):
            obs, _ = env.reset(seed=seed + 1000 * index + day)
            thermostat.reset(seed)
            done = False
            while not done:
                if client is None:
                    action = thermostat.act(obs)
                    decision_id = None
                else:
                    d = client.decide(deployment, observation_to_context(schema, obs), unit_id=f"building-{index}")
                    action, decision_id = np.asarray(d.action, dtype=np.float32), d.decision_id
                obs, reward, terminated, truncated, info = env.step(action)
                done = terminated or truncated
                if client is not None and decision_id is not None:
                    client.report(decision_id, {"energy_cost": float(info["energy_cost"]),
                                                "comfort_violation": float(info["comfort_violation"])})
                out["reward"].append(float(reward))
                for key in ("energy_cost", "energy_kwh", "comfort_violation"):
                    out[key].append(float(info[key]))
    except Exception as e:  # report, don't hang the demo: the summary shows it
        errors.append(f"building {index}: {e!r}")
    finally:
        if client is not None:
            client.close()
        env.close()


def _phase(name: str, spec: Any, url: str, config: LifecycleConfig, policy: str, seed: int,
           say: Say) -> tuple[list[ArmPhase], dict[str, np.ndarray], int]:
    say(f"{name}: {config.buildings} buildings x {config.days} days over HTTP")
    results: dict[int, dict[str, list[float]]] = {}
    errors: list[str] = []
    threads = []
    for i in range(config.buildings):
        arm = "canary" if i % 2 else "control"
        results[i] = {"reward": [], "energy_cost": [], "energy_kwh": [], "comfort_violation": []}
        threads.append(threading.Thread(target=_building, args=(i, arm, url if arm == "canary" else None, spec,
                                                                config.days, seed, DEPLOYMENT, results[i], errors)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        from rlops.errors import StorageError

        raise StorageError("a simulated building failed: " + "; ".join(errors[:3]))
    arms = []
    per_arm: dict[str, np.ndarray] = {}
    decisions = 0
    for arm, label in (("control", "thermostat"), ("canary", policy)):
        keys = [i for i in results if ("canary" if i % 2 else "control") == arm]
        merged = {k: np.concatenate([np.asarray(results[i][k]) for i in keys]) for k in results[keys[0]]}
        days = len(keys) * config.days
        arms.append(ArmPhase(name, arm, label, days, float(merged["energy_cost"].sum() / days),
                             float(merged["energy_kwh"].sum() / days), float(merged["comfort_violation"].sum() / days),
                             float(merged["reward"].mean())))
        per_arm[arm] = merged["reward"]
        if arm == "canary":
            decisions += len(merged["reward"])
    return arms, per_arm, decisions


def _guardrail(per_arm: dict[str, np.ndarray]) -> Any:
    from rlops.rollout.guardrails import GuardrailConfig, GuardrailMonitor, MetricGuard, ToleranceKind

    # Reward per decision (negative cost); the canary may be up to 10% of |control's mean| worse.
    control = per_arm["control"]
    tolerance = 0.1 * max(abs(float(control.mean())), 1e-3)
    monitor = GuardrailMonitor(GuardrailConfig(
        metrics=(MetricGuard(name="reward", tolerance=tolerance, tolerance_kind=ToleranceKind.ABSOLUTE),),
        min_samples=96, max_samples=max(len(control), len(per_arm["canary"]))))
    arms = np.concatenate([np.zeros(len(control), dtype=np.int64), np.ones(len(per_arm["canary"]), dtype=np.int64)])
    values = np.concatenate([control, per_arm["canary"]])
    order = np.random.default_rng(0).permutation(len(arms))  # interleaved, as traffic arrives
    result = None
    for chunk in np.array_split(order, 8):  # checked after every batch: the sequence is anytime-valid
        result = monitor.update(arms[chunk], values[chunk])
    return result


def _drift(home: Path, reference: Any, since_us: int) -> list[tuple[str, str, float]]:
    import json

    import pyarrow.compute as pc

    from rlops.engine import Engine
    from rlops.monitoring.drift import batch_drift

    with Engine(home) as engine:
        decisions = engine.log.read_decisions()
    recent = decisions.filter(pc.and_(pc.equal(decisions["deployment"], DEPLOYMENT),
                                      pc.greater_equal(pc.cast(decisions["ts"], "int64"), since_us)))
    contexts = [json.loads(c) for c in recent["context"].to_pylist()]
    report = batch_drift(reference.profile, contexts, schema=reference.schema)
    rows = []
    for f in report.features:
        psi = next((m.value for m in f.metrics if m.metric.value == "psi"), float("nan"))
        rows.append((f.name, f.severity.value, float(psi)))
    return rows


@dataclass(frozen=True)
class _Reference:
    profile: Any
    schema: Any


def _reference(spec: Any, controller: Any, seed: int, days: int = 4) -> _Reference:
    """The reference profile of the training weather: contexts the policy saw over a few simulated days."""
    from rlops.evaluation.controllers import observation_to_context, schema_for_env
    from rlops.monitoring.drift import ReferenceProfile

    env = spec.make()
    schema = schema_for_env(env, name="hvac")
    contexts = []
    for day in range(days):
        obs, _ = env.reset(seed=seed + 50_000 + day)
        done = False
        while not done:
            contexts.append(observation_to_context(schema, obs))
            obs, _, terminated, truncated, _ = env.step(controller.act(obs))
            done = terminated or truncated
    return _Reference(ReferenceProfile.build(schema, contexts), schema)


def run(home: Path, config: LifecycleConfig | None = None, say: Say | None = None) -> LifecycleResult:
    """Run the whole lifecycle in ``home`` (see the module docstring); returns what the summary shows."""
    from rlops.engine import DeploymentSpec, Engine
    from rlops.engine.engine import now_us
    from rlops.home import Home
    from rlops.registry import Lineage, ModelRef, Registry, Stage
    from rlops.scenarios.catalog import get_scenario
    from rlops.service.runner import ServiceProcess
    from rlops.training import recipe, train

    config = config or LifecycleConfig()
    say = say or (lambda _: None)
    started = time.perf_counter()
    result = LifecycleResult()
    spec = get_scenario("hvac")
    shifted = _shifted(spec, config.shift_k)
    work = home / "work"

    say(f"training version 1 on the HVAC scenario ({config.train_steps:,} steps)")
    v1 = train(spec, dataclasses.replace(recipe("hvac", seed=config.seed), steps=config.train_steps),
               progress=False)
    folder_v1 = _save_policy(v1.model, spec.make(), work / "v1")
    say("validating version 1: stress suite against the thermostat, latency")
    result.gates["v1"], result.reports["v1"], verdict = _validate(folder_v1, spec, config, home / "reports" / "v1")
    why_v1 = ("gates passed; canary against the thermostat" if verdict != "fail" else
              "gates FAILED; canary anyway, so the demo shows the guardrail judge it on live traffic")
    reference = _reference(spec, v1, config.seed)

    with Registry(Home(home)) as registry:
        version = registry.register(MODEL, folder_v1, lineage=Lineage(scenario=spec.id, reward_spec="hvac-cost@1"),
                                    report=result.reports["v1"].with_name("report.json"), actor="rlops demo")
        registry.transition(MODEL, version.version, Stage.CANARY, reason=why_v1, actor="rlops demo")
        result.stages.append((f"v{version.version}", "canary", why_v1))
        policy_v1 = registry.folder(MODEL, version.version) / "policy"

    def deploy(policy_folder: Path) -> str:
        with Engine(home) as engine:
            applied = engine.apply(DeploymentSpec.from_dict({
                "name": DEPLOYMENT, "schema": _schema_dict(spec), "reward": REWARD,
                "policy": {"path": str(policy_folder)}}))
        return applied.policy_version

    deploy(policy_v1)
    with ServiceProcess(home) as url:
        result.url = url
        arms, per_arm, n = _phase("1. normal weather", spec, url, config, "PPO v1", config.seed, say)
        result.arms += arms
        result.decisions_over_http += n
        g = _guardrail(per_arm)
        result.guardrails.append(("1. normal weather", g.decision.value, g.reason))
        with Registry(Home(home)) as registry:
            if g.decision.value == "promote":
                registry.transition(MODEL, version.version, Stage.PRODUCTION, actor="rlops demo",
                                    reason="guardrail: not worse than the thermostat")
                result.stages.append((f"v{version.version}", "production", "guardrail: not worse than the thermostat"))
            elif g.decision.value == "rollback":
                registry.transition(MODEL, version.version, Stage.RETIRED, actor="rlops demo",
                                    reason=f"guardrail: {g.reason}")
                result.stages.append((f"v{version.version}", "retired", "rolled back by the guardrail"))

        shift_started = now_us()
        arms, per_arm, n = _phase(f"2. weather {config.shift_k:+g} K", shifted, url, config, "PPO v1",
                                  config.seed + 1, say)
        result.arms += arms
        result.decisions_over_http += n
        g = _guardrail(per_arm)
        result.guardrails.append((f"2. weather {config.shift_k:+g} K", g.decision.value, g.reason))
        say("checking the live contexts for drift against the training weather")
        result.drift = _drift(home, reference, shift_started)
        alerting = [f for f, severity, _ in result.drift if severity == "alert"]
        if alerting:
            result.alerts.append(f"drift alert on {DEPLOYMENT}: {', '.join(alerting)} moved beyond the alert "
                                 "threshold (PSI >= 0.25); retraining")

        say(f"fine-tuning version 2 on the shifted weather ({config.retrain_steps:,} steps)")
        v2 = _fine_tune(v1.model, shifted, config)
        folder_v2 = _save_policy(v2, shifted.make(), work / "v2")
        say("validating version 2 on the shifted weather")
        result.gates["v2"], result.reports["v2"], verdict = _validate(folder_v2, shifted, config,
                                                                      home / "reports" / "v2")
        why_v2 = ("retrained after the drift alert; gates passed" if verdict != "fail" else
                  "retrained after the drift alert; gates FAILED, canary anyway to show the guardrail")
        with Registry(Home(home)) as registry:
            version2 = registry.register(MODEL, folder_v2, lineage=Lineage(scenario=shifted.id,
                                                                            reward_spec="hvac-cost@1",
                                                                            parent=ModelRef(MODEL, version.version)),
                                         report=result.reports["v2"].with_name("report.json"), actor="rlops demo")
            registry.transition(MODEL, version2.version, Stage.CANARY, reason=why_v2, actor="rlops demo")
            result.stages.append((f"v{version2.version}", "canary", why_v2))
            deploy(registry.folder(MODEL, version2.version) / "policy")  # hot swap: the server picks it up
            time.sleep(1.2)
            arms, per_arm, n = _phase(f"3. weather {config.shift_k:+g} K, v2", shifted, url, config, "PPO v2",
                                      config.seed + 2, say)
            result.arms += arms
            result.decisions_over_http += n
            g = _guardrail(per_arm)
            result.guardrails.append((f"3. weather {config.shift_k:+g} K, v2", g.decision.value, g.reason))
            if g.decision.value == "rollback":
                registry.transition(MODEL, version2.version, Stage.RETIRED, reason=f"guardrail: {g.reason}",
                                    actor="rlops demo")
                result.stages.append((f"v{version2.version}", "retired", "rolled back by the guardrail"))
                deploy(policy_v1)
            else:
                reason = ("guardrail: not worse than the thermostat" if g.decision.value == "promote"
                          else "guardrail: no evidence of harm in the demo's sample")
                registry.transition(MODEL, version2.version, Stage.PRODUCTION, reason=reason, actor="rlops demo")
                result.stages.append((f"v{version2.version}", "production", reason))
                # the registry retires whatever was in production before, in the same transaction
                retired = [t for t in registry.history(MODEL, version.version)
                           if t.to_stage is Stage.RETIRED and t.reason.startswith("replaced by")]
                if retired:  # only if v1 was in production (a phase-1 rollback retired it already)
                    result.stages.append((f"v{version.version}", "retired", retired[-1].reason))
    result.seconds = time.perf_counter() - started
    return result


def _schema_dict(spec: Any) -> dict[str, Any]:
    from rlops.evaluation.controllers import schema_for_env

    return schema_for_env(spec.make(), name="hvac").to_dict()


def _fine_tune(model: Any, spec: Any, config: LifecycleConfig) -> Any:
    """Continue training ``model`` (version 1's weights) on ``spec``'s environment: transfer, not a fresh start."""
    import torch
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.set_env(DummyVecEnv([lambda: Monitor(spec.make())]))
        model.set_random_seed(config.seed + 1)
        model.learn(total_timesteps=config.retrain_steps, reset_num_timesteps=False, progress_bar=False)
    finally:
        torch.set_num_threads(threads)
    return model


def write_summary(result: LifecycleResult, path: Path) -> Path:
    """A self-contained HTML page of the lifecycle: KPIs per phase and arm, gates, guardrails, drift, stages."""
    from html import escape

    from rlops.evaluation.svg import COLORS, bar_chart
    from rlops.files import write_atomic

    def table(header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    charts = bar_chart("Energy cost per building-day ($), by phase and arm",
                       [(f"{a.phase} · {a.policy}", a.cost_per_day) for a in result.arms], unit="$")
    charts += bar_chart("Comfort violation per building-day (degree-hours)",
                        [(f"{a.phase} · {a.policy}", a.comfort_degree_hours_per_day) for a in result.arms],
                        unit="K·h")
    sections = [
        ("KPIs", table(["phase", "arm", "policy", "building-days", "cost/day $", "kWh/day", "comfort K·h/day",
                        "reward/decision"],
                       [[a.phase, a.arm, a.policy, str(a.days), f"{a.cost_per_day:.3f}", f"{a.energy_kwh_per_day:.2f}",
                         f"{a.comfort_degree_hours_per_day:.3f}", f"{a.reward_per_decision:.4f}"]
                        for a in result.arms]) + charts),
        ("Gates", "".join(f"<h3>{escape(v)} (<a href='{escape(str(p.relative_to(path.parent)))}'>report</a>)</h3>"
                          + table(["gate", "status", "numbers"], [list(g) for g in result.gates.get(v, [])])
                          for v, p in result.reports.items())),
        ("Canary guardrail", table(["phase", "decision", "why"], [list(g) for g in result.guardrails])),
        ("Drift after the weather shift", table(["feature", "severity", "PSI"],
                                                [[f, s, f"{p:.3f}"] for f, s, p in result.drift])),
        ("Alerts", table(["alert"], [[a] for a in result.alerts]) if result.alerts else "<p>none</p>"),
        ("Registry stages", table(["version", "stage", "why"], [list(s) for s in result.stages])),
    ]
    body = "".join(f"<h2>{escape(t)}</h2>{h}" for t, h in sections)
    css = ("body{font-family:system-ui,sans-serif;max-width:900px;margin:2rem auto;color:#1a202c}"
           "table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{padding:.3rem .5rem;"
           f"border-bottom:1px solid #edf2f7;text-align:left}}h2{{border-bottom:1px solid {COLORS['muted']}}}")
    html = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>rlops demo: HVAC lifecycle</title>"
            f"<style>{css}</style></head><body><h1>rlops demo: the HVAC lifecycle</h1><p>{result.decisions_over_http:,}"
            f" decisions served over HTTP by {escape(result.url)} in {result.seconds:.0f} s.</p>{body}</body></html>")
    write_atomic(path, html)
    return path
