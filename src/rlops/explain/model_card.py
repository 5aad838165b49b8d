"""Model cards: what a registered version is, what it was trained on, how it did in validation, where it falls short.

A card is built from a *verified* version (:meth:`rlops.registry.Registry.details`: its signature and every file's
hash checked first) and holds nothing that is not in the registry: the record and its stage history, the signed
lineage, the policy manifest and state files, the signed validation report, and what the registering user declared
in an optional ``card.yaml`` inside the policy folder::

    # policy-folder/card.yaml, written after save_policy (which replaces the folder) and before registering
    intended_use: Prices the checkout upsell for logged-in EU customers; not for first visits.
    limitations:
      - Never trained on December traffic.
    owners: [pricing-team@example.com]

``card.yaml`` is copied into the registry with the policy folder and signed with it, so what a card declares cannot
change after registration (it is part of the content hash, like every file of the policy folder).

:func:`build_model_card` computes a typed :class:`ModelCardData`; :func:`to_markdown` renders it as Markdown with YAML
front matter in the style the Hugging Face hub uses for RL models (``library_name``, ``tags``, ``model-index``), and
:func:`to_json` as JSON. Both renderings are deterministic: the same registry state gives the same bytes.

Example:
    >>> from rlops.home import Home
    >>> from rlops.registry import Registry
    >>> with Registry(Home.resolve("/tmp/h").require()) as registry:  # doctest: +SKIP
    ...     card = build_model_card(registry, "pricing", 3)
    ...     print(to_markdown(card))
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rlops.configfile import parse_model
from rlops.encryption import is_sealed, read_plain
from rlops.errors import ConfigError
from rlops.evaluation.status import Status
from rlops.registry import Registry, Transition, VersionDetails
from rlops.registry.artifact import POLICY

#: The file in a policy folder where the registering user declares intended use, limitations and owners.
CARD_FILE = "card.yaml"
FORMAT = "rlops.model_card"
FORMAT_VERSION = 1
#: Policy kinds that are deep (sequential or offline) reinforcement learning; every other kind is a contextual bandit.
DEEP_KINDS = frozenset({"sb3", "mlp"})
#: Parameter counts by content hash (a version's files never change, so neither does its count).
_FACTS: dict[str, tuple[list[FileInfo], int | None, str]] = {}
_MAX_FACTS = 256


class CardFormat(StrEnum):
    """How a card is rendered."""

    MARKDOWN = "md"
    JSON = "json"


#: The media type of each rendering (for an HTTP response).
MEDIA_TYPES = {CardFormat.MARKDOWN: "text/markdown; charset=utf-8", CardFormat.JSON: "application/json"}


class LimitationSource(StrEnum):
    """Where a known limitation comes from."""

    DECLARED = "declared"  # written by the registering user (card.yaml) or given when building the card
    REPORT = "report"  # the validation report is missing or is about other policy content
    GATE = "gate"  # a gate failed, warned or could not be judged
    OPE = "ope"  # the off-policy estimators warned (few effective samples, large weights)
    DATA = "data"  # a logged-data check warned or failed
    STRESS = "stress"  # a stress variation where it does worse than the baseline or violates constraints
    BUDGET = "budget"  # a resource budget item over its limit
    TRAINING_DATA = "training_data"  # its lineage does not say what it was trained on


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeclaredCard(_Model):
    """What ``card.yaml`` may declare; every key is optional, and an unknown key is refused.

    Attributes:
        intended_use: what the model is for, and what it is not for (up to 5,000 characters).
        limitations: known limitations, one per item (a single string is one item).
        owners: who answers for the model: people, teams, addresses.
    """

    intended_use: str | None = Field(default=None, min_length=1, max_length=5000)
    limitations: list[str] = Field(default_factory=list, max_length=100)
    owners: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("limitations", "owners", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("limitations", "owners")
    @classmethod
    def _not_blank(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip() for v in value]
        if any(not v or len(v) > 2000 for v in cleaned):
            raise ValueError("every item must be 1-2000 characters")
        return cleaned


def read_declared_card(folder: str | Path) -> DeclaredCard | None:
    """The ``card.yaml`` of a policy folder, validated, or ``None`` when the folder has none.

    ``rlops models register`` calls this before registering, so that a mistake is found while it can still be fixed
    (once registered, the file is signed and cannot change). A sealed file (encrypted, from another home) is not
    checked here: ``None``.

    Raises:
        ConfigError: the file is not YAML, or a key is unknown or of the wrong type (naming the file and the key).
    """
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from e
    if is_sealed(data):  # a sealed policy folder (from another home): checked when its card is built
        return None
    return _parse_declared(data, str(path))


def _parse_declared(data: bytes, source: str) -> DeclaredCard:
    try:
        parsed = yaml.safe_load(data.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from e
    return parse_model(DeclaredCard, {} if parsed is None else parsed, source, "model card")


# ---- the card -------------------------------------------------------------------------------------------------------


class Identity(_Model):
    """Which version this is.

    Attributes:
        ref: ``NAME@VERSION``.
        signed_by: the id of the key that signed it; ``public_key`` is that key (base64 raw Ed25519).
        registered_at: registration time, ISO 8601 UTC (``registered_at_us`` in microseconds since the epoch).
    """

    name: str
    version: int
    ref: str
    stage: str
    kind: str
    content_hash: str
    signed_by: str | None
    public_key: str
    registered_at: str
    registered_at_us: int
    registered_by: str


class FileInfo(_Model):
    """One file of the policy folder: its path in the version folder, plaintext size and SHA-256."""

    path: str
    bytes: int
    sha256: str


class Architecture(_Model):
    """What the policy is and how big.

    Attributes:
        family: ``contextual-bandit`` or ``deep-reinforcement-learning`` (by kind, see :data:`DEEP_KINDS`).
        config: the manifest's configuration (hyperparameters), keys sorted.
        features: the context features it reads, in schema order.
        action_type: ``discrete``, ``candidates`` or ``box``; ``actions`` names discrete actions, ``action_dims`` is
            the dimension of a box.
        preprocessing: a fitted preprocessor sits in front of it.
        parameters: how many numbers its saved state holds (``None``: not countable, see ``parameters_counted``).
        parameters_counted: what was counted, or why nothing was.
        files: the policy folder's files; ``total_bytes`` their sum.
    """

    kind: str
    family: str
    config: dict[str, Any]
    features: list[str]
    action_type: str
    actions: list[str]
    action_dims: int | None
    preprocessing: bool
    parameters: int | None
    parameters_counted: str
    files: list[FileInfo]
    total_bytes: int


class TrainingData(_Model):
    """What it was trained on, as its lineage records it (``None``: not recorded; nothing is inferred).

    Attributes:
        source: ``event log`` (a range of a deployment's served decisions), ``simulator`` (a scenario, no logged
            range) or ``not recorded``.
        start / end: the range's first time included and the time it ends before, ISO 8601 UTC (``None``: open
            or not recorded).
        decisions: how many served decisions the range held when registered; ``decisions_hash`` their SHA-256.
    """

    source: str
    deployment: str | None
    start: str | None
    end: str | None
    start_us: int | None
    end_us: int | None
    decisions: int | None
    decisions_hash: str | None
    reward_spec: str | None
    scenario: str | None


class Interval(_Model):
    low: float | None
    high: float | None
    level: float | None = None
    method: str | None = None


class Estimate(_Model):
    """One off-policy estimate of the version's value on the logged data, with its confidence interval."""

    estimator: str
    value: float | None
    interval: Interval
    std_error: float | None
    n: int | None
    ess: float | None
    max_weight: float | None
    warnings: list[str]


