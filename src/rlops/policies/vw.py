"""Vowpal Wabbit contextual bandit with action-dependent features (``--cb_explore_adf``), Personalizer's learner.

Each request becomes one VW multi-line example: a ``shared`` line holding the encoded context in the ``context``
namespace, then one line per action holding the action's features in the ``action`` namespace (a fixed action's
name, or a candidate's encoded features). Context and action namespaces are crossed (``-q ca``) so that the
context can change which action is best.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlops.errors import ConfigError, DependencyNotInstalled, ValidationError
from rlops.policies.base import ActResult, BasePolicy, LearningBatch, PolicyInput, discrete_result
from rlops.policies.io import register
from rlops.schema import BoxActions, CandidateActions, DiscreteActions, Schema

MODEL_FILE = "model.vw"
_CONTEXT_NS = "context"
_ACTION_NS = "action"
# VW splits a text example on whitespace, ``|`` and ``:``; percent-encoding keeps distinct names distinct.
_ESCAPES = {"%": "%25", ":": "%3A", "|": "%7C", " ": "%20", "\t": "%09", "\n": "%0A", "\r": "%0D"}
_ESCAPE_TABLE = str.maketrans(_ESCAPES)


def vw_name(name: str) -> str:
    """A VW-safe feature name: ``%``, whitespace, ``:`` and ``|`` are percent-encoded (so names never collide)."""
    return name.translate(_ESCAPE_TABLE)


class VWConfig(BaseModel):
    """Hyperparameters of :class:`VWPolicy` (all written to the policy manifest).

    Attributes:
        exploration: VW's exploration algorithm, default ``"epsilon"``: ``epsilon`` (``--epsilon``), ``squarecb``
            (``--squarecb --gamma_scale``), ``softmax`` (``--softmax --lambda``), ``bag`` (``--bag``, bootstrap
            Thompson sampling) or ``cover`` (``--cover``, online cover).
        epsilon: uniform exploration rate, default 0.2. For ``epsilon`` it must be in (0, 1]; ``bag`` and ``cover``
            also mix it in and accept [0, 1]; ignored otherwise.
        gamma_scale: ``squarecb``'s gamma scale (greedier when larger), default 10.0.
        softmax_lambda: ``softmax``'s inverse temperature (> 0, greedier when larger), default 1.0.
        bag_size: number of bootstrapped policies for ``bag`` (1 to 32), default 5.
        cover_size: number of policies in the cover for ``cover`` (1 to 32), default 3.
        cb_type: VW's cost estimator for learning (``--cb_type``), default ``"mtr"`` (VW's default for ADF).
        learning_rate: VW's ``--learning_rate``, default 0.5.
        interactions: cross the context and action namespaces (``-q ca``), default True. Without it the context
            shifts every action's score equally and cannot change which action is best.
        bits: hash table size as a power of two (``-b``, 1 to 24), default 18. Memory grows as ``2**bits``
            (about 9 MiB per VW workspace at 18 bits, measured with VW 9.11; a policy holds two) and with the
            number of bags/cover policies.
        random_seed: VW's ``--random_seed`` (used by ``bag`` and ``cover`` while learning), default 0. Actions are
            never sampled by VW: :meth:`VWPolicy.act` samples with the caller's generator.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    exploration: Literal["epsilon", "squarecb", "softmax", "bag", "cover"] = "epsilon"
    epsilon: float = Field(default=0.2, ge=0.0, le=1.0)
    gamma_scale: float = Field(default=10.0, gt=0.0)
    softmax_lambda: float = Field(default=1.0, gt=0.0)
    bag_size: int = Field(default=5, ge=1, le=32)
    cover_size: int = Field(default=3, ge=1, le=32)
    cb_type: Literal["mtr", "dr", "ips", "dm"] = "mtr"
    learning_rate: float = Field(default=0.5, gt=0.0)
    interactions: bool = True
    bits: int = Field(default=18, ge=1, le=24)
    random_seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _positive_epsilon(self) -> VWConfig:
        if self.exploration == "epsilon" and self.epsilon <= 0.0:
            raise ValueError("epsilon must be > 0 for epsilon exploration (else the greedy action has "
                             "propensity 1 and the rest 0); use 0.2 or another value in (0, 1]")
        return self

    def vw_args(self, model_path: Path | None = None) -> list[str]:
        """VW's command line for these settings; with ``model_path``, load that model (``-i``).

        A saved model carries its own random state, so ``--random_seed`` is only passed for a fresh model (VW
        refuses a seed that disagrees with the stored one).
        """
        args = ["--cb_explore_adf", "--quiet", "--cb_type", self.cb_type, "--learning_rate",
                repr(self.learning_rate), "-b", str(self.bits)]
        if self.exploration == "epsilon":
            args += ["--epsilon", repr(self.epsilon)]
        elif self.exploration == "squarecb":
            args += ["--squarecb", "--gamma_scale", repr(self.gamma_scale)]
        elif self.exploration == "softmax":
            args += ["--softmax", "--lambda", repr(self.softmax_lambda)]
        elif self.exploration == "bag":
            args += ["--bag", str(self.bag_size), "--epsilon", repr(self.epsilon)]
        else:
            args += ["--cover", str(self.cover_size), "--epsilon", repr(self.epsilon)]
        if self.interactions:
            args += ["-q", f"{_CONTEXT_NS[0]}{_ACTION_NS[0]}"]
        if model_path is None:
            args += ["--random_seed", str(self.random_seed)]
        else:
            args += ["-i", str(model_path)]
        return args


