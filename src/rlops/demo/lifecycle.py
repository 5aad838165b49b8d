"""The lifecycle demo on the building-HVAC scenario: train, validate, register, serve, canary, drift, retrain, promote.

1. **Train** a Stable-Baselines3 agent on the HVAC scenario (``rlops.training``, the scenario's recipe with the
   demo's step budget) and save it as an rlops policy.
2. **Validate** it: the stress suite against the thermostat (nominal weather, sensor noise, a one-step actuator
   delay) and a latency measurement, judged by the default gates (``rlops.evaluation.validate``).
3. **Register** it as ``hvac-ppo@1`` (signed, with lineage, its report and the reference profile of the training
   weather).
4. **Serve**: the real ``rlops serve`` in its own process, deployment ``hvac`` with the thermostat (served as a
   rule) in production and ``hvac-ppo@1`` as a canary on half of the buildings. The split is the service's own:
   sticky by building id. Simulated buildings are the clients: each asks the service for every 15-minute
   heating/cooling decision over HTTP and reports the energy cost and comfort violation of each step.
5. **Canary**: the server's supervisor compares the canary's reward per decision with production's after every
   batch with an anytime-valid confidence sequence, and promotes or rolls back on its own (if it has not decided
   15 s after a phase, the demo runs the same check itself, as ``rlops deploy check`` would; the history names
   who acted).
6. **Holdout**: after the promotion a quarter of the buildings stays on the thermostat, so the lift of production
   over the baseline is measured continuously.
7. **Weather shift**: the outdoor temperature drops by ``shift_k`` kelvin for every building. The server's monitor
   compares the live contexts with ``hvac-ppo@1``'s reference profile; the alert rule ``weather-drift`` fires and
   its action asks for retraining.
8. **Retrain**: the agent is fine-tuned from version 1 on the shifted weather (transfer), validated, registered as
   ``hvac-ppo@2`` (parent 1), shadowed next to production, then canaried; the guardrail promotes or rolls it back.

Everything is the real code path: HTTP, durable logging, sticky routing, reward join, registry signatures, gates,
the supervisor's guardrail and the monitor's alert rules.
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
BASELINE_MODEL = "hvac-thermostat"
REWARD = {"name": "hvac-cost", "version": 1, "expression": "-(energy_cost + comfort_violation)",
          "fields": {"energy_cost": {}, "comfort_violation": {"default": 0.0}}, "window": "1h", "missing": 0.0}


@dataclass(frozen=True)
class LifecycleConfig:
    """Sizes of the demo (the defaults fit in a few minutes on two cores).

    Attributes:
        buildings: simulated buildings (at least 4; the demo picks a split salt that spreads them evenly).
        days: simulated days per building in each of the three phases (one episode is a day of 96 steps).
        train_steps: environment steps to train version 1.
        retrain_steps: environment steps to fine-tune version 2 on the shifted weather.
        shift_k: change of the outdoor temperature in the shifted phases, kelvin.
        stress_episodes: episodes per stress-suite variation in validation.
        seed: seeds training, weather and validation.
    """

    buildings: int = 8
    days: int = 2
    train_steps: int = 40_000
    retrain_steps: int = 20_000
    shift_k: float = -8.0
    stress_episodes: int = 8
    seed: int = 0

    @classmethod
    def fast(cls) -> LifecycleConfig:
        return cls(buildings=4, days=2, train_steps=2_048, retrain_steps=1_024, stress_episodes=3)


@dataclass(frozen=True)
class ArmPhase:
    """One arm in one phase: per-day means of the scenario's KPIs, and the reward per decision."""

    phase: str
    arm: str
    policy: str
    days: float
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
    changes: list[tuple[str, str, str, str]] = field(default_factory=list)  # (action, version, actor, reason)
    lift: tuple[float, float, float] | None = None  # production minus holdout reward/decision, 95% interval
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