class LowerBound(_Model):
    """The high-confidence lower bound on the value (``skipped`` says why there is none)."""

    estimator: str | None
    method: str | None
    level: float | None
    low: float | None
    skipped: str | None


class OffPolicyEvaluation(_Model):
    """Off-policy evaluation on logged interactions: the logging policy's own value and each estimator's."""

    rows: int | None
    logging_value: float | None
    logging_interval: Interval
    estimates: list[Estimate]
    lower_bound: LowerBound | None


class GateVerdict(_Model):
    name: str
    metric: str | None
    status: Status | None
    reason: str


class DataCheck(_Model):
    check: str
    subject: str
    status: Status | None
    message: str


class DataSummary(_Model):
    """The checks of the logged data the evaluation read: how many rows, the verdict, the checks that did not pass."""

    rows: int | None
    status: Status | None
    checks: int
    flagged: list[DataCheck]


class ArmResult(_Model):
    """A controller's results in one stress variation: mean episode return with its interval, CVaR, violations."""

    mean_return: float | None
    interval: Interval
    cvar: float | None
    violation_rate: float | None


class StressVariation(_Model):
    """One variation: the candidate (this version), the baseline, and candidate minus baseline with its interval."""

    name: str
    candidate: ArmResult
    baseline: ArmResult
    difference: float | None
    difference_interval: Interval


class StressSuite(_Model):
    scenario: str | None
    baseline: str | None
    episodes: int | None
    confidence: float | None
    cvar_alpha: float | None
    variations: list[StressVariation]


class BudgetItem(_Model):
    name: str
    measured: float | None
    limit: float | None
    unit: str
    status: Status | None


class Budget(_Model):
    passed: bool | None
    items: list[BudgetItem]


class Validation(_Model):
    """The signed validation report, as a card shows it.

    Attributes:
        status: the report's overall verdict.
        command: the command that made it (its numbers can be recomputed with it).
        policy_hash: the content hash of the policy it validated; ``matches_version`` whether that is this version's
            (a ``card.yaml`` added after validating is allowed for), ``None`` when the report does not say.
    """

    status: Status | None
    command: str | None
    seed: int | None
    policy_hash: str | None
    matches_version: bool | None
    gates: list[GateVerdict]
    data: DataSummary | None
    ope: OffPolicyEvaluation | None
    stress: StressSuite | None
    budget: Budget | None


class Limitation(_Model):
    source: LimitationSource
    text: str


class LineageInfo(_Model):
    """Where it came from: its parent version, scenario, reward spec, training range, and the rlops that registered
    it (version and git commit, when it ran from a checkout)."""

    parent: str | None
    scenario: str | None
    reward_spec: str | None
    events: str | None
    rlops_version: str | None
    git_commit: str | None


class StageChange(_Model):
    at: str
    at_us: int
    from_stage: str | None
    to_stage: str
    actor: str
    reason: str


