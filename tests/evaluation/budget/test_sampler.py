"""Contexts sampled from a schema are valid for it, cover its values, and follow the seed."""

from __future__ import annotations

import numpy as np

from rlops.evaluation.budget import sample_candidates, sample_contexts
from rlops.schema import Schema

SCHEMA = Schema.model_validate({
    "features": [
        {"name": "both", "type": "float", "min": -2, "max": 3},
        {"name": "low_only", "type": "float", "min": 10},
        {"name": "high_only", "type": "float", "max": -10},
        {"name": "free", "type": "float"},
        {"name": "point", "type": "float", "min": 1, "max": 1},
        {"name": "count", "type": "int", "min": 0, "max": 3},
        {"name": "count_low", "type": "int", "min": 5},
        {"name": "flag", "type": "bool"},
        {"name": "color", "type": "categorical", "vocabulary": ["red", "green", "blue"]},
        {"name": "v", "type": "vector", "size": 3, "min": 0, "max": 1},
    ],
    "actions": {"type": "discrete", "names": ["a", "b"]},
})


def test_sampled_contexts_validate_and_respect_bounds() -> None:
    contexts = sample_contexts(SCHEMA, 500, np.random.default_rng(0))
    assert len(contexts) == 500
    for i, c in enumerate(contexts):
        assert SCHEMA.validate_context(c, path=f"contexts[{i}]") == c
    both = np.array([c["both"] for c in contexts])
    assert both.min() >= -2 and both.max() <= 3 and both.std() > 1.0  # spread over the range, not a constant
    assert min(c["low_only"] for c in contexts) >= 10 and max(c["high_only"] for c in contexts) <= -10
    assert {c["count"] for c in contexts} == {0, 1, 2, 3}
    assert {c["color"] for c in contexts} == {"red", "green", "blue"}
    assert {c["flag"] for c in contexts} == {True, False}
    assert all(c["point"] == 1.0 for c in contexts)
    assert SCHEMA.encode(contexts).shape == (500, SCHEMA.width)


def test_sampling_follows_the_seed() -> None:
    a = sample_contexts(SCHEMA, 20, np.random.default_rng(1))
    assert a == sample_contexts(SCHEMA, 20, np.random.default_rng(1))
    assert a != sample_contexts(SCHEMA, 20, np.random.default_rng(2))


def test_candidates_are_sampled_only_for_candidate_spaces() -> None:
    assert sample_candidates(SCHEMA, 3, np.random.default_rng(0)) is None
    schema = Schema.model_validate({
        "features": [{"name": "x", "type": "float"}],
        "actions": {"type": "candidates", "max_candidates": 5,
                    "features": [{"name": "price", "type": "float", "min": 0, "max": 9},
                                 {"name": "kind", "type": "categorical", "vocabulary": ["a", "b"]}]},
    })
    lists = sample_candidates(schema, 4, np.random.default_rng(0), k=8)
    assert lists is not None and len(lists) == 4
    for i, candidates in enumerate(lists):
        assert len(candidates) == 5  # capped at max_candidates
        schema.validate_candidates(candidates, path=f"actions[{i}]")
