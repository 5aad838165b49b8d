"""The validation report: well-formed, self-contained HTML with plots, and JSON with every number."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from rlops.evaluation.report import render_html, write_report
from rlops.evaluation.svg import IntervalRow, interval_chart


def _results() -> dict[str, Any]:
    interval = {"estimate": 1.0, "low": 0.5, "high": 1.5, "level": 0.95}
    variation = {"candidate": {"mean_return": interval, "cvar": 0.2, "violation_rate": 0.0},
                 "baseline": {"mean_return": {**interval, "estimate": 0.8}, "cvar": 0.1, "violation_rate": 0.01},
                 "difference": {**interval, "estimate": 0.2, "low": -0.1, "high": 0.5}}
    return {
        "status": "warn", "command": "rlops validate --policy p --events e",
        "policy": {"path": "/tmp/p<script>", "kind": "linucb", "hash": "abc123"},
        "gates": [{"gate": {"name": "dr beats logging"}, "status": "pass", "reason": "0.3 > 0.25"},
                  {"gate": {"name": "latency"}, "status": "warn", "reason": "close"}],
        "data": {"rows": 1000, "checks": [{"check": "missing", "subject": "age", "status": "warn",
                                           "message": "2% lack it"}, {"check": "x", "subject": "y",
                                                                      "status": "pass", "message": ""}]},
        "ope": {"logging": {"value": 0.25, "interval": {"low": 0.2, "high": 0.3}},
                "estimates": {"dr": {"value": 0.31, "interval": {"low": 0.27, "high": 0.35}, "ess": 800.0,
                                     "max_weight": 4.0, "warnings": []},
                              "ips": {"value": math.nan, "interval": {"low": 0.1, "high": math.inf}, "ess": 10.0,
                                      "max_weight": 90.0, "warnings": ["low_ess"]}}},
        "stress": {"scenario": "rlops/Hvac-v0", "variations": {"nominal": variation, "noise": variation}},
        "budget": {"measurement": {"batch_size": 64, "p50_ms": 0.1, "p99_ms": 0.4, "batch_p50_ms": 1.0,
                                   "batch_p99_ms": 2.0, "latency_histogram": {"edges": [0, 0.1, 0.2, 0.3],
                                                                              "counts": [5, 20, 3]}},
                   "items": [{"name": "p99_ms", "measured": 0.4, "limit": 2.0, "unit": "ms", "status": "pass"}]},
    }


def test_html_is_self_contained_with_well_formed_plots() -> None:
    html = render_html(_results())
    assert "<script" not in html.replace("&lt;script", "")  # the policy path is escaped, never run
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # loads nothing
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == 4  # OPE intervals, stress intervals, latency bars, latency histogram
    for svg in svgs:
        ET.fromstring(svg)  # well-formed XML, or this raises
    assert html.count("<circle") == 1 + 1 + 4  # dr, logging (ips is nan: no point), 2 variations x 2 controllers
    assert "dr beats logging" in html and "low_ess" in html and "2% lack it" in html
    assert ">x<" not in html  # passing data checks are counted, not listed


def test_missing_sections_say_so() -> None:
    html = render_html({"status": "pass", "policy": {"path": "p"}})
    for phrase in ("No gates were declared", "No off-policy evaluation", "No scenario stress suite",
                   "No resource measurement"):
        assert phrase in html


def test_written_files_hold_every_number_and_no_nan(tmp_path: Path) -> None:
    json_path, html_path = write_report(_results(), tmp_path / "out")
    data = json.loads(json_path.read_text())  # strict JSON: NaN and infinity became null
    assert data["ope"]["estimates"]["ips"]["value"] is None and data["ope"]["estimates"]["dr"]["value"] == 0.31
    assert html_path.read_text().startswith("<!doctype html>")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.json"]


def test_interval_chart_places_points_in_order() -> None:
    svg = interval_chart("t", [IntervalRow("a", 1.0, 0.0, 2.0), IntervalRow("b", 3.0, 2.5, 3.5)])
    xs = [float(x) for x in re.findall(r'<circle cx="([0-9.]+)"', svg)]
    assert len(xs) == 2 and xs[0] < xs[1]
