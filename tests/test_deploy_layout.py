"""The container recipe, tested without a container engine: the processes of ``deploy/compose.yaml`` run directly.

Each service's command runs as ``python -m rlops COMMAND...`` (the image's ``ENTRYPOINT ["rlops"]``) with exactly the
image's ``ENV`` and the service's ``environment:``, container paths and hosts swapped for local ones: every named
volume is a temporary folder shared by the services that mount it, bind mounts are the files under ``deploy/``,
``RLOPS_METADATA_URL`` points at a throwaway PostgreSQL server instead of the ``db`` service, and the service binds
a free loopback port. Nothing else of the test's own environment leaks in (only ``PATH`` and ``PYTHONPATH``).

The Dockerfile itself is only checked statically here (its files exist, its commands exist): no image is built.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from sqlalchemy.engine import make_url

from rlops.client import Client
from rlops.events.log import PREALLOC_BYTES
from rlops.home import Home
from rlops.registry import Registry, Stage
from rlops.scenarios import SyntheticBandit
from rlops.service.schemas import OutcomeIn
from tests.pg import PostgresServer

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DEPLOY_DOC = REPO / "docs" / "deploy.md"
RLOPS_SERVICES = ("init", "apply", "service", "learner", "scheduler")
#: What compose would read from the operator's environment or deploy/.env (PostgreSQL trusts the test's role).
COMPOSE_VARIABLES = {"RLOPS_DB_PASSWORD": "unused-the-test-server-trusts-local-connections"}


# ---- reading the recipe -------------------------------------------------------------------------------------------

def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # safe_load resolves the << merge keys compose files use
    assert isinstance(data, dict)
    return data


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` (an unset required variable fails)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if variables.get(name):
            return variables[name]
        if op == ":?":
            raise AssertionError(f"compose needs ${name}: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-?])([^}]*))?\}", one, value).replace("$$", "$")


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip():
            lines.append(current.strip())
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in dockerfile():
        if instruction == "ENV":
            env.update(part.split("=", 1) for part in shlex.split(args))  # type: ignore[misc]
    return env


def instruction(name: str) -> list[str]:
    return [args for inst, args in dockerfile() if inst == name]


# ---- running a service's process ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    """The compose services of ``deploy/compose.yaml``, run as local processes over shared temporary volumes."""

    root: Path
    metadata_url: str
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.spec = compose()
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True)
        for volume in self.spec["volumes"]:
            (self.root / "volumes" / volume).mkdir(parents=True)

    def service(self, name: str) -> dict[str, Any]:
        return dict(self.spec["services"][name])

    def mounts(self, name: str) -> list[tuple[str, Path]]:
        """(container path, local path) of the service's volumes, the longest container path first."""
        found = []
        for entry in self.service(name).get("volumes", []):
            source, target = entry.split(":")[:2]
            if source.startswith((".", "/")):
                local = (DEPLOY / source).resolve()
                assert local.exists(), f"{name}: the bind mount {source} does not exist"
            else:
                assert source in self.spec["volumes"], f"{name}: volume {source} is not declared"
                local = self.root / "volumes" / source
            found.append((target, local))
        return sorted(found, key=lambda m: -len(m[0]))

    def local(self, name: str, text: str) -> str:
        """``text`` with the service's container paths (also inside ``file://`` URIs) swapped for local ones."""
        for target, local in self.mounts(name):
            text = re.sub(rf"(?<![\w.-]){re.escape(target)}(?=/|$|\s)", str(local), text)
        return text

    def path(self, name: str, container_path: str) -> Path:
        return Path(self.local(name, container_path))

    def env(self, name: str) -> dict[str, str]:
        """The process environment: the image's ``ENV``, then the service's ``environment:``, localised."""
        spec = self.service(name)
        declared = {**image_env(), **{k: interpolate(str(v), COMPOSE_VARIABLES)
                                      for k, v in (spec.get("environment") or {}).items()}}
        env = {k: self.local(name, v) for k, v in declared.items()}
        if "RLOPS_METADATA_URL" in env:
            url = make_url(env["RLOPS_METADATA_URL"])
            assert url.host in self.spec["services"], f"{name}: the metadata database is not a compose service"
            env["RLOPS_METADATA_URL"] = self.metadata_url
        if "RLOPS_HOST" in spec.get("environment", {}):
            env["RLOPS_HOST"], env["RLOPS_PORT"] = "127.0.0.1", str(self.port)
        return {"PATH": os.environ["PATH"], "HOME": str(self.root / "user-home"), "LANG": "C.UTF-8",
                **{k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}, **env}

    def argv(self, name: str, *extra: str) -> list[str]:
        assert self.service(name).get("entrypoint") is None  # the image's ENTRYPOINT ["rlops"]
        command = [self.local(name, str(arg)) for arg in self.service(name)["command"]]
        return [sys.executable, "-m", "rlops", *command, *extra]

    def mount_files(self, name: str) -> None:
        """Put the files the service mounts inside a volume (``alerts.yaml`` into the home) where it sees them."""
        for target, local in self.mounts(name):
            if local.is_file():
                inside = next((loc for tgt, loc in self.mounts(name) if target.startswith(tgt + "/")), None)
                assert inside is not None, f"{name}: {target} is a file mount outside any volume"
                shutil.copyfile(local, inside / target.split("/")[-1])

    def run(self, name: str, *extra: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        self.mount_files(name)
        return subprocess.run(self.argv(name, *extra), env=self.env(name), capture_output=True, text=True,
                              timeout=timeout, check=False)

    def start(self, name: str) -> subprocess.Popen[bytes]:
        self.mount_files(name)
        with (self.logs / f"{name}.out").open("wb") as out, (self.logs / f"{name}.err").open("wb") as err:
            self.procs[name] = subprocess.Popen(self.argv(name), env=self.env(name), stdout=out, stderr=err)
        return self.procs[name]

    def output(self, name: str) -> str:
        return (self.logs / f"{name}.out").read_text(errors="replace")

    def errors(self, name: str) -> str:
        return (self.logs / f"{name}.err").read_text(errors="replace")

    def stop(self, name: str, timeout: float = 60.0) -> int:
        """SIGTERM, as a container runtime stops a container; the exit status."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{name} did not stop within {timeout} s of SIGTERM: {self.errors(name)[-2000:]}") \
                from None

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float, watch: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.procs[watch].poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout} s ({watch} exit {self.procs[watch].poll()})\n"
                                     f"{self.output(watch)[-3000:]}\n{self.errors(watch)[-3000:]}")
            time.sleep(0.2)

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def flat(text: str) -> str:
    """Console output as printed: rich wraps lines at 80 columns when nobody sets COLUMNS (as in a container)."""
    return text.replace("\n", "")


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# ---- the static checks ------------------------------------------------------------------------------------------

def test_the_compose_file_has_the_process_layout() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) == {"db", *RLOPS_SERVICES}
    commands = {name: services[name]["command"] for name in RLOPS_SERVICES}
    assert commands["service"] == ["serve"] and commands["scheduler"] == ["schedule"]
    assert commands["learner"][:2] == ["loop", "news"] and "--every" in commands["learner"]
    assert commands["init"][:2] == ["init", "--key-file"] and commands["apply"][:2] == ["deploy", "apply"]
    for name in RLOPS_SERVICES:
        service = services[name]
        assert service["image"] == services["service"]["image"], f"{name}: one image for every process"
        assert "home:/var/lib/rlops" in service["volumes"], f"{name}: every process shares the home volume"
        env = service["environment"]
        assert env["RLOPS_HOME"] == "/var/lib/rlops" and env["RLOPS_EVENTS_URI"].startswith("file:///")
        assert make_url(env["RLOPS_METADATA_URL"]).host == "db"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on an unknown service {dependency}"
            assert dependency != "apply", f"{name}: `up` must not apply deployment files (it would undo rollouts)"
        # the image's HEALTHCHECK asks /healthz: only the service answers HTTP
        assert (service.get("healthcheck") == {"disable": True}) == (name != "service"), name
    assert services["apply"]["profiles"] == ["apply"]  # run on purpose only
    assert services["service"]["environment"]["RLOPS_HOST"] == "0.0.0.0"
    assert services["db"]["image"].startswith("postgres:")
    with pytest.raises(AssertionError, match="RLOPS_DB_PASSWORD"):  # no default secret: compose refuses to start
        interpolate(services["db"]["environment"]["POSTGRES_PASSWORD"], {})


def test_every_variable_is_documented_in_the_deploy_guide() -> None:
    """docs/deploy.md's table lists every RLOPS_* variable the code reads and every one the recipe sets."""
    table = {m.group(1) for m in re.finditer(r"^\| `(RLOPS_[A-Z0-9_]+)`", DEPLOY_DOC.read_text(), re.M)}
    in_code = set()
    for path in (REPO / "src").rglob("*.py"):
        in_code |= set(re.findall(r"\bRLOPS_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    in_recipe = {k for k in image_env() if k.startswith("RLOPS_")}
    for service in compose()["services"].values():
        in_recipe |= {k for k in service.get("environment", {}) if k.startswith("RLOPS_")}
    assert in_code - table == set(), "docs/deploy.md does not list these variables the code reads"
    assert in_recipe - table == set(), "docs/deploy.md does not list these variables the recipe sets"


def test_the_mounted_config_files_load() -> None:
    """The files the recipe mounts are valid: the deployment, its alert rules and the learner's gates."""
    from rlops.engine import DeploymentSpec
    from rlops.evaluation.gates import GatesFile
    from rlops.monitoring.alerts import AlertRules

    spec = DeploymentSpec.load(DEPLOY / "config" / "deployments" / "news.yaml")
    assert spec.name == "news" and spec.all_outcomes_reported and spec.retention_seconds == 90 * 86400
    rules = AlertRules.load(DEPLOY / "config" / "alerts.yaml")
    assert {r.name for r in rules.rules} == {"canary-worse", "context-drift"}
    assert all(r.match.get("deployment") == "news" for r in rules.rules)
    gates = GatesFile.load(DEPLOY / "config" / "gates.yaml")
    assert [g.value for g in gates.gates if g.metric == "budget.measurement.p99_ms"] == [10.0]


def dockerignored(path: str) -> bool:
    """Whether .dockerignore leaves ``path`` (a top-level file or folder of a COPY) out of the build context: the
    last pattern that matches it decides (enough for the whitelist this repository uses)."""
    ignored = False
    for line in (REPO / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        if fnmatch(path, pattern.lstrip("!").rstrip("/")):
            ignored = not negated
    return ignored


def test_the_dockerfile_copies_files_that_exist_and_runs_commands_that_exist() -> None:
    import typer.main

    from rlops.cli.main import app

    copies = instruction("COPY")
    assert copies, "the Dockerfile copies nothing"
    for args in copies:
        *sources, _target = shlex.split(args)
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
            assert not dockerignored(source), f"COPY {source}: .dockerignore leaves it out of the build context"
    assert dockerignored(".git") and dockerignored(".venv") and dockerignored("tests")
    assert [json.loads(a) for a in instruction("ENTRYPOINT")] == [["rlops"]]
    assert "rlops = \"rlops.cli.main:run\"" in (REPO / "pyproject.toml").read_text()  # the console script
    (cmd,) = [json.loads(a) for a in instruction("CMD")]
    group = typer.main.get_command(app)
    assert cmd == ["serve"] and cmd[0] in group.commands  # type: ignore[attr-defined]
    for service in RLOPS_SERVICES:  # and every compose command is one too
        words = compose()["services"][service]["command"]
        command = group.commands[words[0]]  # type: ignore[attr-defined]
        if hasattr(command, "commands"):
            assert words[1] in command.commands, f"{service}: rlops {words[0]} has no {words[1]}"
    assert image_env()["RLOPS_HOME"] == "/var/lib/rlops" and '["/var/lib/rlops"]' in instruction("VOLUME")
    assert instruction("USER") == ["rlops"]
    assert "torch==2.13.0" in " ".join(instruction("RUN")) and "-c constraints.txt" in " ".join(instruction("RUN"))


# ---- the processes ----------------------------------------------------------------------------------------------

@pytest.fixture
def stack(tmp_path: Path, postgres_server: PostgresServer) -> Iterator[Stack]:
    database = postgres_server.create_database()
    stack = Stack(tmp_path, postgres_server.url(database))
    try:
        yield stack
    finally:
        stack.kill_all()
        postgres_server.drop_database(database)


def healthcheck(stack: Stack, port: int) -> int:
    """The image's HEALTHCHECK command, run against ``port`` with the service's environment."""
    (args,) = instruction("HEALTHCHECK")
    command = args.split(" CMD ", 1)[1]
    assert command.startswith("python -c ")
    env = {**stack.env("service"), "RLOPS_PORT": str(port)}
    return subprocess.run(["sh", "-c", shlex.quote(sys.executable) + command.removeprefix("python")], env=env,
                          capture_output=True, timeout=30, check=False).returncode


def traffic(client: Client, world: SyntheticBandit, rng: np.random.Generator, first: int, n: int,
            report: bool) -> list[str]:
    """``n`` new users ask for a decision (in batches); with ``report``, each reports a click or a no-click drawn
    from the synthetic world's click model. Returns the policy versions that decided."""
    names = list(world.schema.actions.names)  # type: ignore[union-attr]
    served = []
    for start in range(first, first + n, 100):
        contexts = world.sample_contexts(min(100, first + n - start), rng)
        clicks = world.click_probability(world.schema.encode(contexts))
        decisions = client.decide_batch("news", contexts, [f"user-{start + i}" for i in range(len(contexts))])
        served += [d.policy_version for d in decisions]
        if report:
            answer = client.report_batch([OutcomeIn(decision_id=d.decision_id, fields={
                "clicked": bool(rng.random() < clicks[i, names.index(str(d.action))])})
                for i, d in enumerate(decisions)])
            assert [r.status.value for r in answer.results] == ["accepted"] * len(decisions)
    return served


def loop_state(stack: Stack) -> dict[str, Any]:
    path = stack.path("learner", "/var/lib/rlops") / "loops" / "news.json"
    return json.loads(path.read_text()) if path.exists() else {}


@pytest.mark.slow
def test_the_compose_processes_run_directly_on_one_home_and_postgres(stack: Stack,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    home = stack.path("service", "/var/lib/rlops")
    parts = stack.path("scheduler", "/var/lib/rlops-parts")

    # init: the home, its keys and the first admin key, in the file the service's clients will read
    done = stack.run("init")
    assert done.returncode == 0, done.stderr
    key_file = stack.path("init", "/var/lib/rlops-admin/admin.key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and f"written to {key_file} (mode 0600)" in flat(done.stdout)
    key = key_file.read_text().strip()
    assert key.startswith("rlk_")
    # apply: the deployment file mounted from deploy/config
    done = stack.run("apply")
    assert done.returncode == 0, done.stderr
    assert "deployment news: created revision 1" in flat(done.stdout)
    again = stack.run("apply")
    assert again.returncode == 0 and "deployment news: unchanged at revision 1" in flat(again.stdout)

    # the service and the scheduler come up side by side
    stack.start("service")
    stack.start("scheduler")
    url = f"http://127.0.0.1:{stack.port}"

    def ready() -> bool:
        try:
            answer = httpx.get(f"{url}/readyz", timeout=2.0)
        except httpx.TransportError:
            return False
        return answer.status_code == 200 and answer.json() == {"status": "ready", "deployments": 1}

    stack.wait_for("the service is ready", ready, 120.0, watch="service")
    assert healthcheck(stack, stack.port) == 0
    assert healthcheck(stack, free_port()) != 0  # nothing listens there: unhealthy
    assert httpx.post(f"{url}/v1/deployments/news/decide", json={"unit_id": "u", "context": {}}).status_code == 401

    # decisions and outcomes with the key init made
    world, rng = SyntheticBandit(), np.random.default_rng(0)
    with Client(url, api_key=key) as client:
        assert set(traffic(client, world, rng, 0, 600, report=True)) == {"news@r1"}

        # the learner trains on them (same home, same database), validates, registers and shadows a candidate
        stack.start("learner")
        stack.wait_for("the learner's candidate is in shadow", lambda: loop_state(stack).get("step") == "shadow",
                       120.0, watch="learner")
        state = loop_state(stack)
        assert state["candidate"] == "news@1" and state["status"] in ("pass", "warn")
        assert "trained a candidate with bandit-dr (600 interactions)" in state["notes"]

        # the service picks the shadow up from the database; the learner counts its shadow decisions in the log
        def shadowed() -> bool:
            arms = client._http.get("/v1/deployments/news/arms").json()
            return [(a["role"], a["policy_version"]) for a in arms if a["role"] == "shadow"] == [("shadow", "news@1")]

        stack.wait_for("the service serves the shadow", shadowed, 30.0, watch="service")
        time.sleep(2.0)  # every worker process notices a new revision within a second
        assert set(traffic(client, world, rng, 600, 100, report=False)) == {"news@r1"}  # a shadow never answers
        stack.wait_for("the learner sees the shadow decisions", lambda: "shadow: 100/200 decisions"
                       in flat(stack.output("learner")), 30.0, watch="learner")

    # SIGTERM stops the learner at once, resumably, with exit 0
    assert stack.stop("learner") == 0, stack.errors("learner")
    assert "stopped (SIGTERM)" in flat(stack.output("learner")) and loop_state(stack)["step"] == "shadow"
    monkeypatch.setenv("RLOPS_METADATA_URL", stack.metadata_url)
    with Registry(Home(home)) as registry:
        assert registry.get("news", 1).stage is Stage.SHADOW

    # SIGTERM stops the service gracefully (exit 0): every worker sealed its segment (cut its preallocated space)
    assert stack.stop("service") == 0, stack.errors("service")[-2000:]
    segments = list((home / "events" / "segments").glob("*.seg"))
    assert segments and all(s.stat().st_size < PREALLOC_BYTES for s in segments)

    # the long-running scheduler ran both jobs at its start and was waiting for the next turn (10 min, 1 h)
    assert stack.stop("scheduler") == 0, stack.errors("scheduler")
    lines = json_lines(stack.errors("scheduler"))
    assert [(ln["message"], ln.get("job"), ln.get("status")) for ln in lines] == [
        ("scheduler started", None, None), (lines[1]["message"], "compact", "ok"),
        (lines[2]["message"], "audit", "ok"), ("scheduler stopped", None, None)]
    assert lines[0]["jobs"] == {"compact": 600.0, "audit": 3600.0} and lines[1]["segments"] == 0
    assert lines[2]["entries"] >= 2 and lines[3]["signal"] == "SIGTERM" and lines[3]["healthy"] is True

    # the scheduler's --once (a cron job's run) compacts what the service sealed into RLOPS_EVENTS_URI's folder
    done = stack.run("scheduler", "--once")
    assert done.returncode == 0, done.stderr
    compact, audit = json_lines(done.stderr)
    assert (compact["job"], compact["status"], compact["decisions"], compact["outcomes"]) == ("compact", "ok", 800,
                                                                                             600)
    assert compact["segments"] == len(segments) and not list((home / "events" / "segments").glob("*.seg"))
    assert audit["status"] == "ok" and audit["entries"] >= lines[2]["entries"]
    decisions = pq.read_table(parts / "decisions").to_pydict()
    assert len(decisions["decision_id"]) == 800
    shadow = [v for v, m in zip(decisions["policy_version"], decisions["mode"], strict=True) if m == "shadow"]
    assert shadow == ["news@1"] * 100
    assert pq.read_table(parts / "outcomes").num_rows == 600
    assert not list(home.rglob("*.parquet"))  # nothing compacted stays in the home folder

    # compose runs init again on every `up`: it changes nothing the second time
    again = stack.run("init")
    assert again.returncode == 0 and "API keys exist already: none created" in flat(again.stdout)
    assert key_file.read_text().strip() == key
