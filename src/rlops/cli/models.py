"""``rlops models``: the model registry (register, list, show, diff, stage, verify, card); thin over
:mod:`rlops.registry` and :mod:`rlops.explain.model_card`."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from rlops.cli.common import HomeOption, app, console, errors, existing_home, home_folder
from rlops.registry.stages import Stage

if TYPE_CHECKING:
    from rlops.home import Home
    from rlops.monitoring.drift import ReferenceProfile
    from rlops.registry import Lineage, ModelVersion, Registry

models_app = typer.Typer(help="The model registry: versions with lineage, signed artefacts, stages.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")

_STAGE_STYLE = {Stage.CANDIDATE: "cyan", Stage.SHADOW: "blue", Stage.CANARY: "yellow", Stage.PRODUCTION: "bold green",
                Stage.RETIRED: "dim"}

ActorOption = Annotated[str | None, typer.Option("--actor", help="Who does this (default: the OS user).",
                                                 show_default=False)]


def _when(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _stage(stage: Stage) -> str:
    return f"[{_STAGE_STYLE[stage]}]{stage.value}[/]"


def _open(home: Home) -> Registry:
    from rlops.registry import Registry

    return Registry(home)


def _lineage(name: str, parent: str | None, scenario: str | None, reward_spec: str | None,
             events_range: str | None, events_hash: str | None, home: Home) -> Lineage:
    from rlops.errors import ValidationError
    from rlops.events import EventLog
    from rlops.registry import EventsRange, Lineage, ModelRef, events_fingerprint

    ref = None
    if parent is not None:
        ref = ModelRef.parse(parent if "@" in parent else f"{name}@{parent}", "parent", require_version=True)
    events = None
    if events_range is not None:
        span = EventsRange.parse(events_range)
        if events_hash is not None:
            events = EventsRange(span.deployment, span.start_us, span.end_us, None, events_hash.lower())
        else:
            with EventLog(home.events) as log:
                events = events_fingerprint(log, span.deployment, span.start_us, span.end_us)
            if events.decisions == 0:
                raise ValidationError("events_range", f"no served decisions of deployment {span.deployment!r} in "
                                                      f"{events_range!r} in {home.events}; pass --events-hash to "
                                                      "record data kept elsewhere")
    elif events_hash is not None:
        raise ValidationError("events_hash", "needs --events-range (which deployment and time range it covers)")
    return Lineage(events=events, reward_spec=reward_spec, scenario=scenario, parent=ref)


def _reference(value: str, policy: Path, home: Home) -> ReferenceProfile:
    """The reference profile ``--reference`` names: a Parquet file of interactions, a saved profile, or a range of
    this home's event log (``DEPLOYMENT[@FROM..TO]``), profiled with the policy's schema."""
    from rlops.errors import NotFoundError, ValidationError
    from rlops.monitoring.drift import ReferenceProfile
    from rlops.monitoring.reference import profile_from_log, profile_parquet
    from rlops.policies import load_policy
    from rlops.registry import EventsRange

    schema = load_policy(policy).schema
    if value.endswith((".parquet", ".json")):
        file = Path(value)
        if not file.is_file():
            raise NotFoundError(f"--reference: {file} does not exist")
        if value.endswith(".json"):
            return ReferenceProfile.load(file)
        return profile_parquet(file, schema)
    try:
        span = EventsRange.parse(value)
    except ValidationError as e:
        raise ValidationError("--reference", f"{value!r} is not a .parquet or .json file nor DEPLOYMENT[@FROM..TO] "
                                             f"({e})") from e
    with console.status(f"profiling the interactions of {escape(span.deployment)}"):
        try:
            return profile_from_log(home, span.deployment, schema, start_us=span.start_us, end_us=span.end_us)
        except ValidationError as e:
            raise ValidationError("--reference", e.rule) from e


@models_app.command("register")
def register(
    name: Annotated[str, typer.Argument(help="Model name (letters, digits, '.', '_', '-').")],
    path: Annotated[Path, typer.Argument(help="Policy folder (as save_policy or rlops train writes it).")],
    parent: Annotated[str | None, typer.Option("--parent", help="Version it was fine-tuned from: VERSION of NAME, "
                                                                "or OTHER@VERSION.")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Validation report.json to sign in with it.")] = None,
    scenario: Annotated[str | None, typer.Option("--scenario", help="Scenario it was trained/validated on.")] = None,
    reward_spec: Annotated[str | None, typer.Option("--reward-spec", help="Reward spec and version, e.g. "
                                                                          "revenue@3.")] = None,
    events_range: Annotated[str | None, typer.Option(
        "--events-range", help="Training data: DEPLOYMENT[@FROM..TO] (ISO times, UTC; open ends allowed). Counted "
                               "and hashed from this home's event log unless --events-hash is given.")] = None,
    events_hash: Annotated[str | None, typer.Option("--events-hash", help="SHA-256 of the decision ids, for data "
                                                                          "kept outside this home.")] = None,
    reference: Annotated[str | None, typer.Option(
        "--reference", help="Reference profile of the training/validation data, signed in with it (what drift is "
                            "measured against): an interactions .parquet file (as `rlops events export` writes), a "
                            "reference_profile.json, or DEPLOYMENT[@FROM..TO] of this home's event log.")] = None,
    actor: ActorOption = None,
    home: HomeOption = None,
) -> None:
    """Register a policy folder as the next version of NAME: copied into the home, signed, as a candidate."""
    from rlops.explain.model_card import read_declared_card

    root = home_folder(home).ensure()
    read_declared_card(path)  # a bad card.yaml is refused now: once registered it is signed and cannot change
    lineage = _lineage(name, parent, scenario, reward_spec, events_range, events_hash, root)
    profile = None if reference is None else _reference(reference, path, root)
    with _open(root) as registry:
        version = registry.register(name, path, lineage=lineage, report=report, actor=actor, reference=profile)
    events = version.lineage.events
    trained = "" if events is None else f"; events {escape(str(events))}" + (
        f" ({events.decisions:,} decisions)" if events.decisions is not None else "")
    console.print(f"registered [bold]{escape(str(version.ref))}[/] as {_stage(version.stage)}: {version.kind}, content "
                  f"{version.content_hash[:12]}, signed by key {version.registration.get('key_id')}{trained}")
    if profile is not None:
        console.print(f"reference profile: {profile.n_rows:,} rows, {len(profile.features)} feature columns"
                      + (", actions" if profile.actions else "") + (", rewards" if profile.rewards else ""))


@models_app.command("list")
def list_models(
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    home: HomeOption = None,
) -> None:
    """List registered versions with their stage and lineage."""
    with _open(existing_home(home)) as registry:
        rows = registry.versions(name)
    if name is not None and not rows:
        from rlops.errors import NotFoundError

        raise NotFoundError(f"model {name!r} is not registered (see 'rlops models list')")
    table = Table("model", "v", "stage", "kind", "content", "parent", "trained on", "registered (UTC)", "by",
                  title="registered models")
    for v in rows:
        lineage = v.lineage
        table.add_row(escape(v.name), str(v.version), _stage(v.stage), v.kind, v.content_hash[:8],
                      escape(str(lineage.parent or "")),
                      escape(str(lineage.events or lineage.scenario or "")), _when(v.created_at_us)[:16],
                      escape(v.actor))
    console.print(table)


def _record_table(v: ModelVersion) -> Table:
    table = Table("field", "value", title=f"{escape(str(v.ref))}", show_header=False)
    table.add_row("stage", _stage(v.stage))
    table.add_row("kind", v.kind)
    table.add_row("content hash", v.content_hash)
    table.add_row("signed by", f"key {v.registration.get('key_id')} ({v.public_key})")
    table.add_row("registered", f"{_when(v.created_at_us)} UTC by {escape(v.actor)}")
    for key, value in v.lineage.flat().items():
        table.add_row(f"lineage: {key}", "" if value is None else escape(str(value)))
    for rel, digest in sorted(v.registration.get("files", {}).items()):
        table.add_row(f"file: {escape(rel)}", digest)
    return table


def _report_lines(report: dict[str, Any] | None) -> list[str]:
    if report is None:
        return ["no validation report was registered with this version"]
    lines = [f"validation report: {escape(str(report.get('status', '?')).upper())}"]
    for gate in report.get("gates") or []:
        name = (gate.get("gate") or {}).get("name", "?")
        lines.append(f"  {escape(str(gate.get('status', '?')).upper()):<5} {escape(str(name))}: "
                     f"{escape(str(gate.get('reason', '')))}")
    return lines


@models_app.command("show")
def show(
    model: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default: the latest version).")],
    home: HomeOption = None,
) -> None:
    """Show a version: stage, lineage, files, validation gates and its stage history; verifies its signature."""
    from rlops.errors import ConfigError, NotFoundError
    from rlops.registry import ModelRef

    ref = ModelRef.parse(model)
    with _open(existing_home(home)) as registry:
        record = registry.get(ref.name, ref.version)
        problem = None
        try:
            details = registry.details(record.name, record.version)
        except (ConfigError, NotFoundError) as e:
            problem, details = str(e), None
        history = registry.history(record.name, record.version)
    console.print(_record_table(record))
    if details is not None:
        for line in _report_lines(details.report):
            console.print(line, highlight=False)
    moves = Table("when (UTC)", "from", "to", "by", "why", title="stage history")
    for t in history:
        moves.add_row(_when(t.at_us), "" if t.from_stage is None else t.from_stage.value, _stage(t.to_stage),
                      escape(t.actor), escape(t.reason))
    console.print(moves)
    if problem is not None:
        errors.print(Text.assemble(("integrity: FAILED: ", "bold red"), problem), highlight=False)
        raise typer.Exit(1)
    console.print("[green]integrity: signature and every file's hash verified[/]")


@models_app.command("diff")
def diff(
    before: Annotated[str, typer.Argument(help="NAME@A: the version to compare from.")],
    after: Annotated[str, typer.Argument(help="NAME@B (or OTHER@B): the version to compare to.")],
    home: HomeOption = None,
) -> None:
    """What changed between two versions: content, lineage, configuration, validation gates."""
    from rlops.registry import ModelRef

    a = ModelRef.parse(before, "before", require_version=True)
    b = ModelRef.parse(after, "after", require_version=True)
    with _open(existing_home(home)) as registry:
        changes = registry.diff(a, b)
    if not changes:
        console.print(f"{escape(str(a))} and {escape(str(b))} are identical in content, lineage, configuration "
                      "and gates")
        return
    table = Table("section", "field", escape(str(a)), escape(str(b)), title=f"{escape(str(a))} -> {escape(str(b))}")
    for c in changes:
        table.add_row(c.section.value, escape(c.key), "" if c.before is None else escape(str(c.before)),
                      "" if c.after is None else escape(str(c.after)))
    console.print(table)


@models_app.command("stage")
def stage(
    model: Annotated[str, typer.Argument(help="NAME@VERSION.")],
    target: Annotated[Stage, typer.Argument(help="The stage to move to.", case_sensitive=False)],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the history).")],
    actor: ActorOption = None,
    override_gates: Annotated[bool, typer.Option("--override-gates", help="Move into canary or production although "
                                                 "the version's validation report failed gates (recorded in the "
                                                 "audit log as a gate override with the reason).")] = False,
    home: HomeOption = None,
) -> None:
    """Move a version to another stage (candidate, shadow, canary, production, retired), recording who and why.

    A version whose validation report failed a gate enters canary or production only with --override-gates."""
    from rlops.registry import ModelRef

    ref = ModelRef.parse(model, require_version=True)
    assert ref.version is not None  # require_version
    with _open(existing_home(home)) as registry:
        moves = registry.transition(ref.name, ref.version, target, reason=reason, actor=actor,
                                    override_gates=override_gates)
    for t in moves:
        console.print(f"{escape(t.name)}@{t.version}: {t.from_stage.value if t.from_stage else ''} -> "
                      f"{_stage(t.to_stage)} ({escape(t.reason)}; by {escape(t.actor)})")


@models_app.command("verify")
def verify(
    model: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default: the latest version).")],
    home: HomeOption = None,
) -> None:
    """Check a version's signature and the hash of every file; exits 1 if anything was changed."""
    from rlops.registry import ModelRef

    ref = ModelRef.parse(model)
    with _open(existing_home(home)) as registry:
        record = registry.verify(ref.name, ref.version)
    console.print(f"{escape(str(record.ref))}: signature (key {record.registration.get('key_id')}) and "
                  f"{len(record.registration.get('files', {}))} file hashes verified")


