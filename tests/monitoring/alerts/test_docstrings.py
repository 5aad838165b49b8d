"""The examples in the alerts package's docstrings run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["rlops.monitoring.alerts", "rlops.monitoring.alerts.evaluator",
                                    "rlops.monitoring.alerts.rules", "rlops.monitoring.alerts.signals"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0
