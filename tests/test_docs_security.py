"""docs/security.md lists exactly the service's routes, each with the permission its guard declares."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.routing import APIRoute

from rlops.service import ServiceSettings
from rlops.service.app import create_app
from rlops.service.auth import guard_of

DOCS = Path(__file__).resolve().parents[1] / "docs" / "security.md"


def test_route_table_matches_the_app(tmp_path: Path) -> None:
    app = create_app(ServiceSettings(home=tmp_path, port=0))
    actual = {}
    for route in app.routes:
        if isinstance(route, APIRoute):
            guard = guard_of(route)
            assert guard is not None
            for method in route.methods:
                actual[f"{method} {route.path}"] = "public" if guard.permission is None else guard.permission.value
    section = DOCS.read_text().split("### Every route and what it needs", 1)[1].split("\n## ", 1)[0]
    documented = {m.group(1): (m.group(2) or m.group(3)) for m in
                  re.finditer(r"^\| `([A-Z]+ [^`]+)` \| (?:`([a-z_]+)`|(public))", section, re.M)}
    assert documented == actual
