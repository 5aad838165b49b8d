"""Scale-out on Ray: ``rlops serve --backend ray`` with 1 and 2 replicas against the single-process server and
``--workers 2``, and the stress suite on local worker processes against Ray actors, on this machine.

**Serving.** The deployment, policy, key, request bodies and load generator are bench/serve.py's (imported from
it): an SB3 PPO MLP policy (64x64, ``Box(20)`` observations, 8 discrete actions) behind ``rlops serve`` with
authentication, schema validation and durable logging (fsync, the default), started with ``RLOPS_RATE_LIMIT=0``
(one client with one key at thousands of requests/s; rate limiting is not what this measures). Four servers of
the same home, each started on an empty log:

1. ``rlops serve`` (one process): the baseline, every ratio is to it at the same concurrency;
2. ``rlops serve --workers 2``: the local multi-process option, the peer a user would pick before Ray;
3. ``rlops serve --backend ray --replicas 1``: a private Ray instance, Ray Serve's HTTP proxy in front of one
   replica running the same app;
4. ``rlops serve --backend ray --replicas 2``.

The load comes from bench/serve_peers/loadgen.py in a separate process (closed-loop keep-alive connections, one
request in flight each). Servers run in rotation over several rounds (the machine is shared and noisy); the
tables give medians. After its load, every server is asked for its ``/metrics`` (the decide requests it answered
200) and, once stopped, its event log is counted: the log must hold every decision the server answered (which
are at least as many as the generator counted in its windows). It may hold a few more: decisions logged but not
yet counted when ``/metrics`` was read, or whose answer nobody waited for once the load stopped.

**Stress suite.** ``run_stress`` over a catalog scenario (default ``hvac``, the standard suite: nominal, the +/-20%
sweep and the five declared variations, 20 episodes each), with the scenario's baseline as both candidate and
baseline, on 2 local worker processes (as they start by default, and with ``OMP_NUM_THREADS=1``, which Ray sets
for its workers) and on 2 Ray actors. The Ray run starts its own private instance (``ray_session``) and times it
apart: start-up, the run inside the session (actors included), shutdown. Every report must equal the first one
(``to_dict()``).

Run::

    .venv/bin/python bench/scale.py                       # 3 rounds, both parts, writes docs/benchmarks.md
    .venv/bin/python bench/scale.py --only serve --seconds 3 --rounds 1 --concurrency 8 --no-docs
    .venv/bin/python bench/scale.py --only stress --episodes 10 --no-docs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DOC, REPO, machine, machine_line, write_section
from serve import (
    DEPLOYMENT,
    NO_RATE_LIMIT,
    Cell,
    Running,
    ServerKind,
    build_model,
    build_rlops_home,
    console,
    first_body,
    generator_python,
    pristine,
    run_load,
)

SECTION = "## Scale-out on Ray (bench/scale.py)"
SCRATCH = REPO / ".bench-scale"
PARTS = ("serve", "stress")
#: A private Ray instance per server and per stress run, whatever the caller's environment names.
RAY_ENV = {"RLOPS_RAY_ADDRESS": "local", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
BASELINE = "rlops serve"


# ---- serving --------------------------------------------------------------------------------------------------------

def server_kinds(home: Path) -> list[ServerKind]:
    """The four servers, the single process first (the baseline)."""
    py = sys.executable
    path = f"/v1/deployments/{DEPLOYMENT}/decide"

    def serve(*how: str) -> Any:
        return lambda port, _: [py, "-m", "rlops", "serve", "--home", str(home), "--port", str(port), *how]

    return [
        ServerKind(BASELINE, "local", 1, path, serve(), env=NO_RATE_LIMIT, home=home),
        ServerKind("rlops serve --workers 2", "local", 2, path, serve("--workers", "2"), env=NO_RATE_LIMIT,
                   home=home),
        ServerKind("rlops serve --backend ray --replicas 1", "ray", 1, path,
                   serve("--backend", "ray", "--replicas", "1"), env={**NO_RATE_LIMIT, **RAY_ENV}, home=home),
        ServerKind("rlops serve --backend ray --replicas 2", "ray", 2, path,
                   serve("--backend", "ray", "--replicas", "2"), env={**NO_RATE_LIMIT, **RAY_ENV}, home=home),
    ]


def reap(session: int) -> None:
    """Kill what is left of a stopped server's session: Ray puts its actors (Serve's controller, proxy and replicas)
    in process groups of their own, which the server's own group kill does not reach."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = int(stat.parent.name), stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError, ValueError):
            continue
        if int(rest[3]) == session and pid != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def viewer_key(home: Path) -> str:
    """An unrestricted viewer key (``/metrics`` covers every deployment), added to the pristine home too."""
    from rlops.home import Home
    from rlops.security import KeyStore, Role, Scope

    with KeyStore.for_home(Home.resolve(home)) as keys:
        _, secret = keys.create(Role.VIEWER, Scope.parse([]), name="bench/scale.py metrics", actor="bench")
    shutil.rmtree(pristine(home))
    shutil.copytree(home, pristine(home))
    return secret


