"""Run the service from Python: in a background thread of this process (tests, notebooks) or as a separate
``rlops serve`` process (the demo). Either way a real server on a real loopback socket, stopped gracefully."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import httpx
import uvicorn

from rlops.errors import StorageError
from rlops.service.app import create_app
from rlops.service.settings import ServiceSettings


class BackgroundServer:
    """``with BackgroundServer(settings) as url: ...`` serves ``settings.home`` until the block ends.

    ``settings.port`` 0 picks a free port; ``url`` says which.
    """

    def __init__(self, settings: ServiceSettings, start_timeout: float = 30.0) -> None:
        config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port, log_level="warning",
                                **settings.uvicorn_tls())
        self._scheme = settings.scheme
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="rlops-service", daemon=True)
        self._timeout = start_timeout
        self.url = ""

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise StorageError("the decision service did not start (is the port free?)")
            time.sleep(0.02)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"{self._scheme}://{host}:{port}"
        return self.url

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=self._timeout)


class ServiceProcess:
    """``with ServiceProcess(home) as url: ...`` runs ``rlops serve`` as a separate process on a free loopback port,
    waits until it is ready, and stops it with SIGTERM (a graceful shutdown) at the end of the block.

    A separate process is what users run, and it keeps the callers' threads from competing with the server for
    one interpreter lock.
    """

    def __init__(self, home: Path, start_timeout: float = 60.0, workers: int = 1,
                 tls: tuple[Path, Path] | None = None, replicas: int | None = None) -> None:
        """``tls``: (certificate, private key) PEM files to serve HTTPS with; the readiness probe trusts that
        certificate. ``replicas``: serve with ``--backend ray`` and that many Ray Serve replicas (a private Ray
        instance; allow a longer ``start_timeout``)."""
        self.home, self._timeout, self.workers, self.tls = home, start_timeout, workers, tls
        self.replicas = replicas
        self.log_path = home / "logs" / "service.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> str:
        with socket.socket() as probe:  # a free port (released just before the server binds it)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # The server logs a JSON line per request to stderr: into a file, never a pipe nobody reads (it would fill
        # and block the server).
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            tls = [] if self.tls is None else ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
            how = (["--backend", "local", "--workers", str(self.workers)] if self.replicas is None
                   else ["--backend", "ray", "--replicas", str(self.replicas)])
            self._proc = subprocess.Popen([sys.executable, "-m", "rlops", "serve", "--home", str(self.home),
                                           "--port", str(port), *how, *tls],
                                          stdout=log, stderr=log)
        self.url = f"{'http' if self.tls is None else 'https'}://127.0.0.1:{port}"
        verify: ssl.SSLContext | bool = (True if self.tls is None
                                         else ssl.create_default_context(cafile=str(self.tls[0])))
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0, verify=verify).status_code == 200:
                    return self.url
            except httpx.TransportError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._stop()
                tail = self.log_path.read_text(errors="replace")[-500:].strip()
                raise StorageError(f"the decision service did not start (log: {self.log_path}): {tail or 'no output'}")
            time.sleep(0.05)

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=self._timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop()
