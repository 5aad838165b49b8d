from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlops.errors import ConfigError, ValidationError
from rlops.schema import Schema

SCHEMA = {
    "name": "hvac",
    "features": [
        {"name": "temperature", "type": "float", "min": -40, "max": 60},
        {"name": "occupants", "type": "int", "min": 0, "default": 0},
        {"name": "weekend", "type": "bool"},
        {"name": "zone", "type": "categorical", "vocabulary": ["north", "south"], "unknown": "other"},
        {"name": "season", "type": "categorical", "vocabulary": ["winter", "summer"]},
        {"name": "forecast", "type": "vector", "size": 3, "min": -50, "max": 70},
    ],
    "actions": {"type": "discrete", "names": ["heat", "cool", "off"]},
}
GOOD = {"temperature": 21.5, "weekend": True, "zone": "south", "season": "summer", "forecast": [1, 2.5, 3]}


@pytest.fixture
def schema() -> Schema:
    return Schema.model_validate(SCHEMA)


def test_validate_fills_defaults_and_normalises(schema: Schema) -> None:
    ctx = schema.validate_context(GOOD)
    assert ctx == {"temperature": 21.5, "occupants": 0, "weekend": True, "zone": "south", "season": "summer",
                   "forecast": [1.0, 2.5, 3.0]}


def test_encoding_is_one_hot_and_ordered(schema: Schema) -> None:
    ctx = schema.validate_context({**GOOD, "zone": "east", "occupants": 4})
    x = schema.encode([ctx])
    assert schema.column_names == ["temperature", "occupants", "weekend", "zone=north", "zone=south",
                                   "zone=<other>", "season=winter", "season=summer", "forecast[0]", "forecast[1]",
                                   "forecast[2]"]
    np.testing.assert_array_equal(x, [[21.5, 4, 1, 0, 0, 1, 0, 1, 1, 2.5, 3]])
    assert x.dtype == np.float64 and schema.width == 11


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"temperature": 412.0}, "context.temperature: 412.0 is above the maximum 60.0"),
        ({"temperature": -41}, "context.temperature: -41.0 is below the minimum -40.0"),
        ({"temperature": float("nan")}, "context.temperature: nan is not a finite number"),
        ({"temperature": float("inf")}, "context.temperature: inf is not a finite number"),
        ({"temperature": "hot"}, "context.temperature: expected a number, got str"),
        ({"temperature": True}, "context.temperature: expected a number, got bool"),
        ({"occupants": 2.0}, "context.occupants: expected an integer, got float"),
        ({"occupants": -1}, "context.occupants: -1 is below the minimum 0"),
        ({"weekend": 1}, "context.weekend: expected true or false, got int"),
        ({"season": "spring"}, "context.season: 'spring' is not in the vocabulary"),
        ({"zone": "x" * 5000}, "context.zone: string of 5000 characters is longer than 1024"),
        ({"forecast": [1, 2]}, "context.forecast: expected 3 numbers, got 2"),
        ({"forecast": [1, 2, float("nan")]}, "context.forecast[2]: nan is not a finite number"),
        ({"forecast": [1, 2, 99]}, "context.forecast[2]: 99.0 is above the maximum 70.0"),
        ({"forecast": "1,2,3"}, "context.forecast: expected a list of 3 numbers, got str"),
        ({"humidity": 0.3}, "context.humidity: unknown field"),
    ],
)
def test_bad_values_name_field_and_rule(schema: Schema, patch: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        schema.validate_context({**GOOD, **patch})
    assert str(info.value).startswith(message)


def test_missing_required_and_non_object(schema: Schema) -> None:
    bad = dict(GOOD)
    del bad["weekend"]
    with pytest.raises(ValidationError, match=r"^context\.weekend: is required$"):
        schema.validate_context(bad)
    with pytest.raises(ValidationError, match=r"^context: expected an object of features, got list$"):
        schema.validate_context([1, 2])


def test_candidates_validation() -> None:
    s = Schema.model_validate({
        "features": [{"name": "u", "type": "float"}],
        "actions": {"type": "candidates", "max_candidates": 3,
                    "features": [{"name": "price", "type": "float", "min": 0}]},
    })
    cands = s.validate_candidates([{"id": "a", "features": {"price": 1}}, {"id": "b", "features": {"price": 2}}])
    np.testing.assert_array_equal(s.encode_candidates(cands), [[1.0], [2.0]])
    assert s.action_names(cands) == ["a", "b"]
    cases = [
        ([], "actions: expected a non-empty list of candidates"),
        ([{"id": "a", "features": {"price": -1}}], "actions[0].features.price: -1.0 is below the minimum 0.0"),
        ([{"id": "a", "features": {"price": 1}}, {"id": "a", "features": {"price": 2}}],
         "actions[1].id: duplicate candidate id 'a'"),
        ([{"id": "", "features": {}}], "actions[0].id: expected a non-empty string"),
        ([{"id": "a", "features": {"price": 1}, "x": 1}], "actions[0].x: unknown field"),
        ([{"id": str(i), "features": {"price": 1}} for i in range(4)], "actions: 4 candidates is more than"),
    ]
    for raw, message in cases:
        with pytest.raises(ValidationError) as info:
            s.validate_candidates(raw)
        assert str(info.value).startswith(message), str(info.value)


def test_discrete_schema_refuses_per_request_candidates(schema: Schema) -> None:
    with pytest.raises(ValidationError, match="need an action space of type 'candidates'"):
        schema.validate_candidates([{"id": "a"}])


def test_yaml_and_json_round_trip(schema: Schema, tmp_path: Path) -> None:
    for name in ("s.yaml", "s.json"):
        schema.save(tmp_path / name)
        assert Schema.load(tmp_path / name) == schema
    assert json.loads((tmp_path / "s.json").read_text())["actions"]["names"] == ["heat", "cool", "off"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({**SCHEMA, "features": []}, "features"),
        ({**SCHEMA, "extra": 1}, "extra"),
        ({**SCHEMA, "features": [{"name": "a", "type": "float"}, {"name": "a", "type": "int"}]}, "duplicate names"),
        ({**SCHEMA, "features": [{"name": "a", "type": "float", "min": 2, "max": 1}]}, "min 2.0 is above max 1.0"),
        ({**SCHEMA, "features": [{"name": "bad name", "type": "float"}]}, "features.0.float.name"),
        ({**SCHEMA, "actions": {"type": "discrete", "names": ["a", "a"]}}, "duplicate"),
        ({**SCHEMA, "actions": {"type": "box", "low": [1], "high": [0]}}, "low < high"),
        ({**SCHEMA, "features": [{"name": "c", "type": "categorical", "vocabulary": ["a"], "default": "z"}]},
         "not in the vocabulary"),
    ],
)
def test_malformed_schema_is_a_config_error(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Schema.from_dict(data)
    assert fragment in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read schema file"):
        Schema.load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("features: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Schema.load(tmp_path / "bad.yaml")