def answered(server: Running, key: str) -> int:
    """Decide requests the server answered 200, summed over its processes (its ``/metrics``)."""
    from prometheus_client.parser import text_string_to_metric_families

    base = server.url.split("/v1/", 1)[0]
    text = httpx.get(f"{base}/metrics", headers={"authorization": f"Bearer {key}"}, timeout=30.0)
    text.raise_for_status()
    total = 0.0
    for family in text_string_to_metric_families(text.text):
        for sample in family.samples:
            labels = sample.labels
            if (sample.name == "rlops_http_requests_total" and labels.get("route", "").endswith("/decide")
                    and labels.get("method") == "POST" and labels.get("status") == "200"):
                total += sample.value
    return int(total)


def logged(home: Path) -> int:
    """Decisions in the home's event log (frame headers and Parquet footers: no record is parsed)."""
    from rlops.engine import Engine

    with Engine(home, fsync=False) as engine:
        return engine.log.stats().decisions


@dataclass
class Start:
    """One start of one server: how long it took to answer, and the log check after its load."""

    server: str
    seconds_to_ready: float
    generator_acked: int = 0  # 200s the generator counted inside its measured windows (a lower bound)
    server_answered: int = 0  # decide requests the server answered 200, from its /metrics
    logged: int = 0  # decisions in the event log once the server stopped

    @property
    def consistent(self) -> bool:
        """Every decision answered is in the log. The log may hold a few more: decisions logged when /metrics was
        read but not yet counted, or whose answer the client no longer waited for when the load stopped (logged
        first, answered after: what durability promises)."""
        return self.logged >= self.server_answered >= self.generator_acked


def run_serving(args: argparse.Namespace, concurrency: list[int]) -> tuple[dict[tuple[str, int], Cell], list[Start]]:
    logs = SCRATCH / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    model = build_model(SCRATCH)
    home, api_key = build_rlops_home(SCRATCH, model)
    metrics_key = viewer_key(home)
    body = first_body()
    console.print(f"load generator: {generator_python()} bench/serve_peers/loadgen.py", highlight=False)
    kinds = server_kinds(home)
    cells = {(k.name, c): Cell(k, c) for k in kinds for c in concurrency}
    starts: list[Start] = []
    for rnd in range(args.rounds):
        shift = rnd % len(kinds)
        for kind in kinds[shift:] + kinds[:shift]:  # a different server goes first each round
            began = time.perf_counter()
            server = Running(kind, logs, api_key)
            try:
                server.wait_ready(body)
                start = Start(kind.name, time.perf_counter() - began)
                server.warm()
                for c in concurrency:
                    result = run_load(server, c, args.warmup, args.seconds)
                    cells[kind.name, c].runs.append(result)
                    start.generator_acked += int(result["requests"])
                    console.print(f"round {rnd + 1} {kind.name:<38} c={c:<3} {result['rps']:>7,.0f} req/s  "
                                  f"p50 {result['p50_ms'] or float('nan'):7.2f} ms  p99 "
                                  f"{result['p99_ms'] or float('nan'):7.2f} ms  errors {result['errors']}  "
                                  f"server CPU {result['server_cpu']:.2f}  busy {result['machine_busy']:.0%}",
                                  highlight=False)
                start.server_answered = answered(server, metrics_key)
            finally:
                server.stop()
                reap(server.proc.pid)
            start.logged = logged(home)
            starts.append(start)
            console.print(f"round {rnd + 1} {kind.name:<38} ready in {start.seconds_to_ready:.1f} s; log check: "
                          f"{start.logged:,} decisions logged, {start.server_answered:,} answered 200 by the "
                          f"server, {start.generator_acked:,} counted by the generator in its windows: "
                          f"{'ok' if start.consistent else 'MISMATCH'}", highlight=False)
    return cells, starts


