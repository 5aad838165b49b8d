"""The validation report: ``report.json`` (every number) and a self-contained ``report.html`` (tables and plots).

The HTML has no scripts and loads nothing: the plots are inline SVG (:mod:`rlops.evaluation.svg`), so the file
can be mailed, archived with a model card, or opened on a machine with no network.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from rlops.evaluation.svg import COLORS, IntervalRow, bar_chart, histogram, interval_chart
from rlops.files import write_atomic

_BADGE = {"pass": "#2f855a", "warn": "#b7791f", "fail": "#c53030", "skip": "#718096"}

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:860px;color:#1a202c;line-height:1.45}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #e2e8f0}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.6rem 0}
th,td{padding:.3rem .5rem;border-bottom:1px solid #edf2f7;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;color:#fff;border-radius:3px;padding:0 .4rem;font-size:.8rem;font-weight:bold}
code{background:#f7fafc;padding:0 .2rem} .muted{color:#718096}
"""


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return escape(str(value))
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1000 else f"{value:.{digits}g}"


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{_BADGE.get(status, "#718096")}">{escape(status.upper())}</span>'


def _table(header: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _gates(results: Mapping[str, Any]) -> str:
    gates = results.get("gates") or []
    if not gates:
        return "<p class='muted'>No gates were declared.</p>"
    rows = [[escape(g["gate"]["name"]), _badge(g["status"]), escape(g["reason"])] for g in gates]
    return _table(["gate", "status", "the numbers"], rows)


def _data(results: Mapping[str, Any]) -> str:
    data = results.get("data")
    if not data:
        return "<p class='muted'>No logged data was checked.</p>"
    flagged = [c for c in data.get("checks", []) if c["status"] != "pass"]
    text = f"<p>{_num(data.get('rows'))} interactions; {len(data.get('checks', [])) - len(flagged)} of " \
           f"{len(data.get('checks', []))} checks pass.</p>"
    if flagged:
        text += _table(["check", "subject", "status", "detail"],
                       [[escape(c["check"]), escape(c["subject"]), _badge(c["status"]), escape(c["message"])]
                        for c in flagged])
    return text


def _ope(results: Mapping[str, Any]) -> str:
    ope = results.get("ope")
    if not ope:
        return "<p class='muted'>No off-policy evaluation (no logged data given).</p>"
    logging = ope.get("logging", {})
    estimates = ope.get("estimates", {})
    def high(e: Mapping[str, Any]) -> float:
        h = e["interval"]["high"]
        return float(h) if h is not None and math.isfinite(h) else float(e["value"])

    rows = [IntervalRow(name, e["value"], e["interval"]["low"], high(e)) for name, e in estimates.items()]
    if logging:
        rows.append(IntervalRow("logging policy (on-policy)", logging["value"], logging["interval"]["low"],
                                logging["interval"]["high"], COLORS["reference"]))
    chart = interval_chart("Estimated value of the candidate, 95% intervals", rows,
                           reference=logging.get("value"), reference_label="logging policy", unit="reward")
    table = _table(["estimator", "value", "95% interval", "ESS", "max weight", "warnings"],
                   [[escape(name), _num(e["value"]), f"[{_num(e['interval']['low'])}, {_num(e['interval']['high'])}]",
                     _num(e.get("ess")), _num(e.get("max_weight")), escape(", ".join(e.get("warnings", [])) or "—")]
                    for name, e in estimates.items()], numeric={1, 3, 4})
    bound = ope.get("lower_bound")
    extra = (f"<p>High-confidence lower bound ({escape(str(bound.get('method')))}, "
             f"{_num(bound.get('level'))}): <b>{_num(bound.get('low'))}</b></p>") if bound else ""
    return chart + table + extra


def _stress(results: Mapping[str, Any]) -> str:
    stress = results.get("stress")
    if not stress:
        return "<p class='muted'>No scenario stress suite (no scenario given).</p>"
    variations: Mapping[str, Any] = stress.get("variations", {})
    rows: list[IntervalRow] = []
    table: list[list[str]] = []
    for name, v in variations.items():
        for who, color in (("candidate", COLORS["candidate"]), ("baseline", COLORS["baseline"])):
            m = v[who]["mean_return"]
            rows.append(IntervalRow(f"{name} · {who}", m["estimate"], m["low"], m["high"], color))
        d = v["difference"]
        table.append([escape(name), _num(v["candidate"]["mean_return"]["estimate"]),
                      _num(v["baseline"]["mean_return"]["estimate"]), f"{_num(d['estimate'])} [{_num(d['low'])}, "
                      f"{_num(d['high'])}]", _num(v["candidate"]["cvar"]), _num(v["baseline"]["cvar"]),
                      _num(v["candidate"]["violation_rate"]), _num(v["baseline"]["violation_rate"])])
    chart = interval_chart(f"Mean episode return per variation ({stress.get('scenario')})", rows,
                           unit="return")
    return chart + _table(["variation", "candidate", "baseline", "difference [95% CI]", "CVaR10 cand.",
                           "CVaR10 base.", "violations cand.", "violations base."], table,
                          numeric={1, 2, 4, 5, 6, 7})


def _budget(results: Mapping[str, Any]) -> str:
    budget = results.get("budget")
    if not budget:
        return "<p class='muted'>No resource measurement.</p>"
    m = budget.get("measurement", {})
    limits = {i["name"]: i["limit"] for i in budget.get("items", [])}
    bars = bar_chart(f"Act latency (batch 1 and batch {m.get('batch_size')})",
                     [("p50, batch 1", m.get("p50_ms", math.nan)), ("p99, batch 1", m.get("p99_ms", math.nan)),
                      (f"p50, batch {m.get('batch_size')}", m.get("batch_p50_ms", math.nan)),
                      (f"p99, batch {m.get('batch_size')}", m.get("batch_p99_ms", math.nan))],
                     limit=limits.get("p99_ms"), unit="ms")
    hist = ""
    if m.get("latency_histogram"):
        h = m["latency_histogram"]
        hist = histogram("Act latency at batch 1, every timed call", h["edges"], h["counts"], unit="ms")
    items = _table(["item", "measured", "limit", "status"],
                   [[escape(i["name"]), f"{_num(i['measured'])} {escape(i['unit'])}",
                     "—" if i["limit"] is None else f"{_num(i['limit'])} {escape(i['unit'])}", _badge(i["status"])]
                    for i in budget.get("items", [])])
    return bars + hist + items


def render_html(results: Mapping[str, Any]) -> str:
    """The whole report as one HTML document."""
    status = str(results.get("status", "skip"))
    policy = results.get("policy", {})
    command = results.get("command")
    sections = [
        ("Gates", _gates(results)),
        ("Logged data", _data(results)),
        ("Off-policy evaluation", _ope(results)),
        ("Scenario stress suite", _stress(results)),
        ("Resources", _budget(results)),
    ]
    body = "".join(f"<h2>{escape(title)}</h2>{html}" for title, html in sections)
    how = (f"<p class='muted'>Made by <code>{escape(command)}</code>; every number is in <code>report.json</code>"
           " next to this file.</p>") if command else ""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>rlops validation: "
            f"{escape(str(policy.get('path', '')))}</title><style>{_CSS}</style></head><body>"
            f"<h1>Validation {_badge(status)}</h1><p>Policy <code>{escape(str(policy.get('path', '?')))}</code> "
            f"({escape(str(policy.get('kind', '?')))}, content hash <code>{escape(str(policy.get('hash', ''))[:12])}"
            f"</code>)</p>{how}{body}</body></html>")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_report(results: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out`` (each atomically: a crash leaves no half file)."""
    written = []
    for name, text in (("report.json", json.dumps(_clean(results), indent=2, default=_json_default)),
                       ("report.html", render_html(results))):
        write_atomic(out / name, text)
        written.append(out / name)
    return written[0], written[1]
