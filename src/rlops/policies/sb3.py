"""Serve a trained Stable-Baselines3 model (PPO, A2C, DQN, SAC, TD3, DDPG) through the ``Policy`` protocol.

The schema's encoded context is the model's observation. The adapter reads the model's action distribution and
draws every random number from the caller's ``numpy`` generator, so decisions are reproducible and every logged
propensity is the probability (discrete) or density (continuous) the adapter really sampled from.
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from rlops.errors import ConfigError, DependencyNotInstalled, ValidationError
from rlops.policies.base import ActResult, BasePolicy, PolicyInput, discrete_result
from rlops.policies.io import register
from rlops.schema import BoxActions, DiscreteActions, Schema

Algo = Literal["PPO", "A2C", "DQN", "SAC", "TD3", "DDPG"]
ALGOS: tuple[str, ...] = get_args(Algo)
MODEL_FILE = "model.zip"
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _sb3() -> Any:
    try:
        import stable_baselines3
    except ImportError as e:  # pragma: no cover - stable-baselines3 is a core dependency
        raise DependencyNotInstalled("the sb3 policy needs stable-baselines3: pip install stable-baselines3") from e
    return stable_baselines3


def algo_class(algo: str) -> Any:
    """The Stable-Baselines3 class named ``algo`` (one of :data:`ALGOS`)."""
    if algo not in ALGOS:
        raise ConfigError(f"sb3: algo: {algo!r} is not supported; use one of {list(ALGOS)}")
    return getattr(_sb3(), algo)


def algo_name(model: Any) -> str:
    """The :data:`ALGOS` name of an SB3 model (subclasses map to their most specific supported parent)."""
    sb3 = _sb3()
    # DDPG subclasses TD3, so it is checked first.
    for name in ("DDPG", "TD3", "SAC", "DQN", "PPO", "A2C"):
        if isinstance(model, getattr(sb3, name)):
            return name
    raise ConfigError(f"sb3: model of type {type(model).__name__} is not supported; use one of {list(ALGOS)}")


def _write_canonical_zip(data: bytes, path: Path) -> None:
    """Copy a zip archive with every entry's timestamp set to 1980-01-01, so equal contents give equal bytes."""
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = info.compress_type
            fixed.external_attr = info.external_attr
            dst.writestr(fixed, src.read(info.filename))


def _normal_log_density(z: np.ndarray, log_std: np.ndarray) -> np.ndarray:
    """Row-wise log density of ``mean + std * z`` under a diagonal Gaussian ``N(mean, std^2)``."""
    return np.sum(-0.5 * z**2 - log_std - _LOG_SQRT_2PI, axis=1)  # type: ignore[no-any-return]


def _log_one_minus_tanh_sq(u: np.ndarray) -> np.ndarray:
    """``log(1 - tanh(u)^2)`` computed stably as ``2 * (log 2 - u - softplus(-2u))``."""
    return 2.0 * (math.log(2.0) - u - np.logaddexp(0.0, -2.0 * u))  # type: ignore[no-any-return]


