"""The HTTP decision service: thin FastAPI routes over :class:`rlops.engine.Engine`."""

from rlops.service.app import create_app
from rlops.service.observability import configure_logging
from rlops.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "configure_logging", "create_app"]
