"""Capacity planning: how many serving processes, cores and how much memory a target load needs.

The model, from a :class:`~rlops.evaluation.budget.ResourceMeasurement` (one core per process, as measured):

**Request at a time (M/M/c).** Each process serves one decision at a time with mean service time ``s`` (the
measured mean at batch 1), so ``mu = 1/s`` decisions per second; requests arrive as a Poisson stream of ``lambda =
qps``. The process count ``c`` is the smallest that meets both:

1. *throughput*: utilisation ``rho = lambda / (c mu) <= ceiling`` (default 0.7, which keeps headroom for bursts
   and for the tail), i.e. ``c >= ceil(lambda / (ceiling mu))``;
2. *tail latency*: ``W99 + s99 <= target``, where ``s99`` is the measured single-decision p99 and ``W99`` the 99th
   percentile of the M/M/c queueing delay: ``P(W > t) = C(c, a) exp(-(c mu - lambda) t)`` with ``a = lambda/mu`` and
   ``C`` Erlang's C formula, so ``W99 = ln(C / 0.01) / (c mu - lambda)`` when ``C > 0.01`` and 0 otherwise. Adding
   the two 99th percentiles over-states the p99 of their sum: the estimate errs on the safe side.

If ``s99`` alone exceeds the target, no number of processes helps: the plan is infeasible and **latency** binds.
Otherwise **cpu** binds when rule 1 sets ``c`` and **tail latency** when rule 2 needs more processes than rule 1.

**Micro-batches** (``batch=B``): a process serves up to ``B`` queued requests in one call taking ``sB`` on average
(measured at ``B``). Its throughput is ``B / sB``; ``c = ceil(lambda / (ceiling B / sB))``. A request waits at most for
the batch in service and then its own, so its p99 is estimated as ``2 x`` the measured batch p99; the batched plan
is infeasible when that exceeds the target. (This holds while batches keep up, which the utilisation ceiling
ensures; partial batches are served at once rather than waiting to fill.)

**Machines.** Every process takes one core and its measured peak resident memory. With ``cores`` (and optionally
``memory_mb``) per machine, the plan needs ``max(ceil(c / cores), ceil(c rss / memory_mb))`` machines, and
**memory** binds when memory needs more machines than cores do (or one process does not fit a machine at all).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from rlops.errors import ConfigError
from rlops.evaluation.budget import ResourceMeasurement

#: Tail probability of the latency target (p99).
TAIL = 0.01
_MAX_PROCESSES = 1_000_000


class Binding(StrEnum):
    """What sets the size of a deployment (or makes it impossible)."""

    LATENCY = "latency"
    """Infeasible: the measured p99 of a single decision (or the batched estimate) already exceeds the target."""
    CPU = "cpu"
    """The utilisation ceiling: processes (cores) needed for throughput."""
    TAIL_LATENCY = "tail_latency"
    """Queueing: more processes than throughput needs, to keep the p99 wait under the target."""
    MEMORY = "memory"
    """Memory per machine: it needs more machines than cores do, or one process does not fit."""


@dataclass(frozen=True)
class CapacityPlan:
    """A deployment size for a target load, and the numbers behind it.

    Attributes:
        qps: the target load, decisions per second.
        target_p99_ms: the latency target.
        batch_size: 1 for request-at-a-time serving, else the micro-batch size.
        utilisation_ceiling: the highest planned utilisation of a process.
        service_ms: mean service time of one call (a decision, or a batch).
        service_p99_ms: measured p99 of one call.
        process_qps: decisions per second one process serves at the utilisation ceiling.
        processes: serving processes needed (one core each).
        cores: cores needed.
        memory_mb: memory needed (processes x peak resident set).
        utilisation: the planned utilisation of each process.
        estimated_p99_ms: the model's p99 latency at this size (``inf`` when infeasible).
        machines: machines of the given size, when ``cores`` was given.
        binding: what sets the size.
        feasible: whether the target can be met at all.
        notes: one sentence per reason, for reports.
    """

    qps: float
    target_p99_ms: float
    batch_size: int
    utilisation_ceiling: float
    service_ms: float
    service_p99_ms: float
    process_qps: float
    processes: int
    cores: int
    memory_mb: float
    utilisation: float
    estimated_p99_ms: float
    machines: int | None
    binding: Binding
    feasible: bool
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["binding"] = self.binding.value
        out["notes"] = list(self.notes)
        out["estimated_p99_ms"] = self.estimated_p99_ms if math.isfinite(self.estimated_p99_ms) else None
        return out


def erlang_c(servers: int, load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with ``servers`` servers and offered load ``a = lambda/mu``.

    Computed through Erlang B's stable recursion ``B(k) = a B(k-1) / (k + a B(k-1))`` and
    ``C = B / (1 - rho (1 - B))`` with ``rho = a / c``; 1.0 when ``rho >= 1`` (the queue grows without bound).
    """
    if servers < 1:
        raise ConfigError(f"servers must be >= 1, got {servers}")
    if load <= 0:
        return 0.0
    rho = load / servers
    if rho >= 1.0:
        return 1.0
    b = 1.0
    for k in range(1, servers + 1):
        b = load * b / (k + load * b)
    return b / (1.0 - rho * (1.0 - b))


