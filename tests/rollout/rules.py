"""Rule policies for rollout tests: importable module-level functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def always_news(context: Mapping[str, Any]) -> str:
    return "news"


def always_food(context: Mapping[str, Any]) -> str:
    return "food"
