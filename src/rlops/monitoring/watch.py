"""The monitor a running service keeps: signals from the log every few seconds, alert rules over them, and the
gauges ``/metrics`` shows.

Compute, judge, present:

* **compute** (:func:`collect_signals`): the numbers of :func:`rlops.monitoring.live.snapshot` per deployment and
  policy version (reward mean and count over the window, outcomes joined / defaulted / pending / dead-lettered,
  minimum propensity and effective sample size, drift PSI per feature against the version's registered reference),
  plus the canary's guardrail state, the lift of production over the baseline holdout, the registered validation
  gates of each serving version, and, for policies with a reward model, its prediction error and calibration
  slope against the observed rewards. Each is a :class:`~rlops.monitoring.alerts.Signal`.
* **judge** (:class:`Watcher`): the home's alert rules (``HOME/alerts.yaml`` by default) over those signals, with
  the rules' actions wired: ``rollback`` takes the deployment's canary out, ``retrain`` asks ``rlops loop`` for a
  new cycle.
* **present**: the signals are written to ``HOME/monitoring/signals.json``; every server process exposes them on
  ``/metrics`` as gauges named ``rlops_<signal>`` (:class:`SignalCollector`).

Signals (labels in braces; ``window`` is the watcher's window):

======================================  ========================================================================
``reward_mean``, ``reward_count``        {deployment, policy_version}: rewards of decisions in the window
``reward_low``, ``reward_high``          the 95% interval of ``reward_mean``
``decisions_recent``                     {deployment, policy_version}: served decisions in the window
``outcomes_joined``, ``outcomes_defaulted``, ``outcomes_pending``, ``outcomes_dead_lettered``  {deployment,
                                         policy_version}: over the version's whole history
``propensity_min``, ``ess_fraction``     {deployment, policy_version}
``drift_psi``                            {deployment, policy_version, feature}
``guardrail_state``                      {deployment, canary_version}: -1 rollback, 0 continue, 1 promote
``guardrail_canary_n``                   {deployment, canary_version}: canary observations so far
``lift``, ``lift_low``, ``lift_high``    {deployment}: production's mean reward minus the holdout's, 95% interval
``gate_status``                          {deployment, policy_version, gate}: 1 pass, 0.5 warn, 0 fail, -1 skip
``reward_model_bias``, ``reward_model_rmse``, ``reward_model_slope``  {deployment, policy_version}: predicted
                                         minus observed reward; slope of observed on predicted (1 is calibrated)
======================================  ========================================================================
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rlops.errors import ConflictError
from rlops.files import write_atomic
from rlops.monitoring.alerts import Action, AlertEvaluator, AlertRecord, AlertRules, AlertStore, Signal
from rlops.monitoring.live import Z95, MonitorSnapshot, ReferenceCache, snapshot

if TYPE_CHECKING:
    from rlops.engine import Engine
    from rlops.registry import Registry

log = logging.getLogger("rlops.monitor")

SIGNALS_FILE = Path("monitoring") / "signals.json"
RULES_FILE = "alerts.yaml"
_GATE_VALUE = {"pass": 1.0, "warn": 0.5, "fail": 0.0, "skip": -1.0}
_GUARDRAIL_VALUE = {"rollback": -1.0, "continue": 0.0, "promote": 1.0}


def _live_signals(snap: MonitorSnapshot) -> Iterator[Signal]:
    for row in snap.rows:
        labels = {"deployment": row.deployment, "policy_version": row.policy_version}
        yield Signal("decisions_recent", labels, float(row.recent))
        yield Signal("outcomes_joined", labels, float(row.joined))
        yield Signal("outcomes_defaulted", labels, float(row.defaulted))
        yield Signal("outcomes_pending", labels, float(max(row.pending, 0)))
        yield Signal("outcomes_dead_lettered", labels, float(row.dead_letters))
        if row.reward is not None:
            yield Signal("reward_mean", labels, row.reward.mean)
            yield Signal("reward_count", labels, float(row.reward.n))
            yield Signal("reward_low", labels, row.reward.low)
            yield Signal("reward_high", labels, row.reward.high)
        if row.min_propensity is not None:
            yield Signal("propensity_min", labels, row.min_propensity)
        if row.ess_fraction is not None:
            yield Signal("ess_fraction", labels, row.ess_fraction)
        if row.drift is not None:
            for feature, psi in row.drift.features:
                yield Signal("drift_psi", {**labels, "feature": feature}, psi)


def _lift(engine: Engine, name: str, rewards: pa.Table) -> Iterator[Signal]:
    arms = {a.role.value: a.policy_version for a in engine.arms(name)}
    if "holdout" not in arms:
        return
    values = {}
    for role in ("production", "holdout"):
        picked = rewards.filter(pc.equal(rewards["policy_version"], arms[role]))
        values[role] = np.asarray(picked["reward"].to_numpy(zero_copy_only=False), dtype=np.float64)
    p, h = values["production"], values["holdout"]
    if p.size < 2 or h.size < 2:
        return
    lift = float(p.mean() - h.mean())
    se = math.sqrt(p.var(ddof=1) / p.size + h.var(ddof=1) / h.size)
    labels = {"deployment": name}
    yield Signal("lift", labels, lift)
    yield Signal("lift_low", labels, lift - Z95 * se)
    yield Signal("lift_high", labels, lift + Z95 * se)


def reward_model_error(predict: Any, schema: Any, rewards: pa.Table) -> tuple[float, float, float] | None:
    """``(bias, rmse, slope)`` of a reward model on logged rows: predicted minus observed reward, and the
    least-squares slope of observed on predicted (``None`` without a reward model or with under 10 rows).

    ``predict``: a policy's ``expected_rewards`` (or the engine's locked version of it)."""
    from rlops.policies import PolicyInput

    if rewards.num_rows < 10:
        return None
    contexts = [json.loads(c) for c in rewards["context"].to_pylist()]
    candidates = None
    if rewards["candidate_features"].null_count < rewards.num_rows:
        candidates = [[{"id": str(j), "features": f} for j, f in enumerate(json.loads(c))]
                      for c in rewards["candidate_features"].to_pylist()]
    batch = PolicyInput.from_contexts(schema, contexts, candidates)
    expected = predict(batch)
    if expected is None:
        return None
    chosen = np.asarray(rewards["action_index"].to_numpy(zero_copy_only=False), dtype=np.int64)
    if isinstance(expected, np.ndarray):
        predicted = expected[np.arange(len(chosen)), chosen]
    else:
        predicted = np.array([row[a] for row, a in zip(expected, chosen, strict=True)])
    observed = np.asarray(rewards["reward"].to_numpy(zero_copy_only=False), dtype=np.float64)
    error = predicted - observed
    spread = float(np.var(predicted))
    slope = float(np.cov(predicted, observed, ddof=0)[0, 1] / spread) if spread > 1e-12 else math.nan
    return float(error.mean()), float(math.sqrt((error**2).mean())), slope


def _gates(registry: Registry, name: str, version: str) -> Iterator[Signal]:
    from rlops.registry import ModelRef

    if "@" not in version or "@r" in version:
        return
    ref = ModelRef.parse(version)
    report = registry.details(ref.name, ref.version).report
    for gate in (report or {}).get("gates", []):
        title = str(gate.get("gate", {}).get("name", "?"))
        value = _GATE_VALUE.get(str(gate.get("status")))
        if value is not None:
            yield Signal("gate_status", {"deployment": name, "policy_version": version, "gate": title}, value)


def collect_signals(engine: Engine, *, window_s: float = 300.0, registry: Registry | None = None,
                    references: ReferenceCache | None = None) -> list[Signal]:
    """Every signal of every deployment now (see the module docs); a deployment that fails is skipped."""
    from rlops.engine.engine import now_us
    from rlops.rollout.operations import Rollout

    tables = (engine.log.read_decisions(), engine.log.read_outcomes())  # one read of the log for everything
    signals = list(_live_signals(snapshot(engine, window_s=window_s, references=references, tables=tables)))
    since = now_us() - round(window_s * 1e6)
    joined = engine.join_all(include_pending=True, tables=tables)
    for name in engine.store.names():
        try:
            interactions = joined[name].interactions
            if not engine.spec(name).early_outcomes_usable:  # early outcomes would be a selected sample
                interactions = interactions.filter(interactions["window_closed"])
            canary, _, result = Rollout(engine).judge(name, interactions)
            if canary is not None and result is not None:
                labels = {"deployment": name, "canary_version": canary}
                signals.append(Signal("guardrail_state", labels, _GUARDRAIL_VALUE[result.decision.value]))
                signals.append(Signal("guardrail_canary_n", labels, float(result.n_canary)))
            rewards = interactions.filter(pc.greater_equal(pc.cast(interactions["ts"], pa.int64()), since))
            signals.extend(_lift(engine, name, rewards))
            for arm in engine.arms(name):
                if arm.role.value == "shadow":
                    continue
                if registry is not None:
                    signals.extend(_gates(registry, name, arm.policy_version))
                mine = rewards.filter(pc.equal(rewards["policy_version"], arm.policy_version))
                predict = functools.partial(engine.expected_rewards, name, arm.name)
                error = reward_model_error(predict, engine.spec(name).schema_, mine)
                if error is not None:
                    labels = {"deployment": name, "policy_version": arm.policy_version}
                    for key, value in zip(("bias", "rmse", "slope"), error, strict=True):
                        if math.isfinite(value):
                            signals.append(Signal(f"reward_model_{key}", labels, value))
        except Exception as e:  # one deployment's trouble must not silence every other signal
            log.warning("monitor: deployment %s skipped: %s", name, e)
    return signals


def write_signals(path: Path, signals: Sequence[Signal], as_of_us: int) -> None:
    """Write the signals where every server process's ``/metrics`` reads them."""
    data = {"as_of_us": as_of_us, "signals": [{"name": s.name, "labels": dict(s.labels), "value": s.value}
                                              for s in signals if math.isfinite(s.value)]}
    write_atomic(path, json.dumps(data))


