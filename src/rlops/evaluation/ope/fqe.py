"""Fitted Q evaluation (Le, Voloshin & Yue 2019, "Batch Policy Learning under Constraints"), in torch.

FQE learns the target policy's action-value function from logged transitions by repeated regression:
``Q_{k+1}(s_t, a_t) <- r_t + gamma * V_k(s_{t+1})`` with ``V_k(s) = E_{a ~ pi_e} Q_k(s, a)`` and ``V_k = 0`` after an
episode's last step; the estimate is the mean of ``V(s_0)`` over episodes. It needs no importance weights, so it
works with deterministic targets and continuous actions:

- discrete actions: the network maps a state to ``K`` values; ``V(s) = sum_a pi_e(a | s) Q(s, a)``;
- continuous actions: the network maps ``[state, action]`` to one value; ``V(s)`` averages ``Q`` over the ``S``
  target actions per state in ``EpisodeData.target_action``.

Inputs are standardised and rewards scaled by their largest magnitude inside the fit; every fit is seeded and
leaves torch's global random state alone.

Its interval is centred on the FQE estimate with the spread of the per-episode doubly robust (PDDR) terms when the
data has importance ratios: the spread of ``V(s_0)`` alone ignores the model's own error. Without ratios
(continuous actions, no ``target_density``) it falls back to that spread and says so in its docstring only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch

from rlops.errors import ValidationError
from rlops.evaluation.ope.base import DEFAULT_INTERVAL, finish
from rlops.evaluation.ope.episode_terms import check_discount, cumulative_ratios, episode_support, pddr_terms
from rlops.evaluation.ope.episodes import EpisodeData
from rlops.evaluation.ope.intervals import Terms
from rlops.evaluation.ope.result import Estimate, IntervalSpec
from rlops.evaluation.ope.support import SupportThresholds


class Optimizer(StrEnum):
    """How each regression round is fitted."""

    #: Minibatch Adam, ``steps_per_iteration`` steps of ``batch_size`` rows: scales to any data size; the default.
    ADAM = "adam"
    #: Full-batch L-BFGS, up to ``steps_per_iteration`` iterations per round: solves each round's regression
    #: (nearly) exactly, so far fewer rounds are needed; for small data or small models.
    LBFGS = "lbfgs"


#: Builds a network from (input width, output width); the default is an MLP with ``FQE.hidden`` ReLU layers.
NetworkFactory = Callable[[int, int], torch.nn.Module]


def mlp(hidden: tuple[int, ...]) -> NetworkFactory:
    """A factory for ReLU MLPs with the given hidden widths (``()`` is a linear model)."""

    def build(n_in: int, n_out: int) -> torch.nn.Module:
        layers: list[torch.nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        layers.append(torch.nn.Linear(width, n_out))
        return torch.nn.Sequential(*layers)

    return build


@dataclass(frozen=True)
class _Prepared:
    """One data set's inputs as standardised tensors, built once per fit (not once per Adam step)."""

    logged: torch.Tensor  # (N, n_in): states, or [state, action] for continuous actions
    action: torch.Tensor | None  # (N, 1) int64, discrete only
    pi_e: torch.Tensor | None  # (N, K), discrete only
    target: torch.Tensor | None  # (N * S, n_in), continuous only: [state, target action] pairs
    samples: int


