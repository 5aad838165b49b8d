"""The scenario stress suite: a candidate controller and a baseline, run side by side over declared variations.

For every variation (:mod:`rlops.evaluation.variations`) both controllers play the same ``episodes`` episodes:
episode ``e`` uses the same environment seed, the same perturbation draws and the same controller seed for both, and
for every variation (common random numbers), so the candidate-minus-baseline difference is paired by episode. Per
variation and controller the report gives:

- the mean episode return with a Student-t confidence interval (default 95%);
- CVaR at ``alpha`` (default 10%): the mean of the worst ``ceil(alpha * n)`` of the ``n`` episode returns;
- the constraint-violation rate: the fraction of all steps (pooled over episodes) on which any constraint signal
  the scenario declares was on, and the same per constraint;
- the mean over episodes of each KPI's episode value;
- the paired difference candidate minus baseline of the return and of each KPI, with its t interval.

Episodes run in worker processes (``spawn``; ``workers=1`` runs in this process). Each result depends only on the
config's seed, the variation and the episode index, never on which worker ran it: the same seed gives identical
reports for any number of workers. Workers build the controllers once, from the nominal environment (a controller
never learns the perturbation it is tested under), and call ``controller.reset(seed)`` before every episode.

Example:
    >>> report = run_stress(spec, candidate, spec.baseline, StressConfig.standard(), workers=4)  # doctest: +SKIP
    >>> report.variation("nominal").difference.low > 0  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
import os
import pickle
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlops.configfile import parse_model, read_document
from rlops.errors import ConfigError, RlopsError, ValidationError
from rlops.evaluation.variations import (
    ActionDelay,
    MissingFeatures,
    ObservationNoise,
    RareEvents,
    ShockTarget,
    Variation,
    parameter_sweep,
)
from rlops.scale.backend import Backend
from rlops.scenarios.base import Controller, ScenarioSpec

ControllerFactory = Callable[[gym.Env[Any, Any]], Controller]
"""Builds a controller for an environment (a scenario's ``baseline`` is one)."""
ControllerSource = Controller | ControllerFactory
"""A controller, or a factory of one (a factory is what crosses to worker processes cheaply)."""


# ---- configuration -------------------------------------------------------------------------------------------------

class StressConfig(BaseModel):
    """What the stress suite runs: the variations, how many episodes each, and the statistics' settings.

    Attributes:
        variations: the variations, each with a unique name; empty means only ``nominal`` and the sweep.
        param_sweep: if set, add two variations per perturbable constant, scaled by ``1 ± param_sweep``
            (e.g. 0.2 for ±20%).
        include_nominal: run the unperturbed scenario as variation ``nominal`` first, default True.
        episodes: episodes per variation and controller (>= 2), default 20.
        seed: the seed every episode's seeds derive from, default 0.
        max_steps: an episode is cut after this many steps if the environment has not ended it, default 10,000.
        confidence: level of the confidence intervals, default 0.95.
        cvar_alpha: the tail fraction of CVaR, default 0.1.

    Example (YAML)::

        episodes: 30
        param_sweep: 0.2
        variations:
          - {name: noise-5%, observation_noise: {scale: 0.05}}
          - {name: delay-2, action_delay: {steps: 2}}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    variations: list[Variation] = Field(default_factory=list)
    param_sweep: float | None = Field(default=None, gt=0.0, lt=1.0)
    include_nominal: bool = True
    episodes: int = Field(default=20, ge=2, le=1_000_000)
    seed: int = Field(default=0, ge=0)
    max_steps: int = Field(default=10_000, ge=1)
    confidence: float = Field(default=0.95, gt=0.0, lt=1.0)
    cvar_alpha: float = Field(default=0.1, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _unique_names(self) -> StressConfig:
        names = [v.name for v in self.variations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variations: duplicate names {dupes}")
        if self.include_nominal and "nominal" in names:
            raise ValueError("variations: 'nominal' is added by include_nominal; rename it or set include_nominal: "
                             "false")
        return self

    @classmethod
    def from_dict(cls, data: Any, source: str = "variations") -> StressConfig:
        """Build from parsed YAML/JSON; a malformed file raises :class:`ConfigError` naming the field."""
        return parse_model(cls, data, source, "stress config")

    @classmethod
    def load(cls, path: str | Path) -> StressConfig:
        """Load from a ``.yaml``/``.yml`` or ``.json`` file."""
        return cls.from_dict(read_document(path, "stress config"), source=str(path))

    @classmethod
    def standard(cls, **overrides: Any) -> StressConfig:
        """The standard suite: nominal, ±20% on every perturbable constant, 5% observation noise, 10% stale
        entries, a one-step action delay, and rare sensor and actuator shocks (1% of steps)."""
        settings: dict[str, Any] = {
            "param_sweep": 0.2,
            "variations": [
                Variation(name="noise-5%", observation_noise=ObservationNoise(scale=0.05)),
                Variation(name="stale-10%", missing=MissingFeatures(fraction=0.1)),
                Variation(name="delay-1", action_delay=ActionDelay(steps=1)),
                Variation(name="sensor-shocks", rare_events=RareEvents(probability=0.01, target=ShockTarget.SENSOR)),
                Variation(name="actuator-shocks", rare_events=RareEvents(probability=0.01,
                                                                         target=ShockTarget.ACTUATOR, duration=3)),
            ],
        }
        settings.update(overrides)
        return cls.model_validate(settings)

    def expand(self, spec: ScenarioSpec) -> list[Variation]:
        """The variations to run for ``spec``, in order: nominal, the sweep, then the declared ones.

        Raises:
            ValidationError: a variation scales a constant the scenario does not declare perturbable.
        """
        out = [Variation(name="nominal")] if self.include_nominal else []
        if self.param_sweep is not None:
            out += parameter_sweep(spec, self.param_sweep)
        out += self.variations
        names = [v.name for v in out]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise ConfigError(f"variations: names {clash} clash with the parameter sweep's")
        if not out:
            raise ConfigError("variations: nothing to run (no variations, no sweep, include_nominal false)")
        for v in out:
            try:
                v.check(spec)
            except ValidationError as e:
                raise ValidationError(f"variations[{v.name}].{e.field}", e.rule) from e
        return out


# ---- statistics ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided confidence interval ``[low, high]`` at ``level``."""

    estimate: float
    low: float
    high: float
    level: float

    def excludes_zero(self) -> bool:
        """True when the whole interval is on one side of 0."""
        return self.low > 0.0 or self.high < 0.0


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Interval:
    """The sample mean with its Student-t interval ``mean ± t_{(1+c)/2, n-1} * s / sqrt(n)``.

    With fewer than two values the interval is ``nan``; with zero spread it is the point itself.
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, confidence)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, confidence)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, confidence)


def cvar(values: Sequence[float] | np.ndarray, alpha: float = 0.1) -> float:
    """Conditional value at risk of returns (higher is better): the mean of the worst ``ceil(alpha * n)`` values."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0:
        return math.nan
    if not 0.0 < alpha <= 1.0:
        raise ValidationError("cvar_alpha", f"must be in (0, 1], got {alpha}")
    k = max(1, math.ceil(alpha * x.size - 1e-9))
    return float(x[:k].mean())


# ---- episodes ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EpisodeOutcome:
    """One episode of one controller.

    Attributes:
        episode: the episode's index (its seeds derive from the config's seed and this index).
        total_return: the sum of rewards.
        steps: steps taken.
        violation_steps: steps on which any declared constraint signal was on.
        constraint_steps: steps on which each constraint signal was on.
        kpis: each KPI's episode value.
    """

    episode: int
    total_return: float
    steps: int
    violation_steps: int
    constraint_steps: dict[str, int]
    kpis: dict[str, float]


def episode_seeds(seed: int, episode: int) -> tuple[int, int, int]:
    """The environment, controller and perturbation seeds of episode ``episode`` under config seed ``seed``."""
    env_seed, controller_seed, perturbation_seed = np.random.SeedSequence(seed, spawn_key=(episode,)).generate_state(3)
    return int(env_seed), int(controller_seed), int(perturbation_seed)


def run_episode(spec: ScenarioSpec, env: gym.Env[Any, Any], controller: Controller, *, episode: int, env_seed: int,
                controller_seed: int, max_steps: int) -> EpisodeOutcome:
    """Play one episode and collect its return, KPIs and constraint signals from ``info``.

    Raises:
        ValidationError: a step's ``info`` lacks a KPI or constraint key the scenario declares.
    """
    observation, _ = env.reset(seed=env_seed)
    controller.reset(controller_seed)
    per_step: dict[str, list[float]] = {k.name: [] for k in spec.kpis}
    constraint_steps = dict.fromkeys(spec.constraints, 0)
    total, steps, violations = 0.0, 0, 0
    while steps < max_steps:
        observation, reward, terminated, truncated, info = env.step(controller.act(observation))
        steps += 1
        total += float(reward)
        for name, values in per_step.items():
            values.append(float(_info(info, name, spec, "KPI")))
        violated = False
        for name in spec.constraints:
            if float(_info(info, name, spec, "constraint")) > 0.0:
                constraint_steps[name] += 1
                violated = True
        violations += violated
        if terminated or truncated:
            break
    kpis = {k.name: k.episode_value(per_step[k.name]) for k in spec.kpis}
    return EpisodeOutcome(episode, total, steps, violations, constraint_steps, kpis)


def _info(info: Mapping[str, Any], key: str, spec: ScenarioSpec, what: str) -> Any:
    try:
        return info[key]
    except KeyError:
        raise ValidationError(f"info.{key}", f"{spec.id} declares {what} {key!r} but its step info lacks it") from None


# ---- results -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ControllerSummary:
    """One controller's episodes under one variation, summarised.

    Attributes:
        mean_return: mean episode return with its confidence interval.
        cvar: mean of the worst ``ceil(alpha * n)`` episode returns.
        violation_rate: fraction of all steps with any constraint violation (0 when none are declared).
        constraint_rates: the same per constraint signal.
        kpis: mean over episodes of each KPI's episode value.
        episodes: the per-episode outcomes the numbers above are computed from.
    """

    mean_return: Interval
    cvar: float
    violation_rate: float
    constraint_rates: dict[str, float]
    kpis: dict[str, float]
    episodes: tuple[EpisodeOutcome, ...]

    @classmethod
    def of(cls, outcomes: Sequence[EpisodeOutcome], constraints: Sequence[str], kpis: Sequence[str],
           confidence: float, alpha: float) -> ControllerSummary:
        returns = [o.total_return for o in outcomes]
        steps = sum(o.steps for o in outcomes)

        def rate(count: int) -> float:
            return count / steps if steps else math.nan

        return cls(
            mean_return=mean_interval(returns, confidence),
            cvar=cvar(returns, alpha),
            violation_rate=rate(sum(o.violation_steps for o in outcomes)),
            constraint_rates={c: rate(sum(o.constraint_steps[c] for o in outcomes)) for c in constraints},
            kpis={k: float(np.mean([o.kpis[k] for o in outcomes])) for k in kpis},
            episodes=tuple(outcomes),
        )


@dataclass(frozen=True)
class VariationResult:
    """Candidate and baseline under one variation, and their paired differences (candidate minus baseline).

    Attributes:
        variation: the variation as declared.
        candidate: the candidate's summary.
        baseline: the baseline's summary.
        difference: paired difference of episode returns, with its t interval.
        kpi_differences: paired difference of each KPI's episode value, with its t interval.
        violation_rate_difference: candidate's violation rate minus the baseline's.
    """

    variation: Variation
    candidate: ControllerSummary
    baseline: ControllerSummary
    difference: Interval
    kpi_differences: dict[str, Interval]
    violation_rate_difference: float

    @property
    def name(self) -> str:
        return self.variation.name


@dataclass(frozen=True)
class StressReport:
    """The stress suite's result: one :class:`VariationResult` per variation, in the order they ran.

    Attributes:
        scenario: the scenario's id.
        config: the configuration that produced the report (rerunning it reproduces every number).
        variations: the per-variation results.
        candidate: a label for the candidate (e.g. the policy folder).
        baseline: a label for the baseline.
    """

    scenario: str
    config: StressConfig
    variations: tuple[VariationResult, ...]
    candidate: str = "candidate"
    baseline: str = "baseline"
    kpi_better: dict[str, str] = field(default_factory=dict)

    def variation(self, name: str) -> VariationResult:
        """The result of the variation called ``name``."""
        for v in self.variations:
            if v.name == name:
                return v
        raise ValidationError("variation", f"no variation {name!r}; known: {[v.name for v in self.variations]}")

    def to_dict(self, episodes: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (``nan`` becomes ``None``); ``episodes=False`` leaves out per-episode outcomes.

        ``variations`` maps each variation's name to its result, in run order, so a metric has a dotted path such
        as ``variations.delay-1.candidate.cvar`` (what gates address).
        """
        out: dict[str, Any] = {
            "scenario": self.scenario,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "config": self.config.model_dump(mode="json"),
            "kpi_better": dict(self.kpi_better),
            "variations": {},
        }
        for v in self.variations:
            item = asdict(v)
            item["variation"] = v.variation.model_dump(mode="json", exclude_defaults=True)
            if not episodes:
                item["candidate"].pop("episodes")
                item["baseline"].pop("episodes")
            out["variations"][v.name] = item
        return _json_ready(out)


def _json_ready(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


# ---- running -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Job:
    spec: ScenarioSpec
    candidate: ControllerSource
    baseline: ControllerSource
    variations: tuple[Variation, ...]
    max_steps: int
    seed: int


def _build(source: ControllerSource, env: gym.Env[Any, Any]) -> Controller:
    if isinstance(source, Controller):
        return source
    return source(env)


class _Runner:
    """Plays episodes of a job; one per process."""

    def __init__(self, job: _Job) -> None:
        self.job = job
        nominal = job.spec.make()
        try:
            self.candidate = _build(job.candidate, nominal)
            self.baseline = _build(job.baseline, nominal)
        finally:
            nominal.close()

    def run(self, variation: int, episode: int) -> tuple[int, int, EpisodeOutcome, EpisodeOutcome]:
        job = self.job
        env_seed, controller_seed, perturbation_seed = episode_seeds(job.seed, episode)
        outcomes = []
        for controller in (self.candidate, self.baseline):
            env = job.variations[variation].make(job.spec, perturbation_seed)
            try:
                outcomes.append(run_episode(job.spec, env, controller, episode=episode, env_seed=env_seed,
                                            controller_seed=controller_seed, max_steps=job.max_steps))
            finally:
                env.close()
        return variation, episode, outcomes[0], outcomes[1]


_WORKER: _Runner | None = None


def _init_worker(job: _Job) -> None:
    global _WORKER
    # One BLAS and one torch thread per worker process: the pool already fills the cores, and each worker's own
    # pool of one thread per core made them fight over them (4x slower on 2 cores; bench/scale.py). Ray does the
    # same for its actors (OMP_NUM_THREADS=1).
    # After building the controllers: threadpoolctl limits the libraries loaded by then, and loading a policy folder
    # may have loaded torch (and its OpenMP).
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    _WORKER = _Runner(job)
    threadpool_limits(limits=1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


class _WorkerFailure(Exception):
    """An rlops error raised in a worker, in a form that pickles (``ValidationError`` takes two arguments)."""

    def __init__(self, kind: type[RlopsError], message: str, field: str | None, rule: str | None) -> None:
        super().__init__(kind, message, field, rule)

    def rebuild(self) -> RlopsError:
        kind, message, field, rule = self.args
        if issubclass(kind, ValidationError) and field is not None and rule is not None:
            return kind(field, rule)
        return kind(message)  # type: ignore[no-any-return]


def _run_in_worker(variation: int, episode: int) -> tuple[int, int, EpisodeOutcome, EpisodeOutcome]:
    if _WORKER is None:  # pragma: no cover - the initializer always ran
        raise RuntimeError("stress worker not initialised")
    try:
        return _WORKER.run(variation, episode)
    except RlopsError as e:
        raise _WorkerFailure(type(e), str(e), getattr(e, "field", None), getattr(e, "rule", None)) from None


def run_stress(
    spec: ScenarioSpec,
    candidate: ControllerSource,
    baseline: ControllerSource | None = None,
    config: StressConfig | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
    candidate_label: str = "candidate",
    baseline_label: str = "baseline",
    backend: Backend = Backend.LOCAL,
) -> StressReport:
    """Run candidate and baseline over every variation of ``config`` and summarise.

    Args:
        spec: the scenario.
        candidate: the controller under test, or a factory ``env -> Controller`` (factories are built once per
            process from the nominal environment; with ``workers > 1`` the source must pickle, so prefer a
            module-level factory or :class:`~rlops.evaluation.controllers.PolicyFolderController`).
        baseline: the comparison controller or factory, default the scenario's own ``spec.baseline``.
        config: variations and settings, default :meth:`StressConfig.standard`.
        workers: worker processes, default the number of CPUs; 1 runs in this process. With the Ray backend:
            Ray actors, default the cluster's CPUs.
        progress: show a rich progress bar, default True.
        candidate_label: how the report names the candidate.
        baseline_label: how the report names the baseline.
        backend: ``local`` (processes on this machine) or ``ray`` (actors on Ray: a private local instance, or
            the cluster ``$RLOPS_RAY_ADDRESS`` names). Every episode carries its own seeds, so both give the same
            report.

    Raises:
        ValidationError: a variation names a constant that is not perturbable, or the environment's ``info``
            lacks a declared KPI or constraint key.
        ConfigError: ``workers`` < 1, or the scenario or controllers cannot be sent to worker processes.
        DependencyNotInstalled: the Ray backend without Ray installed.
        StorageError: Ray could not start, or one of its actors died.
    """
    config = config or StressConfig.standard()
    variations = tuple(config.expand(spec))
    job = _Job(spec, candidate, spec.baseline if baseline is None else baseline, variations, config.max_steps,
               config.seed)
    tasks = [(v, e) for v in range(len(variations)) for e in range(config.episodes)]
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    n_workers = min((os.cpu_count() or 1) if workers is None else workers, len(tasks))
    results: dict[tuple[int, int], tuple[EpisodeOutcome, EpisodeOutcome]] = {}
    with _ProgressBar(progress, len(tasks), spec.id) as advance:
        if backend is Backend.RAY:
            _check_picklable(job)
            _run_ray(job, tasks, workers, results, advance)
        elif n_workers == 1:
            runner = _Runner(job)
            for v, e in tasks:
                _, _, cand, base = runner.run(v, e)
                results[(v, e)] = (cand, base)
                advance()
        else:
            _check_picklable(job)
            _run_pool(job, tasks, n_workers, results, advance)
    return _summarise(spec, config, variations, results, candidate_label, baseline_label)


def _run_ray(job: _Job, tasks: list[tuple[int, int]], workers: int | None,
             results: dict[tuple[int, int], tuple[EpisodeOutcome, EpisodeOutcome]],
             advance: Callable[[], None]) -> None:
    from rlops.scale import actor_map, ray_session

    def done(_: int, value: tuple[int, int, EpisodeOutcome, EpisodeOutcome]) -> None:
        v, e, cand, base = value
        results[(v, e)] = (cand, base)
        advance()

    with ray_session():
        actor_map(functools.partial(_Runner, job), "run", tasks, on_result=done, workers=workers)


def _check_picklable(job: _Job) -> None:
    try:
        pickle.dumps(job)
    except Exception as e:  # pickling raises many kinds (PicklingError, AttributeError, TypeError)
        raise ConfigError(f"workers: the scenario and controllers must pickle to run in worker processes ({e}); "
                          f"use module-level factories, a PolicyFolderController, or workers=1") from e


def _run_pool(job: _Job, tasks: list[tuple[int, int]], n_workers: int,
              results: dict[tuple[int, int], tuple[EpisodeOutcome, EpisodeOutcome]],
              advance: Callable[[], None]) -> None:
    import multiprocessing
    from concurrent.futures import as_completed

    context = multiprocessing.get_context("spawn")  # fork would copy torch's threads and locks
    with ProcessPoolExecutor(n_workers, mp_context=context, initializer=_init_worker, initargs=(job,)) as pool:
        futures: list[Future[tuple[int, int, EpisodeOutcome, EpisodeOutcome]]] = [
            pool.submit(_run_in_worker, v, e) for v, e in tasks]
        try:
            for future in as_completed(futures):
                v, e, cand, base = future.result()
                results[(v, e)] = (cand, base)
                advance()
        except _WorkerFailure as failure:
            pool.shutdown(wait=True, cancel_futures=True)
            raise failure.rebuild() from None
        except BrokenProcessPool as broken:
            raise ConfigError("workers: a worker process died or sent back something that cannot be unpickled; "
                              "run with workers=1 to see the error") from broken
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


class _ProgressBar:
    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled, self.total, self.label = enabled, total, label
        self._progress: Any = None

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), transient=False)
        self._progress.__enter__()
        task = self._progress.add_task(f"stress {self.label}", total=self.total)
        return lambda: self._progress.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def _summarise(spec: ScenarioSpec, config: StressConfig, variations: Sequence[Variation],
               results: Mapping[tuple[int, int], tuple[EpisodeOutcome, EpisodeOutcome]],
               candidate_label: str, baseline_label: str) -> StressReport:
    kpi_names = [k.name for k in spec.kpis]
    out = []
    for v, variation in enumerate(variations):
        pairs = [results[(v, e)] for e in range(config.episodes)]
        cand = [p[0] for p in pairs]
        base = [p[1] for p in pairs]

        def summary(outcomes: list[EpisodeOutcome]) -> ControllerSummary:
            return ControllerSummary.of(outcomes, spec.constraints, kpi_names, config.confidence, config.cvar_alpha)

        c, b = summary(cand), summary(base)
        diff = mean_interval([x.total_return - y.total_return for x, y in pairs], config.confidence)
        kpi_diff = {k: mean_interval([x.kpis[k] - y.kpis[k] for x, y in pairs], config.confidence)
                    for k in kpi_names}
        out.append(VariationResult(variation, c, b, diff, kpi_diff, c.violation_rate - b.violation_rate))
    return StressReport(spec.id, config, tuple(out), candidate_label, baseline_label,
                        {k.name: k.better.value for k in spec.kpis})


# ---- scenarios without a spec --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _NoParams:
    """The constants of an environment the stress suite may not perturb."""


@dataclass(frozen=True)
class _IgnoreParams:
    factory: Callable[..., gym.Env[Any, Any]]

    def __call__(self, params: Any = None, **options: Any) -> gym.Env[Any, Any]:
        return self.factory(**options)


def _no_baseline(env: gym.Env[Any, Any]) -> Controller:
    raise ConfigError("baseline: this scenario was built from a bare environment factory and has no baseline; pass "
                      "one to run_stress")


def spec_for_env(factory: Callable[..., gym.Env[Any, Any]], id: str = "env", constraints: Sequence[str] = (),
                 baseline: ControllerFactory | None = None) -> ScenarioSpec:
    """Wrap a bare environment factory as a scenario with no KPIs and no perturbable constants.

    Every variation but ``params`` applies to it. For ``workers > 1`` ``factory`` must be a module-level callable.

    Args:
        factory: builds the environment from keyword options.
        id: the name reports use.
        constraints: ``info`` keys that are 1.0 on a violating step.
        baseline: the default baseline factory, if any.
    """
    return ScenarioSpec(id=id, params_type=_NoParams, env_factory=_IgnoreParams(factory), kpis=(),
                        constraints=tuple(constraints), perturbable=(), baseline=baseline or _no_baseline)