class CardFormat(StrEnum):
    """What ``rlops models card`` writes."""

    MD = "md"  #: Markdown with YAML front matter (Hugging Face hub style)
    JSON = "json"  #: the same card as JSON


@models_app.command("card")
def card(
    model: Annotated[str, typer.Argument(help="NAME@VERSION (NAME alone: the latest version).")],
    fmt: Annotated[CardFormat | None, typer.Option("--format", case_sensitive=False, help="md (Markdown with YAML "
                                                   "front matter) or json (default: json if --out ends in .json, "
                                                   "else md).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", help="File to write, atomically (default: standard output).",
                                             show_default=False)] = None,
    home: HomeOption = None,
) -> None:
    """Write the model card of a version: intended use, architecture and size, training data, validation results
    with confidence intervals, stress suite, resource budget, known limitations, owners, lineage and stage history.
    The version is verified first: a changed or unsigned one exits 1 and no card is written."""
    from rlops.errors import StorageError, ValidationError
    from rlops.explain.model_card import CardFormat as Rendering
    from rlops.explain.model_card import build_model_card, render_card
    from rlops.files import write_atomic
    from rlops.registry import ModelRef

    ref = ModelRef.parse(model)
    if out is not None and out.is_dir():
        raise ValidationError("--out", f"{out} is a folder; give a file name such as {out / 'card.md'}")
    if fmt is None:
        fmt = CardFormat.JSON if out is not None and out.suffix.lower() == ".json" else CardFormat.MD
    with _open(existing_home(home)) as registry:
        made = build_model_card(registry, ref.name, ref.version)
    text = render_card(made, Rendering(fmt.value))
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        write_atomic(out, text)
    except OSError as e:
        raise StorageError(f"--out {out}: cannot write the model card: {e.strerror or e}") from e
    console.print(f"wrote the model card of {escape(made.identity.ref)} to {escape(str(out))}")
