from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from rlops.explain.dependence import partial_dependence
from rlops.explain.importance import feature_importance
from rlops.explain.plots import decision_share_svg, importance_svg, nice_ticks, pdp_svg
from rlops.schema import Schema
from tests.explain.closed_form import ACTIONS, SCHEMA, data, linear, weights

NS = "{http://www.w3.org/2000/svg}"
NUMERIC_ATTRS = ("x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r", "width", "height")


def _parse(svg: str) -> ET.Element:
    assert "<script" not in svg and "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    root = ET.fromstring(svg)
    for el in root.iter():
        for name in NUMERIC_ATTRS:
            if name in el.attrib:
                assert np.isfinite(float(el.attrib[name])), (el.tag, name, el.attrib[name])
        if "d" in el.attrib:
            numbers = re.findall(r"[-+]?[0-9]*\.?[0-9]+(?:e[-+]?\d+)?|nan|inf", el.attrib["d"], flags=re.I)
            assert numbers and all(np.isfinite(float(n)) for n in numbers), el.attrib["d"]
    return root


def _by_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [el for el in root.iter(f"{NS}{tag}") if el.get("class") == cls]


def test_pdp_has_one_ice_path_per_row_and_a_bold_pd_per_action() -> None:
    pd = partial_dependence(linear(*weights()), ACTIONS, SCHEMA, data(200), "x1", n_grid=12, n_ice=25)
    root = _parse(pdp_svg(pd))
    panels = _by_class(root, "g", "panel")
    assert [p.get("data-action") for p in panels] == ACTIONS
    for panel in panels:
        assert len(_by_class(panel, "path", "ice")) == 25
        (bold,) = _by_class(panel, "path", "pd")
        assert float(bold.get("stroke-width", "0")) >= 3
        assert bold.get("d", "").count("L") == len(pd.grid) - 1  # a polyline through every grid value
        assert [t.text for t in _by_class(panel, "text", "x-label")] == ["x1"]
        assert [t.text for t in _by_class(panel, "text", "y-label")] == ["score"]
        assert _by_class(panel, "path", "rug")
    single = _parse(pdp_svg(pd, action="b"))
    assert [p.get("data-action") for p in _by_class(single, "g", "panel")] == ["b"]


def test_pdp_is_deterministic_and_escapes_text() -> None:
    schema = Schema.model_validate({
        "features": [{"name": "x", "type": "float"}],
        "actions": {"type": "discrete", "names": ["<a & b>", '"q"']},
    })
    x = np.linspace(-1, 1, 50)[:, None]
    score = lambda m: np.column_stack([m[:, 0], -m[:, 0] ** 2])  # noqa: E731
    one = partial_dependence(score, ["<a & b>", '"q"'], schema, x, "x", score_label="P(<act>)", n_ice=10)
    two = partial_dependence(score, ["<a & b>", '"q"'], schema, x, "x", score_label="P(<act>)", n_ice=10)
    svg = pdp_svg(one, title="t <script>alert(1)</script>")
    assert svg == pdp_svg(two, title="t <script>alert(1)</script>")
    root = _parse(svg)
    assert [p.get("data-action") for p in _by_class(root, "g", "panel")] == ["<a & b>", '"q"']
    assert {t.text for t in _by_class(root, "text", "y-label")} == {"P(<act>)"}


def test_categorical_pdp_draws_marks_not_lines() -> None:
    pd = partial_dependence(linear(*weights()), ACTIONS, SCHEMA, data(100), "color", n_ice=8)
    root = _parse(pdp_svg(pd))
    for panel in _by_class(root, "g", "panel"):
        ice = _by_class(panel, "path", "ice")
        assert len(ice) == 8 and all("L" not in p.get("d", "") and p.get("d", "").count("h") == 3 for p in ice)
        (bold,) = _by_class(panel, "path", "pd")
        assert bold.get("d", "").count("h") == 3
        labels = [t.text for t in panel.iter(f"{NS}text") if t.text in {"red", "green", "blue"}]
        assert labels == ["red", "green", "blue"]


def test_centered_ice_starts_every_curve_at_the_same_height() -> None:
    pd = partial_dependence(linear(*weights()), ACTIONS, SCHEMA, data(60), "x2", n_ice=10)
    root = _parse(pdp_svg(pd, action="a", centered=True))
    starts = {p.get("d", "").split(" L")[0] for p in _by_class(root, "path", "ice")}
    assert len(starts) == 1
    assert {t.text for t in _by_class(root, "text", "y-label")} == {"score (centered)"}
    assert not _by_class(_parse(pdp_svg(pd, show_ice=False)), "path", "ice")


def test_flat_scores_and_a_single_grid_value_plot_without_nan() -> None:
    flat = partial_dependence(lambda m: np.zeros((len(m), 3)), ACTIONS, SCHEMA, data(30), "x1", n_ice=5)
    _parse(pdp_svg(flat))
    _parse(decision_share_svg(flat))
    one = partial_dependence(linear(*weights()), ACTIONS, SCHEMA, data(30), "x1", grid=[0.5])
    _parse(pdp_svg(one))
    _parse(decision_share_svg(one))


def test_decision_share_lines_for_numbers_and_stacked_bars_for_categories() -> None:
    x = data(150)
    score = linear(*weights())
    numeric = _parse(decision_share_svg(partial_dependence(score, ACTIONS, SCHEMA, x, "x1", n_grid=9)))
    assert [p.get("data-action") for p in _by_class(numeric, "path", "share")] == ACTIONS
    flag = partial_dependence(score, ACTIONS, SCHEMA, x, "flag")
    bars = _by_class(_parse(decision_share_svg(flag)), "rect", "share")
    heights = {}
    for bar in bars:
        heights.setdefault(bar.get("x"), 0.0)
        heights[bar.get("x")] += float(bar.get("height", "0"))
    assert len(heights) == 2 and len({round(h, 0) for h in heights.values()}) == 1  # each bar stacks to 100%


def test_importance_bars_one_per_feature_and_a_second_panel_with_attributions() -> None:
    x = data(200)
    score = linear(*weights())
    imp = feature_importance(score, ACTIONS, SCHEMA, x, n_repeats=3)
    root = _parse(importance_svg(imp))
    assert len(_by_class(root, "rect", "bar")) == len(SCHEMA.features)
    assert len(_by_class(root, "g", "importance-panel")) == 1
    labels = [t.text for t in root.iter(f"{NS}text") if t.text in imp.ranking]
    assert labels == imp.ranking  # drawn most important first
    widths = [float(b.get("width", "0")) for b in _by_class(root, "rect", "bar")]
    assert widths == sorted(widths, reverse=True)
    with_attr = feature_importance(score, ACTIONS, SCHEMA, x, attribution=lambda m: m[:, :6] * 2.0)
    root = _parse(importance_svg(with_attr, limit=3))
    assert len(_by_class(root, "g", "importance-panel")) == 2 and len(_by_class(root, "rect", "bar")) == 6
    ignored = feature_importance(lambda m: np.zeros((len(m), 3)), ACTIONS, SCHEMA, x)
    _parse(importance_svg(ignored))  # all zero: still a valid chart


@pytest.mark.parametrize(("lo", "hi"), [(0.0, 1.0), (-3.2, 7.9), (1e-9, 3e-9), (5.0, 5.0), (-1e6, 2e6)])
def test_nice_ticks_lie_inside_the_range(lo: float, hi: float) -> None:
    ticks = nice_ticks(lo, hi)
    assert ticks and all(lo - 1e-12 <= t <= hi + 1e-12 for t in ticks) and ticks == sorted(ticks)
