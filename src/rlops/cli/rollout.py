"""``rlops deploy shadow|canary|promote|rollback|holdout|history|check|arms``: change what a deployment serves.

Every change is a new revision of the deployment: running servers pick it up within a second, without a restart.
A policy is named as ``MODEL@N`` (a registered version, verified), ``kind:KIND`` (a fresh policy of a kind), or
the path of a saved policy folder.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rlops.cli.common import HomeOption, console, deploy_app, existing_home

if TYPE_CHECKING:
    from rlops.engine import Engine
    from rlops.engine.store import Change
    from rlops.rollout.operations import Rollout

Reason = Annotated[str, typer.Option("--reason", "-r", help="Why (kept in the deployment's history).")]
Actor = Annotated[str | None, typer.Option("--actor", help="Who makes the change (default: the OS user).",
                                           show_default=False)]
Deployment = Annotated[str, typer.Argument(help="The deployment.")]
PolicyArg = Annotated[str, typer.Argument(help="MODEL@VERSION, kind:KIND, or a saved policy folder.")]


def _done(change: Change) -> None:
    console.print(f"deployment [bold]{escape(change.name)}[/]: {change.action} {escape(change.version or '')} "
                  f"-> revision {change.revision}", soft_wrap=True)
    for note in change.details.get("registry", []):
        console.print(f"  registry: {escape(note)}", soft_wrap=True)


def _rollout(home: HomeOption, actor: str | None) -> tuple[Engine, Rollout]:
    from rlops.engine import Engine
    from rlops.rollout.operations import Rollout

    engine = Engine(existing_home(home))
    return engine, Rollout(engine, actor=actor)


@deploy_app.command("shadow")
def deploy_shadow(deployment: Deployment, policy: PolicyArg, reason: Reason,
                  name: Annotated[str, typer.Option("--name", help="The shadow's name.")] = "shadow",
                  remove: Annotated[bool, typer.Option("--remove", help="Remove the shadow named --name; POLICY is "
                                                                        "ignored (pass -).")] = False,
                  actor: Actor = None, home: HomeOption = None) -> None:
    """Add a shadow: it decides on every context next to production, logged with mode=shadow, never answered."""
    from rlops.rollout.operations import parse_source

    engine, rollout = _rollout(home, actor)
    with engine:
        if remove:
            _done(rollout.unshadow(deployment, shadow=name, reason=reason))
        else:
            _done(rollout.shadow(deployment, parse_source(policy), shadow=name, reason=reason))


@deploy_app.command("canary")
def deploy_canary(deployment: Deployment, policy: PolicyArg, reason: Reason,
                  fraction: Annotated[float, typer.Option("--fraction", "-f", help="Share of units it serves, "
                                                                                   "0 < f < 1.")] = 0.1,
                  override_gates: Annotated[bool, typer.Option(
                      "--override-gates", help="Serve a registered version although its validation report failed "
                                               "gates (recorded in the audit log with the reason).")] = False,
                  actor: Actor = None, home: HomeOption = None) -> None:
    """Serve POLICY to a sticky fraction of units next to production; the guardrail judges it.

    A registered version that failed validation gates is refused unless --override-gates."""
    from rlops.rollout.operations import parse_source

    engine, rollout = _rollout(home, actor)
    rollout.override_gates = override_gates
    with engine:
        _done(rollout.canary(deployment, parse_source(policy), fraction, reason=reason))


@deploy_app.command("promote")
def deploy_promote(deployment: Deployment, reason: Reason, actor: Actor = None, home: HomeOption = None) -> None:
    """Make the canary production (the old production version is retired in the registry)."""
    engine, rollout = _rollout(home, actor)
    with engine:
        _done(rollout.promote(deployment, reason=reason))


@deploy_app.command("rollback")
def deploy_rollback(deployment: Deployment, reason: Reason, actor: Actor = None, home: HomeOption = None) -> None:
    """Take the canary out; without a canary, return production to the policy before the last promotion."""
    engine, rollout = _rollout(home, actor)
    with engine:
        _done(rollout.rollback(deployment, reason=reason))


@deploy_app.command("holdout")
def deploy_holdout(deployment: Deployment, policy: PolicyArg, reason: Reason,
                   fraction: Annotated[float, typer.Option("--fraction", "-f", help="Share of units, "
                                                                                    "0 < f <= 0.5.")] = 0.05,
                   remove: Annotated[bool, typer.Option("--remove", help="Remove the holdout (POLICY ignored).")]
                   = False, actor: Actor = None, home: HomeOption = None) -> None:
    """Serve a baseline POLICY to a sticky fraction of units, to measure production's lift continuously."""
    from rlops.rollout.operations import parse_source

    engine, rollout = _rollout(home, actor)
    with engine:
        _done(rollout.holdout(deployment, None if remove else parse_source(policy), fraction, reason=reason))