class ModelCardData(_Model):
    """A model card: every section the issue asks for, typed; :func:`to_json` and :func:`to_markdown` render it.

    Attributes:
        intended_use: declared (``card.yaml`` or given) or, failing that, a sentence derived from the schema, the
            training data and the scenario; ``intended_use_declared`` says which.
        validation: ``None`` when the version was registered without a report.
        limitations: declared ones first, then the ones the report and lineage show.
        owners: the registering user, then the declared owners (each once).
        history: stage changes, oldest first (the registration included).
    """

    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    identity: Identity
    intended_use: str
    intended_use_declared: bool
    architecture: Architecture
    training_data: TrainingData
    validation: Validation | None
    limitations: list[Limitation]
    owners: list[str]
    lineage: LineageInfo
    history: list[StageChange]


# ---- building ------------------------------------------------------------------------------------------------------


def build_model_card(registry: Registry, name: str, version: int | None = None, *, intended_use: str | None = None,
                     limitations: Sequence[str] | None = None, owners: Sequence[str] | None = None) -> ModelCardData:
    """The model card of a registered version, verified first.

    Args:
        registry: the registry holding it.
        name: the model.
        version: its version (default: the latest).
        intended_use: replaces the intended use declared in ``card.yaml`` (or derived).
        limitations: added after the declared ones.
        owners: added after the registering user and the declared owners.

    Raises:
        NotFoundError: no such version, or its files are gone.
        ConfigError: the version was changed after it was registered (naming the file), or a signing key is not
            trusted.
    """
    details = registry.details(name, version)
    return card_from_details(registry, details, intended_use=intended_use, limitations=limitations, owners=owners)


def card_from_details(registry: Registry, details: VersionDetails, *, history: Sequence[Transition] | None = None,
                      intended_use: str | None = None, limitations: Sequence[str] | None = None,
                      owners: Sequence[str] | None = None) -> ModelCardData:
    """The model card of a version already verified by :meth:`Registry.details` (see :func:`build_model_card`).

    Args:
        history: its stage changes, when the caller has them (default: read from the registry).
    """
    record = details.version
    folder = registry.folder(record.name, record.version)
    declared, problem = _declared(registry, details)
    architecture = _architecture(registry, details, folder)
    training = _training_data(details)
    validation = None if details.report is None else _validation(details.report, details)
    use = _clean_text(intended_use) or (declared.intended_use.strip() if declared and declared.intended_use else None)
    found = _limitations(validation, training)
    if problem is not None:
        found.insert(0, Limitation(source=LimitationSource.DECLARED, text=problem))
    told = [*(declared.limitations if declared else []), *(_clean_text(t) for t in limitations or [])]
    lineage = record.lineage
    moves = history if history is not None else registry.history(record.name, record.version)
    return ModelCardData(
        identity=Identity(name=record.name, version=record.version, ref=str(record.ref), stage=record.stage.value,
                          kind=record.kind, content_hash=record.content_hash,
                          signed_by=_opt_str(record.registration.get("key_id")), public_key=record.public_key,
                          registered_at=_iso(record.created_at_us), registered_at_us=record.created_at_us,
                          registered_by=record.actor),
        intended_use=use or _default_use(architecture, training),
        intended_use_declared=use is not None,
        architecture=architecture,
        training_data=training,
        validation=validation,
        limitations=[*(Limitation(source=LimitationSource.DECLARED, text=t) for t in told if t), *found],
        owners=_unique([record.actor, *(declared.owners if declared else []), *(_clean_text(o) for o in owners or [])]),
        lineage=LineageInfo(parent=None if lineage.parent is None else str(lineage.parent), scenario=lineage.scenario,
                            reward_spec=lineage.reward_spec,
                            events=None if lineage.events is None else str(lineage.events),
                            rlops_version=lineage.rlops_version, git_commit=lineage.git_commit),
        history=[StageChange(at=_iso(t.at_us), at_us=t.at_us, from_stage=None if t.from_stage is None else
                             t.from_stage.value, to_stage=t.to_stage.value, actor=t.actor, reason=t.reason)
                 for t in moves])


def _declared(registry: Registry, details: VersionDetails) -> tuple[DeclaredCard | None, str | None]:
    """The signed ``card.yaml``, or the reason it cannot be used (a bad file must not hide the rest of the card)."""
    record = details.version
    rel = f"{POLICY}/{CARD_FILE}"
    if rel not in record.registration.get("files", {}):
        return None, None
    path = registry.folder(record.name, record.version) / POLICY / CARD_FILE
    try:
        return _parse_declared(read_plain(path, registry.keyring), rel), None
    except ConfigError as e:
        return None, f"its {CARD_FILE} is invalid, so nothing it declares is shown ({e})"
    except OSError as e:
        return None, f"its {CARD_FILE} could not be read ({e.strerror or e})"


def _architecture(registry: Registry, details: VersionDetails, folder: Path) -> Architecture:
    manifest = details.manifest
    schema = manifest.get("schema") if isinstance(manifest.get("schema"), Mapping) else {}
    assert isinstance(schema, Mapping)
    actions = schema.get("actions") if isinstance(schema.get("actions"), Mapping) else {}
    assert isinstance(actions, Mapping)
    action_type = str(actions.get("type", "discrete"))
    low = actions.get("low")
    files, parameters, counted = _policy_facts(registry, details, folder)
    kind = details.version.kind
    config = manifest.get("config") if isinstance(manifest.get("config"), Mapping) else {}
    return Architecture(
        kind=kind, family=_family(kind), config=_sorted(config),
        features=[str(f.get("name")) for f in schema.get("features") or [] if isinstance(f, Mapping)],
        action_type=action_type, actions=[str(a) for a in actions.get("names") or []],
        action_dims=len(low) if action_type == "box" and isinstance(low, list) else None,
        preprocessing="preprocessing" in manifest, parameters=parameters, parameters_counted=counted, files=files,
        total_bytes=sum(f.bytes for f in files))


