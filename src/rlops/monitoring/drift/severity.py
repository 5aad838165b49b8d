"""How worrying a drift result is: one enum for every drift judge, ordered from NONE to ALERT."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Severity(StrEnum):
    """The verdict on one metric, one feature or a whole window. :func:`worst` picks the most severe."""

    NONE = "none"
    WARN = "warn"
    ALERT = "alert"


_RANK = {Severity.NONE: 0, Severity.WARN: 1, Severity.ALERT: 2}


def worst(severities: Iterable[Severity]) -> Severity:
    """The most severe of ``severities`` (``NONE`` for none)."""
    return max(severities, key=_RANK.__getitem__, default=Severity.NONE)
