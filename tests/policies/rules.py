"""Importable rule functions for tests (rules must be importable to be saved)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def by_age(context: Mapping[str, Any]) -> str:
    return "news" if context["age"] > 40 else "tech"


def half_box(context: Mapping[str, Any]) -> list[float]:
    return [0.5 * context["u"], -0.25]
