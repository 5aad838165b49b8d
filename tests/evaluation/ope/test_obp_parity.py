"""Correctness, way 2: our point estimates equal the Open Bandit Pipeline's (obp 0.5.7) to 1e-8.

OBP runs in its own virtual environment (see ``obp_env.py``), draws a ``SyntheticBanditDataset``, fits its own
``RegressionModel`` (the same predictions are then fed to both libraries), and computes its estimates; we load the
same arrays and compare. The test skips only when that environment cannot be built (no python3.11/3.10, no
access to the package index).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlops.evaluation.ope import (
    IPS,
    SNIPS,
    BanditData,
    DirectMethod,
    DoublyRobust,
    DRos,
    Estimator,
    SelfNormalizedDR,
    SwitchDR,
)
from tests.evaluation.ope.obp_env import Unavailable, obp_python, run_side

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def obp_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    try:
        obp_python()
    except Unavailable as e:
        pytest.skip(str(e))
    out = Path(tmp_path_factory.mktemp("obp")) / "obp.npz"
    run_side("dataset", str(out), "20000", "12345")
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def _ours(lambdas: dict[str, float]) -> dict[str, Estimator[BanditData]]:
    return {
        "ips": IPS(),
        "ips_clip": IPS(clip=lambdas["ips_clip"]),
        "snips": SNIPS(),
        "dm": DirectMethod(),
        "dr": DoublyRobust(),
        "dr_clip": DoublyRobust(clip=lambdas["dr_clip"]),
        "sndr": SelfNormalizedDR(),
        "switch_dr": SwitchDR(lambda_=lambdas["switch_dr"]),
        "switch_dr_0": SwitchDR(lambda_=0.0),
        "dros": DRos(lambda_=lambdas["dros"]),
        "dros_inf": DRos(lambda_=float("inf")),
    }


def test_point_estimates_equal_obp(obp_run: dict[str, np.ndarray]) -> None:
    data = BanditData(action=obp_run["action"], reward=obp_run["reward"], propensity=obp_run["pscore"],
                      pi_e=obp_run["pi_e"], x=obp_run["context"], q_hat=obp_run["q_hat"], pi_b=obp_run["pi_b"])
    lambdas = dict(zip(obp_run["lambda_names"].tolist(), obp_run["lambdas"].tolist(), strict=True))
    theirs = dict(zip(obp_run["names"].tolist(), obp_run["values"].tolist(), strict=True))
    ours = {name: est.estimate(data) for name, est in _ours(lambdas).items()}
    assert set(ours) == set(theirs)
    lines = [f"OBP parity on SyntheticBanditDataset (n={data.n}, K={data.n_actions}), truth "
             f"{float(obp_run['truth']):.6f}:"]
    for name in sorted(ours):
        lines.append(f"  {name:<12} rlops {ours[name].value:.12f}  obp {theirs[name]:.12f}  "
                     f"diff {abs(ours[name].value - theirs[name]):.1e}")
    print("\n".join(lines))
    for name in ours:
        assert abs(ours[name].value - theirs[name]) <= 1e-8, name
    # the hyperparameters mean the same: lambda_ = 0 switches DR off entirely (DM), inf is plain DR
    assert theirs["switch_dr_0"] == pytest.approx(theirs["dm"], abs=1e-12)
    assert theirs["dros_inf"] == pytest.approx(theirs["dr"], abs=1e-12)
    # and the unbiased ones are near the truth (Switch-DR with lambda_=4 and DRos lean on a misspecified model)
    for name in ("ips", "dr", "sndr"):
        assert abs(ours[name].value - float(obp_run["truth"])) < 4 * ours[name].std_error + 1e-3, name
