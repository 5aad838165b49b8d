"""The edge runtime: serve an exported policy with numpy and onnxruntime only (no torch, no SB3, no service).

Example:
    >>> policy = EdgePolicy.load("model.onnx", seed=0, log="decisions.jsonl")   # doctest: +SKIP
    >>> d = policy.decide({"age": 31, "segment": "north"}, unit_id="user-7")     # doctest: +SKIP
    >>> d.action, d.propensity, d.decision_id                                    # doctest: +SKIP
    ('show_b', 0.85, '01JD5V9Q3W6Z0V4Q7X8Y2K1M3N')
    >>> batch = policy.decide_batch({"age": ages, "segment": segments})          # doctest: +SKIP
    >>> batch.action_index, batch.propensity                                     # numpy arrays  # doctest: +SKIP

Later, on a machine with the home folder: ``rlops events ingest decisions.jsonl --home HOME``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlops.edge.contexts import ContextEncoder
from rlops.edge.ids import new_ids
from rlops.edge.log import DecisionLog, encode_line
from rlops.edge.manifest import EdgeManifest, RuleSpec, read_manifest
from rlops.edge.rules import RuleResult
from rlops.errors import ConfigError, DependencyNotInstalled, ValidationError
from rlops.schema import Schema

MAX_UNIT_ID = 256
#: The mode edge decisions are logged with: they were returned to the caller.
SERVED = "served"


@dataclass(frozen=True)
class EdgeDecision:
    """One decision, as :class:`rlops.engine.Decision` reports it.

    Attributes:
        decision_id: time-ordered unique id (the event log's layout), to report outcomes against.
        policy_version: the exported policy's version (``DEPLOYMENT@rN``).
        action: the chosen action's name, or its vector for box actions.
        action_index: index of the chosen action (-1 for box actions).
        propensity: the probability the policy gave the chosen action (a density for box actions; 1.0 when
            deterministic).
        probabilities: the full distribution by action name (discrete actions), else ``None``.
        latency_us: model time per decision, microseconds.
    """

    decision_id: str
    policy_version: str
    action: str | list[float]
    action_index: int
    propensity: float
    probabilities: dict[str, float] | None
    latency_us: int


@dataclass(frozen=True)
class EdgeBatch:
    """Decisions for a batch of contexts, as arrays (row ``i`` is context ``i``).

    Attributes:
        decision_ids: one id per row.
        policy_version: the exported policy's version.
        actions: the action names (empty for box actions).
        action_index: int64 ``(n,)`` chosen indices (-1 for box actions).
        action_vectors: float64 ``(n, dim)`` for box actions, else ``None``.
        propensity: float64 ``(n,)``.
        probabilities: float64 ``(n, K)`` for discrete actions, else ``None``.
        latency_us: model time per decision, microseconds.
    """

    decision_ids: list[str]
    policy_version: str
    actions: list[str]
    action_index: np.ndarray
    action_vectors: np.ndarray | None
    propensity: np.ndarray
    probabilities: np.ndarray | None
    latency_us: int

    def __len__(self) -> int:
        return len(self.decision_ids)

    def chosen(self) -> list[str]:
        """The chosen action's name per row (discrete actions)."""
        names = self.actions
        return [names[i] for i in self.action_index.tolist()]

    def __getitem__(self, i: int) -> EdgeDecision:
        probabilities = None
        if self.probabilities is not None:
            probabilities = dict(zip(self.actions, self.probabilities[i].tolist(), strict=True))
        index = int(self.action_index[i])
        action: str | list[float] = (self.actions[index] if self.action_vectors is None
                                     else self.action_vectors[i].tolist())
        return EdgeDecision(self.decision_ids[i], self.policy_version, action, index, float(self.propensity[i]),
                            probabilities, self.latency_us)


def _session(model: Path, threads: int) -> Any:
    try:
        import onnxruntime
    except ImportError as e:  # pragma: no cover - onnxruntime is a dependency
        raise DependencyNotInstalled("the edge runtime needs onnxruntime: pip install onnxruntime") from e
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for a bad graph
        raise ConfigError(f"{model}: onnxruntime cannot load the graph: {e}") from e


class EdgePolicy:
    """An exported policy, served in process.

    Build with :meth:`load`. Thread-safe: the graph runs concurrently, and draws from the policy's own generator
    are serialised.

    Args:
        manifest: the export's manifest.
        session: an ``onnxruntime.InferenceSession`` of its graph.
        seed: seed of the policy's own random generator (used when ``decide`` gets no ``rng``); None: fresh entropy.
        log: where to append decisions (see :mod:`rlops.edge.log`); None: decisions are not logged.
    """

    def __init__(self, manifest: EdgeManifest, session: Any, *, seed: int | None = None,
                 log: DecisionLog | None = None) -> None:
        self.manifest = manifest
        self.schema: Schema = manifest.schema_
        self.rule: RuleSpec = manifest.exploration
        self.actions = list(manifest.actions)
        self.policy_version = manifest.policy_version
        self.log = log
        self._session = session
        self._input = manifest.model.input
        self._outputs = list(self.rule.outputs)
        self._encoder = ContextEncoder(self.schema, manifest.preprocessing.columns)
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()
        self._is_box = self.schema.is_continuous
        self._check_graph()

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, seed: int | None = None,
             log: str | os.PathLike[str] | None = None, fsync: bool = False, threads: int = 1) -> EdgePolicy:
        """Load an export (the ``.onnx`` file or its manifest), verifying the model file's SHA-256.

        Args:
            path: ``model.onnx`` or ``model.manifest.json``.
            seed: seed of the policy's random generator; None: fresh entropy.
            log: a decision log file to append to (created if missing); None: no logging.
            fsync: sync every log line to stable storage (see :class:`~rlops.edge.log.DecisionLog`).
            threads: onnxruntime intra-op threads, default 1 (small graphs run fastest on one).

        Raises:
            NotFoundError: the manifest or model file is missing.
            ConfigError: the manifest is malformed, or the model file does not match its hash.
        """
        manifest, model = read_manifest(path)
        session = _session(model, threads)
        return cls(manifest, session, seed=seed, log=None if log is None else DecisionLog(log, fsync=fsync))

    def _check_graph(self) -> None:
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = {o.name for o in self._session.get_outputs()}
        if inputs != [self._input] or not set(self._outputs) <= outputs:
            raise ConfigError(f"the graph has inputs {inputs} and outputs {sorted(outputs)}; the manifest's rule "
                              f"'{self.rule.rule}' needs input {self._input!r} and outputs {self._outputs}")

    # ---- deciding ---------------------------------------------------------------------------------------------

    def outputs(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph on a raw input matrix (see :mod:`rlops.edge.layout`): the rule's outputs by name."""
        values = self._session.run(self._outputs, {self._input: np.ascontiguousarray(raw, dtype=np.float64)})
        return dict(zip(self._outputs, values, strict=True))

    def _act(self, raw: np.ndarray, rng: np.random.Generator | int | None) -> tuple[RuleResult, int]:
        started = time.perf_counter_ns()
        outputs = self.outputs(raw)
        if rng is None:
            with self._rng_lock:
                result = self.rule.act(outputs, self._rng)
        else:
            result = self.rule.act(outputs, rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng))
        return result, (time.perf_counter_ns() - started) // 1000 // max(raw.shape[0], 1)

    def decide(self, context: Any, *, unit_id: str = "", rng: np.random.Generator | int | None = None
               ) -> EdgeDecision:
        """Choose an action for one context (validated against the schema) and log it, if logging.

        Args:
            context: the raw context features.
            unit_id: the subject of the decision (sticky routing and erasure key once ingested), default "".
            rng: a generator or a seed to draw from; default the policy's own generator.

        Raises:
            ValidationError: the context breaks the schema (the message names the field and the rule).
            StorageError: the decision could not be logged (it is then not returned).
        """
        valid = self._encoder.validate_rows([context], path="context")
        raw = self._encoder.raw_from_valid(valid)
        unit = _check_unit(unit_id, "unit_id")
        columns = {name: [value] for name, value in valid[0].items()}
        return self._finish(raw, columns, [unit], rng)[0]

    def decide_batch(self, contexts: Sequence[Any] | Mapping[str, Any], *, unit_ids: Sequence[str] | None = None,
                     rng: np.random.Generator | int | None = None) -> EdgeBatch:
        """Choose an action for every context at once: one graph run, vectorised sampling, one log line.

        Args:
            contexts: a list of context dicts, or columns: ``{feature: list or numpy array}`` of equal lengths
                (a missing column takes the feature's default).
            unit_ids: one per context; default "" for every one.
            rng: a generator or a seed to draw from; default the policy's own generator.

        Raises:
            ValidationError: a context breaks the schema (named ``contexts[i].field`` or ``contexts.field[i]``), or
                ``unit_ids`` does not match; nothing is decided or logged.
            StorageError: the decisions could not be logged (they are then not returned).
        """
        columns: Mapping[str, Any]
        if isinstance(contexts, Mapping):
            raw, columns = self._encoder.encode_columns(contexts)
        elif isinstance(contexts, Sequence) and not isinstance(contexts, str | bytes):
            raw, columns = self._encoder.encode_rows(contexts)
        else:
            raise ValidationError("contexts", f"expected a list of contexts or a mapping of feature columns, got "
                                              f"{type(contexts).__name__}")
        n = raw.shape[0]
        if n == 0:
            raise ValidationError("contexts", "expected at least one context")
        if unit_ids is None:
            units: list[str] = [""] * n
        else:
            if isinstance(unit_ids, str | bytes) or not isinstance(unit_ids, Sequence) or len(unit_ids) != n:
                raise ValidationError("unit_ids", f"expected {n} unit ids, one per context")
            units = list(unit_ids)
            if not set(map(type, units)) <= {str} or max(map(len, units)) > MAX_UNIT_ID:
                for i, unit in enumerate(units):
                    _check_unit(unit, f"unit_ids[{i}]")
        return self._finish(raw, columns, units, rng)

    def _finish(self, raw: np.ndarray, columns: Mapping[str, Any], units: list[str],
                rng: np.random.Generator | int | None) -> EdgeBatch:
        result, latency_us = self._act(raw, rng)
        n = raw.shape[0]
        ids = new_ids(n)
        if self._is_box:
            index, vectors = np.full(n, -1, dtype=np.int64), result.action
        else:
            index, vectors = result.action, None
        batch = EdgeBatch(ids, self.policy_version, self.actions, index, vectors, result.propensity,
                          result.probabilities, latency_us)
        if self.log is not None:
            self._log(self.log, batch, columns, units)
        return batch

    def _log(self, log: DecisionLog, batch: EdgeBatch, columns: Mapping[str, Any], units: list[str]) -> None:
        propensity = batch.propensity
        if not bool(np.all((propensity > 0) & np.isfinite(propensity))):
            row = int(np.flatnonzero(~((propensity > 0) & np.isfinite(propensity)))[0])
            raise ValidationError(f"decisions[{row}].propensity", f"must be a finite number > 0 to be logged, got "
                                                                  f"{float(propensity[row])!r}")
        line = encode_line(deployment=self.manifest.deployment, policy_version=self.policy_version, mode=SERVED,
                           ts=time.time_ns() // 1000, latency_us=batch.latency_us, actions=self.actions,
                           decision_ids=batch.decision_ids, unit_ids=units, context=dict(columns),
                           propensity=propensity, action_index=None if self._is_box else batch.action_index,
                           action=batch.action_vectors, probabilities=batch.probabilities)
        log.append(line)

    def close(self) -> None:
        """Close the decision log, if any."""
        if self.log is not None:
            self.log.close()

    def __enter__(self) -> EdgePolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_unit(unit_id: Any, field: str) -> str:
    if not isinstance(unit_id, str) or len(unit_id) > MAX_UNIT_ID:
        raise ValidationError(field, f"expected a string of at most {MAX_UNIT_ID} characters")
    return unit_id
