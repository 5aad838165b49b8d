"""Service settings: one typed object, built explicitly (never at import time), with no default secrets."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from rlops.home import Home


class ServiceSettings(BaseModel):
    """How ``rlops serve`` runs.

    Attributes:
        home: the home folder whose deployments are served.
        host: interface to bind; loopback unless told otherwise.
        port: TCP port (0 picks a free one).
        max_body_bytes: larger request bodies are refused with 413 before they are parsed (default 1 MiB).
        max_batch: most contexts in one ``decide-batch`` call and most outcomes in one ``outcomes`` call.
        fsync: acknowledge writes only after fsync (survives power loss); ``False`` survives a crash of the process.
        workers: server processes sharing the port and the home folder (each appends to the event log on its own
            segments and draws from its own random stream).
        admin_token: the bearer token of the admin endpoints (``/v1/admin/...``), at least 16 characters; no
            default: without one, those endpoints answer 403 and nothing can be changed over HTTP.
        supervise_interval: seconds between the background supervisor's ticks (online learning, snapshots,
            guardrail checks, alerts; see :mod:`rlops.rollout.supervisor`); 0 turns it off. Default 1.
        monitor_interval: seconds between the monitor's signals, alert rules and gauges (``HOME/alerts.yaml``;
            see :mod:`rlops.monitoring.watch`). Default 5.
        monitor_window: the window of the monitor's reward, traffic and drift signals, seconds. Default 300.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    home: Path
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    fsync: bool = True
    workers: int = Field(default=1, ge=1, le=64)
    admin_token: SecretStr | None = Field(default=None, min_length=16)
    supervise_interval: float = Field(default=1.0, ge=0.0, le=3600.0)
    monitor_interval: float = Field(default=5.0, gt=0.0, le=3600.0)
    monitor_window: float = Field(default=300.0, gt=0.0, le=30 * 86400.0)

    def to_env(self) -> dict[str, str]:
        """The ``RLOPS_*`` variables that rebuild these settings in a worker process (see :meth:`from_env`)."""
        return {"RLOPS_HOME": str(self.home), "RLOPS_HOST": self.host, "RLOPS_PORT": str(self.port),
                "RLOPS_MAX_BODY_BYTES": str(self.max_body_bytes), "RLOPS_MAX_BATCH": str(self.max_batch),
                "RLOPS_WORKERS": str(self.workers), "RLOPS_FSYNC": "1" if self.fsync else "0",
                "RLOPS_SUPERVISE_INTERVAL": str(self.supervise_interval),
                "RLOPS_MONITOR_INTERVAL": str(self.monitor_interval),
                "RLOPS_MONITOR_WINDOW": str(self.monitor_window),
                **({"RLOPS_ADMIN_TOKEN": self.admin_token.get_secret_value()} if self.admin_token else {})}

    @classmethod
    def from_env(cls, home: str | Path | None = None, **overrides: object) -> ServiceSettings:
        """Settings from arguments, then ``RLOPS_*`` environment variables, then defaults."""
        env = {
            "host": os.environ.get("RLOPS_HOST"),
            "port": os.environ.get("RLOPS_PORT"),
            "max_body_bytes": os.environ.get("RLOPS_MAX_BODY_BYTES"),
            "max_batch": os.environ.get("RLOPS_MAX_BATCH"),
            "workers": os.environ.get("RLOPS_WORKERS"),
            "fsync": os.environ.get("RLOPS_FSYNC"),
            "admin_token": os.environ.get("RLOPS_ADMIN_TOKEN") or None,
            "supervise_interval": os.environ.get("RLOPS_SUPERVISE_INTERVAL"),
            "monitor_interval": os.environ.get("RLOPS_MONITOR_INTERVAL"),
            "monitor_window": os.environ.get("RLOPS_MONITOR_WINDOW"),
        }
        values: dict[str, object] = {k: v for k, v in env.items() if v is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate({"home": Home.resolve(home).root, **values})
