"""SVG charts of global behaviour: partial dependence with ICE curves, decision shares, feature importance.

Like :mod:`rlops.evaluation.svg`, each chart is one self-contained ``<svg>`` string: no scripts, no external files,
every text escaped, and the same input always gives the same bytes, so reports can be diffed and archived.
Elements carry classes (``panel``, ``ice``, ``pd``, ``share``, ``bar``) so the dashboard can style them and tests can
count them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np

from rlops.errors import ValidationError
from rlops.evaluation.svg import COLORS, WIDTH
from rlops.explain.dependence import PartialDependence
from rlops.explain.importance import Importance

#: One colour per action, in action order (cycled past ten actions).
PALETTE = ("#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#2c7a7b", "#975a16", "#c53030", "#4a5568",
           "#285e61")
ICE_COLOR = "#a0aec0"
AXIS_COLOR = "#4a5568"
GRID_COLOR = "#edf2f7"

_CELL_HEIGHT = 230
_PLOT_LEFT = 58  # room for y tick labels and the y label, inside a cell
_PLOT_RIGHT = 16
_PLOT_TOP = 30
_PLOT_BOTTOM = 50  # room for x tick labels and the x label
_TITLE = 26


def action_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _f(value: float) -> str:
    """A coordinate, rounded so output is stable and small."""
    return f"{value:.1f}"


def _num(value: float) -> str:
    return f"{value:.4g}"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def _range(values: np.ndarray | Sequence[float]) -> tuple[float, float]:
    """A padded ``(lo, hi)`` covering the finite values (``(0, 1)`` when there are none)."""
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return 0.0, 1.0
    lo, hi = float(array.min()), float(array.max())
    if hi - lo <= 1e-12 * max(1.0, abs(lo), abs(hi)):
        lo, hi = lo - max(1.0, abs(lo)) * 0.5, hi + max(1.0, abs(hi)) * 0.5
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values inside ``[lo, hi]`` (about ``n`` of them)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for mult in (1, 2, 5, 10):
        if (hi - lo) / (step * mult) <= n:
            step *= mult
            break
    start = math.ceil(lo / step) * step
    count = math.floor((hi - start) / step + 1e-9) + 1
    return [0.0 if abs(start + i * step) < step * 1e-9 else start + i * step for i in range(count)]


def _svg_open(height: float, label: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{_f(height)}" role="img" '
            f'aria-label="{escape(label)}" font-family="sans-serif" font-size="11">']


def _nothing(title: str) -> str:
    return f"<p><em>{escape(title)}: nothing to plot.</em></p>"


class _Axes:
    """A plot area with linear y and either linear (numeric) or evenly spaced (categorical) x positions."""

    def __init__(self, left: float, top: float, width: float, height: float, y_range: tuple[float, float],
                 x_values: Sequence[float] | None, n_categories: int) -> None:
        self.left, self.top, self.width, self.height = left, top, width, height
        self.y_lo, self.y_hi = y_range
        self.categorical = x_values is None
        self.n = n_categories
        if x_values is None:
            self.x_lo, self.x_hi = 0.0, float(max(n_categories, 1))
        else:
            self.x_lo, self.x_hi = min(x_values), max(x_values)
            if self.x_hi <= self.x_lo:
                self.x_lo, self.x_hi = self.x_lo - 0.5, self.x_hi + 0.5

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @property
    def step(self) -> float:
        """Horizontal room per category."""
        return self.width / max(self.n, 1)

    def x(self, value: float) -> float:
        v = min(max(value, self.x_lo), self.x_hi)
        return self.left + (v - self.x_lo) / (self.x_hi - self.x_lo) * self.width

    def x_at(self, index: int, grid: Sequence[float] | None) -> float:
        """Position of grid point ``index``: its value on a numeric axis, its slot's centre on a categorical one."""
        if self.categorical or grid is None:
            return self.left + (index + 0.5) * self.step
        return self.x(grid[index])

    def y(self, value: float) -> float:
        v = min(max(value, self.y_lo), self.y_hi)
        return self.bottom - (v - self.y_lo) / (self.y_hi - self.y_lo) * self.height

    def frame(self, x_label: str, y_label: str, categories: Sequence[str] = (),
              y_ticks: Sequence[float] | None = None) -> list[str]:
        parts = []
        for t in nice_ticks(self.y_lo, self.y_hi) if y_ticks is None else y_ticks:
            parts.append(f'<line x1="{_f(self.left)}" y1="{_f(self.y(t))}" x2="{_f(self.left + self.width)}" '
                         f'y2="{_f(self.y(t))}" stroke="{GRID_COLOR}"/>')
            parts.append(f'<text x="{_f(self.left - 4)}" y="{_f(self.y(t) + 4)}" text-anchor="end" '
                         f'fill="{AXIS_COLOR}">{_num(t)}</text>')
        parts.append(f'<rect x="{_f(self.left)}" y="{_f(self.top)}" width="{_f(self.width)}" '
                     f'height="{_f(self.height)}" fill="none" stroke="#cbd5e0"/>')
        if self.categorical:
            limit = max(3, int(self.step / 6.5))
            for i, name in enumerate(categories):
                parts.append(f'<text x="{_f(self.x_at(i, None))}" y="{_f(self.bottom + 15)}" text-anchor="middle" '
                             f'fill="{AXIS_COLOR}">{escape(_short(name, limit))}<title>{escape(name)}</title></text>')
        else:
            for t in nice_ticks(self.x_lo, self.x_hi):
                parts.append(f'<text x="{_f(self.x(t))}" y="{_f(self.bottom + 15)}" text-anchor="middle" '
                             f'fill="{AXIS_COLOR}">{_num(t)}</text>')
        parts.append(f'<text class="x-label" x="{_f(self.left + self.width / 2)}" y="{_f(self.bottom + 33)}" '
                     f'text-anchor="middle" fill="{AXIS_COLOR}">{escape(x_label)}</text>')
        cy = self.top + self.height / 2
        cx = self.left - 44
        parts.append(f'<text class="y-label" x="{_f(cx)}" y="{_f(cy)}" text-anchor="middle" fill="{AXIS_COLOR}" '
                     f'transform="rotate(-90 {_f(cx)} {_f(cy)})">{escape(y_label)}</text>')
        return parts


