"""Serving over HTTP on loopback: rlops serve (durable logging) against a hand-written FastAPI endpoint, Ray Serve
and a bare ASGI floor, all serving the same SB3 PPO policy.

The policy: ``PPO("MlpPolicy", ..., policy_kwargs=dict(net_arch=[64, 64]), seed=0)`` on a tiny Gymnasium env
with ``Box(20)`` observations and ``Discrete(8)`` actions, initialised and not trained (the forward pass costs the
same). Every server loads the same ``model.zip``:

- **rlops**: ``rlops serve --workers N`` (N = 1 and 2) over a deployment whose policy is that model wrapped as an
  :class:`~rlops.policies.SB3Policy`; every request is authenticated (a decider key made in the bench's home,
  sent as ``Authorization: Bearer``), every decision is validated against the schema (20 float features, 8
  discrete actions) and durably logged (fsync, the default) before it is answered; JSON access log on. The
  servers run with ``RLOPS_RATE_LIMIT=0``: the generator is one client with one key at thousands of requests/s,
  which the per-key rate limit (default 500 req/s) would throttle, so rate limiting is not measured here;
  authentication is (per request, once its key lookup is cached: one SHA-256 and a dict lookup). Each start gets
  the home back as it was built, with an empty log: the service's monitor reads the whole log every 5 s, so a log
  grown by the servers before would tax the later ones.
- **fastapi**: ``bench/serve_peers/fastapi_sb3.py``: a FastAPI route calling ``model.predict(obs,
  deterministic=False)``, no logging, on uvicorn with 1 and 2 worker processes.
- **ray**: ``bench/serve_peers/ray_sb3.py``: Ray Serve with 1 and 2 replicas, in a separate venv
  (``.bench-venv-ray``, created here on first use: ``ray[serve]`` is a benchmark-only dependency).
- **floor**: ``bench/serve_peers/floor.py``: a bare ASGI app answering a constant, on uvicorn, one process.

The load comes from a separate process (``bench/serve_peers/loadgen.py``): closed-loop HTTP/1.1 keep-alive
connections with pre-encoded requests, at each concurrency for a warm-up and then a measured window. Every server
gets the same body, ``{"unit_id": ..., "context": {"f0": ..., "f19": ...}}``, and the same ``Authorization``
header (the peers ignore it), so every server reads requests of the same size. Servers run in rotation for several
rounds (the machine is shared) and the tables report medians.

Run::

    .venv/bin/python bench/serve.py                          # 3 rounds x 10 s per cell, writes docs/benchmarks.md
    .venv/bin/python bench/serve.py --seconds 3 --rounds 1 --only rlops,floor --no-docs
    .venv/bin/python bench/serve.py --profile-only           # py-spy profiles of rlops serve and the FastAPI peer
    .venv/bin/python bench/serve.py --only rlops,fastapi,floor,uvloop --rounds 2 --seconds 5 --no-docs
    .venv/bin/python bench/serve.py --report .bench-serve/results.json   # redo the tables from a saved run

``--only uvloop`` adds the one-process servers on uvloop + httptools explicitly. (``rlops serve`` itself now
depends on ``uvicorn[standard]``, so it picks uvloop and httptools up by default, and sets TCP_NODELAY on the
socket its workers share: the fix this benchmark's first run proposed.)
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DOC, REPO, machine, machine_line, write_section

SECTION = "## Serving over HTTP (bench/serve.py)"
BENCH = REPO / "bench"
PEERS = BENCH / "serve_peers"
SCRATCH = REPO / ".bench-serve"
RAY_VENV = REPO / ".bench-venv-ray"
RAY_PYTHON = RAY_VENV / "bin" / "python"
DEPLOYMENT = "bench"
FEATURES = [f"f{i}" for i in range(20)]
ACTIONS = [f"a{i}" for i in range(8)]
TORCH_PIN = "torch==2.13.0"  # the CPU build; the index's newer torch builds drag in gigabytes of CUDA wheels
RAY_MAX_ONGOING = 64
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FAMILIES = ("rlops", "fastapi", "ray", "floor")
OPTIONAL_FAMILIES = ("uvloop",)
#: The rlops servers' environment: the generator is one client (one key) at thousands of requests/s, which the
#: per-key rate limit would throttle; limiting is not what this benchmark measures (authentication is).
NO_RATE_LIMIT = {"RLOPS_RATE_LIMIT": "0"}

console = Console()


# ---- the model and the rlops home ----------------------------------------------------------------------------------

def build_model(folder: Path) -> Path:
    """Initialise the PPO policy (no training: the forward pass is what serving costs) and save it."""
    import gymnasium as gym
    import numpy as np
    from gymnasium import spaces
    from stable_baselines3 import PPO

    class TinyEnv(gym.Env[np.ndarray, int]):
        observation_space = spaces.Box(-10.0, 10.0, (len(FEATURES),), np.float32)
        action_space = spaces.Discrete(len(ACTIONS))

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
            super().reset(seed=seed)
            self.steps = 0
            return self.observation_space.sample(), {}

        def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
            self.steps += 1
            return self.observation_space.sample(), float(action == 0), False, self.steps >= 16, {}

    model = PPO("MlpPolicy", TinyEnv(), policy_kwargs=dict(net_arch=[64, 64]), seed=0, device="cpu")
    path = folder / "model.zip"
    model.save(path)
    return path


def build_rlops_home(folder: Path, model_path: Path) -> tuple[Path, str]:
    """A home folder with one deployment serving the model as an SB3Policy (fsync on by default), and a decider
    key for that deployment (the plaintext, sent as ``Authorization: Bearer``)."""
    from stable_baselines3 import PPO

    from rlops.engine import DeploymentSpec, Engine
    from rlops.policies import SB3Policy, save_policy
    from rlops.schema import Schema

    schema = Schema.model_validate({
        "features": [{"name": name, "type": "float", "min": -10, "max": 10} for name in FEATURES],
        "actions": {"type": "discrete", "names": ACTIONS},
    })
    policy_folder = save_policy(SB3Policy.wrap(schema, PPO.load(model_path, device="cpu")), folder / "policy")
    spec = DeploymentSpec.from_dict({
        "name": DEPLOYMENT, "schema": schema.to_dict(),
        "reward": {"name": "converted", "version": 1, "expression": "y", "fields": {"y": {}}},
        "policy": {"path": str(policy_folder)},
    })
    home = folder / "home"
    with Engine(home) as engine:
        engine.apply(spec)
    key = decider_key(home)
    shutil.copytree(home, pristine(home))
    return home, key


def pristine(home: Path) -> Path:
    return home.with_name(f"{home.name}-pristine")


def fresh_home(home: Path) -> None:
    """Put ``home`` back as :func:`build_rlops_home` left it (deployment, key, empty log) before a server starts.

    The service's monitor reads the whole event log every few seconds: on a log grown by the servers that ran
    before, a later rlops server would pay more CPU than an earlier one. Every start gets the same empty log.
    """
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(pristine(home), home)


def decider_key(home: Path) -> str:
    """A new decider key scoped to the benchmark's deployment (the service refuses unauthenticated decisions)."""
    from rlops.home import Home
    from rlops.security import KeyStore, Role, Scope

    with KeyStore.for_home(Home.resolve(home)) as keys:
        _, secret = keys.create(Role.DECIDER, Scope.parse([f"deployment:{DEPLOYMENT}"]), name="bench/serve.py",
                                actor="bench")
    return secret


