"""Retraining sweeps on the local backend: each kind's grid, its held-out score, and a winner that is actually better
on problems whose best policy is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlops.errors import ValidationError
from rlops.policies import PolicyInput
from rlops.schema import Schema
from rlops.training.offline import (
    BanditDiagnostics,
    BanditMethod,
    BCConfig,
    CandidateScore,
    CQLConfig,
    MLPPolicy,
    RetrainKind,
    RetrainMethod,
    SequentialDiagnostics,
    SweepPoint,
    SweepScore,
    pick_best,
    sweep_grid,
    sweep_retrain,
)
from tests.training.offline.logs import CHAIN_GAMMA, chain_greedy, chain_log, chain_schema, interactions
from tests.training.offline.test_bandit import BUMP, _bump_log, _bump_value

BOX = Schema.model_validate({"features": [{"name": "u", "type": "float", "min": -1, "max": 1}],
                             "actions": {"type": "box", "low": [-1], "high": [1]}})


def _box_log(n: int, seed: int) -> tuple[np.ndarray, object]:
    """A behaviour that plays ``a = u / 2`` exactly, logged without units (each row its own episode)."""
    u = np.random.default_rng(seed).uniform(-1, 1, n)
    return u, interactions([{"u": float(v)} for v in u], [[float(0.5 * v)] for v in u], [1.0] * n, [0.0] * n)


def test_a_bandit_sweep_drops_the_targets_that_are_misled() -> None:
    # On the bump log (tests/training/offline/test_bandit.py) the direct method shows "bump" to everyone (true value
    # 1/3) while IPS and DR show "safe" (0.45). Grid point 0 is the direct method: the sweep must not keep it.
    log = _bump_log(3000, seed=3)
    result = sweep_retrain(log, BUMP, sweep=3, method="dm", epsilon=0.02, seed=0)
    assert [c.point.method for c in result.candidates] == [BanditMethod.DM, BanditMethod.DR, BanditMethod.IPS]
    assert result.kind is RetrainKind.BANDIT and result.score is SweepScore.DR
    dm = result.candidates[0]
    assert result.winner != 0 and result.best.method is not RetrainMethod.BANDIT_DM
    greedy_safe = 0.98 * 0.45 + 0.01 * (0.45 + 1 / 3)
    assert _bump_value(result.best.policy) == pytest.approx(greedy_safe, abs=1e-9)
    # the held-out estimate saw it too: the direct method's whole interval lies below the winner's lower bound
    assert dm.high < result.candidates[result.winner].low
    d = result.best.diagnostics
    assert isinstance(d, BanditDiagnostics) and not d.in_sample and d.n_eval_rows == 900 and d.n_rows == 2100
    assert all(c.n_eval == 900 for c in result.candidates)
    assert result.summary().startswith("best of 3 by held-out dr lower bound: #1 method=dr l2=1")
    assert "next best #2 method=ips l2=1" in result.reason  # IPS's score ties DR's: the lower index wins
    row = result.to_dict()["candidates"][0]
    assert row["method"] == "dm" and row["l2"] == 1.0 and row["value"] == dm.value


def test_a_cql_sweep_keeps_an_optimal_candidate_where_the_default_settings_miss_it() -> None:
    log = chain_log(200, seed=0)
    cql = CQLConfig(gamma=CHAIN_GAMMA, steps=500)
    result = sweep_retrain(log, chain_schema(), sweep=3, cql=cql, seed=0)
    assert result.kind is RetrainKind.CQL and result.score is SweepScore.WPDIS
    assert [c.point.alpha for c in result.candidates] == [1.0, 0.3, 3.0]
    assert chain_greedy(result.best.policy) == [1, 1, 1, 1]  # "right" everywhere is optimal
    # sweep=1 is grid point 0 alone, fitted and scored as in the sweep: it takes the lure in cell 0 and scores lower
    alone = sweep_retrain(log, chain_schema(), sweep=1, cql=cql, seed=0)
    assert alone.candidates[0] == result.candidates[0]
    assert chain_greedy(alone.best.policy) == [0, 1, 1, 1]
    assert result.candidates[result.winner].low > alone.candidates[0].low
    d = result.best.diagnostics
    assert isinstance(d, SequentialDiagnostics) and d.n_episodes == 140  # 60 of 200 episodes held out
    assert {c.n_eval for c in result.candidates} == {60}


def test_a_bc_sweep_scores_the_held_out_cloning_loss() -> None:
    u, log = _box_log(400, seed=0)
    result = sweep_retrain(log, BOX, sweep=3, bc=BCConfig(steps=200, hidden=(16,)), seed=0)
    assert result.kind is RetrainKind.BC and result.score is SweepScore.IMITATION
    values = [c.value for c in result.candidates]
    # 200 Adam steps: the larger the step size, the closer the clone (learning rates 1e-3, 3e-4, 3e-3)
    assert values[2] > values[0] > values[1] and result.winner == 2
    policy = result.best.policy
    assert isinstance(policy, MLPPolicy)
    x = PolicyInput.from_contexts(BOX, [{"u": float(v)} for v in u]).x
    mse = float(np.mean((policy.mean_action(x)[:, 0] - 0.5 * u) ** 2))
    assert mse < 1e-4
    # the score is minus the squared error in half-range units (the box's half range is 1 here): the error on 120
    # held-out rows is of the same size as on all 400
    assert 0.5 * mse < -values[2] < 2.0 * mse
    assert all(math.isnan(c.ess) for c in result.candidates)


def test_the_winner_has_the_highest_lower_bound_not_the_highest_estimate() -> None:
    def score(i: int, value: float, se: float) -> CandidateScore:
        return CandidateScore(SweepPoint(i, 0), value, se, value - 2 * se, value + 2 * se, 100, math.nan)

    lucky, steady = score(0, 0.60, 0.20), score(1, 0.50, 0.01)
    assert pick_best([lucky, steady]) == 1
    assert pick_best([score(0, 0.5, 0.1), score(1, 0.5, 0.1)]) == 0  # a tie: the lower grid index
    assert pick_best([score(0, 0.5, 0.125), score(1, 0.75, 0.25)]) == 1  # equal bounds: the higher estimate
    assert pick_best([score(0, math.nan, math.nan), score(1, -5.0, 1.0)]) == 1  # unscored ranks last
    with pytest.raises(ValidationError, match=r"^candidates: are empty"):
        pick_best([])


def test_each_kind_has_its_grid_with_the_base_settings_first() -> None:
    bandit = sweep_grid("bandit", 12)
    assert [(p.method, p.l2) for p in bandit[:4]] == [(BanditMethod.DR, 1.0), (BanditMethod.IPS, 1.0),
                                                      (BanditMethod.DM, 1.0), (BanditMethod.DR, 10.0)]
    assert len({(p.method, p.l2) for p in bandit}) == 12 and {p.seed for p in bandit} == {0}
    cql = sweep_grid("cql", 5, cql=CQLConfig(alpha=2.0), seed=7)
    assert [(p.seed, p.alpha) for p in cql] == [(7, 2.0), (7, 0.6), (7, 6.0), (8, 2.0), (8, 0.6)]
    bc = sweep_grid("bc", 4, bc=BCConfig(learning_rate=0.01))
    assert [(p.seed, p.learning_rate) for p in bc] == [(0, 0.01), (0, 0.003), (0, 0.03), (1, 0.01)]
    assert bc[1].label() == "#1 seed=0 learning_rate=0.003"
    with pytest.raises(ValidationError, match=r"^sweep: a bandit sweep has 12 distinct candidates"):
        sweep_grid("bandit", 13)
    with pytest.raises(ValidationError, match=r"^sweep: must be >= 1"):
        sweep_grid("cql", 0)
    with pytest.raises(ValidationError, match=r"^kind: the grid needs a resolved kind"):
        sweep_grid("auto", 3)


def test_bad_settings_are_refused_with_the_field_named() -> None:
    log = _bump_log(300, seed=1)
    with pytest.raises(ValidationError, match=r"^holdout: must be in \(0, 0.9\]"):
        sweep_retrain(log, BUMP, holdout=0.0)
    with pytest.raises(ValidationError, match=r"^holdout: leaves 15 rows to fit and 15 to evaluate"):
        sweep_retrain(log.slice(0, 30), BUMP, holdout=0.5)
    with pytest.raises(ValidationError, match=r"^level: must be in \(0, 1\)"):
        sweep_retrain(log, BUMP, level=1.0)
    with pytest.raises(ValidationError, match=r"^kind: expected one of"):
        sweep_retrain(log, BUMP, kind="ppo")
    _, box = _box_log(50, seed=1)
    with pytest.raises(ValidationError, match=r"^kind: 'cql' needs fixed discrete actions"):
        sweep_retrain(box, BOX, kind="cql")
    with pytest.raises(ValidationError, match=r"^kind: 'bandit' needs fixed discrete actions"):
        sweep_retrain(box, BOX, kind="bandit")
    with pytest.raises(ValidationError, match=r"^holdout: leaves 2 of 3 episodes to fit and 1 to score"):
        sweep_retrain(chain_log(3, seed=0), chain_schema(), kind="cql", cql=CQLConfig(steps=5))