# ---- stress ---------------------------------------------------------------------------------------------------------

@dataclass
class StressRun:
    """One stress configuration and its wall times over the rounds (seconds); whether each report equalled the
    first."""

    name: str
    workers: int
    ray: bool = False
    env: dict[str, str] = field(default_factory=dict)  # set while it runs (spawned workers inherit it)
    wall: list[float] = field(default_factory=list)
    startup: list[float] = field(default_factory=list)  # Ray only: ray_session's start
    inside: list[float] = field(default_factory=list)  # Ray only: run_stress inside the session
    shutdown: list[float] = field(default_factory=list)  # Ray only
    identical: list[bool] = field(default_factory=list)


#: Ray starts its workers with OMP_NUM_THREADS=1 (one CPU each); a local pool's spawned workers limit their BLAS
#: and torch threads to one once started (rlops.evaluation.stress), and this row sets the variable as well.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
LOCAL2, LOCAL2_ONE, RAY2 = "local, 2 processes", "local, 2 processes, OMP_NUM_THREADS=1", "Ray, 2 actors"


def stress_runs() -> list[StressRun]:
    return [StressRun(LOCAL2, 2), StressRun(LOCAL2_ONE, 2, env=ONE_THREAD), StressRun(RAY2, 2, ray=True)]


def episode_pairs(scenario: str, episodes: int) -> int:
    """Tasks of the standard suite on ``scenario``: one per variation and episode (candidate and baseline)."""
    from rlops.evaluation.stress import StressConfig
    from rlops.scenarios.catalog import get_scenario

    config = StressConfig.standard(episodes=episodes)
    return len(config.expand(get_scenario(scenario))) * config.episodes


def run_stress_suite(args: argparse.Namespace) -> list[StressRun]:
    from rlops.evaluation.stress import StressConfig, run_stress
    from rlops.scale import ray_session
    from rlops.scale.backend import Backend
    from rlops.scenarios.catalog import get_scenario

    os.environ.update(RAY_ENV)
    spec = get_scenario(args.scenario)
    config = StressConfig.standard(episodes=args.episodes)
    console.print(f"stress: {args.scenario}, {episode_pairs(args.scenario, args.episodes)} episode pairs",
                  highlight=False)
    reference: dict[str, Any] | None = None

    def check(report: Any) -> bool:
        nonlocal reference
        data = report.to_dict()
        if reference is None:
            reference = data
        return data == reference

    runs = stress_runs()
    for rnd in range(args.rounds):
        shift = rnd % len(runs)
        for run in runs[shift:] + runs[:shift]:  # a different configuration goes first each round
            saved = {k: os.environ.get(k) for k in run.env}
            os.environ.update(run.env)
            try:
                began = time.perf_counter()
                if run.ray:
                    with ray_session():
                        up = time.perf_counter()
                        report = run_stress(spec, spec.baseline, spec.baseline, config, workers=run.workers,
                                            progress=False, backend=Backend.RAY)
                        done = time.perf_counter()
                    run.startup.append(up - began)
                    run.inside.append(done - up)
                    run.shutdown.append(time.perf_counter() - done)
                else:
                    report = run_stress(spec, spec.baseline, spec.baseline, config, workers=run.workers,
                                        progress=False)
                run.wall.append(time.perf_counter() - began)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            run.identical.append(check(report))
            extra = (f" (start-up {run.startup[-1]:.1f} s, inside the session {run.inside[-1]:.1f} s, shutdown "
                     f"{run.shutdown[-1]:.1f} s)" if run.ray else "")
            console.print(f"round {rnd + 1} stress {run.name:<38} {run.wall[-1]:6.1f} s{extra}; report identical "
                          f"to the first: {run.identical[-1]}", highlight=False)
    return runs