@register
class SB3Policy(BasePolicy):
    """A Stable-Baselines3 model served as a policy (no ``update``: training happens elsewhere).

    The encoded context ``batch.x`` (width ``schema.width``) is the observation, reshaped to the model's Box
    observation shape; its flat size must equal ``schema.width``. Fixed discrete actions need a ``Discrete(K)``
    model with ``K`` equal to the schema's action count; box actions need a Box model with the schema's bounds.
    Per-request candidates are not supported (an SB3 model has a fixed action space).

    Where the propensity comes from (all randomness is drawn from the ``rng`` passed to :meth:`act`):

    - **PPO / A2C, discrete**: the policy's categorical probabilities
      (``model.policy.get_distribution(obs).distribution.probs``); the action is sampled from them and the
      propensity is ``probs[chosen]``.
    - **DQN**: epsilon-greedy over ``model.q_net``'s Q-values: ``epsilon/K`` for every action plus
      ``1 - epsilon`` on the first arg-max; with ``epsilon = 0`` the greedy action has propensity 1.
    - **PPO / A2C, box**: the diagonal Gaussian ``N(mean, std)`` of the policy. ``u = mean + std * z`` with
      ``z ~ N(0, I)``; the logged action is ``u`` clipped to the box (as SB3's ``predict`` does) and the
      propensity is the Gaussian density of the **unclipped** ``u``, in action units (product over dimensions),
      which is also the likelihood SB3's PPO trains on. For a row whose ``u`` fell outside the box, the logged
      action (on the bound) is not the point whose density is reported: the clipped action's true law has point
      masses on the bounds, which a density cannot express.
    - **SAC**: the squashed Gaussian: ``u = mean + std * z``, ``a = low + (tanh(u) + 1) * (high - low) / 2``;
      the propensity is the density of ``a`` in action units,
      ``N(u; mean, std) / prod(1 - tanh(u)^2) / prod((high - low) / 2)`` (computed from ``u``, so it is exact
      even where ``tanh`` saturates).
    - **TD3 / DDPG**: the deterministic actor ``mu`` (rescaled to the box) plus Gaussian noise with standard
      deviation ``noise_std * (high - low) / 2`` per dimension; the logged action is clipped to the box and the
      propensity is the density of the noise at the unclipped sample (clipping ignored, as for PPO).
    - ``deterministic=True``: the arg-max action (discrete; propensity 1, one-hot probabilities) or the mean
      action (box: PPO's clipped mean, SAC's squashed mean, TD3's actor) with propensity 1.0, standing for a point
      mass rather than a density. Such logs cannot be used to evaluate other policies off-policy.

    The model's policy is put in evaluation mode (``set_training_mode(False)``), as SB3's ``predict`` does.
    Densities are ``exp`` of a float64 log density: they can exceed 1 and, for very high-dimensional or very
    wide policies, under- or overflow; no floor is applied.

    Args:
        schema: fixed discrete actions or a box matching the model's action space.
        model: a Stable-Baselines3 ``PPO``, ``A2C``, ``DQN``, ``SAC``, ``TD3`` or ``DDPG`` model with a Box
            observation space (state-dependent exploration, ``use_sde``, is not supported).
        epsilon: DQN's exploration rate in [0, 1], default 0.0 (greedy); ignored by other algorithms.
        noise_std: TD3/DDPG's Gaussian noise in units of half the action range (> 0), default 0.1; ignored by
            other algorithms.
        deterministic: act greedily / with the mean action, default False.

    Raises:
        ConfigError: the model's observation size differs from ``schema.width``, its action space does not match
            the schema's, or a setting is out of range.

    Example:
        >>> policy = SB3Policy.from_model_path(schema, "ppo_cartpole.zip", algo="PPO")  # doctest: +SKIP
        >>> batch = PolicyInput.from_contexts(schema, contexts)  # doctest: +SKIP
        >>> result = policy.act(batch, np.random.default_rng(0))  # doctest: +SKIP
    """

    kind = "sb3"

    def __init__(
        self,
        schema: Schema,
        model: Any,
        *,
        epsilon: float = 0.0,
        noise_std: float = 0.1,
        deterministic: bool = False,
    ) -> None:
        super().__init__(schema)
        self.model = model
        self.algo = algo_name(model)
        if not 0.0 <= epsilon <= 1.0:
            raise ConfigError(f"sb3: epsilon must be in [0, 1], got {epsilon}")
        if not (noise_std > 0.0 and math.isfinite(noise_std)):
            raise ConfigError(f"sb3: noise_std must be a finite number > 0 (units of half the action range), got "
                              f"{noise_std}")
        self.epsilon, self.noise_std, self.deterministic = float(epsilon), float(noise_std), bool(deterministic)
        self._obs_shape = self._check_observations()
        self._low, self._high = self._check_actions()
        if getattr(model.policy, "use_sde", False) or getattr(model, "use_sde", False):
            raise ConfigError("sb3: models trained with use_sde=True (gSDE) are not supported; train with "
                              "use_sde=False")
        model.policy.set_training_mode(False)

    # ---- construction -------------------------------------------------------------------------------------------

    @classmethod
    def wrap(cls, schema: Schema, model: Any, **settings: Any) -> SB3Policy:
        """Serve an in-memory SB3 model; ``settings`` are ``epsilon``, ``noise_std`` and ``deterministic``."""
        return cls(schema, model, **settings)

    @classmethod
    def from_model_path(cls, schema: Schema, path: str | Path, algo: str = "PPO", **settings: Any) -> SB3Policy:
        """Load a model saved with SB3's ``model.save`` (a ``.zip``) on the CPU and serve it.

        Args:
            schema: the schema whose encoded context is the model's observation.
            path: the ``.zip`` written by ``model.save``.
            algo: the algorithm that wrote it, one of :data:`ALGOS`, default ``"PPO"``.
            **settings: ``epsilon``, ``noise_std``, ``deterministic`` (see the class).

        SB3 zips contain pickled objects: load only files you trust (the registry verifies signatures).
        """
        cls_ = algo_class(algo)
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"sb3: model path {path} is not a file")
        try:
            model = cls_.load(str(path), device="cpu")
        except Exception as e:  # SB3 raises many kinds (zip, pickle, torch) for a bad file
            raise ConfigError(f"sb3: cannot load {path} as a {algo} model: {e}") from e
        return cls(schema, model, **settings)

    def _check_observations(self) -> tuple[int, ...]:
        from gymnasium import spaces

        space = self.model.observation_space
        if not isinstance(space, spaces.Box):
            raise ConfigError(f"sb3: the model's observation space must be a Box, got {space}")
        shape = tuple(int(d) for d in space.shape)
        size = math.prod(shape)
        if size != self.schema.width:
            raise ConfigError(f"sb3: schema.features encode to {self.schema.width} columns but the model's "
                              f"observation size is {size} (shape {shape}); the schema's encoded context must be "
                              f"the model's observation")
        return shape

    def _check_actions(self) -> tuple[np.ndarray, np.ndarray]:
        from gymnasium import spaces

        space, actions = self.model.action_space, self.schema.actions
        if isinstance(actions, DiscreteActions):
            if not isinstance(space, spaces.Discrete) or int(space.n) != actions.n:
                raise ConfigError(f"sb3: schema.actions has {actions.n} discrete actions but the model's action "
                                  f"space is {space}; they must match")
            return np.empty(0), np.empty(0)
        if isinstance(actions, BoxActions):
            if not isinstance(space, spaces.Box) or space.shape != (actions.dim,):
                raise ConfigError(f"sb3: schema.actions is a box of dimension {actions.dim} but the model's action "
                                  f"space is {space}; they must match")
            low = np.asarray(space.low, dtype=np.float64)
            high = np.asarray(space.high, dtype=np.float64)
            # The model's bounds are float32: compare the schema's at that precision.
            schema_low = np.asarray(actions.low, dtype=np.float32).astype(np.float64)
            schema_high = np.asarray(actions.high, dtype=np.float32).astype(np.float64)
            if not (np.array_equal(low, schema_low) and np.array_equal(high, schema_high)):
                raise ConfigError(f"sb3: schema.actions bounds low={actions.low}, high={actions.high} differ from "
                                  f"the model's {low.tolist()}, {high.tolist()}; they must match")
            return low, high
        raise ConfigError(f"sb3: schema.actions of type {actions.type!r} is not supported; SB3 models have fixed "
                          f"discrete or box actions")

    # ---- acting ---------------------------------------------------------------------------------------------------

    def _obs(self, batch: PolicyInput) -> Any:
        import torch

        x = np.asarray(batch.x)
        if x.ndim != 2 or x.shape[1] != self.schema.width:
            raise ValidationError("batch.x", f"expected shape (n, {self.schema.width}), got {x.shape}; build the "
                                             f"batch with PolicyInput.from_contexts(schema, ...)")
        obs = x.astype(np.float32).reshape((x.shape[0], *self._obs_shape))
        return torch.as_tensor(obs, device=self.model.device)

    def act(self, batch: PolicyInput, rng: np.random.Generator) -> ActResult:
        """Choose one action per row; see the class docstring for where each algorithm's propensity comes from."""
        import torch

        obs = self._obs(batch)
        if batch.n == 0:  # SB3's distributions cannot be built on an empty batch
            if isinstance(self.schema.actions, DiscreteActions):
                empty = np.empty((0, self.schema.actions.n))
                return ActResult(action=np.empty(0, dtype=np.int64), propensity=np.empty(0), probabilities=empty)
            return ActResult(action=np.empty((0, self._low.shape[0])), propensity=np.empty(0))
        with torch.no_grad():
            if isinstance(self.schema.actions, DiscreteActions):
                return self._act_discrete(obs, rng)
            return self._act_box(obs, rng)

    def _act_discrete(self, obs: Any, rng: np.random.Generator) -> ActResult:
        n = int(obs.shape[0])
        if self.algo == "DQN":
            q = self.model.q_net(obs).cpu().numpy().astype(np.float64)
            epsilon = 0.0 if self.deterministic else self.epsilon
            k = q.shape[1]
            probs = np.full((n, k), epsilon / k)
            probs[np.arange(n), np.argmax(q, axis=1)] += 1.0 - epsilon
        else:
            probs = self.model.policy.get_distribution(obs).distribution.probs.cpu().numpy().astype(np.float64)
            probs /= probs.sum(axis=1, keepdims=True)  # float32 softmax: restore the sum to 1 in float64
            if self.deterministic:
                best = np.argmax(probs, axis=1)
                probs = np.zeros_like(probs)
                probs[np.arange(n), best] = 1.0
        return discrete_result(probs, rng)

    def _act_box(self, obs: Any, rng: np.random.Generator) -> ActResult:
        n, dim = int(obs.shape[0]), self._low.shape[0]
        low, high = self._low, self._high
        half_range = 0.5 * (high - low)
        if self.algo in ("PPO", "A2C"):
            dist = self.model.policy.get_distribution(obs).distribution
            mean = dist.mean.cpu().numpy().astype(np.float64).reshape(n, dim)
            if self.deterministic:
                return ActResult(action=np.clip(mean, low, high), propensity=np.ones(n))
            log_std = np.log(dist.stddev.cpu().numpy().astype(np.float64).reshape(n, dim))
            z = rng.standard_normal((n, dim))
            u = mean + np.exp(log_std) * z
            density = np.exp(_normal_log_density(z, log_std))
            return ActResult(action=np.clip(u, low, high), propensity=density)
        if self.algo == "SAC":
            mean_t, log_std_t, _ = self.model.actor.get_action_dist_params(obs)
            mean = mean_t.cpu().numpy().astype(np.float64).reshape(n, dim)
            if self.deterministic:
                return ActResult(action=low + (np.tanh(mean) + 1.0) * half_range, propensity=np.ones(n))
            log_std = log_std_t.cpu().numpy().astype(np.float64).reshape(n, dim)
            z = rng.standard_normal((n, dim))
            u = mean + np.exp(log_std) * z
            log_density = (_normal_log_density(z, log_std) - np.sum(_log_one_minus_tanh_sq(u), axis=1)
                           - float(np.sum(np.log(half_range))))
            return ActResult(action=low + (np.tanh(u) + 1.0) * half_range, propensity=np.exp(log_density))
        # TD3 / DDPG: the actor outputs tanh-squashed actions in [-1, 1].
        scaled = self.model.actor(obs).cpu().numpy().astype(np.float64).reshape(n, dim)
        mu = low + (scaled + 1.0) * half_range
        if self.deterministic:
            return ActResult(action=mu, propensity=np.ones(n))
        log_std = np.broadcast_to(np.log(self.noise_std * half_range), (n, dim))
        z = rng.standard_normal((n, dim))
        action = mu + np.exp(log_std) * z
        return ActResult(action=np.clip(action, low, high), propensity=np.exp(_normal_log_density(z, log_std)))

    # ---- saving ---------------------------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {"algo": self.algo, "epsilon": self.epsilon, "noise_std": self.noise_std,
                "deterministic": self.deterministic}

    def save_files(self, folder: Path) -> None:
        """Write the model with SB3's ``model.save`` as ``model.zip``, byte-for-byte reproducibly.

        A model saved straight after training pickles some objects (e.g. its action space's random state)
        differently from the same model saved after a reload, and zip entries carry the time of saving. So the
        model is saved, reloaded on the CPU and saved again, and the zip is rewritten with fixed timestamps:
        equal policies give identical folders (stable content hashes), and the file is exactly what a reload
        would write.
        """
        first = io.BytesIO()
        self.model.save(first)
        first.seek(0)
        second = io.BytesIO()
        algo_class(self.algo).load(first, device="cpu").save(second)
        _write_canonical_zip(second.getvalue(), folder / MODEL_FILE)

    @classmethod
    def from_saved(cls, schema: Schema, config: dict[str, Any], folder: Path) -> SB3Policy:
        """Load ``model.zip`` with the saved ``algo``'s class on the CPU and the saved settings."""
        settings = {k: config[k] for k in ("epsilon", "noise_std", "deterministic") if k in config}
        return cls.from_model_path(schema, folder / MODEL_FILE, algo=str(config.get("algo", "")), **settings)
