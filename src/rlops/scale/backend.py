"""Where parallel work runs: processes on this machine, or a Ray cluster."""

from __future__ import annotations

from enum import StrEnum


class Backend(StrEnum):
    """``local``: a process pool on this machine. ``ray``: Ray (a local instance, or the cluster named by
    ``$RLOPS_RAY_ADDRESS``; see docs/deploy.md)."""

    LOCAL = "local"
    RAY = "ray"
