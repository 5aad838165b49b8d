"""Ray for parallel compute: a session (a local instance on loopback, or a cluster by address) and a map of method
calls over a pool of Ray actors.

The actors play the part a process pool's workers play on one machine: each builds its state once (a scenario and
two controllers, a training set) and then runs task after task on it. Results do not depend on which actor ran a
task: every task carries its own seeds, so a Ray run gives the numbers a local run gives.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from rlops.errors import DependencyNotInstalled, RlopsError, StorageError

#: The Ray cluster to join: ``auto`` (the cluster this machine belongs to), ``HOST:PORT`` (its GCS) or
#: ``ray://HOST:10001`` (Ray Client). Unset or ``local``: start a private instance on loopback for the command.
ADDRESS_VAR = "RLOPS_RAY_ADDRESS"


def import_ray(address: str | None = None) -> ModuleType:
    """Ray, with usage statistics off; imported for the first time in this process and about to start a private
    instance (no cluster named by ``address`` or the environment), with token authentication set up for it (Ray
    reads its authentication settings once, when it is imported).

    Raises:
        DependencyNotInstalled: Ray is not installed.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if "ray" not in sys.modules and ray_address(address) is None:
        _private_auth()
    try:
        import ray
    except ImportError as e:
        raise DependencyNotInstalled("backend ray: Ray is not installed; pip install 'rlops[ray]'") from e
    return ray


def ray_address(address: str | None = None) -> str | None:
    """The cluster to join: ``address``, else ``$RLOPS_RAY_ADDRESS``, else Ray's own ``$RAY_ADDRESS`` (which
    KubeRay sets in its pods); ``None`` (or ``local``) for a private local instance."""
    chosen = address or os.environ.get(ADDRESS_VAR) or os.environ.get("RAY_ADDRESS") or None
    return None if chosen == "local" else chosen


def local_cpus() -> int:
    """The CPUs this process may run on (a container's or ``taskset``'s limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _private_auth() -> None:
    """Token authentication for a private instance, with a token made for it and kept in this process's environment
    (the instance's processes inherit it; nothing is written to ``~/.ray``): Ray's servers listen on every
    interface, and without a token anyone who reaches them could run code as this user."""
    if os.environ.get("RAY_AUTH_MODE") in (None, "", "token") and not os.environ.get("RAY_AUTH_TOKEN"):
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


def driver_path() -> str:
    """This interpreter's import path as a ``PYTHONPATH`` value (the working folder for its empty entry)."""
    return os.pathsep.join(os.path.abspath(p) if p else os.getcwd() for p in sys.path)


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[ModuleType]:
    """Ray for the block. An already initialised Ray is used as it is; otherwise this joins the cluster at
    ``address`` (see :func:`ray_address`) or starts a private instance bound to 127.0.0.1 with ``num_cpus``
    (default: the CPUs this process may use) and token authentication, and shuts down at the end only what it
    started. Joining a cluster leaves Ray's authentication settings (``RAY_AUTH_MODE``, the token) as the
    environment has them.

    Raises:
        DependencyNotInstalled: Ray is not installed.
        StorageError: Ray could not start, or the cluster could not be reached.
    """
    ray = import_ray(address)
    if ray.is_initialized():
        yield ray
        return
    target = ray_address(address)
    try:
        if target is None:
            # Workers of a private instance run this interpreter; give them the driver's import path too, so that
            # factories defined outside installed packages (a script's folder, a test module) unpickle there.
            ray.init(address="local", num_cpus=num_cpus or local_cpus(), include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING, _node_ip_address="127.0.0.1",
                     runtime_env={"env_vars": {"PYTHONPATH": driver_path()}})
        else:
            ray.init(address=target, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError, OSError, ray.exceptions.RayError) as e:
        ray.shutdown()  # whatever a failed start left behind
        where = "a local Ray instance" if target is None else f"the Ray cluster at {target!r}"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StorageError(f"backend ray: could not start or join {where}: {first}") from e
    try:
        yield ray
    finally:
        ray.shutdown()


class _Host:
    """A Ray actor's state: the object ``factory()`` built, or the rlops error building it raised."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.error: RlopsError | None = None
        try:
            self.obj = factory()
        except RlopsError as e:  # reported with the first task, as the error it is
            self.error = e

    def call(self, method: str, args: tuple[Any, ...]) -> tuple[bool, Any]:
        if self.error is not None:
            return False, self.error
        try:
            return True, getattr(self.obj, method)(*args)
        except RlopsError as e:  # rlops errors pickle (ValidationError by __reduce__): re-raised as themselves
            return False, e


def actor_map(factory: Callable[[], Any], method: str, tasks: Sequence[tuple[Any, ...]], *,
              on_result: Callable[[int, Any], None], workers: int | None = None) -> None:
    """Call ``factory().<method>(*task)`` for every task on a pool of Ray actors, in an initialised Ray.

    Each of ``workers`` actors (default: the cluster's CPUs, at most one per task) builds ``factory()`` once, then
    takes the next task whenever it finishes one. ``on_result(i, value)`` is called here as results arrive, in any
    order (``i`` indexes ``tasks``).

    Raises:
        RlopsError: the one a task (or building the state) raised, as itself; the remaining tasks are cancelled.
        StorageError: an actor died, or a task failed with an error that is not an rlops error.
    """
    ray = import_ray()
    if not tasks:
        return
    # Sized by what is free now (a cluster may be serving too): actors that could not be placed would hold their
    # first task for ever. Fractions of a CPU when asked for more actors than there are CPUs.
    cpus = float(ray.cluster_resources().get("CPU", 0.0))
    free = float(ray.available_resources().get("CPU", 0.0))
    n = max(1, min(workers or int(free) or 1, len(tasks)))
    host_cls = ray.remote(num_cpus=max(0.01, min(1.0, (cpus or 1.0) / n)))(_Host)
    factory_ref = ray.put(factory)
    hosts = [host_cls.remote(factory_ref) for _ in range(n)]
    queue = iter(enumerate(tasks))
    pending: dict[Any, tuple[int, Any]] = {}

    def submit(host: Any) -> None:
        task = next(queue, None)
        if task is None:
            ray.kill(host)  # no more work: give its CPU back now, not when the last task ends
        else:
            pending[host.call.remote(method, tuple(task[1]))] = (task[0], host)

    for host in hosts:
        submit(host)
    try:
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i, host = pending.pop(ref)
            try:
                ok, value = ray.get(ref)
            except ray.exceptions.RayError as e:
                cause = getattr(e, "cause", None) or e  # a task's own exception, else Ray's (an actor died)
                text = str(cause).strip().splitlines()
                raise StorageError(f"backend ray: task {i} failed: {type(cause).__name__}: "
                                   f"{text[0] if text else ''}") from e
            if not ok:
                raise value
            on_result(i, value)
            submit(host)
    finally:
        for host in hosts:
            ray.kill(host)
