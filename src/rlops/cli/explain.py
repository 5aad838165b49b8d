"""``rlops explain``: why a logged decision was made; thin over :mod:`rlops.explain.decision`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from rlops.cli.common import HomeOption, app, console, existing_home

if TYPE_CHECKING:
    from rlops.explain.attributions import Attribution


def _baseline(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise typer.BadParameter(f"cannot read a JSON context from {path}: {e}", param_hint="'--baseline'") from e
    if not isinstance(data, dict):
        raise typer.BadParameter("expected a JSON object of context features", param_hint="'--baseline'")
    return data


def _table(title: str, attribution: Attribution, top: int) -> Table:
    table = Table("feature", "attribution", "share of |total|", title=title,
                  caption=f"{attribution.method.value}: the attributions sum to {attribution.delta:+.4g} = "
                          f"score {attribution.value:.4g} - baseline {attribution.baseline_value:.4g} (completeness "
                          f"error {attribution.completeness_error:.2g}, tolerance {attribution.tolerance:.2g})")
    total = float(abs(attribution.feature_attributions).sum()) or 1.0
    ranked = sorted(attribution.by_feature.items(), key=lambda kv: -abs(kv[1]))
    for name, value in ranked[:top]:
        table.add_row(escape(name), f"{value:+.4g}", f"{abs(value) / total:.0%}")
    if len(ranked) > top:
        table.add_row(f"... {len(ranked) - top} more", "", "")
    return table


@app.command()
def explain(
    decision_id: Annotated[str, typer.Argument(help="The decision's id (as decide returned it).")],
    method: Annotated[str, typer.Option(help="auto (exact > integrated gradients > Shapley sampling), exact, "
                                             "integrated_gradients or shapley_sampling.")] = "auto",
    baseline: Annotated[Path | None, typer.Option(help="A JSON file with the context to compare against (default: "
                                                       "the version's reference profile mean, else the mean logged "
                                                       "context).")] = None,
    budget: Annotated[int, typer.Option(min=16, max=65_536, help="Shapley sampling's score evaluations.")] = 2048,
    seed: Annotated[int, typer.Option(min=0, help="Seed of Shapley sampling.")] = 0,
    top: Annotated[int, typer.Option(min=1, help="Features shown per table.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole explanation as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Why a logged decision was made: each context feature's share of the chosen action's score, and of its lead
    over the runner-up, computed with the policy version that made the decision."""
    from rlops.engine import Engine
    from rlops.explain.attributions import Method
    from rlops.explain.decision import explain_decision

    try:
        chosen_method = Method(method)
    except ValueError as e:
        raise typer.BadParameter(f"expected one of {', '.join(m.value for m in Method)}",
                                 param_hint="'--method'") from e
    context = _baseline(baseline)
    with Engine(existing_home(home)) as engine:
        result = explain_decision(engine, decision_id, baseline=context, method=chosen_method, budget=budget,
                                  seed=seed)
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
        return
    scores = ", ".join(f"{escape(a)} {s:.4g}" for a, s in zip(result.actions, result.scores.tolist(), strict=True))
    console.print(f"decision [bold]{escape(result.decision_id)}[/] of [bold]{escape(result.deployment)}[/] by "
                  f"{escape(result.policy_version)} ({result.policy_origin.value}): action "
                  f"[bold]{escape(str(result.action))}[/]; {escape(result.score_description)}: {scores}")
    console.print(f"baseline: {result.baseline_source.value} {escape(result.baseline_detail)}")
    if result.chosen is not None:
        console.print(_table(f"why {result.action!s} scored {result.chosen.value:.4g}", result.chosen, top))
    if result.advantage is not None:
        console.print(_table(f"why {result.action!s} beat the runner-up {result.runner_up}", result.advantage, top))
    for i, dimension in enumerate(result.dimensions):
        console.print(_table(f"action[{i}]", dimension, top))
    for note in result.notes:
        console.print(f"note: {escape(note)}")
