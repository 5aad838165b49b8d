"""Model cards of registered versions: every section with the numbers of a real validation report, the Hugging Face
style front matter, determinism, declared fields (card.yaml), what is missing, parameter counts, the CLI command and
the dashboard's model card panel."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from rlops.cli.main import main
from rlops.encryption import DataKey, Keyring, KeySource, is_sealed
from rlops.engine import DeploymentSpec, Engine
from rlops.errors import ConfigError, NotFoundError, ValidationError
from rlops.evaluation.budget import ResourceBudget
from rlops.evaluation.controllers import schema_for_env
from rlops.evaluation.report import write_report
from rlops.evaluation.stress import StressConfig
from rlops.evaluation.validate import ValidateOptions, validate
from rlops.explain.model_card import (
    CARD_FILE,
    MEDIA_TYPES,
    CardFormat,
    LimitationSource,
    ModelCardData,
    build_model_card,
    card_document,
    front_matter,
    read_declared_card,
    to_json,
    to_markdown,
)
from rlops.home import Home
from rlops.monitoring.overview import build_overview
from rlops.policies import LearningBatch, LinUCB, PolicyInput, save_policy
from rlops.registry import Lineage, ModelRef, Registry, Stage
from rlops.scenarios.catalog import get_scenario

SCHEMA = schema_for_env(get_scenario("recommendation").make())
N = 400
SECTIONS = ["## Intended use", "## Architecture and size", "## Training data", "## Validation results", "### Gates",
            "### Off-policy evaluation", "## Stress suite", "## Resource budget", "## Known limitations", "## Owners",
            "## Lineage", "## Stage history"]
CARD_YAML = ("intended_use: Recommends one of ten home-page items to signed-in users.\n"
             "limitations:\n  - Never tried on the mobile app.\n"
             "owners: [recs-team@example.com]\n")


@dataclass(frozen=True)
class Registered:
    home: Path
    report: dict[str, Any]
    candidate: Path


def _contexts(rng: np.random.Generator, n: int) -> list[dict[str, float]]:
    return [{**{f"obs_{i}": float(rng.uniform(-1, 1)) for i in range(6)}, "obs_6": float(rng.uniform(0, 1))}
            for _ in range(n)]


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Registered:
    """A home whose uniform logging policy made N decisions on the recommendation scenario's schema, with clicks; a
    LinUCB candidate validated on them (OPE, the stress suite with two variations, a resource budget), its card.yaml
    written after validating, and registered through the CLI as recs@1 with its report and lineage, then moved to
    shadow; and recs@2, fine-tuned from it, registered with neither a report nor a card.yaml."""
    root = tmp_path_factory.mktemp("card")
    home, rng = root / "home", np.random.default_rng(0)
    contexts = _contexts(rng, N)
    with Engine(home, fsync=False) as engine:
        engine.apply(DeploymentSpec.from_dict({
            "name": "recs", "schema": SCHEMA.to_dict(), "policy": {"kind": "uniform"},
            "reward": {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
                       "window": "1h", "missing": 0.0}}))
        decisions = engine.decide_batch("recs", contexts, [f"u{i}" for i in range(N)])
        clicks = [bool(rng.random() < 0.1 + 0.05 * d.action_index) for d in decisions]
        engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": c}}
                             for d, c in zip(decisions, clicks, strict=True)])
    candidate = LinUCB(SCHEMA, alpha=0.1)
    half = N // 2
    candidate.update(LearningBatch(PolicyInput.from_contexts(SCHEMA, contexts[:half]),
                                   np.array([d.action_index for d in decisions[:half]]),
                                   np.array(clicks[:half], dtype=float), np.full(half, 0.1)))
    folder = save_policy(candidate, root / "candidate")
    stress = StressConfig.model_validate({"episodes": 3, "max_steps": 20, "variations": [
        {"name": "noisy", "observation_noise": {"scale": 0.2}}]})
    run = validate(ValidateOptions(policy=folder, events=home, scenario="recommendation", stress=stress, workers=1,
                                   budget=ResourceBudget(p99_ms=50.0, memory_mb=1.0, batch_size=8),
                                   command="rlops validate --policy candidate --events HOME"), progress_bar=False)
    report_json, _ = write_report(run.results, root / "report")
    (folder / CARD_FILE).write_text(CARD_YAML)  # after validating: the report's policy hash is of the folder without it
    h = ["--home", str(home)]
    assert main(["models", "register", "recs", str(folder), "--report", str(report_json), "--scenario",
                 "recommendation", "--reward-spec", "click@1", "--events-range", "recs@2020-01-01..",
                 "--actor", "alice", *h]) == 0
    assert main(["models", "stage", "recs@1", "shadow", "--reason", "watch it next to production", "--actor", "bob",
                 *h]) == 0
    plain = save_policy(LinUCB(SCHEMA, alpha=0.3), root / "fine-tuned")
    assert main(["models", "register", "recs", str(plain), "--parent", "1", "--actor", "carol", *h]) == 0
    return Registered(home, json.loads(report_json.read_text()), folder)


@pytest.fixture
def registry(registered: Registered) -> Any:
    with Registry(Home(registered.home)) as r:
        yield r


def _front_matter(markdown: str) -> tuple[dict[str, Any], str]:
    assert markdown.startswith("---\n")
    meta, sep, body = markdown[4:].partition("\n---\n")
    assert sep
    parsed = yaml.safe_load(meta)
    assert isinstance(parsed, dict)
    return parsed, body


def test_every_section_has_the_numbers_of_the_signed_report(registered: Registered, registry: Registry) -> None:
    report = registered.report
    card = build_model_card(registry, "recs", 1)
    data = json.loads(to_json(card))
    assert list(data) == ["format", "format_version", "identity", "intended_use", "intended_use_declared",
                          "architecture", "training_data", "validation", "limitations", "owners", "lineage", "history"]
    record = registry.get("recs", 1)
    assert data["identity"] == {
        "name": "recs", "version": 1, "ref": "recs@1", "stage": "shadow", "kind": "linucb",
        "content_hash": record.content_hash, "signed_by": record.registration["key_id"],
        "public_key": record.public_key, "registered_at": data["identity"]["registered_at"],
        "registered_at_us": record.created_at_us, "registered_by": "alice"}
    # Intended use, owners and the declared limitation come from card.yaml, which was signed with the version.
    assert data["intended_use"] == "Recommends one of ten home-page items to signed-in users."
    assert data["intended_use_declared"] is True
    assert data["owners"] == ["alice", "recs-team@example.com"]
    assert data["limitations"][0] == {"source": "declared", "text": "Never tried on the mobile app."}

    # Architecture and size: the parameters are the numbers in state.npz, the bytes those of the stored files.
    arch = data["architecture"]
    with np.load(registered.candidate / "state.npz") as state:
        assert arch["parameters"] == sum(state[k].size for k in state.files) > 0
    sizes = {f"policy/{p.name}": p.stat().st_size for p in registered.candidate.iterdir()}
    assert {f["path"]: f["bytes"] for f in arch["files"]} == sizes and arch["total_bytes"] == sum(sizes.values())
    assert arch["family"] == "contextual-bandit" and arch["actions"] == SCHEMA.action_names()
    assert arch["features"] == [f"obs_{i}" for i in range(7)] and arch["config"]["alpha"] == 0.1

    # Training data: the lineage's range of the event log, its size; nothing made up.
    training = data["training_data"]
    assert training["source"] == "event log" and training["deployment"] == "recs" and training["decisions"] == N
    assert training["start"] == "2020-01-01T00:00:00Z" and training["end"] is None
    assert training["reward_spec"] == "click@1" and training["scenario"] == "recommendation"

    # Validation: every estimator with its value and interval, the gates, the stress suite, the budget.
    v = data["validation"]
    assert v["status"] == report["status"] and v["command"] == report["command"] and v["matches_version"] is True
    estimates = {e["estimator"]: e for e in v["ope"]["estimates"]}
    assert list(estimates) == list(report["ope"]["estimates"])
    for name, e in report["ope"]["estimates"].items():
        assert estimates[name]["value"] == e["value"]
        assert estimates[name]["interval"] == {k: e["interval"][k] for k in ("low", "high", "level", "method")}
        assert estimates[name]["ess"] == e["ess"] and estimates[name]["warnings"] == e["warnings"]
    assert v["ope"]["logging_value"] == report["ope"]["logging"]["value"] and v["ope"]["rows"] == N
    assert [(g["name"], g["status"], g["reason"]) for g in v["gates"]] == \
        [(g["gate"]["name"], g["status"], g["reason"]) for g in report["gates"]]
    variations = {s["name"]: s for s in v["stress"]["variations"]}
    assert list(variations) == ["nominal", "noisy"] == list(report["stress"]["variations"])
    for name, s in report["stress"]["variations"].items():
        mean = s["candidate"]["mean_return"]
        assert variations[name]["candidate"]["mean_return"] == mean["estimate"]
        assert variations[name]["candidate"]["interval"]["low"] == mean["low"]
        assert variations[name]["candidate"]["interval"]["high"] == mean["high"]
        assert variations[name]["baseline"]["mean_return"] == s["baseline"]["mean_return"]["estimate"]
        assert variations[name]["difference"] == s["difference"]["estimate"]
        assert variations[name]["candidate"]["cvar"] == s["candidate"]["cvar"]
    assert [(i["name"], i["measured"], i["limit"], i["status"]) for i in v["budget"]["items"]] == \
        [(i["name"], i["measured"], i["limit"], i["status"]) for i in report["budget"]["items"]]

    # Known limitations: each failed gate, the budget item over its limit, and the declared one.
    texts = [x["text"] for x in data["limitations"]]
    for g in report["gates"]:
        if g["status"] == "fail":
            assert f"Failed gate '{g['gate']['name']}': {g['reason']}." in texts
    assert any(x["source"] == "budget" and "memory_mb" in x["text"] for x in data["limitations"])
    for name, s in report["stress"]["variations"].items():
        if s["difference"]["high"] is not None and s["difference"]["high"] < 0:
            assert any(x["source"] == "stress" and f"'{name}'" in x["text"] for x in data["limitations"])

    assert data["lineage"]["scenario"] == "recommendation" and data["lineage"]["parent"] is None
    assert data["lineage"]["rlops_version"] == record.lineage.rlops_version
    assert [(h["from_stage"], h["to_stage"], h["actor"], h["reason"]) for h in data["history"]] == \
        [(None, "candidate", "alice", "registered"), ("candidate", "shadow", "bob", "watch it next to production")]


def test_markdown_has_hub_front_matter_and_every_section(registered: Registered, registry: Registry) -> None:
    report = registered.report
    card = build_model_card(registry, "recs", 1)
    meta, body = _front_matter(to_markdown(card))
    assert meta == front_matter(card)
    assert meta["library_name"] == "rlops"
    assert {"reinforcement-learning", "contextual-bandits", "linucb", "recommendation"} <= set(meta["tags"])
    [index] = meta["model-index"]
    assert index["name"] == "recs@1"
    ope, *stress = index["results"]
    assert ope["task"] == {"type": "reinforcement-learning", "name": "off-policy evaluation"}
    assert ope["dataset"] == {"name": "recs", "type": "logged-interactions"}
    metrics = {m["type"]: m for m in ope["metrics"]}
    dr = report["ope"]["estimates"]["dr"]
    assert metrics["ope_dr"]["value"] == dr["value"] and metrics["ope_dr"]["verified"] is False
    assert f"[{dr['interval']['low']:.4g}, {dr['interval']['high']:.4g}]" in metrics["ope_dr"]["name"]
    assert metrics["logging_policy_value"]["value"] == report["ope"]["logging"]["value"]
    assert [r["task"]["name"] for r in stress] == ["stress: nominal", "stress: noisy"]
    noisy = {m["type"]: m["value"] for m in stress[1]["metrics"]}
    assert noisy["mean_return"] == report["stress"]["variations"]["noisy"]["candidate"]["mean_return"]["estimate"]
    assert stress[1]["dataset"]["type"] == report["stress"]["scenario"]

    positions = [body.index(f"\n{s}\n") for s in SECTIONS]
    assert positions == sorted(positions)
    assert "# Model card: recs@1" in body and "Recommends one of ten home-page items" in body
    lines = body.splitlines()
    for name, e in report["ope"]["estimates"].items():
        [row] = [line for line in lines if line.startswith(f"| {name} |")]
        assert f"| {e['value']:.4g} | [{e['interval']['low']:.4g}, {e['interval']['high']:.4g}] | 95% normal |" in row
    for g in report["gates"]:
        assert f"| {g['gate']['name']} | {g['status'].upper()} |" in body
    nominal = report["stress"]["variations"]["nominal"]["candidate"]["mean_return"]
    assert f"| nominal | {nominal['estimate']:.4g} | [{nominal['low']:.4g}, {nominal['high']:.4g}] |" in body
    assert "- Never tried on the mobile app. *(declared)*" in body and "- recs-team@example.com" in body
    assert "| 2020-01-01T00:00:00Z |" in body and f"| {N} decisions |" in body
    assert "| memory_mb |" in body and "| candidate | shadow | bob | watch it next to production |" in body


def test_renderings_are_deterministic(registered: Registered, registry: Registry) -> None:
    first = build_model_card(registry, "recs", 1)
    with Registry(Home(registered.home)) as again:
        second = build_model_card(again, "recs", 1)
    assert first == second
    assert to_markdown(first) == to_markdown(second) and to_json(first) == to_json(second)
    assert ModelCardData.model_validate_json(to_json(first)) == first  # the JSON holds the whole card
    text, media = card_document(registry, "recs", "v1", CardFormat.MARKDOWN)
    assert text == to_markdown(first) and media == MEDIA_TYPES[CardFormat.MARKDOWN]
    assert json.loads(card_document(registry, "recs", 1)[0]) == json.loads(to_json(first))


def test_a_version_without_report_or_training_data_says_so(registry: Registry) -> None:
    card = build_model_card(registry, "recs")  # the latest: recs@2
    assert card.identity.ref == "recs@2" and card.validation is None and card.lineage.parent == "recs@1"
    assert card.training_data.source == "not recorded" and card.training_data.decisions is None
    assert {x.source for x in card.limitations} == {LimitationSource.REPORT, LimitationSource.TRAINING_DATA}
    assert not card.intended_use_declared and "one of 10 actions" in card.intended_use
    assert "No intended use was declared" in card.intended_use and card.owners == ["carol"]
    meta, body = _front_matter(to_markdown(card))
    assert meta["model-index"] == [{"name": "recs@2", "results": []}]
    for section in SECTIONS:
        if not section.startswith("###"):
            assert f"\n{section}\n" in body
    assert "Registered without a validation report." in body and "| source | not recorded |" in body
    # Given when building: replaces the intended use, adds limitations and owners after the recorded ones.
    given = build_model_card(registry, "recs", 2, intended_use="Offline experiments only.", limitations=["Small."],
                             owners=["dana", "carol"])
    assert given.intended_use == "Offline experiments only." and given.intended_use_declared
    assert given.owners == ["carol", "dana"] and given.limitations[0].text == "Small."


def test_card_yaml_is_checked_before_registering(registered: Registered, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder = save_policy(LinUCB(SCHEMA), tmp_path / "policy")
    assert read_declared_card(folder) is None
    (folder / CARD_FILE).write_text("intended_use: fine\nowner: someone\n")
    with pytest.raises(ConfigError, match=r"card\.yaml: owner: unknown key"):
        read_declared_card(folder)
    (folder / CARD_FILE).write_text("limitations: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_declared_card(folder)
    home = tmp_path / "home"
    assert main(["models", "register", "other", str(folder), "--home", str(home)]) == 1
    assert "card.yaml" in capsys.readouterr().err
    # Registered past the CLI, a bad card.yaml leaves its declarations out of the card and says why.
    (folder / CARD_FILE).write_text("owners: {a: b}\n")
    with Registry(Home.resolve(home).ensure()) as registry:
        registry.register("other", folder, actor="erin")
        card = build_model_card(registry, "other")
    assert card.owners == ["erin"] and not card.intended_use_declared
    assert card.limitations[0].source is LimitationSource.DECLARED and "card.yaml is invalid" in \
        card.limitations[0].text


def test_a_report_about_other_content_is_flagged(registered: Registered, tmp_path: Path) -> None:
    report = dict(registered.report, policy={**registered.report["policy"], "hash": "0" * 64})
    (tmp_path / "report.json").write_text(json.dumps(report))
    folder = save_policy(LinUCB(SCHEMA, alpha=2.0), tmp_path / "policy")
    with Registry(Home.resolve(tmp_path / "home").ensure()) as registry:
        registry.register("x", folder, report=tmp_path / "report.json", lineage=Lineage(scenario="recommendation"))
        card = build_model_card(registry, "x", 1)
    assert card.validation is not None and card.validation.matches_version is False
    assert any(x.source is LimitationSource.REPORT and "other policy content" in x.text for x in card.limitations)
    assert card.training_data.source == "simulator" and "simulator: scenario 'recommendation'" in to_markdown(card)


def test_encrypted_versions_have_the_same_card(registered: Registered, tmp_path: Path) -> None:
    keys = Keyring((DataKey.generate(),), KeySource.ENVIRONMENT)
    with Registry(Home.resolve(tmp_path / "plain").ensure()) as plain, \
            Registry(Home.resolve(tmp_path / "sealed").ensure(), keyring=keys) as sealed:
        a = build_model_card(plain, "m", plain.register("m", registered.candidate, actor="x").version)
        b = build_model_card(sealed, "m", sealed.register("m", registered.candidate, actor="x").version)
        assert is_sealed((sealed.folder("m", 1) / "policy" / "state.npz").read_bytes())
    assert a.architecture == b.architecture and a.intended_use == b.intended_use and b.architecture.parameters


def test_sb3_parameters_are_the_tensors_of_its_policy(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    from rlops.policies.sb3 import SB3Policy
    from tests.policies.factories_ml import sb3_model, sb3_schema

    model = sb3_model("PPO", False)
    folder = save_policy(SB3Policy(sb3_schema(False), model), tmp_path / "ppo")
    with Registry(Home.resolve(tmp_path / "home").ensure()) as registry:
        registry.register("ppo", folder)
        card = build_model_card(registry, "ppo", 1)
    assert card.architecture.parameters == sum(t.numel() for t in model.policy.state_dict().values())
    assert card.architecture.parameters_counted == "tensors in model.zip/policy.pth"
    assert card.architecture.family == "deep-reinforcement-learning" and card.architecture.config["algo"] == "PPO"
    assert "deep-reinforcement-learning" in front_matter(card)["tags"]
    with zipfile.ZipFile(io.BytesIO((folder / "model.zip").read_bytes())) as archive:
        assert "policy.pth" in archive.namelist()


def test_models_card_command(registered: Registered, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = ["--home", str(registered.home)]
    with Registry(Home(registered.home)) as registry:
        card = build_model_card(registry, "recs", 1)
    assert main(["models", "card", "recs@1", *h]) == 0
    assert capsys.readouterr().out == to_markdown(card)
    assert main(["models", "card", "recs@1", "--format", "json", *h]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(to_json(card))
    assert main(["models", "card", "recs@1", "--out", str(tmp_path / "cards" / "recs.json"), *h]) == 0
    assert "wrote the model card of recs@1" in " ".join(capsys.readouterr().out.split())
    assert (tmp_path / "cards" / "recs.json").read_text() == to_json(card)
    assert main(["models", "card", "recs@1", "--format", "md", "--out", str(tmp_path / "recs.txt"), *h]) == 0
    assert (tmp_path / "recs.txt").read_text() == to_markdown(card)
    capsys.readouterr()

    # Errors: one line, exit 1; a bad option: exit 2.
    assert main(["models", "card", "recs@9", *h]) == 1
    assert "recs@9 is not registered" in capsys.readouterr().err
    assert main(["models", "card", "no such", *h]) == 1
    assert "not a model name" in capsys.readouterr().err
    assert main(["models", "card", "recs@1", "--out", str(tmp_path), *h]) == 1
    assert "--out" in capsys.readouterr().err
    assert main(["models", "card", "recs@1", "--format", "html", *h]) == 2
    assert main(["models", "card", "recs@1", "--home", str(tmp_path / "nowhere")]) == 1
    capsys.readouterr()

    # A changed version gets no card.
    copy = tmp_path / "home"
    shutil.copytree(registered.home, copy)
    state = copy / "registry" / "recs" / "v1" / "policy" / "state.npz"
    state.write_bytes(state.read_bytes() + b"\0")
    assert main(["models", "card", "recs@1", "--out", str(tmp_path / "tampered.md"), "--home", str(copy)]) == 1
    assert "refusing" in capsys.readouterr().err and not (tmp_path / "tampered.md").exists()


def test_library_errors_name_the_problem(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="recs@5"):
        build_model_card(registry, "recs", 5)
    with pytest.raises(ValidationError, match="version"):
        card_document(registry, "recs", "five")
    assert str(ModelRef.parse("recs@1")) == build_model_card(registry, "recs", 1).identity.ref


def test_dashboard_model_cards_show_the_card(registered: Registered) -> None:
    report = registered.report
    with Engine(registered.home) as engine, Registry(engine.home) as registry:
        overview = build_overview(engine, registry=registry)
        card = build_model_card(registry, "recs", 1)
    newest, first = overview.model_cards
    assert (newest.ref, first.ref) == ("recs@2", "recs@1") and first.card_problem is None
    assert first.intended_use == card.intended_use and first.intended_use_declared
    assert first.owners == ["alice", "recs-team@example.com"]
    assert f"{card.architecture.parameters:,} parameters" in (first.architecture or "")
    assert f"{N} decisions" in (first.training_data or "") and "click@1" in (first.training_data or "")
    assert [(e.name, e.value, e.low, e.high) for e in first.estimates[:-1]] == \
        [(k, e["value"], e["interval"]["low"], e["interval"]["high"]) for k, e in report["ope"]["estimates"].items()]
    assert first.estimates[-1].value == report["ope"]["logging"]["value"]
    assert [(s.variation, s.mean_return, s.difference) for s in first.stress] == \
        [(k, s["candidate"]["mean_return"]["estimate"], s["difference"]["estimate"])
         for k, s in report["stress"]["variations"].items()]
    assert first.limitations == [x.text for x in card.limitations]
    assert newest.estimates == [] and newest.stress == [] and not newest.intended_use_declared
    assert any("without a validation report" in x for x in newest.limitations)
    assert Stage(first.stage) is Stage.SHADOW
