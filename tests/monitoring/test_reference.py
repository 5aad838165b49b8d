"""Reference profiles from logged interactions (event log, joined table, Parquet export) and the registered
profile a deployment's policy is found by."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from rlops.engine import DeploymentSpec, Engine
from rlops.engine.reports import export_parquet
from rlops.errors import NotFoundError, ValidationError
from rlops.events.join import flatten_context
from rlops.events.tables import served_in
from rlops.home import Home
from rlops.monitoring.drift import CategoricalProfile, ReferenceProfile
from rlops.monitoring.reference import (
    encode_logged,
    logged_actions,
    profile_from_log,
    profile_interactions,
    profile_parquet,
    registered_reference,
)
from rlops.policies import LinUCB, save_policy
from rlops.registry import ModelRef, Registry
from tests.monitoring.test_report import REWARD, WORLD, registered_home, serve, users


@pytest.fixture
def logged(tmp_path: Path) -> tuple[Home, pa.Table, list[dict[str, object]]]:
    home = Home.resolve(tmp_path / "home").ensure()
    with Engine(home, fsync=False) as engine:
        engine.apply(DeploymentSpec.from_dict({"name": "news", "schema": WORLD.schema.to_dict(), "reward": REWARD,
                                               "policy": {"kind": "uniform", "params": {}}}))
    contexts = users(300, 11)
    serve(home, contexts)
    with Engine(home, fsync=False) as engine:
        table = engine.interactions("news", include_pending=True).interactions
    return home, table, contexts


def test_profile_of_the_joined_table(logged: tuple[Home, pa.Table, list[dict[str, object]]]) -> None:
    _, table, contexts = logged
    profile = profile_interactions(table, WORLD.schema, seed=3)
    direct = ReferenceProfile.build(WORLD.schema, contexts, seed=3)
    assert profile.n_rows == 300 and profile.columns == tuple(WORLD.schema.column_names)
    # the same contexts give the same feature profiles, whatever route they took
    assert [f.to_dict() for f in profile.features] == [f.to_dict() for f in direct.features]
    action = profile.actions[0]
    assert isinstance(action, CategoricalProfile) and action.categories == tuple(WORLD.schema.action_names())
    chosen = table["action"].to_pylist()
    assert action.counts.tolist() == [chosen.count(a) for a in action.categories]
    assert profile.rewards is not None and profile.rewards.count == 300
    assert profile.rewards.mean == pytest.approx(100 / 300)  # every third decision was clicked


def test_struct_contexts_of_an_export_give_the_same_profile(
        logged: tuple[Home, pa.Table, list[dict[str, object]]], tmp_path: Path) -> None:
    home, table, _ = logged
    flat = profile_interactions(flatten_context(table), WORLD.schema)
    assert flat.to_dict() == profile_interactions(table, WORLD.schema).to_dict()
    with Engine(home, fsync=False) as engine:
        export_parquet(engine, tmp_path / "export", deployment="news")
    exported = profile_parquet(tmp_path / "export" / "interactions-news.parquet", WORLD.schema)
    assert exported.to_dict() == flat.to_dict()
    with pytest.raises(NotFoundError, match="does not exist"):
        profile_parquet(tmp_path / "missing.parquet", WORLD.schema)
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(ValidationError, match="reference"):
        profile_parquet(tmp_path / "bad.parquet", WORLD.schema)


def test_profile_from_the_log_with_a_time_range(logged: tuple[Home, pa.Table, list[dict[str, object]]]) -> None:
    home, table, _ = logged
    ts = np.sort(table["ts"].cast("int64").to_numpy())
    whole = profile_from_log(home, "news", WORLD.schema)
    assert whole.n_rows == 300
    with pytest.raises(ValidationError, match="needs at least 2"):
        profile_from_log(home, "news", WORLD.schema, end_us=int(ts[0]))
    with pytest.raises(NotFoundError, match="deployment 'other'"):
        profile_from_log(home, "other", WORLD.schema)
    assert served_in(table, "news", int(ts[0]), int(ts[-1]) + 1).num_rows == 300
    assert served_in(table, "other").num_rows == 0


def test_rows_that_do_not_fit_the_schema_are_named() -> None:
    table = pa.table({"context": ['{"age": 30, "device": "mobile", "returning": true, "activity": 0.5, '
                                  '"taste": [0, 0, 0, 0]}', '{"age": 30}'],
                      "action": ["news", "sports"]})
    with pytest.raises(ValidationError) as info:
        encode_logged(table, WORLD.schema)
    assert info.value.field.startswith("live[1].")
    bad = pa.table({"action": ["news", "cinema"]})
    with pytest.raises(ValidationError, match=r"actions\[1\]: 'cinema'"):
        logged_actions(bad, WORLD.schema)
    with pytest.raises(ValidationError, match="at least 2"):
        profile_interactions(table.slice(0, 1), WORLD.schema)


def test_the_registered_profile_is_found_by_content_or_reference(tmp_path: Path) -> None:
    home, folder = registered_home(tmp_path, n_reference=200)
    with Registry(home) as registry:
        found = registered_reference(registry, folder)
        assert found is not None and found.ref == ModelRef("news-model", 1) and found.profile.n_rows == 200
        by_ref = registered_reference(registry, None, "news-model@1")
        assert by_ref is not None and by_ref.ref == found.ref
        other = save_policy(LinUCB(WORLD.schema, alpha=3.0), tmp_path / "other")
        assert registered_reference(registry, other) is None  # content registered nowhere
        assert registered_reference(registry, tmp_path / "nothing-here", "news@r1") is None
