"""What the offline learners share: seeded torch MLPs, input standardisation, and the bridge to :class:`MLPPolicy`.

Every fit builds its network under ``torch.random.fork_rng`` with the fit's seed and draws minibatches from its own
``torch.Generator``, so the same data, config and seed give the same weights, and torch's global random state is
left alone. Fits run with ``threads`` intra-op threads (default 1: bit-identical results, polite on shared
machines) and restore the caller's setting afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from rlops.errors import ValidationError
from rlops.evaluation.ope.fqe import mlp
from rlops.policies.mlp import MLPPolicy

#: ``progress(done, total)``: called as training advances (the CLI draws a progress bar with it).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Standardiser:
    """Per-column ``(x - mean) / scale``; constant columns keep scale 1."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardiser:
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > 1e-12, std, 1.0))

    def tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((x - self.mean) / self.scale, dtype=torch.float32)


def check_common(hidden: tuple[int, ...], steps: int, batch_size: int, learning_rate: float, threads: int) -> None:
    """Validate the settings every network fit shares, naming the field."""
    if any(int(h) < 1 for h in hidden):
        raise ValidationError("hidden", f"layer widths must be >= 1, got {hidden!r}")
    if steps < 1:
        raise ValidationError("steps", f"must be >= 1, got {steps!r}")
    if batch_size < 1:
        raise ValidationError("batch_size", f"must be >= 1, got {batch_size!r}")
    if not (learning_rate > 0 and np.isfinite(learning_rate)):
        raise ValidationError("learning_rate", f"must be a finite number > 0, got {learning_rate!r}")
    if threads < 1:
        raise ValidationError("threads", f"must be >= 1, got {threads!r}")


def build(n_in: int, n_out: int, hidden: tuple[int, ...], seed: int) -> torch.nn.Module:
    """A ReLU MLP with seeded initial weights (torch's global random state is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return mlp(tuple(int(h) for h in hidden))(n_in, n_out)


def linear_layers(net: torch.nn.Module) -> list[torch.nn.Linear]:
    return [m for m in net.modules() if isinstance(m, torch.nn.Linear)]


def to_arrays(net: torch.nn.Module) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The network's ``(weights, biases)`` as float64 arrays, first layer first (as :class:`MLPPolicy` takes)."""
    layers = linear_layers(net)
    return ([layer.weight.detach().numpy().astype(np.float64) for layer in layers],
            [layer.bias.detach().numpy().astype(np.float64) for layer in layers])


def load_arrays(net: torch.nn.Module, weights: list[np.ndarray], biases: list[np.ndarray]) -> None:
    """Copy a parent's weights into ``net`` (warm start), refusing another architecture."""
    layers = linear_layers(net)
    shapes = [tuple(layer.weight.shape) for layer in layers]
    given = [tuple(w.shape) for w in weights]
    if shapes != given:
        raise ValidationError("parent", f"the parent network's layers {given} differ from this fit's {shapes}; "
                                        f"use the parent's hidden sizes or fit from scratch")
    with torch.no_grad():
        for layer, w, b in zip(layers, weights, biases, strict=True):
            layer.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
            layer.bias.copy_(torch.as_tensor(b, dtype=torch.float32))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def report(progress: Progress | None, done: int, total: int, every: int = 50) -> None:
    """Call ``progress`` every ``every`` steps and at the end."""
    if progress is not None and (done % every == 0 or done == total):
        progress(done, total)


@dataclass(frozen=True)
class NetworkFit:
    """A network-based policy fitted offline, and how its training went.

    Attributes:
        policy: the servable policy (kind ``mlp``).
        losses: mean training loss over each tenth of the steps (first to last), in the learner's loss units.
        n_rows: logged rows (transitions) trained on.
        n_episodes: episodes among them (1 per row for behaviour cloning from a bandit-like log).
        warm_start: True when the network started from a parent's weights.
    """

    policy: MLPPolicy
    losses: tuple[float, ...]
    n_rows: int
    n_episodes: int
    warm_start: bool


def loss_curve(losses: list[float]) -> tuple[float, ...]:
    """Mean loss over each tenth of training (fewer chunks for fewer steps)."""
    chunks = np.array_split(np.asarray(losses, dtype=np.float64), min(10, len(losses)))
    return tuple(float(c.mean()) for c in chunks if c.size)