# ---- results --------------------------------------------------------------------------------------------------------

def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def times(a: float, b: float) -> str:
    return "" if not (a == a and b == b and b) else f"{a / b:.2f}x"


SERVE_HEADER = ["server", "conc.", "req/s", "req/s vs 1 process", "p50 ms", "p50 vs 1 process", "p99 ms",
                "p99 vs 1 process", "errors", "server CPU", "CPU us/req", "machine busy"]


def serve_rows(cells: dict[tuple[str, int], Cell]) -> list[list[str]]:
    out = []
    for (name, c), cell in cells.items():
        base = cells[BASELINE, c]
        rps, p50, p99 = cell.median("rps"), cell.median("p50_ms"), cell.median("p99_ms")
        out.append([name, str(c), f"{rps:,.0f}", times(rps, base.median("rps")), f"{p50:.2f}",
                    times(p50, base.median("p50_ms")), f"{p99:.2f}", times(p99, base.median("p99_ms")),
                    str(cell.errors), f"{cell.median('server_cpu'):.2f}", f"{cell.median('server_cpu_us'):,.0f}",
                    f"{cell.median('machine_busy'):.0%}"])
    return out


CHECK_HEADER = ["server", "ready after (s, median)", "decisions logged", "answered 200 (server)",
                "acked in windows (generator)", "log holds every answer"]


def check_rows(starts: list[Start]) -> list[list[str]]:
    out = []
    for name in dict.fromkeys(s.server for s in starts):
        mine = [s for s in starts if s.server == name]
        out.append([name, f"{med([s.seconds_to_ready for s in mine]):.1f}", f"{sum(s.logged for s in mine):,}",
                    f"{sum(s.server_answered for s in mine):,}", f"{sum(s.generator_acked for s in mine):,}",
                    "yes" if all(s.consistent for s in mine) else "NO"])
    return out


STRESS_HEADER = ["run", "wall s", "vs local, 2 processes", "Ray start-up s", "inside the session s",
                 "inside vs local, 2 processes", "shutdown s", "reports identical"]


def stress_rows(runs: list[StressRun]) -> list[list[str]]:
    local2 = med(next(r for r in runs if r.name == LOCAL2).wall)
    out = []
    for r in runs:
        out.append([r.name, f"{med(r.wall):.1f}", times(med(r.wall), local2),
                    f"{med(r.startup):.1f}" if r.ray else "", f"{med(r.inside):.1f}" if r.ray else "",
                    times(med(r.inside), local2) if r.ray else "", f"{med(r.shutdown):.1f}" if r.ray else "",
                    "yes" if all(r.identical) else "NO"])
    return out


def rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1),
            *["| " + " | ".join(row) + " |" for row in rows]]