class SignalCollector(Collector):
    """Prometheus gauges ``rlops_<signal>`` from the signals file the leader writes (absent file: no gauges)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        families: dict[str, GaugeMetricFamily] = {}
        for item in data.get("signals", []):
            name, labels = f"rlops_{item['name']}", item["labels"]
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(name, f"rlops monitor signal {item['name']}",
                                                           labels=sorted(labels))
            family.add_metric([labels[k] for k in sorted(labels)], float(item["value"]))
        age = GaugeMetricFamily("rlops_monitor_as_of_seconds", "When the monitor signals were computed (epoch s).")
        age.add_metric([], data.get("as_of_us", 0) / 1e6)
        yield age
        yield from families.values()


class Watcher:
    """The leader's monitor: compute signals, evaluate alert rules with real actions, write the metrics file.

    A :class:`~rlops.rollout.supervisor.Supervisor` hook: call it with the engine after every tick; it does its
    work at most every ``interval`` seconds.

    Args:
        rules: alert rules (default: ``HOME/alerts.yaml`` if it exists, else no alerts).
        window_s: the window of the reward, traffic and drift signals, seconds (default 300).
        interval: seconds between evaluations (default 5).
    """

    def __init__(self, *, rules: AlertRules | None = None, window_s: float = 300.0, interval: float = 5.0) -> None:
        self.rules, self.window_s, self.interval = rules, window_s, interval
        self._last = -math.inf
        self._evaluator: AlertEvaluator | None = None
        self.last_signals: list[Signal] = []

    def _alerts(self, engine: Engine) -> AlertEvaluator | None:
        if self._evaluator is not None:
            return self._evaluator
        rules = self.rules
        path = engine.home.root / RULES_FILE
        if rules is None and path.exists():
            rules = AlertRules.load(path)
        if rules is None:
            return None
        self._evaluator = AlertEvaluator(rules, AlertStore.for_home(engine.home), actions={
            Action.ROLLBACK: lambda alert: _rollback(engine, alert),
            Action.RETRAIN: lambda alert: _retrain(engine, alert)})
        return self._evaluator

    def __call__(self, engine: Engine) -> None:
        import time

        from rlops.engine.engine import now_us
        from rlops.registry import Registry

        if time.monotonic() - self._last < self.interval:
            return
        self._last = time.monotonic()
        with Registry(engine.home) as registry:
            signals = collect_signals(engine, window_s=self.window_s, registry=registry,
                                      references=ReferenceCache(registry))
        now = now_us()
        write_signals(engine.home.root / SIGNALS_FILE, signals, now)
        self.last_signals = signals
        evaluator = self._alerts(engine)
        if evaluator is not None:
            for event in evaluator.evaluate(signals, now):
                log.warning("alert %s %s: %s", event.alert.rule, event.transition.value, event.alert.message)


def _rollback(engine: Engine, alert: AlertRecord) -> str:
    from rlops.rollout.operations import Rollout

    name = alert.labels.get("deployment")
    if not name:
        return "no deployment label: nothing rolled back"
    latest = engine.store.latest(name)  # not the engine's cached spec: it may be a second old
    canary = next((a["version"] for a in latest.arms if a["role"] == "canary"), None)
    if canary is None:
        return f"{name} has no canary: nothing rolled back (an alert never rolls production back)"
    if alert.labels.get("policy_version") not in (None, canary) or alert.labels.get("canary_version") not in (
            None, canary):
        return f"the alert is about another version than {name}'s canary {canary}: nothing rolled back"
    try:
        change = Rollout(engine, actor=f"alert:{alert.rule}").rollback(
            name, reason=f"alert {alert.rule}: {alert.message}", expected_canary=canary)
    except ConflictError as e:
        return f"not rolled back: {e}"
    return f"rolled back {change.version} (revision {change.revision})"


def _retrain(engine: Engine, alert: AlertRecord) -> str:
    from rlops.rollout.loop import request_retrain

    name = alert.labels.get("deployment")
    if not name:
        return "no deployment label: nothing to retrain"
    path = request_retrain(engine.home.root, name, f"alert {alert.rule}: {alert.message}")
    return f"retraining requested ({path.name}); `rlops loop {name}` picks it up"