def balanced_salt(units: list[str], parts: int) -> str:
    """A split salt under which ``units`` fall one per ``1/parts`` of the unit interval (``len(units) == parts``).

    With a handful of units, a random split can be lopsided (all buildings on one arm); a demo with few units picks
    a salt that spreads them, so fractions like 1/2 or 1/4 of the units are exact. Real deployments, with many
    units, keep the default salt.
    """
    from rlops.rollout.split import unit_position

    for attempt in range(100_000):
        salt = f"{DEPLOYMENT}-{attempt}"
        slots = sorted(int(unit_position(salt, u) * parts) for u in units)
        if slots == list(range(parts)):
            return salt
    raise RuntimeError("no balanced salt found")  # pragma: no cover - 8 units: about one salt in 400 works


def _building(index: int, url: str, key: str, spec: Any, days: int, seed: int,
              out: dict[str, dict[str, list[float]]], errors: list[str]) -> None:
    """One building: ``days`` episodes, every step decided by the service (whichever arm serves the building)."""
    from rlops.client import Client
    from rlops.evaluation.controllers import observation_to_context, schema_for_env

    env = spec.make()
    schema = schema_for_env(env, name="hvac")
    client = Client(url, api_key=key)
    try:
        for day in range(days):
            obs, _ = env.reset(seed=seed + 1000 * index + day)
            done = False
            while not done:
                d = client.decide(DEPLOYMENT, observation_to_context(schema, obs), unit_id=f"building-{index}")
                obs, reward, terminated, truncated, info = env.step(np.asarray(d.action, dtype=np.float32))
                done = terminated or truncated
                client.report(d.decision_id, {"energy_cost": float(info["energy_cost"]),
                                              "comfort_violation": float(info["comfort_violation"])})
                mine = out.setdefault(d.policy_version, {k: [] for k in ("reward", "energy_cost", "energy_kwh",
                                                                         "comfort_violation", "days")})
                mine["reward"].append(float(reward))
                for key in ("energy_cost", "energy_kwh", "comfort_violation"):
                    mine[key].append(float(info[key]))
            mine["days"].append(1.0)
    except Exception as e:  # report, don't hang the demo: the summary shows it
        errors.append(f"building {index}: {e!r}")
    finally:
        client.close()
        env.close()


def _canary(engine: Any, ref: str, share: float, why: str, say: Say) -> None:
    """Put a registered version in canary; one whose validation gates failed (the demo trains for minutes, not
    hours) goes in only through an override, said out loud and recorded in the audit log."""
    from rlops.engine.deployment import PolicySource
    from rlops.registry import ModelRef, Registry
    from rlops.rollout.operations import Rollout

    parsed = ModelRef.parse(ref, require_version=True)
    with Registry(engine.home) as registry:
        failed = registry.failed_gates(parsed.name, int(parsed.version or 0))
    if failed:
        say(f"{ref} failed gates ({', '.join(failed)}): overriding them, recorded in the audit log, so that the "
            "canary's live guardrail decides")
        why = f"gate override: {', '.join(failed)} failed on the demo's short training; {why}"
    else:
        why = f"gates passed; {why}"
    Rollout(engine, actor="rlops demo", override_gates=bool(failed)).canary(DEPLOYMENT, PolicySource(version=ref),
                                                                          share, reason=why)