# ---- the Ray venv ---------------------------------------------------------------------------------------------------

def ensure_ray_venv() -> None:
    """Create ``.bench-venv-ray`` with ray[serve] and the same SB3/gymnasium as ours (CPU torch pinned first)."""
    ready = RAY_VENV / ".ready"
    if ready.exists():
        return
    from importlib.metadata import version

    console.print(f"creating {RAY_VENV.relative_to(REPO)} (ray[serve], benchmark only; takes a few minutes)",
                  markup=False)
    subprocess.run(["python3.11", "-m", "venv", str(RAY_VENV)], check=True)
    pip = [str(RAY_VENV / "bin" / "pip"), "install", "--quiet"]
    subprocess.run([*pip, TORCH_PIN], check=True)
    constraints = RAY_VENV / "constraints.txt"
    constraints.write_text(f"{TORCH_PIN}\n")
    subprocess.run([*pip, "-c", str(constraints), "ray[serve]", f"stable-baselines3=={version('stable-baselines3')}",
                    f"gymnasium=={version('gymnasium')}", "py-spy"], check=True)
    ready.write_text("ok\n")


# ---- servers --------------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class ServerKind:
    """One server configuration: how to start it on a port and the path to POST decisions to."""

    name: str
    family: str  # rlops, fastapi, ray, floor
    processes: int  # worker processes / replicas
    path: str
    command: Callable[[int, Path], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    home: Path | None = None  # the rlops home it serves: put back to its pristine state before each start


def server_kinds(home: Path, model: Path, scratch: Path) -> list[ServerKind]:
    py = sys.executable
    uvicorn = [py, "-m", "uvicorn", "--app-dir", str(PEERS), "--host", "127.0.0.1", "--log-level", "warning",
               "--no-access-log"]
    kinds = []
    for workers in (1, 2):
        kinds.append(ServerKind(
            f"rlops serve, {workers} worker{'s' * (workers > 1)}", "rlops", workers,
            f"/v1/deployments/{DEPLOYMENT}/decide",
            lambda port, _, w=workers: [py, "-m", "rlops", "serve", "--home", str(home), "--port", str(port),
                                        "--workers", str(w)],
            env=NO_RATE_LIMIT, home=home))
    for workers in (1, 2):
        kinds.append(ServerKind(
            f"FastAPI + SB3, {workers} worker{'s' * (workers > 1)}", "fastapi", workers, "/decide",
            lambda port, _, w=workers: [*uvicorn, "--port", str(port), "--workers", str(w), "fastapi_sb3:app"],
            env={"BENCH_MODEL": str(model)}))
    for replicas in (1, 2):
        kinds.append(ServerKind(
            f"Ray Serve, {replicas} replica{'s' * (replicas > 1)}", "ray", replicas, "/decide",
            lambda port, run_dir, r=replicas: [
                str(RAY_PYTHON), str(PEERS / "ray_sb3.py"), "--model", str(model), "--port", str(port),
                "--replicas", str(r), "--max-ongoing-requests", str(RAY_MAX_ONGOING), "--temp-dir", str(run_dir)],
            env={"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}))
    kinds.append(ServerKind("floor: bare ASGI constant", "floor", 1, "/decide",
                            lambda port, _: [*uvicorn, "--port", str(port), "floor:app"]))
    # Optional ("--only uvloop"): the same one-process servers on uvloop + httptools, which uvicorn picks by itself
    # when they are importable (what `uvicorn[standard]` installs). The Ray venv has both and the very same
    # fastapi/starlette/pydantic/uvicorn/torch/numpy versions; the project's packages come from .venv.
    fast_env = {"PYTHONPATH": f"{REPO / 'src'}:{project_site_packages()}"}
    fast_uvicorn = [str(RAY_PYTHON), *uvicorn[1:], "--loop", "uvloop", "--http", "httptools"]
    kinds.append(ServerKind(
        "rlops serve, 1 worker, uvloop + httptools", "uvloop", 1, f"/v1/deployments/{DEPLOYMENT}/decide",
        lambda port, _: [str(RAY_PYTHON), "-m", "rlops", "serve", "--home", str(home), "--port", str(port)],
        env={**fast_env, **NO_RATE_LIMIT}, home=home))
    kinds.append(ServerKind(
        "FastAPI + SB3, 1 worker, uvloop + httptools", "uvloop", 1, "/decide",
        lambda port, _: [*fast_uvicorn, "--port", str(port), "fastapi_sb3:app"],
        env={**fast_env, "BENCH_MODEL": str(model)}))
    kinds.append(ServerKind("floor, uvloop + httptools", "uvloop", 1, "/decide",
                            lambda port, _: [*fast_uvicorn, "--port", str(port), "floor:app"], env=fast_env))
    return kinds


def project_site_packages() -> str:
    import sysconfig

    return sysconfig.get_paths()["purelib"]


class Running:
    """A started server: its process (the leader of its own session), URL and log file.

    ``api_key`` goes with every request as ``Authorization: Bearer`` (to the peers too, which ignore it).
    """

    def __init__(self, kind: ServerKind, logs: Path, api_key: str) -> None:
        self.kind = kind
        self.api_key = api_key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{kind.path}"
        # Ray keeps sockets in its session folder: a short path under /tmp, one per start.
        self.run_dir = Path(f"/tmp/rlops-bench-ray-{os.getpid()}-{self.port}")
        self.log_path = logs / f"{kind.family}-{kind.processes}-{self.port}.log"
        if kind.home is not None:
            fresh_home(kind.home)
        env = {**os.environ, **kind.env}
        with self.log_path.open("wb") as log:  # a file, never a pipe nobody reads
            self.proc = subprocess.Popen(kind.command(self.port, self.run_dir), stdout=log, stderr=log, env=env,
                                         cwd=REPO, start_new_session=True)

    def wait_ready(self, body: bytes, timeout: float = 240.0) -> None:
        """Until a real decision request answers 200."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                r = httpx.post(self.url, content=body, timeout=5.0, headers={
                    "content-type": "application/json", "authorization": f"Bearer {self.api_key}"})
                if r.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"{self.kind.name} did not start:\n{tail}")
            time.sleep(0.25)

    def warm(self, attempts: int = 10) -> None:
        """Load the server until no request is slow, so that every worker process has loaded its model.

        rlops loads a deployment's policy on the first decision a process makes (and uvicorn's workers each make
        their own), and a readiness probe reaches only one worker: without this, a cold worker's first decisions
        (seconds each while SB3 and torch are imported) would land inside a measured window.
        """
        for _ in range(attempts):
            result = run_load(self, 4 * self.kind.processes, 0.0, 2.0)
            if result["errors"] == 0 and result["requests"] and result["p99_ms"] < 1000.0:
                return
        console.print(f"warning: {self.kind.name} still answers slowly after warming up", markup=False)

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the server's own session, which we started
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers of that session (e.g. Ray's workers)
        shutil.rmtree(self.run_dir, ignore_errors=True)


# ---- load ---------------------------------------------------------------------------------------------------------

def generator_python() -> str:
    """The generator's interpreter: the Ray venv's when it exists (it has uvloop: a lighter generator)."""
    return str(RAY_PYTHON) if RAY_PYTHON.exists() else sys.executable


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def session_cpu(session: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of one session (a server and its children)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            rest = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(rest[3]) == session:
            total += (int(rest[11]) + int(rest[12])) / CLOCK_TICKS
    return total


def run_load(server: Running, concurrency: int, warmup: float, seconds: float) -> dict[str, Any]:
    """Load ``server`` from a separate process; also read the server's and the machine's CPU over the window."""
    gen = subprocess.Popen([generator_python(), str(PEERS / "loadgen.py"), "--url", server.url, "--concurrency",
                            str(concurrency), "--warmup", str(warmup), "--seconds", str(seconds)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "RLOPS_API_KEY": server.api_key})  # not on its command line
    assert gen.stdout is not None
    readings: list[tuple[float, float, float]] = []
    result: dict[str, Any] | None = None
    for line in gen.stdout:
        if line.startswith("window"):
            readings.append((session_cpu(server.proc.pid), *cpu_times()))
        elif line.startswith("{"):
            result = json.loads(line)
    err = gen.stderr.read() if gen.stderr is not None else ""
    if gen.wait(timeout=60) != 0 or result is None or len(readings) != 2:
        raise RuntimeError(f"load generator failed: {err[-1500:]}")
    (server0, busy0, total0), (server1, busy1, total1) = readings
    result["machine_busy"] = (busy1 - busy0) / max(total1 - total0, 1.0)  # fraction of all CPUs
    result["server_cpu"] = (server1 - server0) / seconds  # cores
    result["server_cpu_us"] = (server1 - server0) / max(result["requests"], 1) * 1e6
    return result


def first_body() -> bytes:
    sys.path.insert(0, str(PEERS))
    from loadgen import request_bodies

    return request_bodies(1)[0]


# ---- results --------------------------------------------------------------------------------------------------------

@dataclass
class Cell:
    server: ServerKind
    concurrency: int
    runs: list[dict[str, Any]] = field(default_factory=list)

    def median(self, key: str) -> float:
        values = [r[key] for r in self.runs if r.get(key) is not None]
        return statistics.median(values) if values else float("nan")

    @property
    def errors(self) -> int:
        return sum(int(r["errors"]) for r in self.runs)


def peer_for(cells: dict[tuple[str, int], Cell], cell: Cell, family: str) -> Cell | None:
    """The ``family`` cell at the same concurrency with the same process count (else with one process)."""
    for kind_name, conc in cells:
        other = cells[kind_name, conc]
        if (other.server.family == family and conc == cell.concurrency
                and other.server.processes == cell.server.processes):
            return other
    for kind_name, conc in cells:
        other = cells[kind_name, conc]
        if other.server.family == family and conc == cell.concurrency:
            return other
    return None


def ratio(a: float, b: float) -> str:
    return "" if not (a == a and b == b and b) else f"{a / b:.2f}x"


def rows(cells: dict[tuple[str, int], Cell]) -> list[list[str]]:
    out = []
    for cell in cells.values():
        rps, p50, p99 = cell.median("rps"), cell.median("p50_ms"), cell.median("p99_ms")
        ray = peer_for(cells, cell, "ray") if cell.server.family != "ray" else None
        floor = peer_for(cells, cell, "floor") if cell.server.family != "floor" else None
        out.append([cell.server.name, str(cell.concurrency), f"{rps:,.0f}", f"{p50:.2f}", f"{p99:.2f}",
                    str(cell.errors),
                    ratio(rps, ray.median("rps")) if ray else "", ratio(p99, ray.median("p99_ms")) if ray else "",
                    ratio(rps, floor.median("rps")) if floor else "",
                    f"{cell.median('server_cpu'):.2f}", f"{cell.median('server_cpu_us'):,.0f}",
                    f"{cell.median('generator_cpu'):.2f}", f"{cell.median('machine_busy'):.0%}"])
    return out


HEADER = ["server", "conc.", "req/s", "p50 ms", "p99 ms", "errors", "req/s vs Ray", "p99 vs Ray", "req/s vs floor",
          "server CPU", "server CPU us/req", "generator CPU", "machine busy"]


def render(cells: dict[tuple[str, int], Cell]) -> Table:
    table = Table(title="Decisions over HTTP, keep-alive, median over rounds")
    for i, name in enumerate(HEADER):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows(cells):
        table.add_row(*row)
    return table


def targets(cells: dict[tuple[str, int], Cell]) -> list[str]:
    """One line per rlops cell: throughput >= 3x Ray's, p99 <= 1/3 of Ray's, throughput >= 50% of the floor's."""
    lines = []
    for cell in cells.values():
        if cell.server.family != "rlops":
            continue
        ray, floor = peer_for(cells, cell, "ray"), peer_for(cells, cell, "floor")
        rps, p99 = cell.median("rps"), cell.median("p99_ms")
        parts = []
        if ray is not None:
            r_rps, r_p99 = rps / ray.median("rps"), p99 / ray.median("p99_ms")
            parts.append(f"throughput {r_rps:.2f}x Ray ({'met' if r_rps >= 3 else 'missed'})")
            parts.append(f"p99 {r_p99:.2f}x Ray's ({'met' if r_p99 <= 1 / 3 else 'missed'})")
        if floor is not None:
            r_floor = rps / floor.median("rps")
            parts.append(f"{r_floor:.0%} of the floor ({'met' if r_floor >= 0.5 else 'missed'})")
        lines.append(f"- {cell.server.name}, concurrency {cell.concurrency}: " + "; ".join(parts) + ".")
    return lines


def loops(cells: dict[tuple[str, int], Cell]) -> str:
    return ", ".join(sorted({str(r.get("event_loop")) for c in cells.values() for r in c.runs}))


def markdown(cells: dict[tuple[str, int], Cell], facts: dict[str, str], args: argparse.Namespace, command: str,
             load: tuple[float, ...], notes: Sequence[str]) -> str:
    lines = [
        SECTION, "",
        f"Command: `{command}` ({args.rounds} rounds, servers in rotation, {args.warmup:g} s warm-up + "
        f"{args.seconds:g} s measured per cell; medians over rounds, errors summed; run on {facts['date']}; "
        f"load average at the start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}).", "",
        machine_line(facts), "",
        "Same SB3 PPO MLP policy (64x64, 20 float features, 8 discrete actions) behind every server; load from a "
        "separate process over keep-alive HTTP/1.1 connections (one request in flight per connection: "
        "concurrency = connections). Every request carries the same `Authorization: Bearer` header (a decider key "
        "made in the bench's home; the peers ignore it), so every server reads requests of the same size. rlops: "
        "`rlops serve` with authentication (the key's lookup is cached for 2 s, so per request one SHA-256 and a "
        "dict lookup), durable logging (fsync), schema validation and its JSON access log, started with "
        "`RLOPS_RATE_LIMIT=0`: the generator is one client with one key at thousands of requests/s, which the "
        "per-key rate limit (default 500 req/s) would throttle, so rate limiting is not measured here; every start "
        "gets the home back with an empty log (the service's monitor reads the whole log every 5 s, so a log grown "
        "by the servers before would tax the later ones). FastAPI: "
        "a hand-written route calling `model.predict(obs, deterministic=False)`, no logging. Ray Serve: an "
        "`async def __call__` deployment calling `model.predict`, "
        f"`max_ongoing_requests={RAY_MAX_ONGOING}` per replica (default 5), otherwise Ray's defaults. Floor: a bare "
        "ASGI app answering a constant, uvicorn, one process. Ratios pair each server with the Ray Serve "
        "configuration of the same process count (1 worker with 1 replica, 2 with 2) at the same concurrency. "
        "\"server CPU\" is the CPU time of the server's processes over the window (1.00 = one core busy) and per "
        "answered request; \"generator CPU\" the same for the load generator; \"machine busy\" is all CPUs, "
        "everyone's jobs included.", "",
        f"Load generator: `bench/serve_peers/loadgen.py` run by `{Path(generator_python()).relative_to(REPO)}` "
        f"(event loop: {loops(cells)}), unpinned; the warm-up of each server first loads it until no request takes "
        "a second, so that every worker process has loaded its model.", "",
        "| " + " | ".join(HEADER) + " |",
        "|---|" + "---:|" * (len(HEADER) - 1),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(cells)]
    lines += ["", "Targets (issue 4): rlops >= 3x Ray Serve's throughput with p99 <= 1/3 of Ray Serve's at the same "
              "concurrency, and >= 50% of the floor's throughput.", "", *targets(cells)]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


# ---- profiling ------------------------------------------------------------------------------------------------------

def py_spy() -> str:
    for candidate in (Path(sys.executable).parent / "py-spy", RAY_VENV / "bin" / "py-spy"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy (into .venv or .bench-venv-ray)")
    return found


#: Where a profile sample's time goes: the category of the frame nearest the leaf that matches one (so an
#: app's frames count for the app, not for the protocol code that called it), else "event loop" if asyncio
#: is on the stack, else "other".
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("policy: SB3Policy.act (torch forward, sampling)", ("SB3Policy.act ",)),
    ("SB3 model.predict (torch forward, sampling)", ("BaseAlgorithm.predict ", "BasePolicy.predict ")),
    ("event log: EventLog.append (encode, write, fsync wait)", ("EventLog.append ",)),
    ("context validation and encoding (schema)", ("Schema.validate_context ", "Schema.encode ",
                                                   "PolicyInput.__init__ ")),
    ("rest of Engine.decide (ids, records, decision index)", ("Engine.decide_batch ", "Engine.decide ")),
    ("access log line (JSON formatter, stderr)", ("Logger.info ", "Logger._log ", "JSONFormatter.")),
    ("metrics (Prometheus client)", ("ServiceMetrics.", "prometheus_client/")),
    ("authentication (Guard: cached key lookup, rate limit, permission)", ("Guard.__call__ ",
                                                                           "Authenticator.authenticate ")),
    ("response: pydantic model and JSON", ("serialize_response ", "DecideResponse.of ", "TypeAdapter.dump_json ",
                                           "JSONResponse.", "_prepare_response_content ")),
    ("request: body read, JSON, pydantic validation", ("solve_dependencies ", "Request.json ", "Request.body ",
                                                      "request_body_to_args ", "_extract_form_body ")),
    ("thread-pool hand-off (anyio worker threads)", ("run_sync_in_worker_thread ", "WorkerThread.run ",
                                                     "run_in_threadpool ", "to_thread.py")),
    ("middleware and routing (Starlette, FastAPI, rlops)", ("Router.__call__ ", "BodySizeLimit.__call__ ",
                                                            "RequestContext.__call__ ", "Middleware.__call__ ",
                                                            "FastAPI.__call__ ", "Starlette.__call__ ",
                                                            "routing.py", "_exception_handler.py",
                                                            "middleware/")),
    ("HTTP/1.1 protocol (uvicorn h11, h11)", ("h11_impl.py", "h11/")),
)


def categorize(frames: Sequence[str]) -> str:
    for frame in reversed(frames):  # from the leaf up
        for name, marks in CATEGORIES:
            if any(m in frame for m in marks):
                return name
    return "event loop and sockets (asyncio)" if any("asyncio/" in f for f in frames) else "other"


def summarize_profile(raw: Path, top: int = 20) -> list[str]:
    """A py-spy ``--format raw`` profile as percentages: by category, then the top frames by self time."""
    own: collections.Counter[str] = collections.Counter()
    groups: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        own[_short(frames[-1])] += count
        groups[categorize(frames)] += count
    out = [f"{total} samples of the thread holding the GIL", "", "by category:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in groups.most_common()]
    out += ["", "top frames by self time:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    return out


def _short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})"


def profile_server(family: str, home: Path, model: Path, logs: Path, body: bytes, api_key: str, concurrency: int,
                   seconds: float, out: Path) -> list[str]:
    """Run one server (its 1-process configuration) under py-spy while the generator loads it; summarize.

    py-spy samples only the thread holding the GIL (``--gil``): in one process that is the time that decides
    throughput. Sampling pauses the process (py-spy's default, for consistent stacks), so it runs slower.
    """
    kind = next(k for k in server_kinds(home, model, logs) if k.family == family and k.processes == 1)
    server = Running(kind, logs, api_key)
    try:
        server.wait_ready(body)
        server.warm()
        raw = out.with_name(f"{out.name}-{family}-c{concurrency}.txt")
        spy = subprocess.Popen([py_spy(), "record", "--pid", str(server.proc.pid), "--format", "raw", "--rate", "100",
                                "--duration", str(int(seconds)), "--gil", "--output", str(raw)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        result = run_load(server, concurrency, 0.5, seconds - 2)
        _, err = spy.communicate(timeout=seconds + 60)
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-800:]}")
        return [f"{kind.name} under py-spy at concurrency {concurrency}: {result['rps']:,.0f} req/s, p99 "
                f"{result['p99_ms']:.2f} ms, {result['server_cpu_us']:,.0f} CPU us per request (profiling slows it; "
                f"raw profile: {raw.relative_to(REPO)})", "", *summarize_profile(raw)]
    finally:
        server.stop()


# ---- main -----------------------------------------------------------------------------------------------------------

def inprocess_costs(home: Path, model_path: Path, api_key: str, calls: int = 2000) -> list[str]:
    """Median cost of each piece of the request path measured in this process, no HTTP (microseconds)."""
    import numpy as np
    from stable_baselines3 import PPO

    from rlops.engine import Engine
    from rlops.home import Home
    from rlops.policies import PolicyInput, load_policy
    from rlops.security import KeyStore
    from rlops.service.auth import Authenticator

    sys.path.insert(0, str(PEERS))
    from loadgen import request_bodies

    contexts = [json.loads(b)["context"] for b in request_bodies(256)]

    def median_us(fn: Callable[[int], object], n: int) -> float:
        for i in range(50):
            fn(i)
        times = []
        for i in range(n):
            started = time.perf_counter_ns()
            fn(i)
            times.append((time.perf_counter_ns() - started) / 1000)
        return statistics.median(times)

    model = PPO.load(model_path, device="cpu")
    obs = [np.array([c[f] for f in FEATURES], dtype=np.float32) for c in contexts]
    predict_us = median_us(lambda i: model.predict(obs[i % 256], deterministic=False), calls)
    out = [f"SB3 model.predict(obs, deterministic=False): {predict_us:,.0f}"]
    authenticator = Authenticator(KeyStore.for_home(Home.resolve(home)))
    try:
        header = f"Bearer {api_key}"
        uncached = median_us(lambda i: authenticator.keys.authenticate(api_key), 200)
        cached = median_us(lambda i: authenticator.authenticate(header), calls)
    finally:
        authenticator.close()
    out.append(f"Authenticator.authenticate, key cached (one SHA-256, a dict lookup): {cached:,.1f}")
    out.append(f"KeyStore.authenticate (the lookup behind the cache, once per key per 2 s): {uncached:,.0f}")
    with Engine(home, fsync=False) as engine:
        schema = engine.spec(DEPLOYMENT).schema_  # loads the deployment
        policy = load_policy(SCRATCH / "policy")
        batches = [PolicyInput.from_contexts(schema, [c]) for c in contexts]
        rng = np.random.default_rng(0)
        out.append(f"SB3Policy.act (one row): {median_us(lambda i: policy.act(batches[i % 256], rng), calls):,.0f}")
        out.append("Engine.decide, no fsync: "
                   f"{median_us(lambda i: engine.decide(DEPLOYMENT, contexts[i % 256], f'u-{i}'), calls):,.0f}")
    with Engine(home) as engine:
        engine.spec(DEPLOYMENT)
        out.append("Engine.decide, fsync (one caller, so one fdatasync each): "
                   f"{median_us(lambda i: engine.decide(DEPLOYMENT, contexts[i % 256], f'u-{i}'), 300):,.0f}")
    return ["In-process medians, microseconds per call (no HTTP):", *[f"  {line}" for line in out]]


def profile(args: argparse.Namespace, home: Path, model: Path, logs: Path, body: bytes, api_key: str) -> None:
    """py-spy profiles of rlops serve and of the FastAPI peer (one process each) at the highest concurrency."""
    for line in inprocess_costs(home, model, api_key):
        console.print(line, highlight=False)
    console.print()
    concurrency = max(int(c) for c in args.concurrency.split(","))
    for family in ("rlops", "fastapi"):
        for line in profile_server(family, home, model, logs, body, api_key, concurrency, args.seconds + args.warmup,
                                   SCRATCH / "profile"):
            console.print(line, highlight=False)
        console.print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per cell (default 2)")
    parser.add_argument("--concurrency", default="1,8,64", help="comma-separated connection counts")
    parser.add_argument("--only", default=",".join(FAMILIES), help="comma-separated server families: "
                        + ", ".join(FAMILIES) + " (default: all of these), or also " + ", ".join(OPTIONAL_FAMILIES))
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all servers in rotation (default 3)")
    parser.add_argument("--no-docs", action="store_true", help="print only; do not write docs/benchmarks.md")
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, profile rlops serve and the FastAPI peer (1 process, highest concurrency) "
                             "with py-spy")
    parser.add_argument("--profile-only", action="store_true", help="only the py-spy profile")
    parser.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                        help="no measuring: rebuild the tables (and docs, unless --no-docs) from a saved "
                             ".bench-serve/results.json")
    args = parser.parse_args()
    if args.report is not None:
        report_saved(args.report, write_docs=not args.no_docs)
        return
    concurrency = [int(c) for c in args.concurrency.split(",")]
    families = set(args.only.split(","))
    unknown = families - set(FAMILIES) - set(OPTIONAL_FAMILIES)
    if unknown:
        parser.error(f"--only: unknown server families {sorted(unknown)}")
    load = os.getloadavg()
    console.print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if families & {"ray", "uvloop"} and not args.profile_only:
        ensure_ray_venv()

    shutil.rmtree(SCRATCH, ignore_errors=True)
    logs = SCRATCH / "logs"
    logs.mkdir(parents=True)
    model = build_model(SCRATCH)
    home, api_key = build_rlops_home(SCRATCH, model)
    body = first_body()
    console.print(f"load generator: {generator_python()} {PEERS / 'loadgen.py'}")

    if args.profile_only:
        profile(args, home, model, logs, body, api_key)
        return

    kinds = [k for k in server_kinds(home, model, SCRATCH) if k.family in families]
    cells = {(k.name, c): Cell(k, c) for k in kinds for c in concurrency}
    for rnd in range(args.rounds):
        shift = rnd % len(kinds)
        for kind in kinds[shift:] + kinds[:shift]:  # a different server goes first each round
            server = Running(kind, logs, api_key)
            try:
                server.wait_ready(body)
                server.warm()
                for c in concurrency:
                    result = run_load(server, c, args.warmup, args.seconds)
                    cells[kind.name, c].runs.append(result)
                    console.print(f"round {rnd + 1} {kind.name:<32} c={c:<3} {result['rps']:>8,.0f} req/s  "
                                  f"p50 {result['p50_ms'] or float('nan'):7.2f} ms  p99 "
                                  f"{result['p99_ms'] or float('nan'):7.2f} ms  errors {result['errors']}  "
                                  f"gen CPU {result['generator_cpu']:.0%}  server CPU {result['server_cpu']:.2f} "
                                  f"({result['server_cpu_us']:,.0f} us/req)  busy {result['machine_busy']:.0%}",
                                  highlight=False)
            finally:
                server.stop()
    meta = {"seconds": args.seconds, "warmup": args.warmup, "concurrency": args.concurrency, "only": args.only,
            "rounds": args.rounds, "load": list(load)}
    (SCRATCH / "results.json").write_text(json.dumps({"meta": meta, "cells": [
        {"server": c.server.name, "concurrency": c.concurrency, "runs": c.runs} for c in cells.values()]}, indent=1))
    if args.profile:
        profile(args, home, model, logs, body, api_key)
    report(meta, cells, write_docs=not args.no_docs)


def report(meta: dict[str, Any], cells: dict[tuple[str, int], Cell], write_docs: bool) -> None:
    console.print(render(cells))
    for line in targets(cells):
        console.print(line, highlight=False)
    if write_docs:
        command = ".venv/bin/python bench/serve.py" + "".join(
            f" --{name} {value}" for name, value, default in (
                ("seconds", f"{meta['seconds']:g}", "10"), ("warmup", f"{meta['warmup']:g}", "2"),
                ("concurrency", meta["concurrency"], "1,8,64"), ("only", meta["only"], ",".join(FAMILIES)),
                ("rounds", str(meta["rounds"]), "3")) if value != default)
        write_section(SECTION, markdown(cells, machine(), argparse.Namespace(**meta), command, tuple(meta["load"]),
                                        []))
        console.print(f"wrote {DOC.relative_to(REPO)}")


def report_saved(path: Path, write_docs: bool) -> None:
    """Rebuild the tables (and the docs section) from a results.json written by an earlier run."""
    saved = json.loads(path.read_text())
    kinds = {k.name: k for k in server_kinds(Path(), Path(), Path())}
    cells = {(c["server"], c["concurrency"]): Cell(kinds[c["server"]], c["concurrency"], c["runs"])
             for c in saved["cells"]}
    report(saved["meta"], cells, write_docs)


if __name__ == "__main__":
    main()
