"""``rlops retrain`` (one cycle of the closed loop) and ``rlops loop`` (cycles on a schedule or on a trigger)."""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from rlops.cli.common import ComputeBackend, HomeOption, app, console, existing_home
from rlops.scale.backend import Backend

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
Sweep = Annotated[int, typer.Option("--sweep", help="Candidates to train (a grid over seeds and the learner's main "
                                                    "hyperparameters), each scored on held-out logs; the best is "
                                                    "kept. 1: one candidate on all the data.")]


_OPTIONS = {"kind": "--kind", "gates": "--gates", "shadow_decisions": "--shadow-decisions",
            "canary_fraction": "--canary-fraction", "canary_timeout": "--canary-timeout",
            "min_interactions": "--min-interactions", "sweep": "--sweep", "backend": "--backend"}


def _config(**values: object) -> LoopConfig:
    import pydantic

    from rlops.rollout.loop import LoopConfig

    try:
        return LoopConfig.model_validate(values)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise typer.BadParameter(str(first["msg"]), param_hint=_OPTIONS.get(field, field)) from e


class _Terminated(BaseException):
    """SIGTERM arrived: a container runtime or service manager is stopping ``rlops loop``.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` on the way swallows it."""


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: the loop is already stopping
    raise _Terminated


def _say(line: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {escape(line)}", soft_wrap=True)


@app.command()
def retrain(
    deployment: Annotated[str, typer.Argument(help="The deployment whose logs to learn from.")],
    kind: Kind = "auto", gates: Gates = None, shadow_decisions: ShadowDecisions = 200,
    canary_fraction: Fraction = 0.1, canary_timeout: Timeout = 3600.0, min_interactions: MinRows = 200,
    sweep: Sweep = 1, backend: ComputeBackend = Backend.LOCAL,
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

    config = _config(kind=kind, gates=gates, shadow_decisions=shadow_decisions, canary_fraction=canary_fraction,
                     canary_timeout=canary_timeout, min_interactions=min_interactions, sweep=sweep, backend=backend)
    until = {None: None, "register": Step.SHADOW, "shadow": Step.CANARY}
    if stop_after not in until:
        raise typer.BadParameter("expected register or shadow", param_hint="--stop-after")
    with Engine(existing_home(home)) as engine:
        state = Loop(engine, deployment, config, say=_say).run_cycle(until=until[stop_after])
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
    sweep: Sweep = 1, backend: ComputeBackend = Backend.LOCAL, home: HomeOption = None,
) -> None:
    """Run retrain -> validate -> shadow -> canary -> promote/rollback on a schedule (--every) or when an alert's
    retrain action triggers it; safe to interrupt and restart (it resumes the cycle it was in). SIGTERM stops it
    the way Ctrl-C does, and exits 0: the stop a container runtime or service manager asks for."""
    from rlops.engine import Engine
    from rlops.rewards import parse_duration
    from rlops.rollout.loop import Loop

    config = _config(kind=kind, gates=gates, shadow_decisions=shadow_decisions, canary_fraction=canary_fraction,
                     canary_timeout=canary_timeout, min_interactions=min_interactions, sweep=sweep, backend=backend)
    try:
        period = None if every is None else parse_duration(every)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--every") from e
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with Engine(existing_home(home)) as engine:
            _say(f"loop on {deployment}: " + (f"every {every}" if every else "on trigger")
                 + "; Ctrl-C or SIGTERM to stop")
            Loop(engine, deployment, config, say=_say).run_schedule(period, max_cycles=max_cycles)
    except _Terminated:
        _say("stopped (SIGTERM); the next 'rlops loop' resumes where this one stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
