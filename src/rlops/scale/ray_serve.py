"""``rlops serve --backend ray``: the decision service as a Ray Serve application of N replicas.

Each replica runs the same FastAPI app as ``rlops serve`` (:func:`rlops.service.app.create_app`: every route, the
authentication, the limits), built in the replica itself (``__serve_build_asgi_app__``), so nothing of the engine
is pickled. Ray Serve's HTTP proxy listens on ``--host``/``--port`` and spreads requests over the replicas.

What carries over from ``--workers N`` because a replica is one more server process on the home folder:

- **Durable, attributable writes.** Each replica's engine appends to the event log on segments of its own (named
  by a time-ordered id and its process id) and answers only after the group commit's fsync, so an acknowledged
  decision survives the replica being killed; Ray restarts it. Every decision records its deployment, policy
  version and the API key that asked for it, whichever replica made it.
- **Hot swaps, canaries and rollbacks across replicas.** The deployment store is shared; every engine looks for a
  newer revision at most once a second and loads it, and the canary split hashes the unit id, so a unit gets the
  same arm from every replica.
- **One supervisor leader** (online learning snapshots, guardrails, monitoring, retention) by a lock on the home
  folder; the other replicas learn online on their own copies as workers do.
- **Metrics** of every replica on one node meet in a shared folder (``PROMETHEUS_MULTIPROC_DIR``), as with workers.

Across several nodes the home folder must be a shared POSIX filesystem with working ``flock`` (see
docs/deploy.md); metadata may live in PostgreSQL (``RLOPS_METADATA_URL``) and Parquet parts on object storage
(``RLOPS_EVENTS_URI``). Every variable the replicas need is passed to them in their runtime environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlops.errors import StorageError
from rlops.scale.ray_compute import driver_path, import_ray, ray_address, ray_session
from rlops.service.settings import ServiceSettings

#: The Ray Serve application's name (``serve status`` shows it).
APP_NAME = "rlops"
#: Requests one replica may hold at once (Ray Serve's default of 5 queues a loaded server's requests in the proxy).
MAX_ONGOING = 64
#: Prefixes of the environment variables handed on to the replicas: rlops's own (where the home's metadata, parts
#: and keys live) and the AWS SDK's (credentials for parts on S3).
FORWARDED = ("RLOPS_", "AWS_")


class Replica:
    """One Ray Serve replica: builds the service's app for ``settings`` when Ray starts it."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = ServiceSettings.model_validate(settings)

    def __serve_build_asgi_app__(self) -> Any:
        from ray import serve

        from rlops.service.app import create_app

        # A stream of random numbers of its own: Ray's replica id is unique across the cluster (a process id is
        # only unique on one node).
        replica_id = serve.get_replica_context().replica_id.unique_id
        return create_app(self.settings, stream=zlib.crc32(replica_id.encode()))


def replica_env(settings: ServiceSettings, metrics_dir: Path, *, local: bool) -> dict[str, str]:
    """What a replica's environment needs: the settings' own variables, the home's storage locations and keys
    from this process's environment, the shared metrics folder and, on a private local instance, this process's
    import path (rule policies name functions by import path)."""
    env = {**settings.to_env(), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    if local:
        env["PYTHONPATH"] = driver_path()
    return {**{k: v for k, v in os.environ.items() if k.startswith(FORWARDED)}, **env}


def serve_on_ray(settings: ServiceSettings, replicas: int, *, address: str | None = None,
                 replica_cpus: float = 1.0, say: Callable[[str], None] = print,
                 stop: threading.Event | None = None) -> None:
    """Run the service as ``replicas`` Ray Serve replicas until SIGTERM or SIGINT (or ``stop`` is set), then
    remove the application (each replica shuts its engine down cleanly) and leave Ray.

    Args:
        settings: how to serve (host and port are where Serve's proxy listens; TLS is served by the proxy).
        replicas: the number of replicas.
        address: the Ray cluster to join (default ``$RLOPS_RAY_ADDRESS``; unset: a private local instance).
        replica_cpus: CPUs Ray reserves for each replica.
        say: where to print progress lines.
        stop: set it to stop (tests); signals also stop the service when this runs in the main thread.

    Raises:
        DependencyNotInstalled: Ray is not installed.
        StorageError: Ray could not start, or the application did not become ready.
    """
    ray = import_ray()
    if ray_address(address) is None:  # a private instance: its proxy listens on this machine
        _check_port(settings.host, settings.port)
    from ray import serve

    stop = stop or threading.Event()
    metrics_dir = settings.home / "run" / f"metrics-ray-{os.getpid()}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    cpus = max(os.cpu_count() or 1, int(replicas * replica_cpus + 0.999))
    try:
        with ray_session(address, num_cpus=cpus):
            if threading.current_thread() is threading.main_thread():
                # After ray.init, which installs a C++ handler that ends the process on SIGTERM at once: replace it
                # so that a stop removes the application first (every replica closes its engine cleanly).
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
                signal.signal(signal.SIGINT, lambda *_: stop.set())
            http: dict[str, Any] = {"host": settings.host, "port": settings.port}
            if settings.tls_cert is not None and settings.tls_key is not None:
                http.update(ssl_certfile=str(settings.tls_cert), ssl_keyfile=str(settings.tls_key))
            deployment = serve.deployment(
                name="decision-service", num_replicas=replicas, max_ongoing_requests=MAX_ONGOING,
                graceful_shutdown_timeout_s=30,
                ray_actor_options={"num_cpus": replica_cpus, "runtime_env": {"env_vars": replica_env(
                    settings, metrics_dir, local=ray_address(address) is None)}},
            )(serve.ingress()(Replica))
            try:
                serve.start(http_options=http)
                serve.run(deployment.bind(settings.model_dump(mode="json", exclude={"jwt_key"})
                                          | _jwt(settings)), name=APP_NAME, route_prefix="/")
            except (RuntimeError, ray.exceptions.RayError) as e:
                cause = getattr(e, "cause", None) or e
                raise StorageError(f"the decision service did not start on Ray: {cause}") from e
            say(f"serving {settings.home} on {settings.scheme}://{settings.host}:{settings.port} with {replicas} "
                f"Ray Serve replica{'s' if replicas != 1 else ''} (docs at /docs)")
            try:
                while not stop.wait(0.5):
                    pass
            finally:
                serve.delete(APP_NAME)
                serve.shutdown()  # type: ignore[no-untyped-call]
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _check_port(host: str, port: int) -> None:
    """Refuse a port something else holds before Ray starts (Ray's proxy would fail later, in a traceback)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise StorageError(f"port: cannot listen on {host}:{port} ({e.strerror})") from e


def _jwt(settings: ServiceSettings) -> dict[str, Any]:
    """The JWT key in the clear for the replica's settings (``model_dump`` masks secrets)."""
    return {} if settings.jwt_key is None else {"jwt_key": settings.jwt_key.get_secret_value()}


def wait_ready(url: str, timeout: float = 120.0, verify: Any = True) -> None:
    """Wait until ``url``/readyz answers 200 (every replica's engine has opened the home)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0, verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise StorageError(f"the decision service at {url} was not ready after {timeout:.0f} s")
