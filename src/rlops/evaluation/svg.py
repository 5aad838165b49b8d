"""Small, dependency-free SVG charts for self-contained HTML reports (no scripts, no external files)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 720
ROW = 26
LEFT = 170
RIGHT = 30
TOP = 34
COLORS = {"candidate": "#2b6cb0", "baseline": "#9c4221", "reference": "#2f855a", "muted": "#718096"}


@dataclass(frozen=True)
class IntervalRow:
    """One row of an interval chart: a point with its interval, in one colour."""

    label: str
    value: float
    low: float
    high: float
    color: str = COLORS["candidate"]


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if isinstance(v, int | float) and math.isfinite(v)]


def _scale(lo: float, hi: float) -> tuple[float, float]:
    if lo == hi:
        lo, hi = lo - 1.0, hi + 1.0
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for mult in (1, 2, 5, 10):
        if (hi - lo) / (step * mult) <= n:
            step *= mult
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def interval_chart(title: str, rows: Sequence[IntervalRow], reference: float | None = None,
                   reference_label: str = "", unit: str = "") -> str:
    """Horizontal points with interval whiskers, one row each, and an optional vertical reference line."""
    values = _finite([v for r in rows for v in (r.value, r.low, r.high)] + ([reference] if reference is not None
                                                                           else []))
    if not rows or not values:
        return f"<p><em>{escape(title)}: nothing to plot.</em></p>"
    lo, hi = _scale(min(values), max(values))
    height = TOP + ROW * len(rows) + 40
    span = WIDTH - LEFT - RIGHT

    def x(v: float) -> float:
        return LEFT + (min(max(v, lo), hi) - lo) / (hi - lo) * span

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
             f'<text x="{LEFT}" y="18" font-weight="bold">{escape(title)}</text>']
    axis_y = TOP + ROW * len(rows) + 6
    for t in _ticks(lo, hi):
        parts.append(f'<line x1="{x(t):.1f}" y1="{TOP - 6}" x2="{x(t):.1f}" y2="{axis_y}" stroke="#edf2f7"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{axis_y + 16}" text-anchor="middle" fill="#4a5568">{t:.4g}</text>')
    if unit:
        parts.append(f'<text x="{WIDTH - RIGHT}" y="{axis_y + 30}" text-anchor="end" fill="#4a5568">'
                     f'{escape(unit)}</text>')
    if reference is not None and math.isfinite(reference):
        parts.append(f'<line x1="{x(reference):.1f}" y1="{TOP - 8}" x2="{x(reference):.1f}" y2="{axis_y}" '
                     f'stroke="{COLORS["reference"]}" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x(reference) + 4:.1f}" y="{TOP - 10}" fill="{COLORS["reference"]}">'
                     f'{escape(reference_label)}</text>')
    for i, r in enumerate(rows):
        y = TOP + ROW * i + ROW / 2
        parts.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{escape(r.label)}</text>')
        if math.isfinite(r.low) and math.isfinite(r.high):
            parts.append(f'<line x1="{x(r.low):.1f}" y1="{y:.1f}" x2="{x(r.high):.1f}" y2="{y:.1f}" '
                         f'stroke="{r.color}" stroke-width="2"/>')
            for end in (r.low, r.high):
                parts.append(f'<line x1="{x(end):.1f}" y1="{y - 5:.1f}" x2="{x(end):.1f}" y2="{y + 5:.1f}" '
                             f'stroke="{r.color}" stroke-width="2"/>')
        if math.isfinite(r.value):
            parts.append(f'<circle cx="{x(r.value):.1f}" cy="{y:.1f}" r="4" fill="{r.color}">'
                         f'<title>{escape(r.label)}: {r.value:.4g} [{r.low:.4g}, {r.high:.4g}]</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, bars: Sequence[tuple[str, float]], limit: float | None = None, unit: str = "") -> str:
    """Horizontal bars from zero (e.g. latency percentiles), with an optional limit line."""
    values = _finite([v for _, v in bars] + ([limit] if limit is not None else []))
    if not bars or not values:
        return f"<p><em>{escape(title)}: nothing to plot.</em></p>"
    hi = max(values) * 1.1 or 1.0
    span = WIDTH - LEFT - RIGHT
    height = TOP + ROW * len(bars) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
             f'<text x="{LEFT}" y="18" font-weight="bold">{escape(title)}</text>']
    for i, (label, v) in enumerate(bars):
        y = TOP + ROW * i
        w = max(v, 0.0) / hi * span if math.isfinite(v) else 0.0
        parts.append(f'<text x="{LEFT - 8}" y="{y + ROW / 2 + 4:.1f}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{LEFT}" y="{y + 4}" width="{w:.1f}" height="{ROW - 8}" fill="{COLORS["candidate"]}">'
                     f'<title>{escape(label)}: {v:.4g} {escape(unit)}</title></rect>')
        parts.append(f'<text x="{LEFT + w + 4:.1f}" y="{y + ROW / 2 + 4:.1f}">{v:.4g} {escape(unit)}</text>')
    if limit is not None and math.isfinite(limit):
        lx = LEFT + limit / hi * span
        parts.append(f'<line x1="{lx:.1f}" y1="{TOP - 6}" x2="{lx:.1f}" y2="{TOP + ROW * len(bars)}" '
                     f'stroke="#c53030" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{lx + 4:.1f}" y="{TOP - 8}" fill="#c53030">limit {limit:.4g} {escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(title: str, edges: Sequence[float], counts: Sequence[int], unit: str = "") -> str:
    """Vertical bars of a histogram given its bin edges (``len(counts) + 1`` of them)."""
    if not counts or len(edges) != len(counts) + 1 or max(counts) <= 0:
        return f"<p><em>{escape(title)}: nothing to plot.</em></p>"
    height, bottom = 220, 180
    span = WIDTH - 60 - RIGHT
    top = max(counts)
    bw = span / len(counts)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
             f'<text x="60" y="18" font-weight="bold">{escape(title)}</text>']
    for i, c in enumerate(counts):
        h = c / top * (bottom - TOP)
        parts.append(f'<rect x="{60 + i * bw:.1f}" y="{bottom - h:.1f}" width="{max(bw - 1, 1):.1f}" '
                     f'height="{h:.1f}" fill="{COLORS["candidate"]}"><title>[{edges[i]:.4g}, {edges[i + 1]:.4g}) '
                     f'{escape(unit)}: {c}</title></rect>')
    for i in (0, len(counts) // 2, len(counts)):
        parts.append(f'<text x="{60 + i * bw:.1f}" y="{bottom + 16}" text-anchor="middle" fill="#4a5568">'
                     f'{edges[i]:.3g}</text>')
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{bottom + 32}" text-anchor="end" fill="#4a5568">{escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)
