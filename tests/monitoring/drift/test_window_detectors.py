"""Action shift and propensity collapse: what each window is judged on, and where detections land."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from rlops.errors import ValidationError
from rlops.monitoring.drift import ActionShift, PropensityCollapse


def test_action_shift_reports_the_last_decision_of_each_window_past_the_threshold() -> None:
    detector = ActionShift([0.5, 0.5], window=4, threshold=0.3)
    found = detector.update_many([0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 0])
    assert found.tolist() == [7]  # windows [0,1,0,1] (distance 0) and [0,0,0,0] (0.56); the third is unfinished
    assert detector.last_distance == pytest.approx(float(jensenshannon([0.5, 0.5], [1, 0], base=2)))
    assert detector.update_many([1]).tolist() == []  # completes [1,1,0,1]
    assert detector.last_distance == pytest.approx(float(jensenshannon([0.5, 0.5], [1, 3], base=2)))


def test_action_shift_refuses_unknown_actions() -> None:
    with pytest.raises(ValidationError) as raised:
        ActionShift([1, 1, 1]).update_many([0, 2, 3])
    assert raised.value.field == "actions[2]"
    with pytest.raises(ValidationError) as raised:
        ActionShift([1, 1]).update_many([0.5])
    assert raised.value.field == "actions[0]"
    with pytest.raises(ValidationError, match="reference"):
        ActionShift([0, 0])


def test_propensity_collapse_on_min_propensity_and_ess() -> None:
    detector = PropensityCollapse(window=4, min_propensity=0.01, min_ess_fraction=0.5)
    found = detector.update_many([0.5, 0.5, 0.5, 0.5, 0.5, 0.005, 0.5, 0.5, 0.9, 0.9, 0.9, 0.05])
    weights = 1 / np.array([0.9, 0.9, 0.9, 0.05])
    ess = weights.sum() ** 2 / (4 * (weights**2).sum())
    assert ess < 0.5
    assert found.tolist() == [7, 11]
    assert detector.last_min_propensity == 0.05
    assert detector.last_ess_fraction == pytest.approx(ess)


def test_propensities_outside_the_unit_interval_are_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        PropensityCollapse().update_many([0.5, 0.0])
    assert raised.value.field == "propensities[1]"
    with pytest.raises(ValidationError):
        PropensityCollapse().update_many([1.5])
