"""The verdict of a check or a gate: one enum for every judge in ``rlops.evaluation``."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """How a check came out. Ordered by severity: :func:`worst` picks the most severe."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # nothing to judge (e.g. no data for this check); never fails a run on its own


_SEVERITY = {Status.SKIP: 0, Status.PASS: 1, Status.WARN: 2, Status.FAIL: 3}


def worst(statuses: list[Status]) -> Status:
    """The most severe status (``PASS`` for none)."""
    return max(statuses, key=_SEVERITY.__getitem__, default=Status.PASS)
