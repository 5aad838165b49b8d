"""The ``Policy`` protocol: act on a batch of contexts with an explicit RNG; online learners add ``update``.

A policy never sees raw JSON: the engine validates contexts against the schema, encodes them, and hands the policy a
:class:`PolicyInput`. The policy answers with an :class:`ActResult` holding, per row, the chosen action, its
propensity (the probability the policy really used, or a density for continuous actions) and, for discrete spaces,
the full probability vector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from rlops.errors import ValidationError
from rlops.schema import Schema


@dataclass(frozen=True)
class PolicyInput:
    """A batch of validated, encoded contexts.

    Attributes:
        x: encoded contexts, float64 of shape ``(n, schema.width)``.
        contexts: the validated context dicts (rule policies read them by name).
        candidates: for candidate action spaces, one ``(k_i, action_width)`` matrix per row; else ``None``.
    """

    x: np.ndarray
    contexts: Sequence[Mapping[str, Any]] = ()
    candidates: Sequence[np.ndarray] | None = None

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def n_actions(self, schema: Schema) -> list[int]:
        """Number of actions available in each row."""
        if self.candidates is not None:
            return [int(c.shape[0]) for c in self.candidates]
        k = schema.n_actions
        return [k or 0] * self.n

    @classmethod
    def from_contexts(
        cls,
        schema: Schema,
        contexts: Sequence[Any],
        candidates: Sequence[Any] | None = None,
    ) -> PolicyInput:
        """Validate raw contexts (and candidate lists) against ``schema`` and encode them."""
        valid = [schema.validate_context(c, path=f"contexts[{i}]") for i, c in enumerate(contexts)]
        encoded = None
        if candidates is not None:
            if len(candidates) != len(valid):
                raise ValidationError("actions", f"{len(candidates)} candidate lists for {len(valid)} contexts")
            encoded = [
                schema.encode_candidates(schema.validate_candidates(c, path=f"actions[{i}]"))
                for i, c in enumerate(candidates)
            ]
        return cls(x=schema.encode(valid), contexts=valid, candidates=encoded)


@dataclass(frozen=True)
class ActResult:
    """What a policy chose for each row of a batch.

    Attributes:
        action: int64 ``(n,)`` indices into each row's actions, or float64 ``(n, dim)`` for box actions.
        propensity: float64 ``(n,)``: probability of the chosen action under the policy (in (0, 1]); for box
            actions the density of the sampled action (> 0), or 1.0 for a deterministic continuous policy.
        probabilities: for discrete spaces, the full distribution: a ``(n, K)`` array for fixed actions or one
            array per row for candidate sets; ``None`` for box actions.
    """

    action: np.ndarray
    propensity: np.ndarray
    probabilities: np.ndarray | list[np.ndarray] | None = None

    def row_probabilities(self, i: int) -> np.ndarray | None:
        if self.probabilities is None:
            return None
        return self.probabilities[i]


@dataclass(frozen=True)
class LearningBatch:
    """Joined interactions an online learner updates from (rows line up with ``inputs``)."""

    inputs: PolicyInput
    action: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray
    weight: np.ndarray | None = field(default=None)


@runtime_checkable
class Policy(Protocol):
    """Anything that chooses actions for a schema. Implementations also subclass :class:`BasePolicy` to save."""

    kind: ClassVar[str]
    schema: Schema

    def act(self, batch: PolicyInput, rng: np.random.Generator) -> ActResult:
        """Choose one action per row, drawing every random number from ``rng``."""
        ...


@runtime_checkable
class OnlineLearner(Policy, Protocol):
    """A policy that learns from joined interactions as they arrive."""

    def update(self, batch: LearningBatch) -> None:
        """Update from a batch of interactions; the policy's own propensities are not assumed."""
        ...


class BasePolicy:
    """Shared plumbing: hyperparameters and array state, which :mod:`rlops.policies.io` saves and loads.

    Subclasses set ``kind``, implement ``act``, and either
    - return their hyper-parameters from :meth:`config` and their arrays from :meth:`state` and accept both in
      :meth:`from_saved` (the default save path writes ``state.npz``), or
    - override :meth:`save_files` / :meth:`from_saved` to write their own files (SB3 zips, VW models).
    """

    kind: ClassVar[str] = ""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def act(self, batch: PolicyInput, rng: np.random.Generator) -> ActResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """JSON-serialisable hyperparameters (written into the manifest)."""
        return {}

    def expected_rewards(self, batch: PolicyInput) -> np.ndarray | list[np.ndarray] | None:
        """The policy's own reward model: the expected reward of every action for each row (``(n, K)``, or one
        array per row for candidate actions), or ``None`` for policies without one (the default). Monitoring
        compares it with the rewards observed (prediction error and calibration)."""
        return None

    def state(self) -> dict[str, np.ndarray]:
        """Learned arrays (written to ``state.npz``)."""
        return {}

    def save_files(self, folder: Path) -> None:
        """Write the learned state into ``folder``; the default writes :meth:`state` as ``state.npz``."""
        arrays = self.state()
        if arrays:
            np.savez(folder / "state.npz", **arrays)  # type: ignore[arg-type]

    @classmethod
    def from_saved(cls, schema: Schema, config: dict[str, Any], folder: Path) -> BasePolicy:
        """Rebuild a saved policy; the default reads ``state.npz`` and calls :meth:`from_state`."""
        state: dict[str, np.ndarray] = {}
        path = folder / "state.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as data:
                state = {k: data[k] for k in data.files}
        return cls.from_state(schema, config, state)

    @classmethod
    def from_state(
        cls, schema: Schema, config: dict[str, Any], state: dict[str, np.ndarray]
    ) -> BasePolicy:  # pragma: no cover - overridden
        raise NotImplementedError(f"{cls.__name__} does not implement from_state")

    def require_discrete(self) -> int:
        """Number of fixed actions, or a clear error for policies that need a fixed discrete space."""
        k = self.schema.n_actions
        if k is None:
            raise ValidationError("schema.actions", f"policy '{self.kind}' needs a fixed discrete action space, "
                                                    f"got '{self.schema.actions.type}'")
        return k


def sample_rows(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one index per row of a ``(n, K)`` probability matrix with a single uniform draw per row."""
    if probabilities.shape[0] == 1:
        # One row (a single decision, the common case when serving): the same draw and the same sequential
        # cumulative sums as the batch path below, in plain Python, which is several times faster for small K.
        running = list(accumulate(probabilities[0].tolist()))
        draw = rng.random(1)[0] * running[-1]
        return np.array([min(sum(c <= draw for c in running), len(running) - 1)], dtype=np.int64)
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random(probabilities.shape[0]) * cumulative[:, -1]
    chosen = (cumulative <= u[:, None]).sum(axis=1)
    return np.minimum(chosen, probabilities.shape[1] - 1).astype(np.int64)


def discrete_result(probabilities: np.ndarray | list[np.ndarray], rng: np.random.Generator) -> ActResult:
    """Sample from per-row distributions and report the propensity of what was sampled."""
    if isinstance(probabilities, np.ndarray):
        action = sample_rows(probabilities, rng)
        propensity = probabilities[np.arange(len(action)), action]
        return ActResult(action=action, propensity=propensity.astype(np.float64), probabilities=probabilities)
    actions = np.empty(len(probabilities), dtype=np.int64)
    props = np.empty(len(probabilities), dtype=np.float64)
    for i, p in enumerate(probabilities):
        actions[i] = sample_rows(p[None, :], rng)[0]
        props[i] = p[actions[i]]
    return ActResult(action=actions, propensity=props, probabilities=probabilities)
