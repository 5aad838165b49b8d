"""One shared suite every streaming detector passes (the river ``check_estimator`` idea).

Each case says how to build the detector, which constant it should stay quiet on, a stream with a large shift it
must detect after the shift, and one bad parameter that must be refused by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from rlops.errors import ValidationError
from rlops.monitoring.drift import (
    ADWIN,
    CUSUM,
    ActionShift,
    DriftDetector,
    PageHinkley,
    PropensityCollapse,
    StreamDetector,
)

Stream = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Case:
    make: Callable[..., StreamDetector]
    constant: float
    shifted: Callable[[np.random.Generator], tuple[Stream, int]]  # the stream and where its shift starts
    bad: dict[str, Any]


def _mean_shift(rng: np.random.Generator) -> tuple[Stream, int]:
    return np.r_[rng.normal(0, 1, 3000), rng.normal(4, 1, 3000)], 3000


def _actions(rng: np.random.Generator) -> tuple[Stream, int]:
    return np.r_[rng.integers(0, 4, 3000), np.full(3000, 3)].astype(float), 3000


def _propensities(rng: np.random.Generator) -> tuple[Stream, int]:
    return np.r_[rng.uniform(0.2, 0.3, 3000), rng.uniform(1e-5, 1e-4, 3000)], 3000


CASES = {
    "page_hinkley": Case(lambda: PageHinkley(threshold=50.0), 3.0, _mean_shift, {"threshold": -1.0}),
    "page_hinkley_no_forgetting": Case(lambda: PageHinkley(alpha=1.0), -2.5, _mean_shift, {"alpha": 1.5}),
    "adwin": Case(lambda: ADWIN(), 0.7, _mean_shift, {"delta": 1.5}),
    "adwin_every_observation": Case(lambda: ADWIN(clock=1), 0.7, _mean_shift, {"clock": 0}),
    "cusum": Case(lambda: CUSUM(h=8.0), 10.0, _mean_shift, {"h": 0.0}),
    "cusum_known_target": Case(lambda: CUSUM(target=0.0, sigma=1.0), 0.0, _mean_shift, {"sigma": -1.0}),
    "action_shift": Case(lambda: ActionShift([1, 1, 1, 1], window=500), 0.0, _actions, {"window": 0}),
    "propensity_collapse": Case(lambda: PropensityCollapse(window=500), 0.5, _propensities,
                                {"min_ess_fraction": 2.0}),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


def test_follows_the_protocol(case: Case) -> None:
    detector = case.make()
    assert isinstance(detector, DriftDetector)
    assert detector.n_seen == 0


def test_no_detection_on_a_constant_stream(case: Case) -> None:
    detector = case.make()
    if isinstance(detector, ActionShift):  # the reference is uniform: a constant action is a shift
        detector = ActionShift([0, 0, 0, 1], window=500)
        constant = 3.0
    else:
        constant = case.constant
    assert detector.update_many(np.full(20_000, constant)).size == 0
    assert detector.n_seen == 20_000


def test_detects_a_large_shift_soon_after_it(case: Case) -> None:
    stream, change = case.shifted(np.random.default_rng(1))
    found = case.make().update_many(stream)
    after = found[found >= change]
    assert after.size > 0
    assert after[0] - change < 1000


def test_deterministic(case: Case) -> None:
    stream, _ = case.shifted(np.random.default_rng(2))
    assert np.array_equal(case.make().update_many(stream), case.make().update_many(stream))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunks_give_the_same_detections_as_the_whole_stream(case: Case, seed: int) -> None:
    rng = np.random.default_rng(seed)
    stream, _ = case.shifted(rng)
    stream = np.r_[stream, stream[::-1], stream]  # several changes
    whole = case.make().update_many(stream)
    detector = case.make()
    cuts = np.sort(rng.choice(np.arange(1, stream.size), size=40, replace=False))
    chunked, offset = [], 0
    for part in np.split(stream, cuts):
        chunked.extend((detector.update_many(part) + offset).tolist())
        offset += part.size
    assert chunked == whole.tolist()
    assert whole.size > 0
    one_by_one = case.make()
    head = stream[:700]
    singles = [i for i, value in enumerate(head) if one_by_one.update(float(value))]
    assert singles == whole[whole < 700].tolist()


def test_reset_forgets_everything(case: Case) -> None:
    stream, _ = case.shifted(np.random.default_rng(4))
    detector = case.make()
    first = detector.update_many(stream)
    detector.update_many(stream[:1234])
    detector.reset()
    assert detector.n_seen == 0
    assert np.array_equal(detector.update_many(stream), first)


def test_bad_parameters_raise_naming_the_field(case: Case) -> None:
    ((name, value),) = case.bad.items()
    factory = case.make
    detector = factory()
    kwargs = {name: value}
    if isinstance(detector, ActionShift):
        kwargs["reference"] = [1, 1]
    with pytest.raises(ValidationError) as raised:
        type(detector)(**kwargs)
    assert raised.value.field == name


def test_non_finite_values_are_refused_by_position(case: Case) -> None:
    detector = case.make()
    with pytest.raises(ValidationError) as raised:
        detector.update_many([case.constant, float("nan")])
    assert raised.value.field.endswith("[1]")
    assert detector.n_seen == 0
    with pytest.raises(ValidationError):
        detector.update_many(np.zeros((2, 2)))
