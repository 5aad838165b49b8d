"""The Open Bandit Pipeline's side of the parity test and the benchmark (runs inside the OBP virtual environment).

This file is executed by the OBP venv's interpreter (obp 0.5.7, numpy 1.26, pandas 1.5), never imported by
rlops. It exchanges ``.npz`` files with the caller:

``dataset OUT N SEED``
    Draw ``N`` rounds from ``obp.dataset.SyntheticBanditDataset``, build an evaluation policy and cross-fitted
    reward-model predictions with ``obp.ope.RegressionModel``, run OBP's estimators, and save the arrays and
    OBP's point estimates to ``OUT``.
``bench IN OUT REPEATS N_BOOTSTRAP``
    Load arrays from ``IN`` and time OBP's DR and SNIPW: ``estimate_policy_value`` plus ``estimate_interval``
    (OBP's bootstrap with ``N_BOOTSTRAP`` resamples), ``REPEATS`` times; then measure their peak traced memory once.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def _estimators(lambdas: dict[str, float]) -> dict[str, object]:
    from obp.ope import (
        DirectMethod,
        DoublyRobust,
        DoublyRobustWithShrinkage,
        InverseProbabilityWeighting,
        SelfNormalizedDoublyRobust,
        SelfNormalizedInverseProbabilityWeighting,
        SwitchDoublyRobust,
    )

    return {
        "ips": InverseProbabilityWeighting(),
        "ips_clip": InverseProbabilityWeighting(lambda_=lambdas["ips_clip"]),
        "snips": SelfNormalizedInverseProbabilityWeighting(),
        "dm": DirectMethod(),
        "dr": DoublyRobust(),
        "dr_clip": DoublyRobust(lambda_=lambdas["dr_clip"]),
        "sndr": SelfNormalizedDoublyRobust(),
        "switch_dr": SwitchDoublyRobust(lambda_=lambdas["switch_dr"]),
        "switch_dr_0": SwitchDoublyRobust(lambda_=0.0),
        "dros": DoublyRobustWithShrinkage(lambda_=lambdas["dros"]),
        "dros_inf": DoublyRobustWithShrinkage(lambda_=np.inf),
    }


LAMBDAS = {"ips_clip": 5.0, "dr_clip": 5.0, "switch_dr": 4.0, "dros": 20.0}


def dataset(out: str, n: int, seed: int) -> None:
    from obp.dataset import SyntheticBanditDataset, linear_behavior_policy, logistic_reward_function
    from obp.ope import RegressionModel
    from sklearn.linear_model import LogisticRegression

    ds = SyntheticBanditDataset(n_actions=10, dim_context=5, reward_type="binary",
                                reward_function=logistic_reward_function,
                                behavior_policy_function=linear_behavior_policy, random_state=seed)
    fb = ds.obtain_batch_bandit_feedback(n_rounds=n)
    k = fb["n_actions"]
    # evaluation policy: epsilon-greedy on the true expected reward (eps = 0.3)
    best = np.argmax(fb["expected_reward"], axis=1)
    pi_e = np.full((n, k), 0.3 / k)
    pi_e[np.arange(n), best] += 0.7
    action_dist = pi_e[:, :, None]
    model = RegressionModel(n_actions=k, base_model=LogisticRegression(max_iter=1000))
    q_hat = model.fit_predict(context=fb["context"], action=fb["action"], reward=fb["reward"], n_folds=3,
                              random_state=seed)
    values = {}
    for name, est in _estimators(LAMBDAS).items():
        values[name] = est.estimate_policy_value(  # type: ignore[attr-defined]
            reward=fb["reward"], action=fb["action"], pscore=fb["pscore"], action_dist=action_dist,
            estimated_rewards_by_reg_model=q_hat)
    truth = ds.calc_ground_truth_policy_value(expected_reward=fb["expected_reward"], action_dist=action_dist)
    np.savez(out, context=fb["context"], action=fb["action"], reward=fb["reward"], pscore=fb["pscore"],
             pi_b=fb["pi_b"][:, :, 0], pi_e=pi_e, q_hat=q_hat[:, :, 0], truth=truth,
             names=np.array(sorted(values)), values=np.array([values[k] for k in sorted(values)]),
             lambdas=np.array([LAMBDAS[k] for k in sorted(LAMBDAS)]), lambda_names=np.array(sorted(LAMBDAS)))


def bench(inp: str, out: str, repeats: int, n_bootstrap: int) -> None:
    from obp.ope import DoublyRobust, SelfNormalizedInverseProbabilityWeighting

    with np.load(inp) as f:
        arrays = {k: f[k] for k in f.files}
    kwargs = {"reward": arrays["reward"], "action": arrays["action"], "pscore": arrays["pscore"],
              "action_dist": arrays["pi_e"][:, :, None], "estimated_rewards_by_reg_model": arrays["q_hat"][:, :, None]}
    cases = {"dr": DoublyRobust(), "snips": SelfNormalizedInverseProbabilityWeighting()}
    result: dict[str, object] = {}

    def run(name: str) -> tuple[float, dict[str, float]]:
        est = cases[name]
        value = est.estimate_policy_value(**kwargs)  # type: ignore[attr-defined]
        interval = est.estimate_interval(n_bootstrap_samples=n_bootstrap, random_state=0,  # type: ignore[attr-defined]
                                         **kwargs)
        return value, interval

    for name in cases:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            value, interval = run(name)
            times.append(time.perf_counter() - start)
        tracemalloc.start()
        run(name)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        lows = [v for k, v in interval.items() if "lower" in k]
        highs = [v for k, v in interval.items() if "upper" in k]
        result[f"{name}_times"] = np.array(times)
        result[f"{name}_value"] = value
        result[f"{name}_interval"] = np.array([lows[0], highs[0]])
        result[f"{name}_peak"] = peak
    np.savez(out, **result)  # type: ignore[arg-type]


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "dataset":
        dataset(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "bench":
        bench(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
