"""Running on Ray when one machine is not enough: the backend choice, a Ray session, and a map over Ray actors.

Ray is an optional dependency (the ``ray`` extra); nothing here imports it until a Ray backend is asked for.
"""

from rlops.scale.backend import Backend
from rlops.scale.ray_compute import actor_map, ray_session

__all__ = ["Backend", "actor_map", "ray_session"]
