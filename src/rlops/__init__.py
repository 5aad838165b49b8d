"""rlops: take reinforcement-learning policies to production and keep them healthy there."""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `import rlops` (and the edge runtime later) stays light.
    if name == "Client":
        from rlops.client import Client

        return Client
    raise AttributeError(f"module 'rlops' has no attribute {name!r}")