def _phase(name: str, spec: Any, url: str, keys: list[str], config: LifecycleConfig, labels: dict[str, str],
           seed: int, say: Say) -> tuple[list[ArmPhase], int]:
    """Every building for ``config.days`` days over HTTP; KPIs per policy version that served (its arm)."""
    say(f"{name}: {config.buildings} buildings x {config.days} days over HTTP")
    per_building: dict[int, dict[str, dict[str, list[float]]]] = {i: {} for i in range(config.buildings)}
    errors: list[str] = []
    threads = [threading.Thread(target=_building, args=(i, url, keys[i], spec, config.days, seed, per_building[i],
                                                        errors))
               for i in range(config.buildings)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        from rlops.errors import StorageError

        raise StorageError("a simulated building failed: " + "; ".join(errors[:3]))
    merged: dict[str, dict[str, list[float]]] = {}
    for versions in per_building.values():
        for version, values in versions.items():
            target = merged.setdefault(version, {k: [] for k in values})
            for key, items in values.items():
                target[key].extend(items)
    arms, decisions = [], 0
    for version, m in sorted(merged.items()):
        # A building can change arm mid-day (a canary rolled back), so days are counted in decisions: 96 a day.
        days = len(m["reward"]) / 96
        arms.append(ArmPhase(name, labels.get(version, "?"), version, days, float(np.sum(m["energy_cost"]) / days),
                             float(np.sum(m["energy_kwh"]) / days), float(np.sum(m["comfort_violation"]) / days),
                             float(np.mean(m["reward"]))))
        decisions += len(m["reward"])
    return arms, decisions


def _simulate(spec: Any, act: Callable[[Any, dict[str, Any]], Any], first_seed: int, days: int
              ) -> tuple[Any, list[dict[str, Any]], list[float]]:
    """Run ``days`` simulated days locally; ``act(observation, context)`` chooses. Returns the schema, the
    contexts seen and the rewards."""
    from rlops.evaluation.controllers import observation_to_context, schema_for_env

    env = spec.make()
    schema = schema_for_env(env, name="hvac")
    contexts, rewards = [], []
    for day in range(days):
        obs, _ = env.reset(seed=first_seed + day)
        done = False
        while not done:
            context = observation_to_context(schema, obs)
            contexts.append(context)
            obs, reward, terminated, truncated, _ = env.step(np.asarray(act(obs, context), dtype=np.float32))
            rewards.append(float(reward))
            done = terminated or truncated
    return schema, contexts, rewards


def _thermostat_reward(spec: Any, seed: int, days: int = 2) -> float:
    """The served thermostat rule's mean reward per decision on a few simulated days (sets the guardrail's
    tolerance: 10% of it)."""
    from rlops.scenarios.hvac import thermostat_rule

    _, _, rewards = _simulate(spec, lambda _, context: thermostat_rule(context), seed + 90_000, days)
    return float(np.mean(rewards))


def _verdict(engine: Any, version: str, since_us: int, timeout: float = 15.0) -> tuple[str, str]:
    """How the server's guardrail ended ``version``'s canary (``promote``/``rollback`` and why); if it has not
    decided within ``timeout`` seconds, the demo asks the guardrail itself, as ``rlops deploy check`` would."""
    from rlops.rollout.operations import Rollout

    deadline = time.monotonic() + timeout
    while True:
        for change in reversed(engine.store.changes(DEPLOYMENT)):
            if change.ts_us < since_us:
                break
            if change.version == version and change.action in ("promote", "rollback"):
                said = change.reason if change.reason.startswith(change.actor) else f"{change.actor}: {change.reason}"
                return change.action, said
        if time.monotonic() > deadline:
            check = Rollout(engine, actor="rlops demo").check(DEPLOYMENT)
            if check.action == "none":
                reason = check.result.reason if check.result else "no verdict"
                return "continue", f"no verdict yet ({reason}); the canary stays"
            continue
        time.sleep(0.5)


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
    from rlops.monitoring.drift import ReferenceProfile

    schema, contexts, _ = _simulate(spec, lambda obs, _: controller.act(obs), seed + 50_000, days)
    return _Reference(ReferenceProfile.build(schema, contexts), schema)


ALERT_RULES = """\
# The demo's alert rules (see docs/alerts.md): read by the server's monitor every second.
resolve_after: 0
rules:
  - name: weather-drift
    signal: drift_psi
    match: {feature: obs_2}          # the outdoor temperature (the time-of-day features drift in any short window)
    op: ">"
    threshold: 0.25
    severity: warning
    action: retrain
    description: the outdoor temperature moved away from the serving version's reference profile (PSI > 0.25)
"""


def run(home: Path, config: LifecycleConfig | None = None, say: Say | None = None) -> LifecycleResult:
    """Run the whole lifecycle in ``home`` (see the module docstring); returns what the summary shows."""
    import os

    from rlops.demo.keys import client_keys, viewer_key
    from rlops.engine import DeploymentSpec, Engine
    from rlops.engine.deployment import PolicySource
    from rlops.engine.engine import now_us
    from rlops.home import Home
    from rlops.monitoring.alerts import AlertStore
    from rlops.registry import Lineage, ModelRef, Registry
    from rlops.rollout.loop import take_trigger
    from rlops.rollout.operations import Rollout
    from rlops.scenarios.catalog import get_scenario
    from rlops.service.runner import ServiceProcess
    from rlops.training import SB3Controller, recipe, train

    config = config or LifecycleConfig()
    if config.buildings < 4:
        raise ValueError("buildings: the lifecycle needs at least 4 buildings (canary, holdout, production)")
    say = say or (lambda _: None)
    started = time.perf_counter()
    result = LifecycleResult()
    spec = get_scenario("hvac")
    shifted = _shifted(spec, config.shift_k)
    work = home / "work"
    units = [f"building-{i}" for i in range(config.buildings)]
    salt = balanced_salt(units, config.buildings)
    baseline = _thermostat_reward(spec, config.seed)
    # The guardrail's sample: a full day of every canary building (half of them). Rewards within a day are not
    # exchangeable (a policy that pre-heats at night pays in the morning and saves in the afternoon), so a verdict
    # on part of a day would judge the wrong thing.
    per_arm = config.buildings // 2 * 96

    say(f"training version 1 on the HVAC scenario ({config.train_steps:,} steps)")
    v1 = train(spec, dataclasses.replace(recipe("hvac", seed=config.seed), steps=config.train_steps),
               progress=False)
    folder_v1 = _save_policy(v1.model, spec.make(), work / "v1")
    say("validating version 1: stress suite against the thermostat, latency")
    result.gates["v1"], result.reports["v1"], _ = _validate(folder_v1, spec, config, home / "reports" / "v1")
    reference = _reference(spec, v1, config.seed)
    with Registry(Home(home)) as registry:
        version = registry.register(MODEL, folder_v1, lineage=Lineage(scenario=spec.id, reward_spec="hvac-cost@1"),
                                    report=result.reports["v1"].with_name("report.json"), actor="rlops demo",
                                    reference=reference.profile)
        # The thermostat is registered too, with the same reference profile: whichever serves production, the
        # monitor has a profile to measure drift against.
        from rlops.policies import RulePolicy, save_policy

        rule = save_policy(RulePolicy(reference.schema, target="rlops.scenarios.hvac:thermostat_rule"),
                           work / "thermostat")
        baseline_version = registry.register(BASELINE_MODEL, rule, lineage=Lineage(scenario=spec.id),
                                             actor="rlops demo", reference=reference.profile)
    ref_v1 = f"{MODEL}@{version.version}"
    thermostat = PolicySource(version=f"{BASELINE_MODEL}@{baseline_version.version}")

    (home / "alerts.yaml").write_text(ALERT_RULES)
    with Engine(home) as engine:
        engine.apply(DeploymentSpec.from_dict({
            "name": DEPLOYMENT, "schema": _schema_dict(spec), "reward": REWARD, "policy": thermostat.model_dump(),
            "salt": salt, "all_outcomes_reported": True,  # every building reports every step's outcome
            "guardrail": {
                "metrics": [{"name": "reward", "tolerance": round(0.1 * abs(baseline), 6)}],
                "min_samples": per_arm, "max_samples": per_arm}}))
        labels = {str(thermostat.version): "thermostat"}
        _canary(engine, ref_v1, 0.5, "canary against the thermostat", say)
        labels[ref_v1] = "PPO v1"
    # The server's monitor looks every second at the last 30 s (a demo's phases last seconds, not hours).
    previous = {k: os.environ.get(k) for k in ("RLOPS_MONITOR_INTERVAL", "RLOPS_MONITOR_WINDOW")}
    os.environ.update({"RLOPS_MONITOR_INTERVAL": "1", "RLOPS_MONITOR_WINDOW": "30"})
    try:
        with (ServiceProcess(home) as url, Engine(home) as engine,
              client_keys(home, DEPLOYMENT, config.buildings) as keys, viewer_key(home) as viewer):
            result.url = url
            say(f"dashboard: {url}/#key={viewer} (live while the demo runs; this viewer key is revoked at the end)")
            rollout = Rollout(engine, actor="rlops demo")
            phase_started = now_us()
            arms, n = _phase("1. normal weather", spec, url, keys, config, labels, config.seed, say)
            result.arms += arms
            result.decisions_over_http += n
            decision, why = _verdict(engine, ref_v1, phase_started)
            result.guardrails.append(("1. PPO v1 vs thermostat", decision, why))
            if decision == "promote":
                rollout.holdout(DEPLOYMENT, thermostat, 0.25,
                                reason="keep a quarter of the buildings on the thermostat to measure the lift")

            shift_started = now_us()
            arms, n = _phase(f"2. weather {config.shift_k:+g} K", shifted, url, keys, config, labels,
                             config.seed + 1, say)
            result.arms += arms
            result.decisions_over_http += n
            say("waiting for the server's monitor: drift against hvac-ppo@1's reference profile")
            store = AlertStore.for_home(Home(home))
            deadline = time.monotonic() + 20
            fired: list[Any] = []
            while time.monotonic() < deadline and not fired:
                fired = [a for a in store.list_alerts(since_us=shift_started) if a.rule == "weather-drift"]
                time.sleep(0.5)
            for alert in fired:
                result.alerts.append(f"{alert.rule} on {alert.labels.get('deployment')}: "
                                     f"{alert.labels.get('feature')} PSI {alert.value:.2f} > 0.25; "
                                     f"action: {alert.action_result}")
            result.drift = _drift(home, reference, shift_started)
            trigger = take_trigger(home, DEPLOYMENT)
            if trigger is None:
                say("no retrain trigger from the monitor: retraining anyway, as the demo's script says")

            say(f"fine-tuning version 2 on the shifted weather ({config.retrain_steps:,} steps)")
            v2 = _fine_tune(v1.model, shifted, config)
            folder_v2 = _save_policy(v2, shifted.make(), work / "v2")
            say("validating version 2 on the shifted weather")
            result.gates["v2"], result.reports["v2"], _ = _validate(folder_v2, shifted, config,
                                                                    home / "reports" / "v2")
            with Registry(Home(home)) as registry:
                version2 = registry.register(MODEL, folder_v2, lineage=Lineage(
                    scenario=shifted.id, reward_spec="hvac-cost@1", parent=ModelRef(MODEL, version.version)),
                    report=result.reports["v2"].with_name("report.json"), actor="rlops demo",
                    reference=_reference(shifted, SB3Controller(v2), config.seed).profile)
            ref_v2 = f"{MODEL}@{version2.version}"
            labels[ref_v2] = "PPO v2"
            production = engine.arms(DEPLOYMENT)[0].policy_version
            labels.setdefault(production, "production")
            rollout.shadow(DEPLOYMENT, PolicySource(version=ref_v2), shadow="retrained",
                           reason="retrained after the weather-drift alert: shadow first")
            time.sleep(1.2)  # the server picks up a new revision within a second
            arms, n = _phase(f"3. weather {config.shift_k:+g} K, v2 in shadow", shifted,
                             url, keys, dataclasses.replace(config, days=1), labels, config.seed + 2, say)
            result.arms += arms
            result.decisions_over_http += n
            canary_share = 0.5  # half of the buildings; the holdout (if any) keeps its quarter
            canary_started = now_us()
            _canary(engine, ref_v2, canary_share, "shadow logged its decisions without errors; canary", say)
            time.sleep(1.2)
            arms, n = _phase(f"4. weather {config.shift_k:+g} K, v2 canary", shifted, url, keys, config, labels,
                             config.seed + 3, say)
            result.arms += arms
            result.decisions_over_http += n
            decision2, why2 = _verdict(engine, ref_v2, canary_started)
            result.guardrails.append((f"4. PPO v2 vs {labels.get(production, production)}", decision2, why2))
            lift = [s for s in _signals(home) if s["name"] in ("lift", "lift_low", "lift_high")]
            if len(lift) == 3:
                values = {s["name"]: s["value"] for s in lift}
                result.lift = (values["lift"], values["lift_low"], values["lift_high"])
            result.changes = [(c.action, c.version or "", c.actor, c.reason)
                              for c in engine.store.changes(DEPLOYMENT)]
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    with Registry(Home(home)) as registry:
        for v in registry.versions(MODEL):
            for t in registry.history(MODEL, v.version):
                result.stages.append((f"{MODEL}@{v.version}", t.to_stage.value, t.reason))
    result.seconds = time.perf_counter() - started
    return result


def _signals(home: Path) -> list[dict[str, Any]]:
    """The monitor's latest signals (``HOME/monitoring/signals.json``), ``[]`` before its first look."""
    import json

    from rlops.monitoring.watch import SIGNALS_FILE

    try:
        return list(json.loads((home / SIGNALS_FILE).read_text())["signals"])
    except (OSError, ValueError, KeyError):
        return []


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
                       [[a.phase, a.arm, a.policy, f"{a.days:.1f}", f"{a.cost_per_day:.3f}",
                         f"{a.energy_kwh_per_day:.2f}", f"{a.comfort_degree_hours_per_day:.3f}",
                         f"{a.reward_per_decision:.4f}"]
                        for a in result.arms]) + charts),
        ("Gates", "".join(f"<h3>{escape(v)} (<a href='{escape(str(p.relative_to(path.parent)))}'>report</a>)</h3>"
                          + table(["gate", "status", "numbers"], [list(g) for g in result.gates.get(v, [])])
                          for v, p in result.reports.items())),
        ("Canary guardrail", table(["phase", "decision", "why"], [list(g) for g in result.guardrails])),
        ("Drift after the weather shift", table(["feature", "severity", "PSI"],
                                                [[f, s, f"{p:.3f}"] for f, s, p in result.drift])),
        ("Alerts", table(["alert"], [[a] for a in result.alerts]) if result.alerts else "<p>none</p>"),
        ("Rollout history of deployment hvac", table(["action", "version", "by", "why"],
                                                      [list(c) for c in result.changes])),
        ("Registry stages", table(["version", "stage", "why"], [list(s) for s in result.stages])),
    ]
    if result.lift is not None:
        sections.insert(3, ("Lift over the thermostat holdout", "<p>production minus holdout, reward per decision: "
                            f"{result.lift[0]:+.4f} (95% interval {result.lift[1]:+.4f} to {result.lift[2]:+.4f})</p>"))
    body = "".join(f"<h2>{escape(t)}</h2>{h}" for t, h in sections)
    css = ("body{font-family:system-ui,sans-serif;max-width:900px;margin:2rem auto;color:#1a202c}"
           "table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{padding:.3rem .5rem;"
           f"border-bottom:1px solid #edf2f7;text-align:left}}h2{{border-bottom:1px solid {COLORS['muted']}}}")
    html = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>rlops demo: HVAC lifecycle</title>"
            f"<style>{css}</style></head><body><h1>rlops demo: the HVAC lifecycle</h1><p>{result.decisions_over_http:,}"
            f" decisions served over HTTP by {escape(result.url)} in {result.seconds:.0f} s.</p>{body}</body></html>")
    write_atomic(path, html)
    return path
