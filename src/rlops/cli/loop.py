"""``rlops retrain`` (one cycle of the closed loop) and ``rlops loop`` (cycles on a schedule or on a trigger)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from rlops.cli.common import HomeOption, app, console, existing_home

if TYPE_CHECKING:
    from rlops.rollout.loop import LoopConfig

Kind = Annotated[str, typer.Option("--kind", help="auto, bandit (policy learning from logged propensities), bc "
                                                  "(behaviour cloning) or cql (offline RL).")]
Gates = Annotated[str | None, typer.Option("--gates", help="Gates file for validation (default: the validation "
                                                           "defaults).", show_default=False)]
ShadowDecisions = Annotated[int, typer.Option("--shadow-decisions", min=0, help="Shadow decisions before the canary "
                                                                                "(0: no shadow).")]
Fraction = Annotated[float, typer.Option("--canary-fraction", min=0.0, max=1.0, help="The canary's share of "
                                                                                      "units.")]
Timeout = Annotated[float, typer.Option("--canary-timeout", min=1.0, help="Seconds to wait for the guardrail's "
                                                                          "verdict before rolling back.")]
MinRows = Annotated[int, typer.Option("--min-interactions", min=1, help="Joined interactions needed to train.")]


def _config(kind: str, gates: str | None, shadow: int, fraction: float, timeout: float,
            min_rows: int) -> LoopConfig:
    from rlops.rollout.loop import LoopConfig

    if kind not in ("auto", "bandit", "bc", "cql"):
        raise typer.BadParameter(f"unknown kind {kind!r} (auto, bandit, bc, cql)", param_hint="--kind")
    if not 0.0 < fraction < 1.0:
        raise typer.BadParameter("must be between 0 and 1 (exclusive)", param_hint="--canary-fraction")
    return LoopConfig(kind=kind, gates=gates, shadow_decisions=shadow, canary_fraction=fraction,
                      canary_timeout=timeout, min_interactions=min_rows)


def _say(line: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {escape(line)}", soft_wrap=True)


@app.command()
def retrain(
    deployment: Annotated[str, typer.Argument(help="The deployment whose logs to learn from.")],
    kind: Kind = "auto", gates: Gates = None, shadow_decisions: ShadowDecisions = 200,
    canary_fraction: Fraction = 0.1, canary_timeout: Timeout = 3600.0, min_interactions: MinRows = 200,
    stop_after: Annotated[str | None, typer.Option("--stop-after", help="register or shadow: stop there (the "
                                                                        "next `rlops retrain` resumes).",
                                                   show_default=False)] = None,
    home: HomeOption = None,
) -> None:
    """Build a candidate from the logged interactions and take it through gates, registry, shadow and canary.

    One cycle of the closed loop (see `rlops loop`); an interrupted cycle resumes where it stopped.
    """
    from rlops.engine import Engine
    from rlops.rollout.loop import Loop, Step

    config = _config(kind, gates, shadow_decisions, canary_fraction, canary_timeout, min_interactions)
    until = {None: None, "register": Step.SHADOW, "shadow": Step.CANARY}
    if stop_after not in until:
        raise typer.BadParameter("expected register or shadow", param_hint="--stop-after")
    with Engine(existing_home(home)) as engine:
        loop = Loop(engine, deployment, config, say=_say)
        last = loop.state()
        state = loop.run_cycle(new=last is not None and last.step is Step.DONE, until=until[stop_after])
    if state.step is Step.DONE:
        console.print(f"cycle {state.cycle}: [bold]{state.outcome}[/] ({escape(str(state.candidate))})")
    else:
        console.print(f"cycle {state.cycle}: stopped before {state.step.value} ({escape(str(state.candidate))})")


@app.command()
def loop(
    deployment: Annotated[str, typer.Argument(help="The deployment to keep improving.")],
    every: Annotated[str | None, typer.Option("--every", help="Start a cycle this often, e.g. 6h (default: only "
                                                              "when triggered).", show_default=False)] = None,
    max_cycles: Annotated[int, typer.Option("--max-cycles", min=0, help="Stop after this many cycles (0: never).")]
    = 0,
    kind: Kind = "auto", gates: Gates = None, shadow_decisions: ShadowDecisions = 200,
    canary_fraction: Fraction = 0.1, canary_timeout: Timeout = 3600.0, min_interactions: MinRows = 200,
    home: HomeOption = None,
) -> None:
    """Run retrain -> validate -> shadow -> canary -> promote/rollback on a schedule (--every) or when an alert's
    retrain action triggers it; safe to interrupt and restart (it resumes the cycle it was in)."""
    from rlops.engine import Engine
    from rlops.errors import ConflictError
    from rlops.rewards import parse_duration
    from rlops.rollout.loop import Loop, Step, take_trigger

    config = _config(kind, gates, shadow_decisions, canary_fraction, canary_timeout, min_interactions)
    try:
        period = None if every is None else parse_duration(every)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--every") from e
    cycles = 0
    with Engine(existing_home(home)) as engine:
        runner = Loop(engine, deployment, config, say=_say)
        state = runner.state()
        next_at = time.monotonic()
        if state is not None and state.step is not Step.DONE:
            next_at = time.monotonic()  # an interrupted cycle resumes at once
        elif period is None:
            next_at = float("inf")
        _say(f"loop on {deployment}: " + (f"every {every}" if every else "on trigger") + "; Ctrl-C to stop")
        while not max_cycles or cycles < max_cycles:
            trigger = take_trigger(engine.home.root, deployment)
            if trigger is None and time.monotonic() < next_at:
                time.sleep(1.0)
                continue
            if trigger is not None:
                _say(f"triggered: {trigger.get('reason', '')}")
            last = runner.state()
            try:
                state = runner.run_cycle(new=last is not None and last.step is Step.DONE)
                _say(f"cycle {state.cycle}: {state.outcome}")
            except ConflictError as e:  # not enough data yet: wait for the next turn
                _say(f"cycle skipped: {e}")
            cycles += 1
            next_at = time.monotonic() + period if period is not None else float("inf")
