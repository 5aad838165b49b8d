"""The one exception hierarchy of rlops.

Every error a user can cause is an :class:`RlopsError` whose message names the field and the rule that was broken,
so that the CLI and the HTTP service can show it as one clear line (and the service can map it to a status code)
without ever exposing a stack trace.
"""

from __future__ import annotations


class RlopsError(Exception):
    """Base class of every error rlops raises on purpose."""


class ValidationError(RlopsError, ValueError):
    """A value broke a declared rule.

    Args:
        field: dotted path of the offending value, e.g. ``context.temperature`` or ``outcome.fields.clicks``.
        rule: what was wrong, phrased so that ``f"{field}: {rule}"`` reads as a sentence.
    """

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}" if field else rule)

    def __reduce__(self) -> tuple[type[ValidationError], tuple[str, str]]:
        # Rebuilt from both arguments, so the error crosses process pools intact.
        return (type(self), (self.field, self.rule))


class ConfigError(RlopsError, ValueError):
    """A configuration file (schema, reward spec, deployment, manifest) is malformed or inconsistent."""


class NotFoundError(RlopsError, LookupError):
    """A named thing (deployment, decision, policy folder) does not exist."""


class ConflictError(RlopsError):
    """The request is valid but clashes with what is stored (e.g. a different record under an existing id)."""


class StorageError(RlopsError, OSError):
    """The home folder could not be read or written; nothing acknowledged was lost."""


class DependencyNotInstalled(RlopsError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class UnauthorizedError(RlopsError, PermissionError):
    """The caller did not prove who they are (missing or wrong credentials)."""


class ForbiddenError(RlopsError, PermissionError):
    """The caller is known, or the action is disabled, and it is not allowed."""


class RateLimitedError(RlopsError):
    """The caller sent more than its rate limit allows; ``retry_after`` says how many seconds to wait."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
