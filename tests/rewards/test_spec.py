"""Reward specs: loading, validation that names the field, and per-row computation with reasons."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlops.errors import ConfigError, ValidationError
from rlops.rewards import Aggregation, BoundsMode, RewardBatch, RewardSpec, parse_duration

EXAMPLE_YAML = """\
name: purchase
version: 3
expression: "clip(revenue - 0.1 * price, -10, 100) + (5 if clicked else 0)"
fields:            # outcome fields the expression reads, with optional defaults
  revenue: {default: 0.0}
  clicked: {default: false}
context: [price]
bounds: {min: -10, max: 100, mode: clip}
aggregation: sum
window: 1h
missing: 0.0
"""

BASE: dict[str, Any] = {
    "name": "purchase",
    "version": 3,
    "expression": "clip(revenue - 0.1 * price, -10, 100) + (5 if clicked else 0)",
    "fields": {"revenue": {"default": 0.0}, "clicked": {"default": False}},
    "context": ["price"],
    "bounds": {"min": -10, "max": 100, "mode": "clip"},
    "aggregation": "sum",
    "window": "1h",
    "missing": 0.0,
}


def make(**changes: Any) -> RewardSpec:
    return RewardSpec.from_dict({**BASE, **changes}, source="test.yaml")


# ---- loading and saving --------------------------------------------------------------------------------------


def test_load_yaml(tmp_path: Path) -> None:
    path = tmp_path / "purchase.yaml"
    path.write_text(EXAMPLE_YAML)
    spec = RewardSpec.load(path)
    assert spec.name == "purchase"
    assert spec.version == 3
    assert spec.ref == "purchase@3"
    assert spec.window_seconds == 3600.0
    assert spec.aggregation is Aggregation.SUM
    assert spec.bounds is not None
    assert (spec.bounds.min, spec.bounds.max, spec.bounds.mode) == (-10.0, 100.0, BoundsMode.CLIP)
    assert spec.fields["revenue"].default == 0.0
    assert spec.fields["clicked"].default is False
    assert spec.context == ["price"]
    assert spec.missing_reward == 0.0
    assert spec.excludes_missing is False
    assert spec.compiled.names == {"revenue", "clicked", "price"}
    # clip(20 - 5, -10, 100) + 5
    assert spec.compute_one({"revenue": 20.0, "clicked": True}, {"price": 50.0}) == 20.0


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_and_load_round_trip(tmp_path: Path, suffix: str) -> None:
    spec = make(missing="exclude", aggregation="last", window=90, description="revenue net of price")
    path = tmp_path / f"spec{suffix}"
    spec.save(path)
    again = RewardSpec.load(path)
    assert again == spec
    assert again.to_dict() == spec.to_dict()
    assert again.window_seconds == 90.0
    assert again.excludes_missing and again.missing_reward is None
    assert RewardSpec.from_dict(spec.to_dict()) == spec


def test_minimal_spec_defaults() -> None:
    spec = RewardSpec.from_dict({"name": "clicks", "version": 1, "expression": "clicked",
                                 "fields": {"clicked": None}})
    assert spec.aggregation is Aggregation.SUM
    assert spec.window_seconds == 3600.0
    assert spec.missing_reward == 0.0
    assert spec.bounds is None
    assert spec.context == []
    assert spec.fields["clicked"].default is None


def test_spec_is_frozen() -> None:
    spec = make()
    with pytest.raises(pydantic.ValidationError):
        spec.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30.0), ("15m", 900.0), ("1h", 3600.0), ("7d", 604800.0), (90, 90.0), (2.5, 2.5), ("90", 90.0),
     ("1.5h", 5400.0), (" 2 m ", 120.0), (".5m", 30.0)],
)
def test_parse_duration(value: float | str, seconds: float) -> None:
    assert parse_duration(value) == seconds
    assert make(window=value).window_seconds == seconds


@pytest.mark.parametrize("value", ["1 week", "0s", "-5s", 0, -5, "h", "", "1e3s", "5 h m", math.inf, math.nan, True])
def test_parse_duration_refuses(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


# ---- validation errors name the field ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": "red"}, "test.yaml: colour: unknown key"),
        ({"fields": {"revenue": {"dflt": 1}, "clicked": {}}}, "test.yaml: fields.revenue.dflt: unknown key"),
        ({"bounds": {"min": 0, "top": 1}}, "test.yaml: bounds.top: unknown key"),
        ({"window": "1 week"}, "test.yaml: window: expected seconds or a duration like '30s', '15m', '1h', '7d', "
                               "got '1 week'"),
        ({"window": 0}, "test.yaml: window: must be a positive, finite duration, got 0"),
        ({"window": "-1h"}, "test.yaml: window: expected seconds or a duration"),
        ({"window": [1]}, "test.yaml: window: expected seconds or a duration"),
        ({"aggregation": "mean"}, "test.yaml: aggregation: Input should be 'sum', 'last', 'max' or 'first'"),
        ({"context": ["revenue"]}, "test.yaml: context: 'revenue' is declared both as an outcome field and as a "
                                   "context feature"),
        ({"context": ["price", "price"]}, "test.yaml: context: context name 'price' is listed twice"),
        ({"expression": "revenue + discount + (0 * price) + clicked"},
         "test.yaml: expression: unknown name 'discount' (col 11); declare it under fields or context"),
        ({"expression": "revenue.real + price + clicked"},
         'test.yaml: expression: attribute access is not allowed (col 1): "revenue.real"'),
        ({"expression": ""}, "test.yaml: expression: is empty"),
        ({"expression": 5}, "test.yaml: expression: Input should be a valid string"),
        ({"bounds": {"min": 5, "max": 1}}, "test.yaml: bounds: min 5.0 is above max 1.0"),
        ({"bounds": {"mode": "clip"}}, "test.yaml: bounds: set min, max or both"),
        ({"bounds": {"min": 0, "mode": "drop"}}, "test.yaml: bounds.mode: Input should be 'clip' or 'reject'"),
        ({"bounds": {"min": math.inf}}, "test.yaml: bounds.min: Input should be a finite number"),
        ({"missing": "skip"}, "test.yaml: missing: expected a number or 'exclude', got 'skip'"),
        ({"missing": None}, "test.yaml: missing: expected a number or 'exclude', got None"),
        ({"missing": math.nan}, "test.yaml: missing: expected a finite number or 'exclude', got nan"),
        ({"missing": [0]}, "test.yaml: missing: expected a number or 'exclude', got [0]"),
        ({"missing": True}, "test.yaml: missing: expected a number or 'exclude', got True"),
        ({"missing": 1000}, "test.yaml: missing: 1000.0 is outside the bounds [-10.0, 100.0]"),
        ({"version": 0}, "test.yaml: version: Input should be greater than or equal to 1"),
        ({"version": "3"}, "test.yaml: version: Input should be a valid integer"),
        ({"version": True}, "test.yaml: version: Input should be a valid integer"),
        ({"name": "a b"}, "test.yaml: name: String should match pattern"),
        ({"name": "purchase@2"}, "test.yaml: name: String should match pattern"),
        ({"name": ""}, "test.yaml: name: String should match pattern"),
        ({"fields": {"revenue": {"default": math.nan}, "clicked": {}}},
         "test.yaml: fields.revenue.default: must be a finite number, got nan"),
        ({"fields": {"revenue": {"default": 10**400}, "clicked": {}}},
         "test.yaml: fields.revenue.default: must be a finite number"),
        ({"fields": {"revenue": {"default": [1]}, "clicked": {}}},
         "test.yaml: fields.revenue.default: expected a number, boolean or string, got list"),
        ({"fields": {"revenue": {"default": "0"}, "clicked": {}}},
         "test.yaml: fields.revenue.default: expected a number or boolean, since the expression uses 'revenue' as a "
         "number; got '0'"),
        ({"fields": {"revenue": {}, "clicked": {}, "coupon": {}}},
         "test.yaml: fields.coupon: declared but the expression does not read it"),
        ({"context": ["price", "country"]}, "test.yaml: context.country: declared but the expression does not read it"),
        ({"fields": {"__revenue": {}}}, "test.yaml: fields: field name '__revenue' starts with '__'"),
        ({"fields": {"max": {}}}, "test.yaml: fields: field name 'max' is the name of a function"),
        ({"fields": {"not": {}}}, "test.yaml: fields: field name 'not' is a Python keyword"),
        ({"context": ["bad-name"]}, "test.yaml: context: context name 'bad-name' is not an identifier"),
        ({"fields": ["revenue"]}, "test.yaml: fields: Input should be a valid dictionary"),
    ],
)
def test_validation_errors_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make(**changes)
    assert str(info.value).startswith(message), str(info.value)
    assert isinstance(info.value.__cause__, pydantic.ValidationError)


def test_string_default_must_match_string_use() -> None:
    data = {"name": "status", "version": 1, "expression": '10 if status == "purchased" else 0',
            "fields": {"status": {"default": 0}}}
    with pytest.raises(ConfigError, match=r"fields\.status\.default: expected a string, since the expression "
                                          r"compares 'status' with strings; got 0"):
        RewardSpec.from_dict(data)


def test_missing_required_key() -> None:
    with pytest.raises(ConfigError, match=r"^s\.yaml: expression: Field required"):
        RewardSpec.from_dict({"name": "x", "version": 1}, source="s.yaml")


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"^s\.yaml: expected a mapping of spec keys, got list"):
        RewardSpec.from_dict([1, 2], source="s.yaml")


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read reward spec file"):
        RewardSpec.load(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML/JSON"):
        RewardSpec.load(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(EXAMPLE_YAML.replace("window: 1h", "window: soon"))
    with pytest.raises(ConfigError) as info:
        RewardSpec.load(wrong)
    assert str(info.value).startswith(f"{wrong}: window: expected seconds or a duration")


# ---- computation ---------------------------------------------------------------------------------------------


def test_compute_known_values() -> None:
    spec = make()
    batch = spec.compute(
        [{"revenue": 20.0, "clicked": True}, {"revenue": 500, "clicked": False}, {"revenue": -3.0, "clicked": 0},
         {"revenue": 2, "clicked": 1}],
        [{"price": 50.0}, {"price": 0}, {"price": 100}, {"price": 10.0}],
    )
    # 15 + 5; 500 clipped to 100 by the expression; clip(-13, -10, 100); 1 + 5
    assert batch.reward.tolist() == [20.0, 100.0, -10.0, 6.0]
    assert batch.reason == [None, None, None, None]
    assert batch.valid.tolist() == [True] * 4
    assert len(batch) == 4
    assert isinstance(batch, RewardBatch)


def test_defaults_fill_missing_fields() -> None:
    spec = make()
    batch = spec.compute([{}, {"revenue": 30.0}, {"clicked": True}, {"other": "ignored"}],
                         [{"price": 10.0}] * 4)
    # revenue 0 and clicked False by default: clip(-1, -10, 100) = -1; 30 - 1; -1 + 5; -1
    assert batch.reward.tolist() == [-1.0, 29.0, 4.0, -1.0]
    assert batch.reason == [None] * 4


def test_missing_field_without_default() -> None:
    spec = make(fields={"revenue": {}, "clicked": {"default": False}})
    batch = spec.compute([{"revenue": 10.0}, {"clicked": True}, {}], [{"price": 0}] * 3)
    assert batch.reward[0] == 10.0
    assert np.isnan(batch.reward[1:]).all()
    assert batch.reason == [None, "missing field 'revenue'", "missing field 'revenue'"]
    with pytest.raises(ValidationError) as info:
        spec.compute_one({"clicked": True}, {"price": 0})
    assert info.value.field == "outcome.fields.revenue"
    assert info.value.rule == "is missing and has no default"


def test_missing_context() -> None:
    spec = make()
    batch = spec.compute([{}, {}], [{"price": 1.0}, {"cost": 3.0}])
    assert batch.reason == [None, "missing context feature 'price'"]
    assert spec.compute([{}], None).reason == ["missing context feature 'price'"]
    with pytest.raises(ValidationError) as info:
        spec.compute_one({}, {})
    assert (info.value.field, info.value.rule) == ("context.price", "is missing and has no default")


def test_contexts_of_another_length() -> None:
    with pytest.raises(ValidationError) as info:
        make().compute([{}, {}], [{"price": 1.0}])
    assert info.value.field == "contexts"
    assert "has 1 rows but outcome_fields has 2" in info.value.rule


def test_spec_without_context_needs_no_contexts() -> None:
    spec = RewardSpec.from_dict({"name": "r", "version": 1, "expression": "2 * revenue", "fields": {"revenue": {}}})
    assert spec.compute([{"revenue": 1.5}, {"revenue": -1}]).reward.tolist() == [3.0, -2.0]
    assert spec.compute_one({"revenue": 4}) == 8.0


REJECT = {"bounds": {"min": -10, "max": 100, "mode": "reject"}, "expression": "revenue - 0.1 * price + (5 if clicked "
                                                                              "else 0)"}


def test_bounds_reject() -> None:
    spec = make(**REJECT)
    batch = spec.compute([{"revenue": 115.0, "clicked": True}, {"revenue": -50}, {"revenue": 100.0}, {"revenue": -10}],
                         [{"price": 0}] * 4)
    assert batch.reason == ["reward 120.0 is above the maximum 100.0", "reward -50.0 is below the minimum -10.0",
                            None, None]
    assert np.isnan(batch.reward[:2]).all()
    assert batch.reward[2:].tolist() == [100.0, -10.0]  # the bounds are inclusive
    with pytest.raises(ValidationError) as info:
        spec.compute_one({"revenue": 115.0, "clicked": True}, {"price": 0})
    assert str(info.value) == "reward: 120.0 is above the maximum 100.0"


def test_bounds_clip() -> None:
    spec = make(**{**REJECT, "bounds": {"min": -10, "max": 100, "mode": "clip"}})
    batch = spec.compute([{"revenue": 115.0, "clicked": True}, {"revenue": -50}, {"revenue": 99.5}],
                         [{"price": 0}] * 3)
    assert batch.reward.tolist() == [100.0, -10.0, 99.5]
    assert batch.reason == [None, None, None]
    assert spec.compute_one({"revenue": 115.0, "clicked": True}, {"price": 0}) == 100.0


def test_one_sided_bounds() -> None:
    spec = make(**{**REJECT, "bounds": {"min": 0, "mode": "reject"}})
    batch = spec.compute([{"revenue": 1e9}, {"revenue": -1.0}], [{"price": 0}] * 2)
    assert batch.reward[0] == 1e9
    assert batch.reason == [None, "reward -1.0 is below the minimum 0.0"]
    clipped = make(**{**REJECT, "bounds": {"max": 5}})
    assert clipped.compute([{"revenue": 1e9}, {"revenue": -1e9}], [{"price": 0}] * 2).reward.tolist() == [5.0, -1e9]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (math.nan, "field 'revenue': nan is not a finite number"),
        (math.inf, "field 'revenue': inf is not a finite number"),
        (-math.inf, "field 'revenue': -inf is not a finite number"),
        (np.float64("nan"), "field 'revenue': nan is not a finite number"),
        ("12", "field 'revenue': expected a number or boolean, got str"),
        (None, "field 'revenue': expected a number or boolean, got null"),
        ({"amount": 1}, "field 'revenue': expected a number or boolean, got dict"),
        ([1.0], "field 'revenue': expected a number or boolean, got list"),
        (10**400, "field 'revenue': 10000000000000000000... is too large for a float"),
        (1e308, "reward is inf, not a finite number"),  # 1e308 * 10 overflows
    ],
)
def test_bad_values_give_reasons(value: Any, reason: str) -> None:
    spec = RewardSpec.from_dict({"name": "r", "version": 1, "expression": "revenue * 10 + bonus",
                                 "fields": {"revenue": {}, "bonus": {"default": 1}}})
    rows = [{"revenue": 2.0}, {"revenue": value}, {"revenue": 3}]
    batch = spec.compute(rows)
    assert batch.reason == [None, reason, None]
    assert batch.reward[0] == 21.0 and batch.reward[2] == 31.0
    assert math.isnan(batch.reward[1])
    with pytest.raises(ValidationError) as info:
        spec.compute_one(rows[1])
    assert info.value.field == ("reward" if reason.startswith("reward") else "outcome.fields.revenue")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(np.float64(2.5), 26.0), (np.int64(3), 31.0), (np.bool_(True), 11.0), (True, 11.0), (False, 1.0),
     (7, 71.0), (2**70, 2.0**70 * 10 + 1)],
)
def test_unusual_number_types_are_accepted(value: Any, expected: float) -> None:
    spec = RewardSpec.from_dict({"name": "r", "version": 1, "expression": "revenue * 10 + bonus",
                                 "fields": {"revenue": {}, "bonus": {"default": 1}}})
    batch = spec.compute([{"revenue": value}, {"revenue": 0.0}])
    assert batch.reason == [None, None]
    assert batch.reward.tolist() == [expected, 1.0]
    assert spec.compute_one({"revenue": value}) == expected


def test_rows_that_are_not_mappings() -> None:
    spec = make()
    batch = spec.compute([None, {"revenue": 1.0}, [1, 2]], [{"price": 0}, "oops", {"price": 0}])  # type: ignore[list-item]
    assert batch.reason == ["outcome.fields: expected an object, got NoneType",
                            "context: expected an object, got str",
                            "outcome.fields: expected an object, got list"]
    assert np.isnan(batch.reward).all()


def test_first_problem_of_a_row_wins() -> None:
    spec = make(fields={"revenue": {}, "clicked": {}})
    batch = spec.compute([{"clicked": "yes"}], [{}])
    assert batch.reason == ["missing field 'revenue'"]  # fields in declared order, then context, then the result


def test_string_fields() -> None:
    spec = RewardSpec.from_dict({
        "name": "status", "version": 2,
        "expression": '10 if status == "purchased" else (-5 if status == "returned" else 0)',
        "fields": {"status": {"default": "none"}},
    })
    batch = spec.compute([{"status": "purchased"}, {"status": "returned"}, {"status": "viewed"}, {}, {"status": 1},
                          {"status": None}])
    assert batch.reward[:4].tolist() == [10.0, -5.0, 0.0, 0.0]
    assert batch.reason == [None, None, None, None, "field 'status': expected a string, got int",
                            "field 'status': expected a string, got null"]
    with pytest.raises(ValidationError) as info:
        spec.compute_one({"status": True})
    assert str(info.value) == "outcome.fields.status: expected a string, got bool"


def test_string_context_feature() -> None:
    spec = RewardSpec.from_dict({"name": "geo", "version": 1, "expression": 'revenue * (2 if country == "fr" else 1)',
                                 "fields": {"revenue": {}}, "context": ["country"]})
    batch = spec.compute([{"revenue": 3.0}] * 3, [{"country": "fr"}, {"country": "de"}, {"country": 33}])
    assert batch.reward[:2].tolist() == [6.0, 3.0]
    assert batch.reason[2] == "context feature 'country': expected a string, got int"


def test_non_finite_result_gives_reason() -> None:
    spec = RewardSpec.from_dict({"name": "ratio", "version": 1, "expression": "revenue / visits + log(visits)",
                                 "fields": {"revenue": {}, "visits": {}}})
    batch = spec.compute([{"revenue": 4.0, "visits": 2.0}, {"revenue": 1.0, "visits": 0}, {"revenue": 1, "visits": -1}])
    assert batch.reward[0] == pytest.approx(2.0 + math.log(2.0))
    assert batch.reason[1:] == ["reward is nan, not a finite number", "reward is nan, not a finite number"]
    with pytest.raises(ValidationError) as info:
        spec.compute_one({"revenue": 1.0, "visits": 0})
    assert info.value.field == "reward"


def test_empty_batch() -> None:
    batch = make().compute([], [])
    assert batch.reward.shape == (0,) and batch.reason == []


def test_aggregate_uses_the_specs_aggregation() -> None:
    rewards = np.array([1.0, 2.0, 4.0])
    group = np.array([0, 0, 2])
    ts = np.array([5, 1, 0])
    assert make(aggregation="sum").aggregate(rewards, group, ts, 3).tolist()[::2] == [3.0, 4.0]
    assert make(aggregation="first").aggregate(rewards, group, ts, 3)[0] == 2.0
    assert make(aggregation="last").aggregate(rewards, group, ts, 3)[0] == 1.0
    assert make(aggregation="max").aggregate(rewards, group, ts, 3)[0] == 2.0


# ---- batch and single computation agree ----------------------------------------------------------------------

MIXED = {
    "name": "mixed", "version": 1,
    "expression": 'clip(revenue - 0.1 * price, -10, 100) + (5 if clicked else 0) + (3 if status == "vip" else 0) '
                  "+ 100 / items",
    "fields": {"revenue": {}, "clicked": {"default": False}, "status": {"default": "basic"}, "items": {"default": 1}},
    "context": ["price"],
    "bounds": {"min": -20, "max": 150, "mode": "reject"},
}


def _random_rows(rng: np.random.Generator, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    revenue = rng.normal(20, 40, n).tolist()
    clicked = (rng.random(n) < 0.5).tolist()
    status = rng.choice(["vip", "basic", "new"], n).tolist()
    items = rng.integers(0, 4, n).tolist()  # 0 items gives a division by zero
    price = rng.uniform(0, 200, n).tolist()
    fields: list[dict[str, Any]] = [{"revenue": r, "clicked": c, "status": s, "items": k}
                                    for r, c, s, k in zip(revenue, clicked, status, items, strict=True)]
    contexts: list[dict[str, Any]] = [{"price": p} for p in price]
    weird: list[Any] = [None, "x", math.nan, math.inf, {}, 10**400, True, np.float32(1.5)]
    for i in np.flatnonzero(rng.random(n) < 0.05).tolist():
        key = ["revenue", "clicked", "status", "items"][i % 4]
        if i % 3 == 0:
            fields[i].pop(key)
        else:
            fields[i][key] = weird[i % len(weird)]
    for i in np.flatnonzero(rng.random(n) < 0.01).tolist():
        contexts[i] = {} if i % 2 else {"price": "cheap"}
    return fields, contexts


def _check_agrees(spec: RewardSpec, batch: RewardBatch, fields: list[dict[str, Any]],
                  contexts: list[dict[str, Any]], rows: list[int]) -> None:
    for i in rows:
        if batch.reason[i] is None:
            assert spec.compute_one(fields[i], contexts[i]) == batch.reward[i]
        else:
            assert math.isnan(batch.reward[i])
            with pytest.raises(ValidationError) as info:
                spec.compute_one(fields[i], contexts[i])
            # the single-row error is about the same value as the batch reason
            name = info.value.field.rsplit(".", 1)[-1]
            assert name in batch.reason[i] or info.value.rule in batch.reason[i], (info.value, batch.reason[i])


def test_batch_of_200k_matches_compute_one() -> None:
    spec = RewardSpec.from_dict(MIXED)
    rng = np.random.default_rng(7)
    fields, contexts = _random_rows(rng, 200_000)
    batch = spec.compute(fields, contexts)
    assert batch.reward.shape == (200_000,) and len(batch.reason) == 200_000
    invalid = sum(r is not None for r in batch.reason)
    assert 0.02 * 200_000 < invalid < 0.6 * 200_000  # every kind of problem occurs, most rows are fine
    assert np.isnan(batch.reward).sum() == invalid
    sample = rng.choice(200_000, 2_000, replace=False).tolist()
    bad = [i for i, r in enumerate(batch.reason) if r is not None][:500]
    _check_agrees(spec, batch, fields, contexts, sample + bad)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60))
def test_batch_matches_compute_one_property(seed: int, n: int) -> None:
    spec = RewardSpec.from_dict(MIXED)
    fields, contexts = _random_rows(np.random.default_rng(seed), n)
    batch = spec.compute(fields, contexts)
    _check_agrees(spec, batch, fields, contexts, list(range(n)))


def test_check_one_evaluates_once_and_says_what_the_bounds_did() -> None:
    base = {"name": "r", "version": 1, "expression": "value", "fields": {"value": {}}}
    clip = RewardSpec.model_validate({**base, "bounds": {"min": 0, "max": 1, "mode": "clip"}})
    reject = RewardSpec.model_validate({**base, "bounds": {"min": 0, "max": 1, "mode": "reject"}})
    inside = clip.check_one({"value": 0.5})
    assert (inside.reward, inside.unbounded, inside.error, inside.out_of_bounds) == (0.5, 0.5, None, False)
    above = clip.check_one({"value": 4.0})
    assert (above.reward, above.unbounded, above.out_of_bounds) == (1.0, 4.0, True)
    refused = reject.check_one({"value": -2.0})
    assert refused.reward is None and refused.out_of_bounds and refused.error is not None
    assert (refused.error.field, refused.error.rule) == ("reward", "-2.0 is below the minimum 0.0")
    with pytest.raises(ValidationError, match="below the minimum"):
        reject.compute_one({"value": -2.0})  # the batch path says the same
    missing = clip.check_one({})
    assert missing.reward is None and not missing.out_of_bounds and missing.error is not None
