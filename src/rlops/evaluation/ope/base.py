"""The ``Estimator`` protocol, and the one path every estimator takes from its per-unit terms to an ``Estimate``."""

from __future__ import annotations

from typing import Protocol, TypeVar, runtime_checkable

from rlops.evaluation.ope.intervals import Terms, compute_interval
from rlops.evaluation.ope.result import Estimate, IntervalSpec
from rlops.evaluation.ope.support import Support

DataT_contra = TypeVar("DataT_contra", contravariant=True)

#: The default interval: a two-sided 95% normal-approximation interval.
DEFAULT_INTERVAL = IntervalSpec()


@runtime_checkable
class Estimator(Protocol[DataT_contra]):
    """Estimates a target policy's value from logged data.

    Bandit estimators take :class:`~rlops.evaluation.ope.data.BanditData`, sequential ones
    :class:`~rlops.evaluation.ope.episodes.EpisodeData`. Estimators are configured on construction (their
    hyperparameters are dataclass fields) and are deterministic: the same data and ``interval`` (whose ``seed``
    drives any resampling) give the same result.
    """

    @property
    def name(self) -> str:
        """Short, stable identifier, e.g. ``"snips"``."""
        ...

    def estimate(self, data: DataT_contra, interval: IntervalSpec = DEFAULT_INTERVAL) -> Estimate:
        """The target policy's estimated value with the requested interval and support diagnostics."""
        ...


def finish(name: str, terms: Terms, support: Support, interval: IntervalSpec) -> Estimate:
    """Turn an estimator's per-unit terms and the data's support diagnostics into an :class:`Estimate`."""
    value = terms.value()
    se = terms.std_error()
    return Estimate(
        estimator=name,
        value=value,
        interval=compute_interval(terms, value, se, interval, name),
        std_error=se,
        n=terms.n,
        ess=support.ess,
        max_weight=support.max_weight,
        warnings=support.warnings,
    )
