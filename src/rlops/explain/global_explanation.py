"""A policy's global behaviour in one piece: feature importance, then partial dependence of the top features.

:func:`explain_policy_globally` computes; :meth:`GlobalExplanation.to_html` renders one ``<section>`` of inline
SVG and small tables that drops into a self-contained HTML report or the dashboard (no scripts, nothing loaded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from rlops.explain._batch import MAX_BATCH_ROWS, ScoreCallable, as_matrix, check_count
from rlops.explain.dependence import PartialDependence, partial_dependence
from rlops.explain.importance import AttributionCallable, Importance, feature_importance
from rlops.explain.plots import decision_share_svg, importance_svg, pdp_svg
from rlops.schema import Schema


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    """An HTML table; cells are already escaped; columns from ``numeric_from`` on are right-aligned numbers."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i >= numeric_from else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass(frozen=True)
class GlobalExplanation:
    """Feature importance and the partial dependence of the most important features.

    Attributes:
        importance: importance of every feature assessed.
        dependence: partial dependence and ICE of the top features, in importance order.
        skipped: features among the top ones with no partial dependence, and why (whole vector features).
        title: the section's heading.
    """

    importance: Importance
    dependence: list[PartialDependence]
    skipped: dict[str, str] = field(default_factory=dict)
    title: str = "Global behaviour"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content (for the dashboard and ``report.json``)."""
        return {"title": self.title, "importance": self.importance.to_dict(),
                "dependence": [d.to_dict() for d in self.dependence], "skipped": dict(self.skipped)}

    def to_html(self) -> str:
        """One ``<section>``: the importance chart and table, then per top feature its PD/ICE panels, how the
        decisions shift, and the PD values in a collapsed table."""
        imp = self.importance
        has_attr = imp.has_attribution
        header = ["feature", "decisions changed", "± sd", "score shift", *(["mean |attribution|"] if has_attr else [])]
        rows = [[escape(f.feature), f"{f.permutation:.1%}", f"{f.permutation_std:.1%}", _num(f.score_shift),
                 *([_num(f.mean_abs_attribution)] if has_attr else [])] for f in imp.features]
        share = ", ".join(f"{escape(a)} {s:.0%}" for a, s in zip(imp.actions, imp.action_share, strict=True))
        parts = [
            f'<section class="rlops-global-explanation"><h2>{escape(self.title)}</h2>',
            f"<p>Over {imp.n_rows:,} rows (seed {imp.seed}). Chosen actions: {share}. <em>Decisions changed</em> is "
            f"the share of decisions that change when one feature is shuffled across rows ({imp.n_repeats} "
            f"shuffles); <em>score shift</em> is the mean absolute change of the chosen action's score.</p>",
            importance_svg(imp),
            _table(header, rows),
        ]
        for pd in self.dependence:
            parts.append(f"<h3>{escape(pd.feature)}</h3>")
            parts.append(f"<p>Bold: the partial dependence (mean {escape(pd.score_label)} over {pd.n_rows:,} rows) "
                         f"of each action as {escape(pd.feature)} varies, every other feature kept; light: "
                         f"{pd.ice.shape[1]} individual rows (ICE).</p>")
            parts.append(pdp_svg(pd))
            parts.append(decision_share_svg(pd))
            labels = pd.grid_labels()
            values = [[escape(labels[i]), *(_num(float(v)) for v in pd.pd[i])] for i in range(len(pd.grid))]
            parts.append(f"<details><summary>partial dependence values</summary>"
                         f"{_table([pd.feature, *pd.actions], values)}</details>")
        for name, reason in self.skipped.items():
            parts.append(f"<p><em>{escape(name)}: {escape(reason)}</em></p>")
        parts.append("</section>")
        return "".join(parts)


def explain_policy_globally(
    score: ScoreCallable,
    actions: Sequence[str],
    schema: Schema,
    data: Any,
    features: Sequence[str] | None = None,
    top_k: int = 4,
    attribution: AttributionCallable | None = None,
    n_grid: int = 20,
    n_ice: int = 50,
    n_repeats: int = 5,
    sample: int | None = 2000,
    seed: int = 0,
    score_label: str = "score",
    title: str = "Global behaviour",
    max_batch_rows: int = MAX_BATCH_ROWS,
) -> GlobalExplanation:
    """Rank features by permutation importance, then compute the partial dependence of the ``top_k`` first.

    Args:
        score: maps an encoded ``(n, schema.width)`` matrix to ``(n, K)`` scores, one column per action.
        actions: the K action names.
        schema: the schema ``data`` follows.
        data: an encoded matrix or raw contexts.
        features: the features to assess (default: all).
        top_k: partial dependence for this many of the most important features. Default 4.
        attribution: optional per-feature attributions of the chosen action (see
            :func:`rlops.explain.importance.feature_importance`).
        n_grid, n_ice: grid size and number of ICE curves per feature.
        n_repeats: shuffles per feature for permutation importance.
        sample: use at most this many rows (default 2,000; ``None`` for all), drawn with ``seed``.
        seed: the same seed and data give the same explanation.
        score_label: what the scores are, for axes and tables.
        title: the section heading.
    """
    top_k = check_count("top_k", top_k, 1)
    if sample is not None:
        sample = check_count("sample", sample, 2)
    x = as_matrix(schema, data, "data")
    importance = feature_importance(score, actions, schema, x, attribution=attribution, features=features,
                                    n_repeats=n_repeats, sample=sample, seed=seed, max_batch_rows=max_batch_rows)
    kinds = {f.name: f.type for f in schema.features}
    dependence: list[PartialDependence] = []
    skipped: dict[str, str] = {}
    for name in importance.ranking[:top_k]:
        if kinds[name] == "vector":
            skipped[name] = (f"a vector feature has no single grid; call partial_dependence with "
                             f"feature='{name}[i]' for one element")
            continue
        dependence.append(partial_dependence(
            score, actions, schema, x, name, n_grid=n_grid, sample=sample, n_ice=n_ice, seed=seed,
            score_label=score_label, max_batch_rows=max_batch_rows))
    return GlobalExplanation(importance=importance, dependence=dependence, skipped=skipped, title=title)
