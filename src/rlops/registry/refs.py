"""Names of registered models and references to their versions: ``NAME`` or ``NAME@VERSION``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rlops.errors import ValidationError

#: A model name is a folder name inside the home folder: letters, digits, ``.``, ``_``, ``-``; no leading dot.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_VERSION = re.compile(r"v?([1-9][0-9]{0,8})")


def check_name(name: str, field: str = "name") -> str:
    """``name`` if it is a valid model name, else a :class:`ValidationError` naming ``field``."""
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise ValidationError(field, f"{name!r} is not a model name (1-64 letters, digits, '.', '_' or '-', "
                                     "starting with a letter or digit)")
    return name


def parse_version(text: str | int, field: str = "version") -> int:
    """A version number from ``3``, ``"3"`` or ``"v3"`` (versions start at 1)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 1:
            raise ValidationError(field, f"versions start at 1, got {text}")
        return text
    match = _VERSION.fullmatch(str(text).strip())
    if match is None:
        raise ValidationError(field, f"{text!r} is not a version (a positive integer such as 3 or v3)")
    return int(match.group(1))


@dataclass(frozen=True, order=True)
class ModelRef:
    """A model name with an optional version (``None``: the latest one)."""

    name: str
    version: int | None = None

    @classmethod
    def parse(cls, text: str, field: str = "model", *, require_version: bool = False) -> ModelRef:
        """Parse ``NAME`` or ``NAME@VERSION`` (``VERSION`` as ``3`` or ``v3``).

        Raises:
            ValidationError: a malformed name or version, or no version when ``require_version``.
        """
        name, sep, version = text.partition("@")
        check_name(name, field)
        if not sep:
            if require_version:
                raise ValidationError(field, f"{text!r} needs a version: NAME@VERSION, e.g. {name}@1")
            return cls(name)
        return cls(name, parse_version(version, field))

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"