def reading(cells: dict[tuple[str, int], Cell], starts: list[Start], runs: list[StressRun]) -> list[str]:
    """What the numbers say, from the numbers (each claim is computed, so a re-run rewrites it)."""
    lines = []
    if cells:
        conc = sorted({c for _, c in cells})

        def rps(name: str, c: int) -> float:
            return cells[name, c].median("rps")

        def p50(name: str, c: int) -> float:
            return cells[name, c].median("p50_ms")

        def cpu(name: str, c: int) -> float:
            return cells[name, c].median("server_cpu_us")

        r1, r2, w2 = ("rlops serve --backend ray --replicas 1", "rlops serve --backend ray --replicas 2",
                      "rlops serve --workers 2")

        hop = "; ".join(f"at concurrency {c}, {rps(r1, c) / rps(BASELINE, c):.2f}x the throughput, "
                        f"{p50(r1, c) - p50(BASELINE, c):+.1f} ms at p50 and {cpu(r1, c) / cpu(BASELINE, c):.1f}x the "
                        "CPU time per request" for c in conc)
        lines.append(f"- **The proxy + replica hop.** One Ray Serve replica runs the very app the single process "
                     f"runs, behind Ray's HTTP proxy (a separate process: every request is parsed by the proxy, "
                     f"sent to the replica over Ray's RPC, and its answer sent back). Against the single process it "
                     f"gives, {hop} (the CPU time of all the server's processes, Ray's included).")
        gain = ", ".join(f"{rps(r2, c) / rps(r1, c):.2f}x at concurrency {c}" for c in conc)
        local = ", ".join(f"{rps(w2, c) / rps(BASELINE, c):.2f}x" for c in conc)
        versus = ", ".join(f"{rps(r2, c) / rps(w2, c):.2f}x" for c in conc)
        helps = max(rps(r2, c) / rps(r1, c) for c in conc) >= 1.15
        lines.append(f"- **2 replicas vs 1:** {gain}. For comparison `--workers 2` gives {local} the single process "
                     f"(at the same concurrencies), and 2 Ray replicas reach {versus} of `--workers 2`. "
                     + ("The second replica helps, within limits: " if helps
                        else "The second replica adds little: ")
                     + "the load generator, the proxy, the replicas, the raylet and the GCS share two CPUs ('server "
                     "CPU' counts every process of the server's session, Ray's included).")
        ready = {name: med([s.seconds_to_ready for s in starts if s.server == name]) for name in (BASELINE, r1, r2)}
        lines.append(f"- **Start-up:** {ready[BASELINE]:.1f} s to the first answered decision for the single "
                     f"process, {ready[r1]:.1f} s and {ready[r2]:.1f} s with Ray (1 and 2 replicas: Ray's own "
                     "processes, Serve's controller and proxy, then each replica importing the app and loading the "
                     "policy).")
    if runs:
        by = {r.name: r for r in runs}
        l2, l2one, ray = (med(by[n].wall) for n in (LOCAL2, LOCAL2_ONE, RAY2))
        up, inside, down = (med(getattr(by[RAY2], part)) for part in ("startup", "inside", "shutdown"))
        line = (f"- **Stress suite:** Ray with 2 actors takes {ray / l2:.2f}x the time of 2 local processes all "
                f"told ({up:.1f} s of Ray start-up and {down:.1f} s of shutdown included) and {inside / l2:.2f}x "
                "inside an already started session. Ray starts its "
                "workers with `OMP_NUM_THREADS=1`; the local pool's workers limit themselves to one BLAS and one "
                "torch thread each (since this benchmark's first run found the default of one per core in every "
                "worker 4x slower on a busy machine). With `OMP_NUM_THREADS=1` in their environment as well, the 2 "
                f"local processes take {l2one / l2:.2f}x the time, and against them Ray takes {ray / l2one:.2f}x all "
                f"told and {inside / l2one:.2f}x inside the session.")
        if l2one < 0.9 * l2:
            line += (" So the fair comparison is with the capped pool: the default pool loses time to OpenBLAS "
                     "threads competing for busy cores (the more so the busier the machine), which Ray's default "
                     "avoids.")
        same = all(all(r.identical) for r in runs)
        line += (" Every report is identical whichever backend and however many workers ran it." if same
                 else " NOT every report is identical: see the table.")
        lines.append(line)
    lines.append("- **When Ray pays off:** on one 2-core machine Ray adds processes and hops that compete with the "
                 "work for the same two cores, and seconds of start-up. It earns its cost when the replicas or "
                 "actors need more CPUs than one machine has (a cluster: `RLOPS_RAY_ADDRESS`), when each request "
                 "or task is expensive enough that the hop is small beside it (a large policy; long episodes), or "
                 "when the cluster is already there for training.")
    return lines