def _family(kind: str) -> str:
    return "deep-reinforcement-learning" if kind in DEEP_KINDS else "contextual-bandit"


def _policy_facts(registry: Registry, details: VersionDetails, folder: Path) -> tuple[list[FileInfo], int | None, str]:
    """The policy folder's files and the parameter count of its state (cached by content hash)."""
    record = details.version
    cached = _FACTS.get(record.content_hash)
    if cached is not None:
        return cached
    listed = {rel: digest for rel, digest in record.registration.get("files", {}).items()
              if rel.startswith(f"{POLICY}/")}
    files, contents = [], {}
    for rel in sorted(listed, key=lambda r: PurePosixPath(r).parts):
        data = read_plain(folder / rel, registry.keyring)
        files.append(FileInfo(path=rel, bytes=len(data), sha256=str(listed[rel])))
        contents[rel[len(POLICY) + 1:]] = data
    state = details.manifest.get("files") if isinstance(details.manifest.get("files"), Mapping) else {}
    assert isinstance(state, Mapping)
    parameters, counted = _count_parameters({name: contents[name] for name in sorted(state) if name in contents})
    facts = (files, parameters, counted)
    if len(_FACTS) >= _MAX_FACTS:
        _FACTS.clear()
    _FACTS[record.content_hash] = facts
    return facts


def _count_parameters(state: Mapping[str, bytes]) -> tuple[int | None, str]:
    """How many numbers the state files hold: arrays in ``.npz`` files, tensors in torch state dicts (``.pt``,
    ``.pth``, and ``policy.pth`` inside an SB3 ``.zip``); ``None`` when a file is of another format."""
    if not state:
        return 0, "no state files: nothing learned is saved beside the manifest"
    total, parts = 0, []
    for name, data in state.items():
        try:
            if name.endswith(".npz"):
                with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                    total += sum(int(arrays[key].size) for key in arrays.files)
                parts.append(f"arrays in {name}")
            elif name.endswith(".zip"):
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    if "policy.pth" not in archive.namelist():
                        return None, f"{name} holds no policy.pth: its parameters are not counted"
                    total += _torch_numel(archive.read("policy.pth"))
                parts.append(f"tensors in {name}/policy.pth")
            elif name.endswith((".pt", ".pth")):
                total += _torch_numel(data)
                parts.append(f"tensors in {name}")
            else:
                return None, f"{name}: parameters of this format are not counted"
        except ImportError:
            return None, f"{name}: counting its tensors needs torch, which is not installed"
        except Exception as e:  # a file the counter cannot parse leaves the count out, not the card
            return None, f"{name}: could not be read to count parameters ({type(e).__name__})"
    return total, ", ".join(parts)


def _torch_numel(data: bytes) -> int:
    import torch

    loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    values = loaded.values() if isinstance(loaded, Mapping) else [loaded]
    return sum(int(v.numel()) for v in values if hasattr(v, "numel"))


def _training_data(details: VersionDetails) -> TrainingData:
    lineage = details.version.lineage
    events = lineage.events
    source = "event log" if events is not None else "simulator" if lineage.scenario else "not recorded"
    return TrainingData(
        source=source, deployment=None if events is None else events.deployment,
        start=None if events is None or events.start_us is None else _iso(events.start_us),
        end=None if events is None or events.end_us is None else _iso(events.end_us),
        start_us=None if events is None else events.start_us, end_us=None if events is None else events.end_us,
        decisions=None if events is None else events.decisions, decisions_hash=None if events is None else events.hash,
        reward_spec=lineage.reward_spec, scenario=lineage.scenario)


def _validation(report: Mapping[str, Any], details: VersionDetails) -> Validation:
    policy = _map(report.get("policy"))
    digest = _opt_str(policy.get("hash"))
    return Validation(
        status=_status(report.get("status")), command=_opt_str(report.get("command")), seed=_int(report.get("seed")),
        policy_hash=digest, matches_version=None if digest is None else digest in _version_hashes(details),
        gates=[GateVerdict(name=str(_map(g.get("gate")).get("name", "?")),
                           metric=_opt_str(_map(g.get("gate")).get("metric")), status=_status(g.get("status")),
                           reason=str(g.get("reason") or "")) for g in _maps(report.get("gates"))],
        data=_data(_map(report.get("data"))) if report.get("data") else None,
        ope=_ope(_map(report.get("ope"))) if report.get("ope") else None,
        stress=_stress(_map(report.get("stress"))) if report.get("stress") else None,
        budget=_budget(_map(report.get("budget"))) if report.get("budget") else None)


def _version_hashes(details: VersionDetails) -> set[str]:
    """This version's content hash, and the hash of its policy folder without ``card.yaml`` (what ``rlops validate``
    saw when the card was written after validating), as :func:`rlops.policies.content_hash` computes them."""
    import hashlib

    files = {PurePosixPath(rel).relative_to(POLICY): digest
             for rel, digest in details.version.registration.get("files", {}).items() if rel.startswith(f"{POLICY}/")}
    out = {details.version.content_hash}
    without = hashlib.sha256()
    for path in sorted(p for p in files if str(p) != CARD_FILE):
        without.update(str(path).encode())
        without.update(str(files[path]).encode())
    out.add(without.hexdigest())
    return out


