"""From the event log to BanditData: joined interactions, their Parquet export, and pi_e from an rlops Policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlops.engine import DeploymentSpec, Engine
from rlops.engine.reports import export_parquet
from rlops.errors import ValidationError
from rlops.evaluation.ope import (
    IPS,
    PDIS,
    SNIPS,
    bandit_data_from_parquet,
    bandit_data_from_table,
    episode_data_from_parquet,
    target_probabilities,
)
from rlops.policies import PolicyInput, UniformRandom
from rlops.scenarios import SyntheticBandit
from tests.evaluation.ope.mdp import make_mdp

WORLD = SyntheticBandit(seed=0)
REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1s", "missing": 0.0}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose 'news' deployment (uniform logging policy) has 300 decisions, most with a click outcome."""
    root = tmp_path_factory.mktemp("ope-home") / "home"
    spec: dict[str, Any] = {"name": "news", "schema": WORLD.schema.to_dict(), "reward": REWARD,
                            "policy": {"kind": "uniform"}, "seed": 1}
    rng = np.random.default_rng(0)
    with Engine(root) as engine:
        engine.apply(DeploymentSpec.from_dict(spec))
        contexts = WORLD.sample_contexts(300, rng)
        decisions = engine.decide_batch("news", contexts, [f"u{i}" for i in range(300)])
        engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": bool(rng.random() < 0.3)}}
                             for d in decisions[:250]])
    return root


def test_from_engine_interactions_with_a_policy_as_target(home: Path) -> None:
    with Engine(home) as engine:
        result = engine.interactions("news", include_pending=True)
        schema = engine.spec("news").schema_
    data = bandit_data_from_table(result, policy=UniformRandom(schema), reward_bounds=(0.0, 1.0))
    assert data.n == 250 and data.n_actions == schema.n_actions
    assert data.x is not None and data.x.shape == (250, schema.width)
    assert data.pi_b is not None  # the log kept the full logging distribution
    # the target is the logging policy: every weight is 1, IPS is the mean reward
    np.testing.assert_allclose(data.weights, 1.0)
    assert IPS().estimate(data).value == pytest.approx(float(data.reward.mean()), abs=1e-12)


def test_parquet_export_gives_the_same_data(home: Path, tmp_path: Path) -> None:
    with Engine(home) as engine:
        export_parquet(engine, tmp_path, "news")
        schema = engine.spec("news").schema_
        from_table = bandit_data_from_table(engine.interactions("news", include_pending=True),
                                            policy=UniformRandom(schema))
    from_file = bandit_data_from_parquet(tmp_path / "interactions-news.parquet", policy=UniformRandom(schema))
    for name in ("action", "reward", "propensity", "pi_e", "x", "pi_b"):
        np.testing.assert_array_equal(getattr(from_file, name), getattr(from_table, name), err_msg=name)
    assert SNIPS().estimate(from_file) == SNIPS().estimate(from_table)


def test_pi_e_array_and_the_policy_helper_agree(home: Path) -> None:
    with Engine(home) as engine:
        result = engine.interactions("news", include_pending=True)
        schema = engine.spec("news").schema_
    policy = UniformRandom(schema)
    contexts = [json.loads(c) for c in result.interactions["context"].to_pylist()]
    pi_e = target_probabilities(policy, PolicyInput.from_contexts(schema, contexts))
    assert pi_e.shape == (250, schema.n_actions)
    data = bandit_data_from_table(result, pi_e=pi_e, schema=schema)
    np.testing.assert_array_equal(data.pi_e, pi_e)


def test_struct_contexts_without_a_schema_need_numeric_fields(home: Path, tmp_path: Path) -> None:
    with Engine(home) as engine:
        export_parquet(engine, tmp_path, "news")
        k = engine.spec("news").schema_.n_actions or 0
    with pytest.raises(ValidationError) as err:
        bandit_data_from_parquet(tmp_path / "interactions-news.parquet", pi_e=np.full((250, k), 1 / k))
    assert err.value.field.startswith("context.")  # the synthetic world has a categorical 'device' field


@pytest.mark.parametrize(("drop", "field"), [("propensity", "propensity"), ("reward", "reward"),
                                             ("action_index", "action_index")])
def test_missing_columns_are_named(home: Path, drop: str, field: str) -> None:
    with Engine(home) as engine:
        table = engine.interactions("news", include_pending=True).interactions
        schema = engine.spec("news").schema_
    with pytest.raises(ValidationError) as err:
        bandit_data_from_table(table.drop_columns([drop]), policy=UniformRandom(schema))
    assert err.value.field == field


def test_bad_rows_are_refused(home: Path) -> None:
    with Engine(home) as engine:
        table = engine.interactions("news", include_pending=True).interactions
        schema = engine.spec("news").schema_
    policy = UniformRandom(schema)
    idx = table.schema.get_field_index("propensity")
    zero = table.set_column(idx, "propensity", pa.array([0.0] + [0.25] * (table.num_rows - 1)))
    with pytest.raises(ValidationError) as err:
        bandit_data_from_table(zero, policy=policy)
    assert err.value.field == "propensity"
    idx = table.schema.get_field_index("action_index")
    box = table.set_column(idx, "action_index", pa.array([-1] * table.num_rows, type=pa.int64()))
    with pytest.raises(ValidationError) as err:
        bandit_data_from_table(box, policy=policy)
    assert err.value.field == "action_index"
    with pytest.raises(ValidationError) as err:
        bandit_data_from_table(table, schema=schema)
    assert err.value.field == "pi_e"


def test_sequential_interactions_from_parquet(tmp_path: Path) -> None:
    mdp = make_mdp()
    data = mdp.sample(200, seed=1)
    state = data.state.argmax(axis=1)
    table = pa.table({
        "episode_id": [f"ep-{e}" for e in data.episode],
        "step": data.step,
        "context": pa.array([{"s0": float(r[0]), "s1": float(r[1]), "s2": float(r[2])} for r in data.state]),
        "actions": [["left", "right"]] * data.n,
        "action_index": data.action,
        "propensity": data.propensity,
        "probabilities": [list(p) for p in mdp.pi_b[state]],
        "reward": data.reward,
    })
    path = tmp_path / "episodes.parquet"
    pq.write_table(table, path)
    from_file = episode_data_from_parquet(path, pi_e=mdp.pi_e[state])
    assert from_file.n_episodes == data.n_episodes
    assert PDIS(0.9).estimate(from_file).value == pytest.approx(PDIS(0.9).estimate(data).value, abs=1e-12)
    with pytest.raises(ValidationError) as err:
        episode_data_from_parquet(path, pi_e=mdp.pi_e[state][:, :1])
    assert err.value.field == "pi_e"