def wait_quantile_s(servers: int, arrival_rate: float, service_rate: float, tail: float = TAIL) -> float:
    """The ``1 - tail`` quantile of the M/M/c waiting time in seconds (``inf`` when the queue is unstable)."""
    spare = servers * service_rate - arrival_rate
    if spare <= 0:
        return math.inf
    c = erlang_c(servers, arrival_rate / service_rate)
    return 0.0 if c <= tail else math.log(c / tail) / spare


def check_target(qps: float, p99_ms: float, utilisation: float = 0.7, cores: int | None = None,
                 memory_mb: float | None = None) -> None:
    """Refuse a target or machine size out of range (``ConfigError`` naming the field)."""
    if not (qps > 0 and math.isfinite(qps)):
        raise ConfigError(f"qps: must be a finite number > 0, got {qps}")
    if not (p99_ms > 0 and math.isfinite(p99_ms)):
        raise ConfigError(f"p99_ms: must be a finite number > 0, got {p99_ms}")
    if not 0 < utilisation < 1:
        raise ConfigError(f"utilisation: must be in (0, 1), got {utilisation}")
    if cores is not None and cores < 1:
        raise ConfigError(f"cores: must be >= 1, got {cores}")
    if memory_mb is not None and not memory_mb > 0:
        raise ConfigError(f"memory_mb: must be > 0, got {memory_mb}")