def _parse_config(raw: dict[str, Any] | VWConfig | None, overrides: dict[str, Any]) -> VWConfig:
    if isinstance(raw, VWConfig):
        if overrides:
            raise ConfigError(f"vw_cb_adf: pass either a VWConfig or keyword settings, not both "
                              f"(got {sorted(overrides)})")
        return raw
    try:
        return VWConfig.model_validate({**(raw or {}), **overrides})
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"vw_cb_adf: config.{where}: {first['msg']}") from e


def _format_features(names: Sequence[str], row: np.ndarray) -> str:
    # VW treats a missing feature as 0, so only non-zero values are written; 9 significant digits round-trip
    # VW's float32 values exactly.
    values = row.tolist()
    return " ".join(f"{names[j]}:{values[j]:.9g}" for j in np.flatnonzero(row).tolist())


@register
class VWPolicy(BasePolicy):
    """A Vowpal Wabbit ``--cb_explore_adf`` contextual bandit (the learner behind Azure Personalizer).

    Works with fixed discrete actions (each action is one ADF line whose ``action`` namespace holds the action's
    name) and with per-request candidates (each candidate's encoded features fill its ``action`` namespace). The
    context's encoded columns, named after :attr:`Schema.column_names`, fill the shared ``context`` namespace.

    Propensities: VW's ``predict`` returns the probability mass function of its exploration algorithm (for
    ``epsilon``: ``epsilon/K`` for every action plus ``1 - epsilon`` on the greedy one, shared equally among tied
    actions, so an untrained model is uniform). :meth:`act` renormalises that PMF in float64 (VW computes it in
    float32) and samples the action itself with the caller's ``numpy`` generator (VW's internal sampling is not
    used); the propensity is ``pmf[chosen]`` and the whole PMF is returned as the probabilities.

    ``epsilon``, ``squarecb`` and ``cover`` with ``epsilon > 0`` give every action positive mass. ``softmax`` with a
    large ``softmax_lambda`` can underflow to exact zeros, and ``bag`` with ``epsilon=0`` gives zero to every action
    no bootstrap policy picks: such actions are simply never sampled (the chosen action's propensity is always
    > 0 and the probabilities still sum to 1), but off-policy evaluation of other policies cannot use them.

    Learning minimises cost, so :meth:`update` sends ``cost = -reward`` for the chosen action with the logged
    propensity as VW's ``action:cost:probability`` label.

    Two VW workspaces hold the model: one serves predictions and learns, the other only learns and is the one
    saved. VW counts every example it sees, predictions included, in a counter stored in the model file; keeping
    predictions off the saved workspace means acting never changes what :meth:`save_files` writes, so a policy
    that only served traffic saves to the same bytes (checked: for every exploration and ``cb_type`` here,
    predictions do not change what VW learns, so both workspaces always hold the same model). The price is twice
    the memory (see ``bits``) and twice the learning time.

    The workspaces hold native memory: call :meth:`close` (or use the policy as a context manager) when done; they
    are also released when the policy is garbage collected. Calls are serialised with a lock (a VW workspace is
    not thread-safe).

    Args:
        schema: discrete actions or per-request candidates (a box raises :class:`ConfigError`).
        config: a :class:`VWConfig` or a dict of its fields; defaults to ``VWConfig()`` (epsilon 0.2).
        model_path: a VW model saved by this class (``model.vw``) to start from, default None (a fresh model).
        **settings: :class:`VWConfig` fields given as keywords instead of ``config``, e.g. ``exploration="squarecb"``.

    Example:
        >>> s = Schema.model_validate({"features": [{"name": "x", "type": "float"}],
        ...                            "actions": {"type": "discrete", "names": ["a", "b"]}})
        >>> with VWPolicy(s, epsilon=0.1) as policy:
        ...     result = policy.act(PolicyInput.from_contexts(s, [{"x": 1.0}]), np.random.default_rng(0))
        >>> result.probabilities.round(3).tolist()
        [[0.5, 0.5]]
    """

    kind = "vw_cb_adf"

    def __init__(
        self,
        schema: Schema,
        config: VWConfig | dict[str, Any] | None = None,
        *,
        model_path: str | Path | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(schema)
        self._serving: Any = None
        self._learning: Any = None
        space = schema.actions
        if isinstance(space, BoxActions):
            raise ConfigError("vw_cb_adf: schema.actions is a box; VW's cb_explore_adf needs discrete actions or "
                              "per-request candidates (use an SB3 policy for continuous actions)")
        self.settings = _parse_config(config, settings)
        self._context_names = [vw_name(c) for c in schema.column_names]
        self._action_lines: list[str] | None = None
        self._candidate_names: list[str] = []
        if isinstance(space, DiscreteActions):
            self._action_lines = [f"|{_ACTION_NS} {vw_name(name)}" for name in space.names]
        elif isinstance(space, CandidateActions):
            self._candidate_names = [vw_name(c) for f in space.features for c in f.column_names()]
        self._lock = threading.Lock()
        path = None if model_path is None else Path(model_path)
        self._serving = self._open(path)
        self._learning = self._open(path)

    def _open(self, model_path: Path | None) -> Any:
        try:
            from vowpalwabbit import Workspace
        except ImportError as e:  # pragma: no cover - vowpalwabbit is a core dependency
            raise DependencyNotInstalled("vw_cb_adf needs vowpalwabbit: pip install vowpalwabbit") from e
        if model_path is not None and not model_path.is_file():
            raise ConfigError(f"vw_cb_adf: model_path {model_path} is not a file")
        try:
            return Workspace(arg_list=self.settings.vw_args(model_path))
        except RuntimeError as e:
            where = f"model {model_path}" if model_path is not None else "settings"
            raise ConfigError(f"vw_cb_adf: VW refused the {where}: {e}") from e

    # ---- lifecycle ------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the VW workspaces (idempotent); the policy cannot act afterwards."""
        for name in ("_serving", "_learning"):
            vw = getattr(self, name, None)
            setattr(self, name, None)
            if vw is not None:
                vw.finish()

    def __enter__(self) -> VWPolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # nothing useful to do about a failure during garbage collection
            self.close()

    def _workspaces(self) -> tuple[Any, Any]:
        if self._serving is None or self._learning is None:
            raise ValidationError("policy", "this VWPolicy was closed; load it again to use it")
        return self._serving, self._learning

    # ---- examples -------------------------------------------------------------------------------------------------

    def _check_batch(self, batch: PolicyInput) -> None:
        if batch.x.ndim != 2 or batch.x.shape[1] != self.schema.width:
            raise ValidationError("batch.x", f"expected shape (n, {self.schema.width}), got {batch.x.shape}; build "
                                             f"the batch with PolicyInput.from_contexts(schema, ...)")
        if self._action_lines is not None:
            if batch.candidates is not None:
                raise ValidationError("batch.candidates", "this schema has fixed discrete actions; pass "
                                                          "candidates=None")
            return
        if batch.candidates is None or len(batch.candidates) != batch.n:
            got = "none" if batch.candidates is None else str(len(batch.candidates))
            raise ValidationError("batch.candidates", f"expected one candidate matrix per row ({batch.n}), got {got}")
        width = len(self._candidate_names)
        for i, c in enumerate(batch.candidates):
            if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] != width:
                raise ValidationError(f"batch.candidates[{i}]", f"expected shape (k >= 1, {width}), got {c.shape}")

    def examples(self, batch: PolicyInput) -> list[list[str]]:
        """The VW text multi-line example of every row (one ``shared`` line, then one line per action)."""
        self._check_batch(batch)
        shared = [f"shared |{_CONTEXT_NS} {_format_features(self._context_names, row)}" for row in batch.x]
        if self._action_lines is not None:
            return [[line, *self._action_lines] for line in shared]
        return [
            [line, *(f"|{_ACTION_NS} {_format_features(self._candidate_names, row)}" for row in candidates)]
            for line, candidates in zip(shared, batch.candidates or [], strict=True)
        ]

    # ---- policy ---------------------------------------------------------------------------------------------------

    def pmf(self, batch: PolicyInput) -> list[np.ndarray]:
        """VW's probability mass function for each row, renormalised to sum to 1 in float64."""
        rows = self.examples(batch)
        with self._lock:
            serving, _ = self._workspaces()
            raw = [serving.predict(lines) for lines in rows]
        result = []
        for i, p in enumerate(raw):
            probs = np.asarray(p, dtype=np.float64)
            total = probs.sum()
            if probs.shape != (len(rows[i]) - 1,) or not math.isfinite(total) or total <= 0 or probs.min() < 0:
                raise ValidationError(f"batch[{i}]", f"VW returned an invalid distribution {probs.tolist()}")
            result.append(probs / total)
        return result

    def act(self, batch: PolicyInput, rng: np.random.Generator) -> ActResult:
        """Sample one action per row from VW's PMF with ``rng``; propensity is the PMF of the sampled action."""
        probs = self.pmf(batch)
        if self._action_lines is not None:
            return discrete_result(np.stack(probs) if probs else np.empty((0, len(self._action_lines))), rng)
        return discrete_result(probs, rng)

    def update(self, batch: LearningBatch) -> None:
        """Learn from joined interactions with VW's cb label ``action:cost:probability`` on the chosen action.

        VW minimises cost, so the label's cost is ``-reward``; the probability is the logged propensity.

        Raises:
            ValidationError: lengths disagree, an action is out of range, a propensity is outside (0, 1], a reward
                is not finite, or ``weight`` is given with values other than 1 (VW's text cb label carries no
                importance weight).
        """
        inputs = batch.inputs
        rows = self.examples(inputs)
        n = inputs.n
        action = np.asarray(batch.action)
        reward = np.asarray(batch.reward, dtype=np.float64)
        propensity = np.asarray(batch.propensity, dtype=np.float64)
        for name, arr in (("action", action), ("reward", reward), ("propensity", propensity)):
            if arr.shape != (n,):
                raise ValidationError(f"batch.{name}", f"expected shape ({n},), got {arr.shape}")
        if batch.weight is not None and not np.all(np.asarray(batch.weight) == 1.0):
            raise ValidationError("batch.weight", "VW's contextual-bandit label has no importance weight; pass "
                                                  "weight=None (or all ones)")
        labelled = []
        for i, lines in enumerate(rows):
            k = len(lines) - 1
            a, p, r = action[i], float(propensity[i]), float(reward[i])
            if not float(a).is_integer() or not 0 <= int(a) < k:
                raise ValidationError(f"batch.action[{i}]", f"{a} is not an action index in [0, {k})")
            if not 0.0 < p <= 1.0:
                raise ValidationError(f"batch.propensity[{i}]", f"{p} is not in (0, 1]")
            if not math.isfinite(r):
                raise ValidationError(f"batch.reward[{i}]", f"{r} is not a finite number")
            lines = list(lines)
            lines[1 + int(a)] = f"{int(a)}:{-r!r}:{p!r} {lines[1 + int(a)]}"
            labelled.append(lines)
        with self._lock:
            for vw in self._workspaces():
                for lines in labelled:
                    vw.learn(lines)

    # ---- saving ---------------------------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return self.settings.model_dump(mode="json")

    def save_files(self, folder: Path) -> None:
        """Write the VW model (weights, learner state and its random state) as ``model.vw``.

        The model comes from the learning-only workspace, so acting never changes it. VW also resets some progress
        statistics (average loss, example counts) when it loads a model, so a model saved straight from a trained
        workspace differs in those bytes from the same model saved after a reload. To make equal policies give
        byte-identical folders (stable content hashes), the model is saved, reloaded into a scratch workspace and
        saved from there: those statistics are dropped; the weights, learner and random state are kept.
        """
        raw = folder / f".{MODEL_FILE}.raw"
        try:
            with self._lock:
                self._workspaces()[1].save(str(raw))
            scratch = self._open(raw)
            try:
                scratch.save(str(folder / MODEL_FILE))
            finally:
                scratch.finish()
        finally:
            raw.unlink(missing_ok=True)

    @classmethod
    def from_saved(cls, schema: Schema, config: dict[str, Any], folder: Path) -> VWPolicy:
        """Reload ``model.vw`` with the saved settings (``-i model.vw``); decisions match the saved policy."""
        return cls(schema, config, model_path=folder / MODEL_FILE)
