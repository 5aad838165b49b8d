"""Contexts to the raw input: the fast checks accept exactly what the schema accepts and encode it the same way."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlops.edge.contexts import ContextEncoder
from rlops.edge.layout import RawLayout
from rlops.errors import ValidationError
from rlops.schema import Schema
from tests.export.cases import DISCRETE, contexts

STRICT = Schema.model_validate({  # an unknown category is an error here, and a float has a default
    "features": [{"name": "x", "type": "float", "min": -1, "max": 1, "default": 0.5},
                 {"name": "kind", "type": "categorical", "vocabulary": ["p", "q"]}],
    "actions": {"type": "discrete", "names": ["l", "r"]},
})


def encoder(schema: Schema = DISCRETE) -> ContextEncoder:
    return ContextEncoder(schema, RawLayout.from_schema(schema))


def reference(schema: Schema, batch: list[Any]) -> np.ndarray:
    """What the schema itself makes of the batch: validated row by row, then the raw layout."""
    enc = encoder(schema)
    return enc.raw_from_valid([schema.validate_context(c, path=f"contexts[{i}]") for i, c in enumerate(batch)])


def test_rows_columns_and_the_schema_give_the_same_raw_input() -> None:
    batch = contexts(2_000, seed=9)
    raw, columns = encoder().encode_rows(batch)
    np.testing.assert_array_equal(raw, reference(DISCRETE, batch))
    assert columns["returning"].count(False) > 300  # the default, filled in where the field was left out
    as_columns = {name: [c.get(name) for c in batch] for name in ("age", "device", "visits", "taste")}
    from_columns, filled = encoder().encode_columns({**{k: np.asarray(v) for k, v in as_columns.items()},
                                                     "returning": [bool(v) for v in columns["returning"]]})
    np.testing.assert_array_equal(from_columns, raw)
    assert set(filled) == {"age", "device", "returning", "visits", "taste"}


def test_columns_may_leave_out_a_feature_with_a_default() -> None:
    raw, filled = encoder(STRICT).encode_columns({"kind": np.array(["q", "p"])})
    np.testing.assert_array_equal(raw, [[0.5, 1.0], [0.5, 0.0]])
    assert filled["x"].tolist() == [0.5, 0.5]


def test_values_the_fast_checks_pass_on_are_still_accepted_by_the_schema() -> None:
    """numpy scalars and tuples are not plain types: the schema validates them, with the same result."""
    context = {"age": np.float64(30.5), "device": "tv", "visits": 3, "taste": (0.1, -0.2, 0.3), "returning": True}
    raw, _ = encoder().encode_rows([context])
    np.testing.assert_array_equal(raw, reference(DISCRETE, [context]))


GOOD = {"age": 30.0, "device": "mobile", "returning": True, "visits": 3, "taste": [0.0, 0.5, -0.5]}
BAD = [
    {"age": math.nan}, {"age": math.inf}, {"age": True}, {"age": "30"}, {"age": 95.0}, {"age": None},
    {"visits": 2.0}, {"visits": 2**60}, {"visits": -1}, {"visits": True},
    {"device": 3}, {"device": "x" * 2000},
    {"returning": 1}, {"returning": "yes"},
    {"taste": [0.1, 0.2]}, {"taste": [0.1, True, 0.2]}, {"taste": [0.1, 2.0, 0.2]}, {"taste": "abc"},
    {"unknown": 1},
]


@pytest.mark.parametrize("change", BAD, ids=lambda c: repr(c)[:40])
def test_a_bad_row_gets_the_schemas_own_error(change: dict[str, Any]) -> None:
    batch = [dict(GOOD), dict(GOOD), {**GOOD, **change}]
    with pytest.raises(ValidationError) as expected:
        DISCRETE.validate_context(batch[2], path="contexts[2]")
    with pytest.raises(ValidationError) as got:
        encoder().encode_rows(batch)
    assert str(got.value) == str(expected.value)


def test_an_unknown_category_is_refused_when_the_feature_says_error() -> None:
    with pytest.raises(ValidationError, match=r"contexts\[1\]\.kind: 'z' is not in the vocabulary"):
        encoder(STRICT).encode_rows([{"kind": "p"}, {"kind": "z"}])
    with pytest.raises(ValidationError, match=r"contexts\.kind\[1\]: 'z' is not in the vocabulary"):
        encoder(STRICT).encode_columns({"kind": ["p", "z"]})


@pytest.mark.parametrize(("columns", "message"), [
    ({"kind": ["p"], "y": [1.0]}, "contexts.y: unknown field"),
    ({"x": [0.1]}, "contexts.kind: is required"),
    ({"kind": ["p", "q"], "x": [0.1]}, "contexts: every column must be a list of the same length"),
    ({"kind": ["p"], "x": [True]}, r"contexts.x\[0\]: expected a number, got bool"),
    ({"kind": ["p"], "x": ["0.5"]}, r"contexts.x\[0\]: expected a number, got str"),
    ({"kind": ["p"], "x": [3.0]}, r"contexts.x\[0\]: 3.0 is above the maximum 1.0"),
    ({"kind": ["p"], "x": [np.nan]}, r"contexts.x\[0\]: nan is not a finite number"),
    ({"kind": [1], "x": [0.0]}, r"contexts.kind\[0\]: expected a string, got int"),
])
def test_bad_columns_name_the_feature_and_row(columns: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        encoder(STRICT).encode_columns(columns)


values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70), st.booleans(),
                   st.sampled_from(["mobile", "tv", "", "p"]), st.none(),
                   st.lists(st.floats(-2, 2), min_size=2, max_size=4))


anything = st.fixed_dictionaries({}, optional={name: values for name in
                                               ("age", "device", "returning", "visits", "taste")})
valid = st.fixed_dictionaries(  # mostly valid: the bounds' edges, ints for floats, unknown devices
    {"age": st.one_of(st.floats(18, 90), st.integers(18, 90)), "device": st.sampled_from(["mobile", "tv", ""]),
     "visits": st.integers(0, 20), "taste": st.lists(st.floats(-1, 1), min_size=3, max_size=3)},
    optional={"returning": st.one_of(st.booleans(), st.none())})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(valid, anything), min_size=1, max_size=4))
def test_fast_path_and_schema_agree_on_anything(batch: list[dict[str, Any]]) -> None:
    try:
        expected = reference(DISCRETE, batch)
    except ValidationError as error:
        with pytest.raises(ValidationError) as got:
            encoder().encode_rows(batch)
        assert str(got.value) == str(error)
        return
    np.testing.assert_array_equal(encoder().encode_rows(batch)[0], expected)