def _interval(value: Any) -> Interval:
    m = _map(value)
    return Interval(low=_float(m.get("low")), high=_float(m.get("high")), level=_float(m.get("level")),
                    method=_opt_str(m.get("method")))


def _ope(ope: Mapping[str, Any]) -> OffPolicyEvaluation:
    logging = _map(ope.get("logging"))
    bound = _map(ope.get("lower_bound"))
    return OffPolicyEvaluation(
        rows=_int(ope.get("rows")), logging_value=_float(logging.get("value")),
        logging_interval=_interval(logging.get("interval")),
        estimates=[Estimate(estimator=str(name), value=_float(e.get("value")), interval=_interval(e.get("interval")),
                            std_error=_float(e.get("std_error")), n=_int(e.get("n")), ess=_float(e.get("ess")),
                            max_weight=_float(e.get("max_weight")), warnings=[str(w) for w in e.get("warnings") or []])
                   for name, e in _map(ope.get("estimates")).items() if isinstance(e, Mapping)],
        lower_bound=LowerBound(estimator=_opt_str(bound.get("estimator")), method=_opt_str(bound.get("method")),
                               level=_float(bound.get("level")), low=_float(bound.get("low")),
                               skipped=_opt_str(bound.get("skipped"))) if bound else None)


def _data(data: Mapping[str, Any]) -> DataSummary:
    checks = _maps(data.get("checks"))
    return DataSummary(rows=_int(data.get("rows")), status=_status(data.get("status")), checks=len(checks),
                       flagged=[DataCheck(check=str(c.get("check", "?")), subject=str(c.get("subject", "")),
                                          status=_status(c.get("status")), message=str(c.get("message", "")))
                                for c in checks if c.get("status") != Status.PASS.value])


def _arm(value: Any) -> ArmResult:
    arm = _map(value)
    ret = _map(arm.get("mean_return"))
    return ArmResult(mean_return=_float(ret.get("estimate")), interval=_interval(ret), cvar=_float(arm.get("cvar")),
                     violation_rate=_float(arm.get("violation_rate")))


def _stress(stress: Mapping[str, Any]) -> StressSuite:
    config = _map(stress.get("config"))
    variations = []
    for name, v in _map(stress.get("variations")).items():
        if isinstance(v, Mapping):
            diff = _map(v.get("difference"))
            variations.append(StressVariation(name=str(name), candidate=_arm(v.get("candidate")),
                                              baseline=_arm(v.get("baseline")), difference=_float(diff.get("estimate")),
                                              difference_interval=_interval(diff)))
    return StressSuite(scenario=_opt_str(stress.get("scenario")), baseline=_opt_str(stress.get("baseline")),
                       episodes=_int(config.get("episodes")), confidence=_float(config.get("confidence")),
                       cvar_alpha=_float(config.get("cvar_alpha")), variations=variations)


def _budget(budget: Mapping[str, Any]) -> Budget:
    passed = budget.get("passed")
    return Budget(passed=passed if isinstance(passed, bool) else None,
                  items=[BudgetItem(name=str(i.get("name", "?")), measured=_float(i.get("measured")),
                                    limit=_float(i.get("limit")), unit=str(i.get("unit") or ""),
                                    status=_status(i.get("status"))) for i in _maps(budget.get("items"))])


def _limitations(validation: Validation | None, training: TrainingData) -> list[Limitation]:
    """What the report and the lineage show it does not do well, or do not show at all."""
    out: list[Limitation] = []

    def add(source: LimitationSource, text: str) -> None:
        out.append(Limitation(source=source, text=text))

    if training.source == "not recorded":
        add(LimitationSource.TRAINING_DATA, "Its lineage does not record what it was trained on (no event-log range "
                                            "and no scenario).")
    if validation is None:
        add(LimitationSource.REPORT, "It was registered without a validation report: nothing here shows how it "
                                     "performs offline.")
        return out
    if validation.matches_version is False:
        add(LimitationSource.REPORT, f"The validation report is about other policy content (hash "
                                     f"{(validation.policy_hash or '')[:12]}), not this version's.")
    for g in validation.gates:
        if g.status is Status.FAIL:
            add(LimitationSource.GATE, _sentence(f"Failed gate '{g.name}': {g.reason}"))
        elif g.status is Status.WARN:
            add(LimitationSource.GATE, _sentence(f"Gate '{g.name}' warned: {g.reason}"))
        elif g.status is Status.SKIP:
            add(LimitationSource.GATE, _sentence(f"Gate '{g.name}' could not be judged: {g.reason}"))
    if validation.data is not None:
        for c in validation.data.flagged:
            add(LimitationSource.DATA, _sentence(f"Logged-data check '{c.check}' on {c.subject or 'the data'} "
                                                 f"({(c.status or '?')}): {c.message}"))
    if validation.ope is not None:
        warned: dict[str, list[str]] = {}
        for e in validation.ope.estimates:
            for w in e.warnings:
                warned.setdefault(w, []).append(e.estimator)
        ess = min((e.ess for e in validation.ope.estimates if e.ess is not None), default=None)
        for warning, names in warned.items():
            extra = f"; the effective sample size is {_fmt(ess)} of {validation.ope.rows} rows" \
                if ess is not None and validation.ope.rows else ""
            add(LimitationSource.OPE, f"Off-policy estimates warn of '{warning}' ({', '.join(names)}){extra}: "
                                      "their intervals may be optimistic.")
    if validation.stress is not None:
        for v in validation.stress.variations:
            high = v.difference_interval.high
            if v.difference is not None and high is not None and high < 0:
                add(LimitationSource.STRESS, f"Under stress variation '{v.name}' its mean return is below the "
                                             f"baseline's: {_fmt(v.difference)} "
                                             f"{_ci(v.difference_interval)}.")
            rate = v.candidate.violation_rate
            if rate is not None and rate > 0:
                add(LimitationSource.STRESS, f"Under stress variation '{v.name}' it violates constraints in "
                                             f"{rate:.2%} of steps.")
    if validation.budget is not None:
        for item in validation.budget.items:
            if item.status is Status.FAIL:
                add(LimitationSource.BUDGET, f"Resource budget '{item.name}': {_fmt(item.measured)} {item.unit} is "
                                             f"over the limit of {_fmt(item.limit)} {item.unit}.")
    return out