def markdown(meta: dict[str, Any], facts: dict[str, str], cells: dict[tuple[str, int], Cell], starts: list[Start],
             runs: list[StressRun], tasks: int) -> str:
    load0, load1 = meta["load_start"], meta["load_end"]
    lines = [
        SECTION, "",
        f"Command: `{meta['command']}` ({meta['rounds']} round{'s' * (meta['rounds'] != 1)}, configurations in "
        "rotation, medians over rounds; "
        f"run on {facts['date']}; load average {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f} at the start and "
        f"{load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f} at the end; other Ray instances running at the start: "
        f"{meta['other_rays']}).", "",
        f"{machine_line(facts)} Ray {meta['ray']} (Serve), torch {meta['torch']}.", "",
    ]
    if cells:
        lines += [
            "### Serving", "",
            "bench/serve.py's deployment (an SB3 PPO MLP policy, 64x64, 20 float features, 8 discrete actions) "
            "behind `rlops serve` with authentication, schema validation, its JSON access log and durable logging "
            "(fsync, the default), `RLOPS_RATE_LIMIT=0`; every start gets the home back with an empty log. Ray: "
            "`rlops serve --backend ray --replicas N` on a private Ray instance started by the server (Ray Serve's "
            "HTTP proxy in front of N replicas of the same app, `max_ongoing_requests` 64 per replica, each replica "
            "with `OMP_NUM_THREADS=1`, Ray's default for a 1-CPU actor; the local servers keep torch's and "
            "OpenBLAS's defaults). Load: "
            f"bench/serve_peers/loadgen.py run by `{Path(generator_python()).relative_to(REPO)}` in a separate "
            "process, closed-loop keep-alive connections (concurrency = connections), "
            f"{meta['warmup']:g} s warm-up + {meta['seconds']:g} s measured per cell. Ratios are to the single "
            "process at the same concurrency (for latency, below 1 is better). \"server CPU\" is the CPU time of "
            "every process in the server's session over the window (1.00 = one core), Ray's raylet, GCS, "
            "controller and proxy included; \"machine busy\" is all CPUs, everyone's jobs included.", "",
            *md_table(SERVE_HEADER, serve_rows(cells)), "",
            "Log check, summed over the rounds: the decisions in each server's event log (counted once it stopped) "
            "against the decide requests it answered 200 (its `/metrics`, read after the load; readiness probes "
            "and warm-up included) and those the generator counted inside its measured windows (a lower bound). "
            "The log must hold every answered decision; it may hold a few more (logged, not yet counted when "
            "`/metrics` was read, or answered after the generator had stopped waiting).",
            "",
            *md_table(CHECK_HEADER, check_rows(starts)), "",
        ]
    if runs:
        lines += [
            "### Stress suite", "",
            f"`run_stress` on `{meta['scenario']}` with the standard suite ({tasks} episode pairs: "
            f"{meta['episodes']} episodes per variation), the scenario's baseline as both candidate and baseline, "
            "as `rlops stress ... --workers 2 [--backend ray]` runs it. The local pool runs as it starts by "
            "default (each worker limits itself to one BLAS and one torch thread) and with `OMP_NUM_THREADS=1` in "
            "its workers' environment too (what Ray sets for its workers). The Ray run starts a private instance "
            "(`ray_session`) and is timed in three parts: Ray's start-up, `run_stress` inside the session (its "
            "actors' start included), and the shutdown; \"wall\" is all three. \"reports identical\": "
            "`to_dict()` equal to the first run's, every round.", "",
            *md_table(STRESS_HEADER, stress_rows(runs)), "",
        ]
    lines += ["### Reading", "", *reading(cells, starts, runs)]
    return "\n".join(lines) + "\n"


