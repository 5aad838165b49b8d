"""PSI, Jensen-Shannon and Cramér's V against hand computations and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats.contingency import association

from rlops.errors import ValidationError
from rlops.monitoring.drift import cramers_v, jensen_shannon, psi


def test_psi_of_two_known_histograms_by_hand() -> None:
    reference = [25, 25, 50]  # proportions 0.25 0.25 0.5
    live = [10, 40, 50]  # 0.1 0.4 0.5
    by_hand = (0.1 - 0.25) * math.log(0.1 / 0.25) + (0.4 - 0.25) * math.log(0.4 / 0.25) + 0.0
    assert psi(reference, live) == pytest.approx(by_hand, abs=1e-15)
    assert psi(reference, live) == pytest.approx(0.2079441541679836, abs=1e-12)


def test_psi_floors_empty_bins_at_epsilon() -> None:
    value = psi([50, 50], [100, 0], epsilon=1e-4)
    by_hand = (1.0 - 0.5) * math.log(1.0 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert value == pytest.approx(by_hand)
    assert psi([1, 2, 3], [1, 2, 3]) == 0.0


def test_jensen_shannon_equals_scipy_base_2() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        p, q = rng.integers(0, 50, size=8), rng.integers(0, 50, size=8)
        p[0] += 1
        q[1] += 1
        assert jensen_shannon(p, q) == pytest.approx(float(jensenshannon(p, q, base=2)), abs=1e-12)
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert jensen_shannon([3, 1], [6, 2]) == pytest.approx(0.0, abs=1e-8)


def test_cramers_v_equals_scipy_when_the_samples_have_the_same_size() -> None:
    reference = np.array([30, 50, 20])
    live = np.array([45, 25, 30])  # both 100
    expected = association(np.stack([reference, live]), method="cramer")
    assert cramers_v(reference, live) == pytest.approx(expected, abs=1e-12)


def test_cramers_v_does_not_depend_on_sample_sizes() -> None:
    assert cramers_v([300, 500, 200], [45, 25, 30]) == pytest.approx(cramers_v([30, 50, 20], [45, 25, 30]))
    assert cramers_v([1, 0], [0, 1]) == pytest.approx(1.0)


@pytest.mark.parametrize("function", [psi, jensen_shannon, cramers_v])
def test_bad_histograms_name_the_argument(function: object) -> None:
    with pytest.raises(ValidationError, match="live"):
        function([1, 2], [1, 2, 3])  # type: ignore[operator]
    with pytest.raises(ValidationError, match="reference"):
        function([0, 0], [1, 2])  # type: ignore[operator]
    with pytest.raises(ValidationError, match="live"):
        function([1, 2], [1, -2])  # type: ignore[operator]
