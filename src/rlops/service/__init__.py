"""The HTTP decision service: thin FastAPI routes over :class:`rlops.engine.Engine`."""

from rlops.service.app import create_app
from rlops.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
