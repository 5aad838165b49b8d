from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np

from rlops.explain.global_explanation import explain_policy_globally
from tests.explain.closed_form import ACTIONS, SCHEMA, Counting, data


def _by_x1_then_color(m: np.ndarray) -> np.ndarray:
    """x1 decides between a and b; blue adds to c; nothing else matters."""
    return np.column_stack([m[:, 0], np.zeros(len(m)), m[:, 6] * 0.5 - 0.3])


def test_top_features_get_partial_dependence_and_render_to_one_section() -> None:
    score = Counting(_by_x1_then_color)
    result = explain_policy_globally(score, ACTIONS, SCHEMA, data(400), top_k=2, n_grid=10, n_ice=20)
    assert result.importance.ranking[:2] == ["x1", "color"]
    assert [d.feature for d in result.dependence] == ["x1", "color"]
    assert score.calls == 2 + 2  # importance, then one per partial dependence
    html = result.to_html()
    assert html.startswith('<section class="rlops-global-explanation">') and html.endswith("</section>")
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == 1 + 2 * 2  # importance, then PD/ICE and decision shares per feature
    for svg in svgs:
        ET.fromstring(svg)
    ET.fromstring(html)  # the whole fragment is well-formed XML too
    assert "<script" not in html and html.count("<table>") == 3
    assert json.loads(json.dumps(result.to_dict()))["dependence"][1]["grid"] == ["red", "green", "blue"]


def test_vector_features_are_named_as_skipped() -> None:
    def by_emb(m: np.ndarray) -> np.ndarray:
        return np.column_stack([m[:, 7], m[:, 8], np.zeros(len(m))])

    result = explain_policy_globally(by_emb, ACTIONS, SCHEMA, data(200), top_k=1)
    assert result.importance.ranking[0] == "emb" and result.dependence == []
    assert "emb[i]" in result.skipped["emb"] and "emb[i]" in result.to_html()


def test_the_same_seed_gives_the_same_html() -> None:
    x = data(3000)
    a = explain_policy_globally(_by_x1_then_color, ACTIONS, SCHEMA, x, sample=500, seed=2).to_html()
    b = explain_policy_globally(_by_x1_then_color, ACTIONS, SCHEMA, x, sample=500, seed=2).to_html()
    assert a == b and "Over 500 rows (seed 2)" in a
