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
- **Metrics** of the replicas on one node meet in a node-local folder (``PROMETHEUS_MULTIPROC_DIR``), as with
  workers.

Across several nodes the home folder must be a shared POSIX filesystem with working ``flock`` (see
docs/deploy.md); metadata may live in PostgreSQL (``RLOPS_METADATA_URL``) and Parquet parts on object storage
(``RLOPS_EVENTS_URI``).

Secrets never travel through Ray: a private instance's replicas inherit this process's environment (keys, the
JWT key, cloud credentials) from the processes Ray starts; on a cluster, only the non-secret locations in
:data:`FORWARDED` are handed on, and each node provides its secrets itself (environment, ``*_FILE`` variables, an
instance role). The replicas' settings, which Ray's controller keeps, hold no secret.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlops.errors import StorageError
from rlops.scale.ray_compute import driver_path, import_ray, local_cpus, ray_address, ray_session
from rlops.service.settings import ServiceSettings

log = logging.getLogger("rlops.service")

#: Prefix of the Ray Serve application's name; the rest is a hash of the home folder, so that two homes served
#: on one cluster do not replace each other (``serve status`` shows it).
APP_PREFIX = "rlops-"
#: Requests one replica may hold at once (Ray Serve's default of 5 queues a loaded server's requests in the proxy).
MAX_ONGOING = 64
#: Variables handed on to the replicas on a cluster: where things are, never a secret.
FORWARDED = ("RLOPS_METADATA_URL", "RLOPS_EVENTS_URI", "RLOPS_JWT_KEY_FILE", "AWS_REGION", "AWS_DEFAULT_REGION",
             "AWS_PROFILE")
#: Settings a replica does not take from the driver: TLS is the proxy's, and the JWT key is read on the node.
_NOT_FOR_REPLICAS = {"tls_cert", "tls_key", "jwt_key"}


class Replica:
    """One Ray Serve replica: builds the service's app for ``settings`` when Ray starts it."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = ServiceSettings.from_env(**settings)  # the JWT key from this node's environment

    def __serve_build_asgi_app__(self) -> Any:
        from ray import serve

        from rlops.service.app import create_app
        from rlops.service.observability import configure_logging

        configure_logging()  # one JSON line per request on the replica's stderr (Ray's worker log files)
        metrics = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if metrics:
            Path(metrics).mkdir(parents=True, exist_ok=True)
        # A stream of random numbers of its own: Ray's replica id is unique across the cluster (a process id is
        # only unique on one node).
        replica_id = serve.get_replica_context().replica_id.unique_id
        return create_app(self.settings, stream=zlib.crc32(replica_id.encode()))


def app_name(home: Path) -> str:
    """The Serve application's name for ``home``."""
    return f"{APP_PREFIX}{zlib.crc32(str(home.resolve()).encode()):08x}"


def replica_settings(settings: ServiceSettings) -> dict[str, Any]:
    """The settings a replica is built with (JSON, no secret, no TLS files)."""
    return settings.model_dump(mode="json", exclude=_NOT_FOR_REPLICAS)


def replica_env(metrics_dir: Path, *, local: bool) -> dict[str, str]:
    """Variables set in every replica's process: the metrics folder and, on a private local instance, this
    process's import path (rule policies name functions by import path); on a cluster, the locations in
    :data:`FORWARDED` (a private instance's replicas inherit this process's whole environment anyway)."""
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    if local:
        env["PYTHONPATH"] = driver_path()
    else:
        env.update({name: os.environ[name] for name in FORWARDED if os.environ.get(name)})
    return env


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
        StorageError: Ray could not start, or the application did not start.
        KeyboardInterrupt: stopped (a signal) while the application was starting.
    """
    ray = import_ray(address)
    private = ray_address(address) is None
    if private:  # its proxy listens on this machine
        _check_port(settings.host, settings.port)
    from ray import serve

    stop = stop or threading.Event()
    name = app_name(settings.home)
    # Node-local: prometheus_client names its files by process id, which only one node keeps unique.
    metrics_dir = Path(tempfile.gettempdir()) / f"rlops-metrics-{name}-{os.getpid()}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    cpus = max(local_cpus(), int(replicas * replica_cpus + 0.999))
    serving = threading.Event()
    try:
        with ray_session(address, num_cpus=cpus):
            if threading.current_thread() is threading.main_thread():
                # After ray.init, which installs a C++ handler that ends the process on SIGTERM at once: while the
                # application starts, a signal interrupts the start; once it serves, a signal asks for a clean stop
                # (the application is removed first, so every replica closes its engine).
                def on_signal(*_: object) -> None:
                    if not serving.is_set():
                        raise KeyboardInterrupt
                    stop.set()

                signal.signal(signal.SIGTERM, on_signal)
                signal.signal(signal.SIGINT, on_signal)
            http: dict[str, Any] = {"host": settings.host, "port": settings.port}
            if settings.tls_cert is not None and settings.tls_key is not None:
                http.update(ssl_certfile=str(settings.tls_cert), ssl_keyfile=str(settings.tls_key))
            deployment = serve.deployment(
                name="decision-service", num_replicas=replicas, max_ongoing_requests=MAX_ONGOING,
                graceful_shutdown_timeout_s=30,
                ray_actor_options={"num_cpus": replica_cpus,
                                   "runtime_env": {"env_vars": replica_env(metrics_dir, local=private)}},
            )(serve.ingress()(Replica))
            try:
                try:
                    serve.start(http_options=http)
                    serve.run(deployment.bind(replica_settings(settings)), name=name, route_prefix="/")
                except (RuntimeError, ValueError, TimeoutError, ray.exceptions.RayError) as e:
                    cause = getattr(e, "cause", None) or e
                    text = str(cause).strip().splitlines()
                    raise StorageError(f"the decision service did not start on Ray: {text[-1] if text else e!r}"
                                       ) from e
                serving.set()
                say(f"serving {settings.home} on {settings.scheme}://{settings.host}:{settings.port} with "
                    f"{replicas} Ray Serve replica{'s' if replicas != 1 else ''} (application {name}; docs at "
                    "/docs)")
                while not stop.wait(0.5):
                    pass
            finally:
                serving.clear()  # a second signal during the clean stop interrupts it
                _remove(serve, name, private)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _remove(serve: Any, name: str, private: bool) -> None:
    """Remove this service's application; on a private instance stop Serve too (on a cluster, other applications
    and Serve's proxies stay). Failures are logged, never raised: this runs while stopping, perhaps after a failed
    start whose error must be the one reported."""
    for step, call in (("remove the application", lambda: serve.delete(name)),
                       ("stop Serve", serve.shutdown if private else None)):
        if call is None:
            continue
        try:
            call()
        except Exception as e:  # Ray raises many kinds; the stop goes on
            log.warning("could not %s %s on Ray: %s", step, name, e)


def _check_port(host: str, port: int) -> None:
    """Refuse a port something else holds before Ray starts (Ray's proxy would fail later, in a traceback)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise StorageError(f"port: cannot listen on {host}:{port} ({e.strerror})") from e