def other_rays() -> int:
    """raylet processes running now (none is ours when this is called)."""
    found = subprocess.run(["pgrep", "-f", "raylet"], capture_output=True, text=True).stdout.split()
    return len([p for p in found if int(p) != os.getpid()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per serving cell (default 6)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per serving cell (default 2)")
    parser.add_argument("--concurrency", default="8,32", help="comma-separated connection counts (default 8,32)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every configuration in rotation (default 3)")
    parser.add_argument("--scenario", default="hvac", help="the stress suite's catalog scenario (default hvac)")
    parser.add_argument("--episodes", type=int, default=20, help="stress episodes per variation (default 20)")
    parser.add_argument("--only", choices=PARTS, help="run only the serving or only the stress part")
    parser.add_argument("--no-docs", action="store_true", help="print only; do not write docs/benchmarks.md")
    parser.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                        help="no measuring: redo the tables (and docs, unless --no-docs) from a saved "
                             ".bench-scale/results.json")
    args = parser.parse_args()
    if args.report is not None:
        report_saved(args.report, write_docs=not args.no_docs)
        return
    concurrency = [int(c) for c in args.concurrency.split(",")]
    defaults = {"seconds": 6.0, "warmup": 2.0, "concurrency": "8,32", "rounds": 3, "scenario": "hvac",
                "episodes": 20, "only": None}
    command = ".venv/bin/python bench/scale.py"
    for name, default in defaults.items():
        value = getattr(args, name)
        if value != default:
            command += f" --{name} {value:g}" if isinstance(value, float) else f" --{name} {value}"
    load_start = os.getloadavg()
    rays = other_rays()
    console.print(f"load average at the start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}; "
                  f"other Ray instances running: {rays}", highlight=False)
    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir(parents=True)

    cells: dict[tuple[str, int], Cell] = {}
    starts: list[Start] = []
    runs: list[StressRun] = []
    if args.only in (None, "serve"):
        cells, starts = run_serving(args, concurrency)
    if args.only in (None, "stress"):
        runs = run_stress_suite(args)
    load_end = os.getloadavg()
    console.print(f"load average at the end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}", highlight=False)

    meta = {"command": command, "rounds": args.rounds, "seconds": args.seconds, "warmup": args.warmup,
            "scenario": args.scenario, "episodes": args.episodes, "load_start": list(load_start),
            "load_end": list(load_end), "other_rays": rays, "ray": version("ray"), "torch": version("torch")}
    (SCRATCH / "results.json").write_text(json.dumps({
        "meta": meta,
        "serve": [{"server": n, "concurrency": c, "runs": cell.runs} for (n, c), cell in cells.items()],
        "starts": [vars(s) for s in starts], "stress": [vars(r) for r in runs]}, indent=1))
    report(meta, cells, starts, runs, write_docs=not args.no_docs)


def report(meta: dict[str, Any], cells: dict[tuple[str, int], Cell], starts: list[Start], runs: list[StressRun],
           write_docs: bool) -> None:
    """Print the tables and the reading; write the docs section."""
    tasks = episode_pairs(meta["scenario"], meta["episodes"]) if runs else 0
    if cells:
        console.print(rich_table("Decisions over HTTP, median over rounds", SERVE_HEADER, serve_rows(cells)))
        console.print(rich_table("Log check (summed over rounds)", CHECK_HEADER, check_rows(starts)))
    if runs:
        console.print(rich_table(f"Stress suite, {meta['scenario']}, {tasks} episode pairs (median wall time)",
                                 STRESS_HEADER, stress_rows(runs)))
    for line in reading(cells, starts, runs):
        console.print(line, highlight=False, markup=False)
    if write_docs:
        write_section(SECTION, markdown(meta, machine(), cells, starts, runs, tasks))
        console.print(f"wrote {DOC.relative_to(REPO)}")


def report_saved(path: Path, write_docs: bool) -> None:
    """Redo the tables, the reading and the docs section from a results.json an earlier run wrote."""
    saved = json.loads(path.read_text())
    kinds = {k.name: k for k in server_kinds(Path())}
    cells = {(c["server"], c["concurrency"]): Cell(kinds[c["server"]], c["concurrency"], c["runs"])
             for c in saved["serve"]}
    report(saved["meta"], cells, [Start(**s) for s in saved["starts"]], [StressRun(**r) for r in saved["stress"]],
           write_docs)

if __name__ == "__main__":
    main()