def plan_capacity(
    measurement: ResourceMeasurement,
    qps: float,
    p99_ms: float,
    *,
    utilisation: float = 0.7,
    batch: int | None = None,
    cores: int | None = None,
    memory_mb: float | None = None,
) -> CapacityPlan:
    """Size a deployment for ``qps`` decisions per second at a p99 of ``p99_ms`` (model in the module docstring).

    Args:
        measurement: the policy's measured latency and memory.
        qps: target decisions per second (> 0).
        p99_ms: target p99 latency in milliseconds (> 0).
        utilisation: the utilisation ceiling of a process in (0, 1), default 0.7.
        batch: plan micro-batches of this size (must be the measurement's ``batch_size``); default one request at
            a time.
        cores: cores per machine, to count machines.
        memory_mb: memory per machine in MiB, to count machines (with ``cores``) and check a process fits.

    Raises:
        ConfigError: a target or setting out of range, or ``batch`` differs from the measured batch size.
    """
    check_target(qps, p99_ms, utilisation, cores, memory_mb)
    notes: list[str] = []
    if batch is None or batch == 1:
        size, service_ms, service_p99 = 1, measurement.mean_ms, measurement.p99_ms
    else:
        if batch != measurement.batch_size:
            raise ConfigError(f"batch: {batch} was not measured (the measurement's batch_size is "
                              f"{measurement.batch_size}); measure at batch_size={batch}")
        size, service_ms, service_p99 = batch, measurement.batch_mean_ms, measurement.batch_p99_ms
    service_s = max(service_ms, 1e-9) / 1000.0
    rate = size / service_s  # decisions per second of one fully busy process
    processes = max(1, math.ceil(qps / (utilisation * rate) - 1e-9))
    binding = Binding.CPU
    if size == 1:
        estimate, processes, binding = _size_for_tail(qps, rate, service_p99, p99_ms, processes, notes)
    else:
        estimate = 2.0 * service_p99
        if estimate > p99_ms:
            binding = Binding.LATENCY
            notes.append(f"batches of {size}: a request waits for the batch in service and its own, about "
                         f"2 x {service_p99:.3g} ms = {estimate:.3g} ms > {p99_ms:g} ms")
    if binding is Binding.CPU:
        notes.append(f"cpu binds: a process serves {utilisation * rate:,.0f} decisions/s at {utilisation:.0%} "
                     f"utilisation, so {qps:,.0f} decisions/s need {processes}")
    rss = measurement.peak_rss_mb
    fits = memory_mb is None or rss <= memory_mb
    if not fits:
        notes.append(f"memory binds: one process needs {rss:,.0f} MiB, more than a machine's {memory_mb:,.0f} MiB")
    machines = None
    if cores is not None:
        machines = math.ceil(processes / cores)
        if memory_mb is not None and fits:
            per_machine = math.floor(memory_mb / rss) if rss > 0 else cores
            by_memory = math.ceil(processes / per_machine)
            if by_memory > machines:
                machines = by_memory
                notes.append(f"memory binds: {per_machine} processes of {rss:,.0f} MiB fit a machine of "
                             f"{memory_mb:,.0f} MiB, fewer than its {cores} cores")
                if binding is not Binding.LATENCY:
                    binding = Binding.MEMORY
    if not fits and binding is not Binding.LATENCY:
        binding = Binding.MEMORY
    feasible = binding is not Binding.LATENCY and fits
    return CapacityPlan(
        qps=float(qps), target_p99_ms=float(p99_ms), batch_size=size, utilisation_ceiling=utilisation,
        service_ms=service_ms, service_p99_ms=service_p99, process_qps=utilisation * rate, processes=processes,
        cores=processes, memory_mb=processes * rss, utilisation=qps / (processes * rate),
        estimated_p99_ms=estimate, machines=machines, binding=binding, feasible=feasible, notes=tuple(notes))


def _size_for_tail(qps: float, rate: float, service_p99: float, target: float, processes: int,
                   notes: list[str]) -> tuple[float, int, Binding]:
    """The smallest process count from ``processes`` up whose M/M/c wait p99 plus service p99 meets the target."""
    if service_p99 > target:
        notes.append(f"latency binds: a single decision's measured p99 is {service_p99:.3g} ms, above the "
                     f"{target:g} ms target; no number of processes helps")
        wait = wait_quantile_s(processes, qps, rate) * 1000.0
        return math.inf if not math.isfinite(wait) else wait + service_p99, processes, Binding.LATENCY
    start = processes
    c = processes
    while c < _MAX_PROCESSES:
        estimate = wait_quantile_s(c, qps, rate) * 1000.0 + service_p99
        if estimate <= target:
            if c > start:
                notes.append(f"tail latency binds: {start} processes would meet throughput but their p99 queueing "
                             f"delay breaks {target:g} ms; {c} keep the estimated p99 at {estimate:.3g} ms")
                return estimate, c, Binding.TAIL_LATENCY
            return estimate, c, Binding.CPU
        c += 1
    raise ConfigError(f"qps: {qps:g} decisions/s needs more than {_MAX_PROCESSES:,} processes")  # pragma: no cover
