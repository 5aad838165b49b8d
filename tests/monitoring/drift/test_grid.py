"""KS and Wasserstein from grid tallies against scipy, including ties, tails and crowded cells."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rlops.monitoring.drift.grid import GridLocator, ks_statistic, wasserstein


def _distances(reference: npt.NDArray[np.float64], live: npt.NDArray[np.float64]) -> tuple[float, float]:
    grid = np.unique(reference)
    cdf = np.searchsorted(np.sort(reference), grid, side="right") / reference.size
    locator = GridLocator([grid])
    tallies = locator.tallies()
    locator.accumulate(live[:, None], tallies)
    cells = GridLocator.cells(tallies[0])
    assert cells.n == live.size
    return ks_statistic(grid, cdf, cells), wasserstein(grid, cdf, cells)


CASES = {
    "shifted normal": (lambda r: r.normal(size=2000), lambda r: r.normal(0.3, 1, size=500)),
    "integers with ties": (lambda r: r.integers(0, 5, 2000).astype(float),
                           lambda r: r.integers(0, 6, 3000).astype(float)),
    "heavy tail": (lambda r: r.lognormal(0, 2, 2000), lambda r: r.lognormal(0.2, 2, 800)),
    "constant reference": (lambda r: np.full(100, 3.0), lambda r: r.normal(3, 1, 50)),
    "disjoint": (lambda r: r.normal(size=300), lambda r: r.normal(5, 1, 200)),
    "live inside one cell": (lambda r: np.array([0.0, 10.0]), lambda r: r.uniform(2, 3, 40)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ks_and_wasserstein_equal_scipy(case: str) -> None:
    make_reference, make_live = CASES[case]
    rng = np.random.default_rng(7)
    reference, live = make_reference(rng), make_live(rng)
    ks, w = _distances(reference, live)
    assert ks == pytest.approx(stats.ks_2samp(reference, live).statistic, abs=1e-12)
    if case != "live inside one cell":  # several live values crossing F in one cell: taken at their mean
        assert w == pytest.approx(stats.wasserstein_distance(reference, live), rel=1e-9)


def test_wasserstein_is_close_when_many_values_share_a_cell() -> None:
    rng = np.random.default_rng(3)
    reference, live = rng.normal(size=2000), rng.normal(size=200_000)
    ks, w = _distances(reference, live)
    assert ks == pytest.approx(stats.ks_2samp(reference, live).statistic, abs=1e-12)
    assert w == pytest.approx(stats.wasserstein_distance(reference, live), abs=5e-5)


def test_columns_located_together_match_columns_located_alone() -> None:
    rng = np.random.default_rng(5)
    grids = [np.unique(rng.normal(size=500)), np.unique(rng.integers(0, 3, 50).astype(float)), np.array([1.0]),
             np.unique(np.r_[np.zeros(10), np.linspace(0, 1e-9, 50), 100.0])]  # the last crowds a few cells
    block = np.stack([rng.normal(size=3000), rng.integers(-1, 4, 3000).astype(float), rng.normal(1, 1, 3000),
                      rng.uniform(-1e-9, 2e-9, 3000)], axis=1)
    together = GridLocator(grids)
    index, gap = together.locate(block)
    for c, grid in enumerate(grids):
        expected = np.searchsorted(grid, block[:, c], side="left")
        assert np.array_equal(index[:, c], expected)
        anchor = grid[np.minimum(expected, grid.size - 1)]
        assert np.array_equal(gap[:, c], anchor - block[:, c])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's p-value for tiny samples; only the statistic is used
@settings(max_examples=60, deadline=None)
@given(reference=st.lists(st.integers(-20, 20), min_size=1, max_size=60),
       live=st.lists(st.integers(-25, 25), min_size=1, max_size=60), scale=st.sampled_from([1.0, 0.1, 1e6]))
def test_ks_and_wasserstein_equal_scipy_on_any_small_samples(reference: list[int], live: list[int],
                                                           scale: float) -> None:
    ref = np.array(reference, dtype=float) * scale
    new = np.array(live, dtype=float) * scale + 0.5 * scale * (np.arange(len(live)) % 2)  # on and off the grid
    ks, w = _distances(ref, new)
    assert ks == pytest.approx(stats.ks_2samp(ref, new, method="asymp").statistic, abs=1e-12)
    # Exact except in cells where several live values cross F; the error there is at most the live mass in the cell
    # times its width, so the sum of that over all interior cells bounds it.
    grid = np.unique(ref)
    index = np.searchsorted(grid, new, side="left")
    inside = (index > 0) & (index < grid.size) & (grid[np.minimum(index, grid.size - 1)] != new)
    bound = float(np.sum(grid[index[inside]] - grid[index[inside] - 1])) / new.size
    assert abs(w - stats.wasserstein_distance(ref, new)) <= bound + 1e-9 * scale