class QFunction:
    """A fitted ``Q`` for one target policy: values at the logged actions and state values under the target."""

    def __init__(self, net: torch.nn.Module, mean: np.ndarray, std: np.ndarray, scale: float,
                 continuous: bool) -> None:
        self._net = net
        self._mean, self._std, self._scale = mean, std, scale
        self._continuous = continuous

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self._net.parameters())

    def _standardise(self, inputs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((inputs - self._mean) / self._std, dtype=torch.float32)

    def prepare(self, data: EpisodeData) -> _Prepared:
        if not self._continuous:
            assert data.pi_e is not None  # EpisodeData guarantees pi_e for discrete actions
            return _Prepared(self._standardise(data.state), torch.as_tensor(data.action)[:, None],
                             torch.as_tensor(data.pi_e, dtype=torch.float32), None, 0)
        logged = self._standardise(np.hstack([data.state, data.action]))
        if data.target_action is None:
            raise ValidationError("target_action", "is missing: FQE over continuous actions needs actions drawn "
                                                   "from the target policy in each logged state")
        n, s, m = data.target_action.shape
        pairs = np.hstack([np.repeat(data.state, s, axis=0), data.target_action.reshape(n * s, m)])
        return _Prepared(logged, None, None, self._standardise(pairs), s)

    def q_scaled(self, prep: _Prepared, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``Q(s_t, a_t)`` at the logged steps ``rows`` (default all), in the fit's scaled reward units."""
        inputs = prep.logged if rows is None else prep.logged[rows]
        out = self._net(inputs)
        if prep.action is None:
            return out[:, 0]
        action = prep.action if rows is None else prep.action[rows]
        return out.gather(1, action)[:, 0]

    def v_scaled(self, prep: _Prepared) -> torch.Tensor:
        """``V(s_t)`` at every logged state, in scaled units."""
        if prep.pi_e is not None:
            return (self._net(prep.logged) * prep.pi_e).sum(dim=1)
        assert prep.target is not None
        return self._net(prep.target)[:, 0].reshape(-1, prep.samples).mean(dim=1)

    def q_logged(self, data: EpisodeData) -> np.ndarray:
        """``(N,)`` ``Q(s_t, a_t)`` at every logged step, in reward units."""
        with torch.no_grad():
            return self.q_scaled(self.prepare(data)).double().numpy() * self._scale

    def v(self, data: EpisodeData) -> np.ndarray:
        """``(N,)`` ``V(s_t) = E_{a ~ pi_e} Q(s_t, a)`` at every logged state, in reward units."""
        with torch.no_grad():
            return self.v_scaled(self.prepare(data)).double().numpy() * self._scale


@dataclass(frozen=True)
class FQE:
    """Fitted Q evaluation for discrete or continuous actions.

    Args:
        discount: ``gamma`` in (0, 1]; default 1 (episodes are finite).
        iterations: regression rounds ``K``; default 100. Values propagate one step per round, so use at least the
            effective horizon (``1 / (1 - gamma)`` or the episode length).
        steps_per_iteration: optimizer steps per round; default 50 (the network is warm-started between rounds).
        batch_size: rows per Adam step; default 512.
        learning_rate: the optimizer's step size; default 1e-3 (L-BFGS wants about 1).
        optimizer: :class:`Optimizer`; default ``ADAM``.
        hidden: hidden-layer widths of the default ReLU MLP; default ``(64, 64)``; ``()`` is a linear model.
        network: a factory ``(n_in, n_out) -> torch.nn.Module`` replacing the MLP (e.g. a model on chosen features).
        seed: seeds the initial weights and the minibatches; default 0.
        threads: torch intra-op threads while fitting (restored afterwards); default 1. FQE's steps are small, and
            more threads mostly spin, badly so on a busy machine (40x slower measured with 2 threads on 2 busy CPUs).
        thresholds: when to raise support warnings.
    """

    discount: float = 1.0
    iterations: int = 100
    steps_per_iteration: int = 50
    batch_size: int = 512
    learning_rate: float = 1e-3
    optimizer: Optimizer = Optimizer.ADAM
    hidden: tuple[int, ...] = (64, 64)
    network: NetworkFactory | None = None
    seed: int = 0
    threads: int = 1
    thresholds: SupportThresholds = field(default_factory=SupportThresholds)

    def __post_init__(self) -> None:
        check_discount(self.discount)
        for name in ("iterations", "steps_per_iteration", "batch_size", "threads"):
            if getattr(self, name) < 1:
                raise ValidationError(name, f"must be at least 1, got {getattr(self, name)!r}")
        if not isinstance(self.optimizer, Optimizer):
            raise ValidationError("optimizer", f"expected one of {[o.value for o in Optimizer]}")
        if not self.learning_rate > 0:
            raise ValidationError("learning_rate", f"must be > 0, got {self.learning_rate!r}")

    @property
    def name(self) -> str:
        return "fqe"

    def fit(self, data: EpisodeData, episodes: np.ndarray | None = None, *,
            discount: float | None = None) -> QFunction:
        """Fit ``Q`` on the given episodes (a boolean ``(E,)`` mask; default all)."""
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._fit(data, episodes, discount)
        finally:
            torch.set_num_threads(before)

    def _fit(self, data: EpisodeData, episodes: np.ndarray | None, discount: float | None) -> QFunction:
        gamma = self.discount if discount is None else discount
        train = np.ones(data.n, dtype=bool) if episodes is None else episodes[data.episode_index]
        continuous = data.continuous
        if continuous and data.target_action is None:
            raise ValidationError("target_action", "is missing: FQE over continuous actions needs actions drawn "
                                                   "from the target policy in each logged state")
        inputs = np.hstack([data.state, data.action]) if continuous else data.state
        mean = inputs[train].mean(axis=0)
        std = inputs[train].std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        scale = float(np.abs(data.reward[train]).max()) or 1.0
        n_out = 1 if continuous else int(data.pi_e.shape[1])  # type: ignore[union-attr]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = (self.network or mlp(self.hidden))(inputs.shape[1], n_out)
        generator = torch.Generator().manual_seed(self.seed)
        q = QFunction(net, mean, std, scale, continuous)
        prep = q.prepare(data)
        reward = torch.as_tensor(data.reward / scale, dtype=torch.float32)
        alive = torch.as_tensor(~data.is_last, dtype=torch.float32)
        rows = torch.as_tensor(np.flatnonzero(train))
        adam = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
        for _ in range(self.iterations):  # a loop over regression rounds; each is vectorised over rows
            with torch.no_grad():
                v = q.v_scaled(prep)
                target = reward + gamma * alive * torch.cat([v[1:], torch.zeros(1)])
            if self.optimizer is Optimizer.LBFGS:
                self._lbfgs_round(q, prep, rows, target)
            else:
                self._adam_round(q, prep, rows, target, adam, generator)
        return q

    def _adam_round(self, q: QFunction, prep: _Prepared, rows: torch.Tensor, target: torch.Tensor,
                    adam: torch.optim.Optimizer, generator: torch.Generator) -> None:
        for _ in range(self.steps_per_iteration):
            batch = rows[torch.randint(len(rows), (min(self.batch_size, len(rows)),), generator=generator)]
            loss = torch.mean((q.q_scaled(prep, batch) - target[batch]) ** 2)
            adam.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            adam.step()

    def _lbfgs_round(self, q: QFunction, prep: _Prepared, rows: torch.Tensor, target: torch.Tensor) -> None:
        lbfgs = torch.optim.LBFGS(q.parameters(), lr=self.learning_rate, max_iter=self.steps_per_iteration,
                                  line_search_fn="strong_wolfe")
        goal = target[rows]

        def closure() -> torch.Tensor:
            lbfgs.zero_grad()
            loss = torch.mean((q.q_scaled(prep, rows) - goal) ** 2)
            loss.backward()  # type: ignore[no-untyped-call]
            return loss

        lbfgs.step(closure)  # type: ignore[no-untyped-call]

    def cross_fit(self, data: EpisodeData, folds: int, *, discount: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Out-of-fold ``(Q(s_t, a_t), V(s_t))`` per row: each episode's values from a fit on the other folds."""
        if data.n_episodes < folds:
            raise ValidationError("episode", f"{data.n_episodes} episodes cannot be split into {folds} folds")
        fold = np.empty(data.n_episodes, dtype=np.int64)
        fold[np.random.default_rng(self.seed).permutation(data.n_episodes)] = np.arange(data.n_episodes) % folds
        q_hat, v_hat = np.empty(data.n), np.empty(data.n)
        for f in range(folds):
            model = self.fit(data, fold != f, discount=discount)
            rows = fold[data.episode_index] == f
            q_hat[rows] = model.q_logged(data)[rows]
            v_hat[rows] = model.v(data)[rows]
        return q_hat, v_hat

    def estimate(self, data: EpisodeData, interval: IntervalSpec = DEFAULT_INTERVAL) -> Estimate:
        model = self.fit(data)
        v = model.v(data)
        v0 = v[data.step == 0]
        w = None
        direct = v0
        if data.ratio is not None:
            w = cumulative_ratios(data)
            correction = pddr_terms(data, model.q_logged(data), v, self.discount) - v0
            direct = v0 + (correction - correction.mean())
        return finish(self.name, Terms(direct=direct), episode_support(data, w, self.thresholds), interval)
