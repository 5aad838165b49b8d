"""Rule functions for the budget tests' policies (importable by the measuring process)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

PID_FILE_VARIABLE = "RLOPS_TEST_PID_FILE"


def record_pid(context: Mapping[str, Any]) -> str:
    """Always 'a'; writes the process id to the file named by $RLOPS_TEST_PID_FILE, if set."""
    path = os.environ.get(PID_FILE_VARIABLE)
    if path:
        with open(path, "w") as f:
            f.write(str(os.getpid()))
    return "a"


def broken(context: Mapping[str, Any]) -> str:
    """A rule that fails on every context."""
    raise RuntimeError("sensor table missing")
