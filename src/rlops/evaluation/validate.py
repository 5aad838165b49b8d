"""``rlops validate``: every pre-deployment check on one candidate policy, then the gates, then the report.

Order matters: inputs are checked before anything is computed (a policy that does not load, logged data that
would corrupt the estimates, a policy whose action space does not match the data), then off-policy evaluation on
the logged data, the scenario stress suite, the resource measurement, and finally the gates over all of it. The
result is one nested dict (``report.json``) whose dotted paths are what gates name (``docs/validation.md`` lists
them), and ``report.html``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlops.errors import ValidationError
from rlops.evaluation.gates import Gate, GateResult, GatesFile, Op, evaluate_all, overall
from rlops.evaluation.status import Status
from rlops.scale.backend import Backend

#: The gates used when no gates file is given: the issue's checklist, with the thresholds it names.
DEFAULT_GATES = GatesFile(gates=[
    Gate(name="DR lower bound beats the logging policy", metric="ope.estimates.dr.interval.low", op=Op.GT,
         than="ope.logging.value"),
    Gate(name="stress CVaR no more than 5% worse than the baseline's", metric="stress.variations.*.candidate.cvar",
         op=Op.GE, than="stress.variations.*.baseline.cvar", tolerance=0.05),
    Gate(name="constraint violations under 1% of steps", metric="stress.variations.*.candidate.violation_rate",
         op=Op.LT, value=0.01),
    Gate(name="p99 act latency under 2 ms", metric="budget.measurement.p99_ms", op=Op.LT, value=2.0),
])


@dataclass(frozen=True)
class ValidateOptions:
    """What to validate and against what.

    Attributes:
        policy: the candidate's policy folder.
        events: logged interactions (Parquet file or home folder) for off-policy evaluation; ``None`` skips it.
        deployment: the deployment to read when ``events`` is a home folder with several.
        scenario: a scenario name (``rlops.scenarios.catalog``), or a ``ScenarioSpec``, for the stress suite.
        baseline: a policy folder to stress against instead of the scenario's own baseline controller.
        stress: a stress-suite config (``StressConfig``); default: the standard variations.
        gates: the gates; default :data:`DEFAULT_GATES`.
        budget: the resource budget (``ResourceBudget``); default: no limits, only the measurement.
        measure: measure latency and memory (in a separate process).
        workers: processes for the stress suite (default: one per CPU), or Ray actors with ``backend`` ray.
        backend: where the stress suite runs: ``local`` processes or ``ray`` (same numbers for the same seed).
        reward_bounds: ``(low, high)`` every logged reward must lie in (e.g. a spec that forbids negative rewards);
            default: the deployment's reward spec bounds when ``events`` is a home folder and both are set. With
            bounds, the report adds an empirical-Bernstein lower bound on the candidate's value (IPS).
        seed: seeds everything random here (target-policy sampling, reward-model folds, the stress suite).
        command: the command line, recorded in the report so its numbers can be recomputed.
    """

    policy: Path
    events: Path | None = None
    deployment: str | None = None
    scenario: Any = None
    baseline: Path | None = None
    stress: Any = None
    gates: GatesFile = DEFAULT_GATES
    budget: Any = None
    measure: bool = True
    workers: int | None = None
    backend: Backend = Backend.LOCAL
    reward_bounds: tuple[float, float] | None = None
    seed: int = 0
    command: str | None = None


@dataclass
class ValidationRun:
    """The nested results, the gate verdicts and the overall status."""

    results: dict[str, Any]
    gates: list[GateResult] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return Status(self.results["status"])


def _action_names(policy: Any) -> list[str]:
    schema = policy.schema
    if schema.actions.type != "discrete":
        raise ValidationError("policy", f"off-policy evaluation needs a fixed discrete action space; the policy "
                                        f"has '{schema.actions.type}' actions")
    return list(schema.action_names())


def _check_action_space(policy: Any, table: Any) -> None:
    """The logged actions must be actions of the policy (checked on distinct values, before anything else)."""
    import pyarrow.compute as pc

    names = _action_names(policy)
    if "action" in table.column_names:
        logged = {a for a in pc.unique(table["action"]).to_pylist() if a is not None}
        foreign = sorted(logged - set(names))
    else:
        indices = [i for i in pc.unique(table["action_index"]).to_pylist() if i is not None] \
            if "action_index" in table.column_names else []
        foreign = [str(i) for i in indices if not 0 <= i < len(names)]
    if foreign:
        raise ValidationError("events.action", f"logged actions {', '.join(map(str, foreign[:5]))} are not actions "
                                               f"of the policy ({', '.join(names)}): the policy's action space does "
                                               "not match the data")


def _logged_bandit(policy: Any, table: Any, seed: int, reward_bounds: tuple[float, float] | None = None
                   ) -> tuple[Any, dict[str, Any]]:
    """``BanditData`` for ``policy`` on the logged table: logged actions, rewards, propensities, the target's
    distribution on each logged context, and the encoded contexts for the reward model."""
    from rlops.evaluation.data_check import chosen_actions, logged_contexts
    from rlops.evaluation.ope import BanditData
    from rlops.evaluation.ope.adapters import target_probabilities
    from rlops.policies import PolicyInput

    schema = policy.schema
    names = _action_names(policy)
    chosen, unknown = chosen_actions(table, schema)
    if unknown:
        raise ValidationError("events.action", f"{unknown} logged actions are not among the actions offered")
    contexts = logged_contexts(table, schema)
    try:
        batch = PolicyInput.from_contexts(schema, contexts)
    except ValidationError as e:
        raise ValidationError(f"events.{e.field}", e.rule) from e
    pi_e = target_probabilities(policy, batch, seed)  # chunked; refuses policies with no distribution
    index = {name: i for i, name in enumerate(names)}
    action = np.array([index[a] for a in chosen if a is not None], dtype=np.int64)
    reward = np.asarray(table["reward"].to_numpy(zero_copy_only=False), dtype=np.float64)
    propensity = np.asarray(table["propensity"].to_numpy(zero_copy_only=False), dtype=np.float64)
    pi_b = None
    if "probabilities" in table.column_names and table["probabilities"].null_count == 0:
        rows = table["probabilities"].to_pylist()
        if all(len(r) == len(names) for r in rows):
            pi_b = np.asarray(rows, dtype=np.float64)
    try:
        data = BanditData(action=action, reward=reward, propensity=propensity, pi_e=pi_e,
                          x=batch.x, pi_b=pi_b, reward_bounds=reward_bounds)
    except ValidationError as e:
        raise ValidationError(f"events.{e.field}", e.rule) from e
    return data, {"rows": int(action.size), "actions": names}


def _ope(policy: Any, table: Any, seed: int, progress: Callable[[str], None],
         reward_bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    from rlops.evaluation.ope import (
        IPS,
        SNIPS,
        CrossFitted,
        DirectMethod,
        DoublyRobust,
        DRos,
        IntervalMethod,
        IntervalSpec,
        SelfNormalizedDR,
        SwitchDR,
        cross_fit,
    )
    from rlops.evaluation.stress import mean_interval

    data, info = _logged_bandit(policy, table, seed, reward_bounds)
    progress("fitting the reward model (5-fold cross-fitting)")
    data = cross_fit(data, CrossFitted(seed=seed))
    estimates: dict[str, Any] = {}
    for estimator in (IPS(), SNIPS(), DirectMethod(), DoublyRobust(), SelfNormalizedDR(), SwitchDR(), DRos()):
        progress(f"estimating with {estimator.name}")
        e = estimator.estimate(data)
        estimates[e.estimator] = _estimate_dict(e)
    lower: dict[str, Any]
    if reward_bounds is None:
        lower = {"estimator": "ips", "method": "empirical_bernstein", "skipped": "no reward bounds declared"}
    else:
        progress("high-confidence lower bound (empirical Bernstein)")
        bound = IPS().estimate(data, IntervalSpec(method=IntervalMethod.EMPIRICAL_BERNSTEIN, seed=seed))
        lower = {"estimator": "ips", "method": bound.interval.method.value, "level": bound.interval.level,
                 "low": bound.interval.low}
    logged = mean_interval(data.reward)
    return {"rows": info["rows"], "actions": info["actions"],
            "logging": {"value": logged.estimate, "interval": {"low": logged.low, "high": logged.high}},
            "estimates": estimates, "lower_bound": lower}


def _estimate_dict(e: Any) -> dict[str, Any]:
    return {"value": e.value, "interval": {"low": e.interval.low, "high": e.interval.high,
                                           "level": e.interval.level, "method": e.interval.method.value},
            "std_error": e.std_error, "n": e.n, "ess": e.ess, "max_weight": e.max_weight,
            "warnings": [w.value for w in e.warnings], "tuned": e.tuned}


def _stress(options: ValidateOptions, progress_bar: bool) -> dict[str, Any]:
    from rlops.evaluation.controllers import ActMode, PolicyFolderController
    from rlops.evaluation.stress import StressConfig, run_stress
    from rlops.scenarios.base import ScenarioSpec
    from rlops.scenarios.catalog import get_scenario

    spec = options.scenario if isinstance(options.scenario, ScenarioSpec) else get_scenario(str(options.scenario))
    config = options.stress or StressConfig.standard(seed=options.seed)
    candidate = PolicyFolderController(options.policy, ActMode.GREEDY)
    baseline = PolicyFolderController(options.baseline, ActMode.GREEDY) if options.baseline else None
    report = run_stress(spec, candidate, baseline, config, workers=options.workers, progress=progress_bar,
                        backend=options.backend,
                        candidate_label=str(options.policy),
                        baseline_label=str(options.baseline) if options.baseline else "scenario baseline")
    return report.to_dict(episodes=False)


def _spec_bounds(options: ValidateOptions) -> tuple[float, float] | None:
    """The deployment's reward-spec bounds, when the events are a home folder and the spec sets both."""
    from rlops.home import Home

    if options.events is None or not Home.resolve(options.events).exists:
        return None
    from rlops.engine import Engine

    with Engine(Home.resolve(options.events)) as engine:
        names = engine.store.names()
        name = options.deployment or (names[0] if len(names) == 1 else None)
        bounds = engine.reward_spec(name).bounds if name else None
    if bounds is None or bounds.min is None or bounds.max is None:
        return None
    return float(bounds.min), float(bounds.max)


