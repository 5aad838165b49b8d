"""A throwaway PostgreSQL server for the metadata tests: Debian's binaries, a loopback port, a temporary folder.

One server per test session (``initdb`` plus start take about a second); each test that asks for it gets a database
of its own, dropped afterwards. Root may not run PostgreSQL, so as root the server runs as the ``postgres`` user
Debian's package creates (else ``nobody``). ``fsync`` is off: the data is thrown away at the end of the session.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: Set (to anything) to make a server that cannot start fail the run instead of skipping (``make test`` sets it).
REQUIRE_VAR = "RLOPS_REQUIRE_POSTGRES"
USER = "rlops"


class Unavailable(Exception):
    """PostgreSQL cannot be started here; the message says why."""


def _bin_dir() -> Path:
    on_path = shutil.which("pg_ctl")
    if on_path is not None and shutil.which("initdb") is not None:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise Unavailable("PostgreSQL's server binaries (initdb, pg_ctl) are not installed; 'make postgres' "
                          "installs Debian's postgresql")
    return Path(found[-1]).parent


def _runner() -> tuple[list[str], str | None]:
    """The command prefix that runs the server's programs, and the OS user it runs them as (None: this one)."""
    if os.geteuid() != 0:
        return [], None
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return ["runuser", "-u", user, "--"], user
    raise Unavailable("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server; :meth:`stop` it (and its folder goes)."""

    bin_dir: Path
    folder: Path
    prefix: list[str]
    port: int

    @classmethod
    def start(cls) -> PostgresServer:
        """Initialise a cluster in a temporary folder and start it on a free loopback port.

        Raises:
            Unavailable: no binaries, or the server would not start (the message holds its log).
        """
        try:
            import psycopg  # noqa: F401  # the driver the stores and the fixtures connect with
        except ImportError as e:
            raise Unavailable("the psycopg driver is not installed (pip install 'psycopg[binary]'; 'make setup' "
                              "does)") from e
        bin_dir = _bin_dir()
        prefix, user = _runner()
        folder = Path(tempfile.mkdtemp(prefix="rlops-pg-"))
        try:
            if user is not None:
                entry = pwd.getpwnam(user)
                os.chown(folder, entry.pw_uid, entry.pw_gid)
            cls._run([*prefix, str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", USER, "-A", "trust",
                      "-E", "UTF8", "--no-sync"], "initdb")
            last = ""
            for _attempt in range(3):  # another process may take the port between choosing and binding it
                server = cls(bin_dir, folder, prefix, _free_port())
                options = (f"-p {server.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= "
                           "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
                try:
                    cls._run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-l",
                              str(folder / "server.log"), "-o", options, "-w", "-t", "30", "start"], "pg_ctl start")
                    return server
                except Unavailable as e:
                    last = str(e)
            raise Unavailable(last)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    @staticmethod
    def _run(command: list[str], what: str) -> None:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise Unavailable(f"{what} failed: {e}") from e
        if done.returncode != 0:
            log = Path(command[command.index("-l") + 1]) if "-l" in command else None
            tail = log.read_text(errors="replace")[-1500:] if log is not None and log.is_file() else ""
            raise Unavailable(f"{what} failed ({done.returncode}): {done.stderr.strip()[-1500:]} {tail}".strip())

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres", autocommit=True,
                             connect_timeout=10) as conn:
            conn.execute(statement)  # type: ignore[arg-type]  # names made here, not user input

    def create_database(self) -> str:
        """A new, empty database; returns its name."""
        name = f"rlops_test_{secrets.token_hex(6)}"
        self._admin(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing whatever connections a test left open to it."""
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        with contextlib.suppress(Unavailable):
            self._run([*self.prefix, str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate",
                       "-w", "stop"], "pg_ctl stop")
        shutil.rmtree(self.folder, ignore_errors=True)
