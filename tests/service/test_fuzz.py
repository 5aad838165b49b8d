"""schemathesis over the service's own OpenAPI spec, on a real socket, with an authenticated admin key (so the
fuzzing reaches the handlers, not just the guard): no 5xx, no response that breaks its schema, and nothing stored by
a request the service rejected.

schemathesis' pytest plugin does not yet support pytest 9, so each operation's strategy is driven with hypothesis
directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis

# Imported at collection, not on first use: pytest rewrites schemathesis' modules (it is a pytest plugin) with
# ast.parse, which CPython 3.11 fails with a SystemError when an earlier test in the same thread has hit a
# RecursionError (e.g. the reward expressions' nesting limits).
import schemathesis.specs.openapi.schemas
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from rlops.engine import Engine
from tests.keys import bearer

EXAMPLES_PER_OPERATION = 40


def _stored(home: Path) -> tuple[int, int]:
    with Engine(home) as engine:
        return engine.log.read_decisions().num_rows, engine.log.read_outcomes().num_rows


@pytest.mark.slow
def test_no_server_errors_and_responses_match_the_schema(server: str, home: Path, admin_key: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8  # every route is exercised
    failures: list[str] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            before = _stored(home)
            response = case.call(timeout=10, headers=bearer(admin_key))
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")
            try:
                # Contexts follow each deployment's own schema, which the static OpenAPI spec cannot express, so a
                # schema-valid request may rightly be refused with 422: that one check does not apply here.
                case.validate_response(response, excluded_checks=[positive_data_acceptance])
            except Exception as e:  # collect every kind of schema violation, then report them together
                failures.append(f"{case.method} {case.formatted_path}: {str(e)[:300]}")
            if response.status_code >= 400 and _stored(home) != before:
                failures.append(f"{case.method} {case.formatted_path}: rejected with {response.status_code} but "
                                f"stored data changed")

        check()
    assert failures == [], "\n".join(sorted(set(failures))[:20])