def validate(options: ValidateOptions, progress: Callable[[str], None] | None = None,
             progress_bar: bool = True) -> ValidationRun:
    """Run every check ``options`` asks for, judge the gates, and return the results (nothing written).

    Raises:
        ValidationError: bad inputs, found before anything is computed (the field says which).
        NotFoundError: the policy folder, events or scenario do not exist.
    """
    from rlops.evaluation.data_check import judge, load_interactions, profile
    from rlops.evaluation.data_check import overall as data_overall
    from rlops.policies import content_hash, load_policy

    say = progress or (lambda _: None)
    say("loading the policy")
    policy = load_policy(options.policy)
    results: dict[str, Any] = {
        "command": options.command, "seed": options.seed,
        "policy": {"path": str(options.policy), "kind": policy.kind, "hash": content_hash(options.policy)},
    }
    table = None
    if options.events is not None:
        say("checking the logged data")
        table = load_interactions(options.events, options.deployment)
        _check_action_space(policy, table)
        checks = judge(profile(table, policy.schema))
        verdict = data_overall(checks)
        results["data"] = {"rows": table.num_rows, "status": verdict.value, "checks": [c.to_dict() for c in checks]}
        if verdict is Status.FAIL:
            failed = [f"{c.check} ({c.subject}): {c.message}" for c in checks if c.status is Status.FAIL]
            raise ValidationError("events", "the logged data would corrupt the evaluation: " + "; ".join(failed[:4])
                                  + " (see `rlops data check`)")
    if isinstance(options.scenario, str):
        from rlops.scenarios.catalog import get_scenario

        get_scenario(options.scenario)  # an unknown name fails now, not after the OPE
    if table is not None:
        import pyarrow.compute as pc

        if "reward" not in table.column_names:
            raise ValidationError("events.reward", "no reward column: off-policy evaluation needs rewards")
        rewarded = table.filter(pc.is_valid(table["reward"]))  # rows still waiting for their reward cannot count
        if rewarded.num_rows == 0:
            raise ValidationError("events.reward", "no logged decision has a reward yet")
        without = table.num_rows - rewarded.num_rows
        table = rewarded
        results["ope_rows_without_reward"] = without
        results["ope"] = _ope(policy, table, options.seed, say, options.reward_bounds or _spec_bounds(options))
    if options.scenario is not None:
        say(f"running the stress suite on {getattr(options.scenario, 'id', options.scenario)}")
        results["stress"] = _stress(options, progress_bar)
    if options.measure:
        from rlops.evaluation.budget import ResourceBudget, check_budget, measure_resources

        budget = options.budget or ResourceBudget()
        say("measuring latency and memory in a separate process")
        measurement = measure_resources(options.policy, batch_size=budget.batch_size, seed=options.seed)
        results["budget"] = check_budget(measurement, budget).to_dict()
    gates = evaluate_all(options.gates, results)
    results["gates"] = [g.to_dict() for g in gates]
    status = overall(gates)
    results["status"] = status.value
    return ValidationRun(results, gates)