def _default_use(arch: Architecture, training: TrainingData) -> str:
    """One sentence from the schema, training data, reward spec and scenario, plus how to declare a real one."""
    if arch.action_type == "box":
        acting = f"a continuous action of {arch.action_dims or '?'} dimensions"
    elif arch.action_type == "candidates":
        acting = "one of the candidate actions offered with each request"
    else:
        acting = f"one of {len(arch.actions)} actions ({_listing(arch.actions)})"
    what = "at each step of a sequential decision process" if arch.family == "deep-reinforcement-learning" \
        else "for each request"
    text = f"Chooses {acting} {what}, from {len(arch.features)} context features ({_listing(arch.features)})"
    if training.reward_spec:
        text += f", to maximise the reward {training.reward_spec}"
    if training.deployment:
        text += f"; trained on the served decisions of deployment '{training.deployment}'"
    if training.scenario:
        text += f"; trained or validated in scenario '{training.scenario}'"
    return (text + ". Use it only for the same decision, features and population. No intended use was declared "
            f"(write one in {CARD_FILE} in the policy folder before registering).")


# ---- rendering -----------------------------------------------------------------------------------------------------


def to_json(card: ModelCardData) -> str:
    """The card as JSON: sections in a fixed order, two-space indent, a final newline."""
    return json.dumps(card.model_dump(mode="json"), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def front_matter(card: ModelCardData) -> dict[str, Any]:
    """The YAML front matter, as the Hugging Face hub reads it for RL models: ``library_name``, ``tags`` and a
    ``model-index`` with one result per evaluation (off-policy evaluation on the logged data, each stress variation);
    metrics are not verified by the hub (``verified: false``)."""
    arch = card.architecture
    tags = ["reinforcement-learning", "contextual-bandits" if arch.family == "contextual-bandit" else arch.family,
            arch.kind, "rlops"]
    if card.training_data.scenario:
        tags.append(card.training_data.scenario)
    results: list[dict[str, Any]] = []
    v = card.validation
    if v is not None and v.ope is not None:
        metrics = [_metric(f"ope_{e.estimator}", e.value, f"{e.estimator.upper()} estimate of the policy value "
                                                          f"{_ci(e.interval)}") for e in v.ope.estimates]
        metrics.append(_metric("logging_policy_value", v.ope.logging_value,
                               f"logging policy's mean reward {_ci(v.ope.logging_interval)}"))
        results.append({"task": {"type": "reinforcement-learning", "name": "off-policy evaluation"},
                        "dataset": {"name": card.training_data.deployment or "logged interactions",
                                    "type": "logged-interactions"},
                        "metrics": [m for m in metrics if m is not None]})
    if v is not None and v.stress is not None:
        for s in v.stress.variations:
            metrics = [_metric("mean_return", s.candidate.mean_return,
                               f"mean episode return {_ci(s.candidate.interval)}"),
                       _metric("cvar", s.candidate.cvar, f"CVaR of the episode return (alpha "
                                                         f"{_fmt(v.stress.cvar_alpha)})"),
                       _metric("violation_rate", s.candidate.violation_rate, "constraint violations per step"),
                       _metric("baseline_mean_return", s.baseline.mean_return,
                               f"baseline's mean episode return {_ci(s.baseline.interval)}")]
            results.append({"task": {"type": "reinforcement-learning", "name": f"stress: {s.name}"},
                            "dataset": {"name": f"{v.stress.scenario or 'scenario'} ({s.name})",
                                        "type": v.stress.scenario or "scenario"},
                            "metrics": [m for m in metrics if m is not None]})
    return {"library_name": "rlops", "tags": _unique(tags),
            "model-index": [{"name": card.identity.ref, "results": results}]}


def _metric(kind: str, value: float | None, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"type": kind, "value": value, "name": name, "verified": False}


def to_markdown(card: ModelCardData) -> str:
    """The card as Markdown with YAML front matter (see :func:`front_matter`), one section per part of the card."""
    meta = yaml.safe_dump(front_matter(card), sort_keys=False, allow_unicode=True, width=100)
    i, a, t = card.identity, card.architecture, card.training_data
    out = [f"---\n{meta}---", f"# Model card: {i.ref}",
           _table(["field", "value"], [["stage", i.stage], ["kind", i.kind], ["content hash", f"`{i.content_hash}`"],
                                       ["signed by", f"key `{i.signed_by}` (`{i.public_key}`)"],
                                       ["registered", f"{i.registered_at} by {i.registered_by}"]]),
           "## Intended use", _para(card.intended_use) + ("" if card.intended_use_declared else " *(derived)*"),
           "## Architecture and size", architecture_summary(card) + ".",
           _table(["field", "value"], [["kind", a.kind], ["family", a.family],
                                       ["features", _listing(a.features, 50) or "none"],
                                       ["actions", _actions(a)], ["preprocessing", "yes" if a.preprocessing else "no"],
                                       ["parameters", "not counted" if a.parameters is None else f"{a.parameters:,}"],
                                       ["counted", a.parameters_counted],
                                       ["size", f"{a.total_bytes:,} bytes in {len(a.files)} files"]]),
           "Configuration:", _table(["key", "value"], [[k, json.dumps(v, sort_keys=True)]
                                                        for k, v in _flat(a.config).items()]) if a.config else
           "*(none)*",
           "Files:", _table(["file", "bytes", "SHA-256"], [[f"`{f.path}`", f"{f.bytes:,}", f"`{f.sha256}`"]
                                                          for f in a.files]),
           "## Training data", training_summary(card) + ".",
           _table(["field", "value"], [["source", t.source], ["deployment", _nr(t.deployment)],
                                       ["period start", _nr(t.start, "open" if t.source == "event log" else None)],
                                       ["period end", _nr(t.end, "open" if t.source == "event log" else None)],
                                       ["size", _nr(None if t.decisions is None else f"{t.decisions:,} decisions")],
                                       ["decisions hash", _nr(t.decisions_hash and f"`{t.decisions_hash}`")],
                                       ["reward spec", _nr(t.reward_spec)], ["scenario", _nr(t.scenario)]]),
           *_validation_md(card.validation),
           "## Known limitations",
           "\n".join(f"- {_para(x.text)} *({x.source.value})*" for x in card.limitations) or "None found or declared.",
           "## Owners", "\n".join(f"- {_para(o)}" for o in card.owners),
           "## Lineage", _table(["field", "value"], [["parent", _nr(card.lineage.parent, "none")],
                                                     ["scenario", _nr(card.lineage.scenario)],
                                                     ["reward spec", _nr(card.lineage.reward_spec)],
                                                     ["training events", _nr(card.lineage.events)],
                                                     ["rlops version", _nr(card.lineage.rlops_version)],
                                                     ["git commit", _nr(card.lineage.git_commit and
                                                                        f"`{card.lineage.git_commit}`")]]),
           "## Stage history",
           _table(["when (UTC)", "from", "to", "by", "why"], [[h.at, h.from_stage or "—", h.to_stage, h.actor, h.reason]
                                                              for h in card.history])]
    return "\n\n".join(out) + "\n"


def _validation_md(v: Validation | None) -> list[str]:
    if v is None:
        return ["## Validation results", "Registered without a validation report.", "## Stress suite",
                "Not run.", "## Resource budget", "Not measured."]
    head = f"Overall: **{(v.status or '?').upper()}**."
    if v.command:
        head += f" Made by `{v.command}` (seed {v.seed}); rerun it to recompute every number."
    if v.matches_version is False:
        head += f" The report is about policy content `{(v.policy_hash or '')[:12]}`, not this version's."
    out = ["## Validation results", head, "### Gates",
           _table(["gate", "status", "the numbers"], [[g.name, (g.status or "?").upper(), g.reason] for g in v.gates])
           if v.gates else "No gates were declared."]
    if v.data is not None:
        out += ["### Logged data", f"{_count(v.data.rows)} interactions; "
                                   f"{v.data.checks - len(v.data.flagged)} of {v.data.checks} checks pass."]
        if v.data.flagged:
            out.append(_table(["check", "subject", "status", "detail"], [[c.check, c.subject, (c.status or "?").upper(),
                                                                          c.message] for c in v.data.flagged]))
    out.append("### Off-policy evaluation")
    if v.ope is None:
        out.append("No off-policy evaluation (no logged data was given).")
    else:
        rows = [[e.estimator, _fmt(e.value), _ci(e.interval, bare=True), _level(e.interval), _fmt(e.ess),
                 ", ".join(e.warnings) or "—"] for e in v.ope.estimates]
        rows.append(["logging policy (on-policy)", _fmt(v.ope.logging_value), _ci(v.ope.logging_interval, bare=True),
                     _level(v.ope.logging_interval), "—", "—"])
        out += [f"Value of this version on {_count(v.ope.rows)} logged interactions:",
                _table(["estimator", "value", "interval", "level", "ESS", "warnings"], rows)]
        b = v.ope.lower_bound
        if b is not None:
            out.append(f"High-confidence lower bound ({b.estimator}, {b.method}): " +
                       (f"skipped: {b.skipped}." if b.skipped else f"{_fmt(b.low)} at level {_fmt(b.level)}."))
    out.append("## Stress suite")
    s = v.stress
    if s is None:
        out.append("Not run (no scenario was given).")
    else:
        out += [f"Scenario `{s.scenario}`, against {s.baseline}; {s.episodes} episodes per variation and controller, "
                f"{_fmt(s.confidence)} confidence intervals, CVaR at alpha {_fmt(s.cvar_alpha)}.",
                _table(["variation", "mean return", "interval", "baseline", "difference", "difference interval",
                        "CVaR", "violations"],
                       [[x.name, _fmt(x.candidate.mean_return), _ci(x.candidate.interval, bare=True),
                         _fmt(x.baseline.mean_return), _fmt(x.difference), _ci(x.difference_interval, bare=True),
                         _fmt(x.candidate.cvar), _fmt(x.candidate.violation_rate)] for x in s.variations])]
    out.append("## Resource budget")
    if v.budget is None:
        out.append("Not measured.")
    else:
        out.append(_table(["item", "measured", "limit", "status"],
                          [[x.name, f"{_fmt(x.measured)} {x.unit}", "—" if x.limit is None else
                            f"{_fmt(x.limit)} {x.unit}", (x.status or "?").upper()] for x in v.budget.items]))
    return out


def architecture_summary(card: ModelCardData) -> str:
    """One line: kind, family, actions and features, parameter count, files and bytes."""
    a = card.architecture
    size = "parameters not counted" if a.parameters is None else f"{a.parameters:,} parameters"
    return (f"{a.kind} ({a.family}); {_actions(a)}; {len(a.features)} features; {size}; {len(a.files)} files, "
            f"{a.total_bytes:,} bytes")


def training_summary(card: ModelCardData) -> str:
    """One line: where the training data came from, the period, how many decisions, the reward spec."""
    t = card.training_data
    if t.source == "event log":
        period = f"{t.start or 'the start'} to {t.end or 'the end'}" if t.start or t.end else \
            "the whole log (period not recorded)"
        text = f"served decisions of deployment '{t.deployment}' from {period}; " + \
            ("size not recorded" if t.decisions is None else f"{t.decisions:,} decisions")
    elif t.source == "simulator":
        text = f"simulator: scenario '{t.scenario}' (no logged data recorded)"
    else:
        text = "not recorded"
    return text + (f"; reward spec {t.reward_spec}" if t.reward_spec else "; reward spec not recorded")


# ---- small helpers -------------------------------------------------------------------------------------------------


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _maps(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _status(value: Any) -> Status | None:
    try:
        return Status(str(value))
    except ValueError:
        return None


def _clean_text(value: str | None) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _unique(items: Sequence[str | None]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item and item not in out:
            out.append(item)
    return out


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _flat(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in value.items():
        if isinstance(v, Mapping) and v:
            out.update(_flat(v, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = v
    return out


def _iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _fmt(value: float | int | None) -> str:
    """4 significant digits, as the validation report shows numbers; ``–`` for none."""
    if value is None:
        return "–"
    return f"{value:.4g}"


def _ci(interval: Interval, bare: bool = False) -> str:
    text = f"[{_fmt(interval.low)}, {_fmt(interval.high)}]"
    if bare:
        return text
    level = f"{interval.level:.0%} " if interval.level is not None else ""
    return f"({level}CI {text})"


def _level(interval: Interval) -> str:
    return "–" if interval.level is None else f"{interval.level:.0%}" + (f" {interval.method}" if interval.method
                                                                         else "")


def _actions(a: Architecture) -> str:
    if a.action_type == "box":
        return f"continuous box of {a.action_dims or '?'} dimensions"
    if a.action_type == "candidates":
        return "candidate actions offered per request"
    return f"{len(a.actions)} discrete actions ({_listing(a.actions)})"


def _listing(names: Sequence[str], most: int = 8) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", … ({len(names) - most} more)" if len(names) > most else "")


def _nr(value: str | None, missing: str | None = None) -> str:
    """The value, or ``not recorded`` (or ``missing``) when there is none."""
    return value if value else (missing or "not recorded")


def _count(value: int | None) -> str:
    return "an unrecorded number of" if value is None else f"{value:,}"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _para(text: str) -> str:
    return " ".join(text.split())


def _cell(value: Any) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_card(card: ModelCardData, fmt: CardFormat = CardFormat.MARKDOWN) -> str:
    """The card in ``fmt``: :func:`to_markdown` or :func:`to_json`."""
    return to_markdown(card) if CardFormat(fmt) is CardFormat.MARKDOWN else to_json(card)


def card_document(registry: Registry, name: str, version: int | str | None = None,
                  fmt: CardFormat = CardFormat.JSON) -> tuple[str, str]:
    """``(text, media type)`` of a version's card, for an HTTP response (``GET /v1/models/{name}/{version}/card``).

    Raises:
        ValidationError: a malformed name or version. NotFoundError, ConfigError: as :func:`build_model_card`.
    """
    from rlops.registry import check_name, parse_version

    number = None if version is None else parse_version(version)
    card = build_model_card(registry, check_name(name), number)
    return render_card(card, fmt), MEDIA_TYPES[CardFormat(fmt)]


__all__ = [
    "CARD_FILE",
    "DEEP_KINDS",
    "MEDIA_TYPES",
    "Architecture",
    "ArmResult",
    "Budget",
    "BudgetItem",
    "CardFormat",
    "DataCheck",
    "DataSummary",
    "DeclaredCard",
    "Estimate",
    "FileInfo",
    "GateVerdict",
    "Identity",
    "Interval",
    "Limitation",
    "LimitationSource",
    "LineageInfo",
    "LowerBound",
    "ModelCardData",
    "OffPolicyEvaluation",
    "StageChange",
    "StressSuite",
    "StressVariation",
    "TrainingData",
    "Validation",
    "architecture_summary",
    "build_model_card",
    "card_document",
    "card_from_details",
    "front_matter",
    "read_declared_card",
    "render_card",
    "to_json",
    "to_markdown",
    "training_summary",
]
