"""Service settings: one typed object, built explicitly (never at import time), with no default secrets."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

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
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    home: Path
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    fsync: bool = True

    @classmethod
    def from_env(cls, home: str | Path | None = None, **overrides: object) -> ServiceSettings:
        """Settings from arguments, then ``RLOPS_*`` environment variables, then defaults."""
        env = {
            "host": os.environ.get("RLOPS_HOST"),
            "port": os.environ.get("RLOPS_PORT"),
            "max_body_bytes": os.environ.get("RLOPS_MAX_BODY_BYTES"),
            "max_batch": os.environ.get("RLOPS_MAX_BATCH"),
        }
        values: dict[str, object] = {k: v for k, v in env.items() if v is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate({"home": Home.resolve(home).root, **values})
