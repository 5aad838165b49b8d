"""Service settings: one typed object, built explicitly (never at import time), with no default secrets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

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
        rate_limit: requests per second each API key or token may make, on average, per server process (a token
            bucket; over it the answer is 429 with ``Retry-After``); 0 turns limiting off. Default 500.
        rate_burst: requests a key may make at once before the rate applies. Default 1000.
        body_timeout: seconds a client may take to send its request body before the answer is 408 (a slow sender
            must not hold a worker). Default 30.
        jwt_issuer: accept JWT bearer tokens from this issuer (``iss``) besides API keys; ``None`` (the default)
            accepts API keys only. Needs ``jwt_audience`` and ``jwt_key``.
        jwt_audience: the audience (``aud``) tokens must name.
        jwt_key: the issuer's PEM public key, or the shared secret for ``HS*`` algorithms.
        jwt_algorithm: the one signing algorithm accepted (default RS256).
        tls_cert: PEM certificate (chain) to serve HTTPS with; ``None`` serves plain HTTP (loopback or behind a
            TLS-terminating proxy). Needs ``tls_key``.
        tls_key: the certificate's PEM private key.
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
    rate_limit: float = Field(default=500.0, ge=0.0, le=1e7)
    rate_burst: float = Field(default=1000.0, ge=1.0, le=1e7)
    body_timeout: float = Field(default=30.0, gt=0.0, le=3600.0)
    jwt_issuer: str | None = Field(default=None, min_length=1, max_length=500)
    jwt_audience: str | None = Field(default=None, min_length=1, max_length=500)
    jwt_key: SecretStr | None = None
    jwt_algorithm: str = "RS256"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    supervise_interval: float = Field(default=1.0, ge=0.0, le=3600.0)
    monitor_interval: float = Field(default=5.0, gt=0.0, le=3600.0)
    monitor_window: float = Field(default=300.0, gt=0.0, le=30 * 86400.0)

    @model_validator(mode="after")
    def _pairs(self) -> ServiceSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key: give both (the certificate and its private key) or neither")
        jwt = (self.jwt_issuer, self.jwt_audience, self.jwt_key)
        if any(v is not None for v in jwt) and not all(v is not None for v in jwt):
            raise ValueError("jwt_issuer, jwt_audience and jwt_key: give all three to accept JWTs, or none")
        for name in ("tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
        return self

    @property
    def scheme(self) -> str:
        """``https`` when serving TLS, else ``http``."""
        return "https" if self.tls_cert is not None else "http"

    def uvicorn_tls(self) -> dict[str, Any]:
        """uvicorn's TLS arguments (none for plain HTTP)."""
        if self.tls_cert is None or self.tls_key is None:
            return {}
        return {"ssl_certfile": str(self.tls_cert), "ssl_keyfile": str(self.tls_key)}

    def to_env(self) -> dict[str, str]:
        """The ``RLOPS_*`` variables that rebuild these settings in a worker process (see :meth:`from_env`)."""
        return {"RLOPS_HOME": str(self.home), "RLOPS_HOST": self.host, "RLOPS_PORT": str(self.port),
                "RLOPS_MAX_BODY_BYTES": str(self.max_body_bytes), "RLOPS_MAX_BATCH": str(self.max_batch),
                "RLOPS_WORKERS": str(self.workers), "RLOPS_FSYNC": "1" if self.fsync else "0",
                "RLOPS_SUPERVISE_INTERVAL": str(self.supervise_interval),
                "RLOPS_MONITOR_INTERVAL": str(self.monitor_interval),
                "RLOPS_MONITOR_WINDOW": str(self.monitor_window),
                "RLOPS_RATE_LIMIT": str(self.rate_limit), "RLOPS_RATE_BURST": str(self.rate_burst),
                "RLOPS_BODY_TIMEOUT": str(self.body_timeout), "RLOPS_JWT_ALGORITHM": self.jwt_algorithm,
                **{name: str(value) for name, value in (
                    ("RLOPS_JWT_ISSUER", self.jwt_issuer), ("RLOPS_JWT_AUDIENCE", self.jwt_audience),
                    ("RLOPS_JWT_KEY", self.jwt_key.get_secret_value() if self.jwt_key else None),
                    ("RLOPS_TLS_CERT", self.tls_cert), ("RLOPS_TLS_KEY", self.tls_key)) if value is not None}}

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
            "rate_limit": os.environ.get("RLOPS_RATE_LIMIT"),
            "rate_burst": os.environ.get("RLOPS_RATE_BURST"),
            "body_timeout": os.environ.get("RLOPS_BODY_TIMEOUT"),
            "jwt_issuer": os.environ.get("RLOPS_JWT_ISSUER") or None,
            "jwt_audience": os.environ.get("RLOPS_JWT_AUDIENCE") or None,
            "jwt_key": _jwt_key_from_env(),
            "jwt_algorithm": os.environ.get("RLOPS_JWT_ALGORITHM") or None,
            "tls_cert": os.environ.get("RLOPS_TLS_CERT") or None,
            "tls_key": os.environ.get("RLOPS_TLS_KEY") or None,
            "supervise_interval": os.environ.get("RLOPS_SUPERVISE_INTERVAL"),
            "monitor_interval": os.environ.get("RLOPS_MONITOR_INTERVAL"),
            "monitor_window": os.environ.get("RLOPS_MONITOR_WINDOW"),
        }
        values: dict[str, object] = {k: v for k, v in env.items() if v is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate({"home": Home.resolve(home).root, **values})


def _jwt_key_from_env() -> str | None:
    """``RLOPS_JWT_KEY`` (the key itself), else the contents of the file ``RLOPS_JWT_KEY_FILE``."""
    key = os.environ.get("RLOPS_JWT_KEY")
    if key:
        return key
    path = os.environ.get("RLOPS_JWT_KEY_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text()
    except OSError as e:
        raise ValueError(f"RLOPS_JWT_KEY_FILE: cannot read {path}: {e.strerror}") from e