def _numeric_grid(pd: PartialDependence) -> list[float] | None:
    """The grid as numbers for a line plot, or ``None`` when it is categorical (or a single point)."""
    if pd.is_categorical or len(pd.grid) < 2:
        return None
    return [float(v) for v in pd.grid]


def _curve(axes: _Axes, grid: list[float] | None, ys: np.ndarray, half: float) -> str:
    """Path data: a polyline through the grid on a numeric axis, short horizontal marks on a categorical one."""
    if grid is None:
        return " ".join(f"M{_f(axes.x_at(i, None) - half)} {_f(axes.y(float(v)))}h{_f(2 * half)}"
                        for i, v in enumerate(ys))
    points = [f"{_f(axes.x(g))} {_f(axes.y(float(v)))}" for g, v in zip(grid, ys, strict=True)]
    return "M" + " L".join(points)


def pdp_svg(pd: PartialDependence, action: str | None = None, centered: bool = False, show_ice: bool = True,
            title: str | None = None) -> str:
    """Partial dependence (bold) over ICE curves (light), one panel per action, sharing the y scale.

    Args:
        pd: the result of :func:`rlops.explain.dependence.partial_dependence`.
        action: draw only this action's panel (default: every action, three panels a row).
        centered: draw centered ICE and PD (each curve starts at 0 at the first grid value).
        show_ice: draw the ICE curves (default True). Numeric features get one polyline per ICE row and a rug of
            the data's deciles; categorical ones a short mark per category, so no line suggests an order.
        title: chart title (default: ``Partial dependence on <feature>``).
    """
    title = title if title is not None else f"Partial dependence on {pd.feature}"
    indices = list(range(len(pd.actions))) if action is None else [pd.action_index(action)]
    if not pd.grid or pd.pd.size == 0:
        return _nothing(title)
    curves = pd.centered_pd() if centered else pd.pd
    ice = (pd.centered_ice() if centered else pd.ice) if show_ice else np.empty((len(pd.grid), 0, len(pd.actions)))
    y_range = _range(np.concatenate([curves[:, indices].ravel(), ice[:, :, indices].ravel()]))
    grid = _numeric_grid(pd)
    cols = min(3, len(indices))
    rows = math.ceil(len(indices) / cols)
    cell_w = (WIDTH - 8) / cols
    height = _TITLE + rows * _CELL_HEIGHT
    y_label = f"{pd.score_label} (centered)" if centered else pd.score_label
    labels = pd.grid_labels()
    parts = _svg_open(height, title)
    parts.append(f'<text x="8" y="17" font-weight="bold" font-size="13">{escape(title)}</text>')
    for slot, k in enumerate(indices):
        left = 4 + (slot % cols) * cell_w
        top = _TITLE + (slot // cols) * _CELL_HEIGHT
        axes = _Axes(left + _PLOT_LEFT, top + _PLOT_TOP, cell_w - _PLOT_LEFT - _PLOT_RIGHT,
                     _CELL_HEIGHT - _PLOT_TOP - _PLOT_BOTTOM, y_range, grid, len(pd.grid))
        color = action_color(k)
        name = pd.actions[k]
        parts.append(f'<g class="panel" data-action="{escape(name)}">')
        parts.append(f'<text x="{_f(axes.left)}" y="{_f(top + 20)}" font-weight="bold" fill="{color}">'
                     f'{escape(_short(name, 40))}</text>')
        parts.extend(axes.frame(pd.feature, y_label, labels))
        half = min(10.0, axes.step * 0.3)
        deciles = pd.observed_deciles() if grid is not None else []
        if deciles:
            rug = " ".join(f"M{_f(axes.x(d))} {_f(axes.bottom)}v-5" for d in deciles)
            parts.append(f'<path class="rug" d="{rug}" stroke="{AXIS_COLOR}" fill="none"><title>deciles of '
                         f'{escape(pd.feature)} in the data</title></path>')
        for r in range(ice.shape[1]):
            parts.append(f'<path class="ice" d="{_curve(axes, grid, ice[:, r, k], half * 0.7)}" '
                         f'stroke="{ICE_COLOR}" stroke-opacity="0.45" stroke-width="1" fill="none"/>')
        parts.append(f'<path class="pd" d="{_curve(axes, grid, curves[:, k], half)}" stroke="{color}" '
                     f'stroke-width="3" fill="none"><title>partial dependence of {escape(name)} on '
                     f'{escape(pd.feature)}</title></path>')
        for i, v in enumerate(curves[:, k]):
            parts.append(f'<circle cx="{_f(axes.x_at(i, grid))}" cy="{_f(axes.y(float(v)))}" r="2.5" '
                         f'fill="{color}"><title>{escape(pd.feature)} = {escape(labels[i])}: '
                         f'{_num(float(v))}</title></circle>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _legend(actions: Sequence[str], left: float, top: float, width: float) -> tuple[list[str], float]:
    parts: list[str] = []
    x, y = left, top
    for k, name in enumerate(actions):
        label = _short(name, 24)
        w = 22 + 6.5 * len(label) + 14
        if x + w > left + width and x > left:
            x, y = left, y + 16
        parts.append(f'<rect x="{_f(x)}" y="{_f(y - 9)}" width="12" height="10" fill="{action_color(k)}"/>')
        parts.append(f'<text x="{_f(x + 16)}" y="{_f(y)}">{escape(label)}</text>')
        x += w
    return parts, y + 16 - top


def decision_share_svg(pd: PartialDependence, title: str | None = None) -> str:
    """Share of rows whose chosen (highest-scoring) action is each action, at each grid value.

    Numeric features get one line per action; categorical ones a stacked bar per category.
    """
    title = title if title is not None else f"Decisions as {pd.feature} varies"
    if not pd.grid or pd.decision_share.size == 0:
        return _nothing(title)
    legend, legend_h = _legend(pd.actions, 8 + _PLOT_LEFT, 0, WIDTH - _PLOT_LEFT - _PLOT_RIGHT - 8)
    grid = _numeric_grid(pd)
    plot_h = _CELL_HEIGHT - _PLOT_TOP - _PLOT_BOTTOM
    axes = _Axes(8 + _PLOT_LEFT, _TITLE + 8, WIDTH - 8 - _PLOT_LEFT - _PLOT_RIGHT, plot_h, (0.0, 1.0), grid,
                 len(pd.grid))
    height = axes.bottom + _PLOT_BOTTOM + legend_h
    labels = pd.grid_labels()
    parts = _svg_open(height, title)
    parts.append(f'<text x="8" y="17" font-weight="bold" font-size="13">{escape(title)}</text>')
    parts.extend(axes.frame(pd.feature, "share of decisions", labels, y_ticks=[0.0, 0.25, 0.5, 0.75, 1.0]))
    share = pd.decision_share
    if grid is None:
        bar = axes.step * 0.6
        for i in range(len(pd.grid)):
            below = 0.0
            for k, name in enumerate(pd.actions):
                value = float(share[i, k])
                if value > 0:
                    y0, y1 = axes.y(below + value), axes.y(below)
                    parts.append(f'<rect class="share" x="{_f(axes.x_at(i, None) - bar / 2)}" y="{_f(y0)}" '
                                 f'width="{_f(bar)}" height="{_f(y1 - y0)}" fill="{action_color(k)}">'
                                 f'<title>{escape(pd.feature)} = {escape(labels[i])}: {escape(name)} '
                                 f'{value:.1%}</title></rect>')
                below += value
    else:
        for k, name in enumerate(pd.actions):
            d = _curve(axes, grid, share[:, k], 0.0)
            parts.append(f'<path class="share" data-action="{escape(name)}" d="{d}" stroke="{action_color(k)}" '
                         f'stroke-width="2.5" fill="none"><title>{escape(name)}</title></path>')
    parts.append(f'<g class="legend" transform="translate(0 {_f(axes.bottom + _PLOT_BOTTOM + 4)})">')
    parts.extend(legend)
    parts.append("</g></svg>")
    return "".join(parts)


def importance_svg(importance: Importance, title: str = "Feature importance", limit: int | None = 20) -> str:
    """Horizontal bars, most important feature on top: the share of decisions changed by shuffling each feature
    (with a whisker of one standard deviation over the shuffles), and, when attributions were computed, the mean
    absolute attribution in a second panel.

    Args:
        importance: the result of :func:`rlops.explain.importance.feature_importance`.
        title: chart title.
        limit: draw at most this many features (default 20; ``None`` for all).
    """
    if limit is not None and limit < 1:
        raise ValidationError("limit", f"expected at least 1 feature, got {limit}")
    rows = importance.features[:limit] if limit is not None else importance.features
    if not rows:
        return _nothing(title)
    panels: list[tuple[str, list[float], list[float] | None]] = [
        ("decisions changed when shuffled", [f.permutation for f in rows], [f.permutation_std for f in rows])]
    if importance.has_attribution:
        panels.append(("mean |attribution|", [f.mean_abs_attribution or 0.0 for f in rows], None))
    row_h, label_w, top = 24, 150, _TITLE + 22
    gap, text_w = 24, 50  # between panels; room for the value printed after a bar
    panel_w = (WIDTH - label_w - 8 - len(panels) * text_w - gap * (len(panels) - 1)) / len(panels)
    height = top + row_h * len(rows) + 12
    parts = _svg_open(height, title)
    parts.append(f'<text x="8" y="17" font-weight="bold" font-size="13">{escape(title)}</text>')
    for i, f in enumerate(rows):
        parts.append(f'<text x="{label_w - 6}" y="{_f(top + row_h * i + row_h / 2 + 4)}" text-anchor="end">'
                     f'{escape(_short(f.feature, 22))}<title>{escape(f.feature)}</title></text>')
    for p, (label, values, errors) in enumerate(panels):
        left = label_w + p * (panel_w + text_w + gap)
        hi = max([v + (errors[i] if errors else 0.0) for i, v in enumerate(values)] + [0.0])
        hi = hi * 1.1 if hi > 0 else 1.0

        def x(v: float, left: float = left, hi: float = hi) -> float:
            return left + min(max(v, 0.0), hi) / hi * panel_w

        parts.append(f'<g class="importance-panel" data-metric="{escape(label)}">')
        parts.append(f'<text x="{_f(left)}" y="{_TITLE + 12}" fill="{AXIS_COLOR}">{escape(label)}</text>')
        parts.append(f'<line x1="{_f(left)}" y1="{top - 4}" x2="{_f(left)}" y2="{_f(top + row_h * len(rows))}" '
                     f'stroke="{AXIS_COLOR}"/>')
        for i, (f, v) in enumerate(zip(rows, values, strict=True)):
            y = top + row_h * i
            parts.append(f'<rect class="bar" x="{_f(left)}" y="{_f(y + 4)}" width="{_f(x(v) - left)}" '
                         f'height="{row_h - 8}" fill="{COLORS["candidate"] if p == 0 else COLORS["reference"]}">'
                         f'<title>{escape(f.feature)}: {escape(label)} {_num(v)}</title></rect>')
            end = x(v)
            if errors is not None and errors[i] > 0:
                lo, hi_x = x(v - errors[i]), x(v + errors[i])
                mid = y + row_h / 2
                parts.append(f'<path class="err" d="M{_f(lo)} {_f(mid)}H{_f(hi_x)}M{_f(lo)} {_f(mid - 4)}v8'
                             f'M{_f(hi_x)} {_f(mid - 4)}v8" stroke="{AXIS_COLOR}" fill="none"/>')
                end = hi_x
            text = f"{v:.1%}" if p == 0 else _num(v)
            parts.append(f'<text x="{_f(end + 4)}" y="{_f(y + row_h / 2 + 4)}" fill="{AXIS_COLOR}">{text}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
