"""Reference profiles: what they hold per kind of feature, the same from contexts or a matrix, and a lossless file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlops.errors import ConfigError, ValidationError
from rlops.monitoring.drift import FILENAME, CategoricalProfile, NumericProfile, ReferenceProfile
from rlops.schema import Schema
from tests.monitoring.drift.conftest import contexts


def test_profiles_every_kind_of_feature(schema: Schema) -> None:
    data = contexts(3000, seed=0)
    profile = ReferenceProfile.build(schema, data, actions=np.arange(3000) % 3, rewards=np.linspace(0, 1, 3000))
    names = [f.name for f in profile.features]
    assert names == ["temperature", "visits", "color", "member", "embedding[0]", "embedding[1]"]
    temperature = profile.features[0]
    assert isinstance(temperature, NumericProfile)
    values = np.array([row["temperature"] for row in data])
    assert temperature.mean == pytest.approx(values.mean())
    assert temperature.std == pytest.approx(values.std())
    assert np.allclose(temperature.edges, np.quantile(values, np.arange(1, 10) / 10))
    assert temperature.counts.tolist() == [300] * 10
    assert temperature.sample.size == 2000 and not temperature.exact
    assert np.all(np.diff(temperature.sample) >= 0)
    color = profile.features[2]
    assert isinstance(color, CategoricalProfile)
    assert color.categories == ("red", "green", "blue", "<other>")
    assert color.counts.tolist() == [sum(row["color"] == c for row in data) for c in ("red", "green", "blue")] + [0]
    member = profile.features[3]
    assert isinstance(member, CategoricalProfile) and member.categories == ("false", "true")
    assert member.counts[1] == sum(row["member"] for row in data)
    (action,) = profile.actions
    assert isinstance(action, CategoricalProfile) and action.counts.tolist() == [1000, 1000, 1000]
    assert profile.rewards is not None and profile.rewards.exact is False
    assert profile.rows is not None and profile.rows.shape == (2000, schema.width)


def test_small_references_keep_every_value(schema: Schema) -> None:
    data = contexts(500, seed=1)
    profile = ReferenceProfile.build(schema, data)
    visits = profile.features[1]
    assert isinstance(visits, NumericProfile) and visits.exact
    assert visits.sample.tolist() == sorted(row["visits"] for row in data)
    assert visits.edges.size == np.unique(visits.edges).size  # ties collapse duplicate quantiles


def test_contexts_and_their_matrix_give_the_same_profile(schema: Schema) -> None:
    data = contexts(400, seed=2)
    from_contexts = ReferenceProfile.build(schema, data)
    from_matrix = ReferenceProfile.build(schema, schema.encode([schema.validate_context(c) for c in data]))
    assert from_contexts.to_dict() == from_matrix.to_dict()


def test_save_and_load_are_lossless(schema: Schema, tmp_path: Path) -> None:
    profile = ReferenceProfile.build(schema, contexts(2500, seed=3), actions=np.zeros(2500, dtype=int),
                                     rewards=np.random.default_rng(0).normal(size=2500))
    path = profile.save(tmp_path / "v1")
    assert path == tmp_path / "v1" / FILENAME
    assert ReferenceProfile.load(tmp_path / "v1").to_dict() == profile.to_dict()
    assert ReferenceProfile.load(path).to_dict() == profile.to_dict()
    json.loads(path.read_text())
    named = profile.save(tmp_path / "elsewhere" / "profile.json")
    assert named.name == "profile.json" and ReferenceProfile.load(named).to_dict() == profile.to_dict()
    assert sorted(p.name for p in (tmp_path / "v1").iterdir()) == [FILENAME]  # no temporary file left behind


def test_bad_input_names_the_argument(schema: Schema, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as raised:
        ReferenceProfile.build(schema, np.zeros((10, 3)))
    assert raised.value.field == "data"
    with pytest.raises(ValidationError) as raised:
        ReferenceProfile.build(schema, contexts(10, seed=0), actions=[0] * 9 + [3])
    assert raised.value.field == "actions[9]"
    with pytest.raises(ValidationError) as raised:
        ReferenceProfile.build(schema, contexts(10, seed=0), rewards=[0.0] * 9 + [float("nan")])
    assert raised.value.field == "rewards[9]"
    with pytest.raises(ValidationError) as raised:
        ReferenceProfile.build(schema, [{"temperature": 900.0}])
    assert raised.value.field == "data[0].temperature"
    with pytest.raises(ValidationError) as raised:
        ReferenceProfile.build(schema, contexts(10, seed=0), n_bins=1)
    assert raised.value.field == "n_bins"
    (tmp_path / FILENAME).write_text('{"format_version": 99}')
    with pytest.raises(ConfigError, match="format_version"):
        ReferenceProfile.load(tmp_path)
