"""Gates: thresholds, paired wildcards, tolerance, warnings, missing metrics, and file validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlops.errors import ConfigError
from rlops.evaluation.gates import Gate, GatesFile, evaluate, evaluate_all, overall, resolve
from rlops.evaluation.status import Status

RESULTS = {
    "ope": {"estimates": {"dr": {"value": 0.31, "interval": {"low": 0.27, "high": 0.35}, "warnings": []},
                          "ips": {"value": 0.33, "interval": {"low": 0.20, "high": 0.46},
                                  "warnings": ["low_ess"]}},
            "logging": {"value": 0.25}},
    "stress": {"variations": {
        "nominal": {"candidate": {"cvar": -100.0}, "baseline": {"cvar": -110.0}},
        "noise": {"candidate": {"cvar": -120.0}, "baseline": {"cvar": -116.0}},
        "delay": {"candidate": {"cvar": -130.0}, "baseline": {"cvar": -120.0}}}},
    "budget": {"measurement": {"p99_ms": 1.8}},
}


def gate(**kw: object) -> Gate:
    return Gate.model_validate({"name": "g", **kw})


def test_a_fixed_threshold() -> None:
    assert evaluate(gate(metric="budget.measurement.p99_ms", op="<", value=2.0), RESULTS).status is Status.PASS
    assert evaluate(gate(metric="budget.measurement.p99_ms", op="<", value=1.5), RESULTS).status is Status.FAIL
    near = evaluate(gate(metric="budget.measurement.p99_ms", op="<", value=2.0, warn_margin=0.5), RESULTS)
    assert near.status is Status.WARN and "less than 0.5" in near.reason
    assert near.checks[0].measured == 1.8 and near.checks[0].threshold == 2.0


def test_against_another_metric_and_support_warnings() -> None:
    dr = evaluate(gate(metric="ope.estimates.dr.interval.low", op=">", than="ope.logging.value"), RESULTS)
    assert dr.status is Status.PASS and dr.checks[0].threshold == 0.25
    ips = evaluate(gate(metric="ope.estimates.ips.interval.low", op=">", than="ope.logging.value"), RESULTS)
    assert ips.status is Status.FAIL  # 0.20 < 0.25
    ips_value = evaluate(gate(metric="ope.estimates.ips.value", op=">", than="ope.logging.value"), RESULTS)
    assert ips_value.status is Status.WARN and "low_ess" in ips_value.reason  # passes, on poor support


def test_wildcards_pair_keys_and_tolerance_is_relative() -> None:
    g = {"metric": "stress.variations.*.candidate.cvar", "op": ">=",
         "than": "stress.variations.*.baseline.cvar"}
    strict = evaluate(gate(**g), RESULTS)
    assert strict.status is Status.FAIL
    assert {c.key.split(".")[2]: c.status for c in strict.checks} == {
        "nominal": Status.PASS, "noise": Status.FAIL, "delay": Status.FAIL}
    lenient = evaluate(gate(**g, tolerance=0.05), RESULTS)  # noise: -120 >= -116 - 5.8; delay: -130 < -126
    assert {c.key.split(".")[2]: c.status for c in lenient.checks} == {
        "nominal": Status.PASS, "noise": Status.PASS, "delay": Status.FAIL}
    assert lenient.checks[0].threshold == pytest.approx(-120 - 6.0)  # delay's, sorted first
    assert "1 of 3 fail" in lenient.reason


def test_missing_metrics_skip_unless_required() -> None:
    assert evaluate(gate(metric="stress.nothing", op=">", value=0), RESULTS).status is Status.SKIP
    assert evaluate(gate(metric="stress.nothing", op=">", value=0, required=True), RESULTS).status is Status.FAIL
    broken = evaluate(gate(metric="ope.estimates.dr.value", op=">", than="ope.nothing"), RESULTS)
    assert broken.status is Status.FAIL and "not a finite number" in broken.reason


def test_overall_ignores_skips() -> None:
    results = evaluate_all([gate(metric="budget.measurement.p99_ms", op="<", value=2.0),
                            gate(metric="absent", op="<", value=1.0)], RESULTS)
    assert [r.status for r in results] == [Status.PASS, Status.SKIP]
    assert overall(results) is Status.PASS
    assert resolve(RESULTS, "ope.estimates.*.value") == {"ope.estimates.dr.value": 0.31,
                                                         "ope.estimates.ips.value": 0.33}


@pytest.mark.parametrize(("body", "fragment"), [
    ({"gates": [{"name": "a", "metric": "x", "op": ">"}]}, "exactly one of value or than"),
    ({"gates": [{"name": "a", "metric": "x", "op": "=>", "value": 1}]}, "gates.0.op"),
    ({"gates": [{"name": "a", "metric": "x.*", "op": ">", "than": "y.*.*"}]}, "as many *"),
    ({"gates": []}, "gates"),
    ({"gates": [{"name": "a", "metric": "x", "op": ">", "value": 1, "colour": "red"}]}, "unknown key"),
])
def test_bad_gate_files_name_the_problem(tmp_path: Path, body: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("*", r"\*")):
        GatesFile.from_dict(body)


def test_gates_file_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text("gates:\n  - name: latency\n    metric: budget.measurement.p99_ms\n    op: '<'\n    value: 2\n")
    assert GatesFile.load(path).gates[0].value == 2.0


def test_validation_errors_survive_pickling() -> None:
    import pickle

    from rlops.errors import ValidationError

    again = pickle.loads(pickle.dumps(ValidationError("context.age", "above the maximum 90")))
    assert (again.field, again.rule, str(again)) == ("context.age", "above the maximum 90",
                                                     "context.age: above the maximum 90")


def test_a_run_where_every_gate_was_skipped_is_not_a_pass() -> None:
    results = evaluate_all([gate(metric="absent", op="<", value=1.0)], RESULTS)
    assert overall(results) is Status.WARN