@deploy_app.command("arms")
def deploy_arms(deployment: Deployment, home: HomeOption = None) -> None:
    """Show the arms serving a deployment: role, policy version, share of units, source."""
    from rlops.engine import Engine

    with Engine(existing_home(home)) as engine:
        table = Table("role", "name", "policy version", "units", "source", title=f"{deployment}: arms")
        for arm in engine.arms(deployment):
            share = "-" if arm.role == "shadow" else f"{arm.fraction:.1%}"
            table.add_row(arm.role.value, arm.name, arm.policy_version, share, escape(arm.source))
    console.print(table)


@deploy_app.command("history")
def deploy_history(deployment: Deployment, limit: Annotated[int, typer.Option(min=1)] = 50,
                   as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
                   home: HomeOption = None) -> None:
    """Rollout changes of a deployment, oldest first: what, which version, who, why."""
    engine, rollout = _rollout(home, None)
    with engine:
        changes = rollout.history(deployment, limit)
    if as_json:
        for c in changes:
            print(json.dumps({"ts_us": c.ts_us, "revision": c.revision, "action": c.action, "version": c.version,
                              "actor": c.actor, "reason": c.reason, "details": c.details}, default=str))
        return
    table = Table("when (UTC)", "revision", "action", "version", "actor", "reason", title=f"{deployment}: history")
    for c in changes:
        when = dt.datetime.fromtimestamp(c.ts_us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(when, str(c.revision), c.action, escape(c.version or ""), escape(c.actor), escape(c.reason))
    console.print(table)


@deploy_app.command("check")
def deploy_check(deployment: Deployment,
                 act: Annotated[bool, typer.Option("--act/--dry-run", help="Promote or roll back as the guardrail "
                                                                          "says (if the deployment allows it).")]
                 = True, actor: Actor = None, home: HomeOption = None) -> None:
    """Judge the canary against production with the sequential guardrail now, and act on the verdict."""
    engine, rollout = _rollout(home, actor or "guardrail")
    with engine:
        if act:
            check = rollout.check(deployment)
            canary, result, action = check.canary_version, check.result, check.action
        else:
            canary, _, result = rollout.judge(deployment)
            action = "none (dry run)"
    if canary is None or result is None:
        console.print(f"deployment [bold]{escape(deployment)}[/] has no canary: nothing to judge")
        return
    table = Table("metric", "canary n", "production n", "canary mean", "production mean", "difference (CS)",
                  "decision", title=f"{deployment}: {canary}")
    for m in result.metrics:
        d = m.difference
        table.add_row(m.metric, str(m.n_canary), str(m.n_production), f"{m.canary_mean:.4g}",
                      f"{m.production_mean:.4g}", f"{d.estimate:+.4g} [{d.lower:.4g}, {d.upper:.4g}]",
                      m.decision.value)
    console.print(table)
    console.print(f"verdict: [bold]{result.decision.value}[/] ({escape(result.reason)}); action: {action}",
                  soft_wrap=True)
