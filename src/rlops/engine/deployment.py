"""Deployments: a schema, a policy, a reward spec and an attribution window under one name, declared in YAML.

Example ``deployment.yaml``::

    name: demo
    schema: schema.yaml              # a path (relative to this file) or the schema inline
    reward: reward.yaml              # a path or the reward spec inline
    policy:
      kind: linucb                   # build a fresh policy of this kind ...
      params: {alpha: 0.5, epsilon: 0.05}
      # path: ./trained-policy       # ... or serve a saved policy folder (copied into the home folder)
    window: 1h                       # optional: overrides the reward spec's attribution window
    learning: {online: true}         # update online learners from joined interactions
    seed: 0
    # Rollout (all optional): units are split by a hash of unit_id and the salt, so a unit always sees one arm.
    canary: {policy: {version: demo-model@4}, fraction: 0.1}     # a registered version meets 10% of units
    shadows: [{name: challenger, policy: {version: demo-model@5}}]  # decides on every context, never answers
    holdout: {policy: {kind: uniform}, fraction: 0.05}          # 5% of units always get the baseline
    guardrail: {min_samples: 200, max_samples: 20000}            # how the canary is judged (rollout.guardrails)
    auto_promote: true                                           # promote a canary the guardrail finds not worse
    require_approval: false          # `rlops loop` stops before the canary and waits for a human
    all_outcomes_reported: false     # true: clients report every decision's outcome (a click or a no-click), so
                                     # outcomes can be used before the window closes
    retention: 90d                   # optional: `rlops retention apply` deletes decisions older than this, with
                                     # their outcomes (default: keep forever; at least the attribution window)
    baseline: {kind: uniform}        # optional: decides for units without consent (decide with consent=false);
                                     # their data are never learned from
    outcome_guard: {z: 6, min_samples: 30, max_rate: null, hold: 1h}   # the poisoning guard (rlops.security.poisoning)

Applying a file is idempotent: the same content makes no new revision; a change makes revision N+1.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rlops.configfile import parse_model, read_document
from rlops.errors import ConfigError
from rlops.policies import content_hash, kinds
from rlops.rewards import RewardSpec, parse_duration
from rlops.rollout.guardrails import GuardrailConfig
from rlops.schema import Schema
from rlops.security.poisoning import OutcomeGuardConfig


class PolicySource(BaseModel):
    """Where a policy comes from: a registered ``version`` (``NAME@N``, verified when loaded), a saved folder
    (``path``), or a fresh one of a ``kind``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    path: str | None = None
    version: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}@[0-9]{1,9}$")

    @model_validator(mode="after")
    def _one_source(self) -> PolicySource:
        if sum(x is not None for x in (self.kind, self.path, self.version)) != 1:
            raise ValueError("give exactly one of policy.kind, policy.path or policy.version")
        if self.kind is None and self.params:
            raise ValueError("policy.params only go with policy.kind (a saved folder has its own)")
        return self

    def describe(self) -> str:
        """A short human name: the registered version, the folder, or the kind."""
        return str(self.version or self.path or self.kind)


class Role(StrEnum):
    """What an arm of a deployment does with the units it gets."""

    PRODUCTION = "production"  # every unit not taken by the holdout or the canary
    CANARY = "canary"  # a sticky fraction of units, compared with production by the guardrail
    SHADOW = "shadow"  # decides on every context, logged with mode=shadow, never answered
    HOLDOUT = "holdout"  # a sticky fraction of units always served by the baseline, to measure lift
    BASELINE = "baseline"  # units without consent: decides for them, never learns, not in the split


class CanarySpec(BaseModel):
    """A new policy on a sticky ``fraction`` of units (0 < fraction < 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    policy: PolicySource
    fraction: float = Field(gt=0.0, lt=1.0)


class ShadowSpec(BaseModel):
    """A policy that decides on every context next to production; its decisions are logged, never answered."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    policy: PolicySource


class HoldoutSpec(BaseModel):
    """The baseline policy, always serving a small sticky ``fraction`` of units (0 < fraction <= 0.5)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    policy: PolicySource
    fraction: float = Field(gt=0.0, le=0.5)


class LearningConfig(BaseModel):
    """Online learning in the running service.

    Attributes:
        online: update the served policies (those that can) from newly joined interactions.
        interval: how often the service learns, seconds or a duration like ``"5s"`` (default 2 s).
        snapshot_every: register the learned policy as a new registry version after this many learned
            interactions (0, the default: never).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    online: bool = False
    interval: str | float = 2.0
    snapshot_every: int = Field(default=0, ge=0)

    @field_validator("interval", mode="before")
    @classmethod
    def _interval_is_a_duration(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float) or parse_duration(value) <= 0:
            raise ValueError(f"expected a positive number of seconds or a duration like '5s', got {value!r}")
        return value

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)


class DeploymentSpec(BaseModel):
    """A resolved deployment: schema and reward spec inline, the policy by kind or by (absolute) folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    description: str = ""
    schema_: Schema = Field(alias="schema")
    reward: RewardSpec
    policy: PolicySource
    window: str | float | None = None
    learning: LearningConfig = Field(default_factory=LearningConfig)
    seed: int = 0
    canary: CanarySpec | None = None
    shadows: tuple[ShadowSpec, ...] = Field(default=(), max_length=8)
    holdout: HoldoutSpec | None = None
    salt: str | None = Field(default=None, max_length=64)
    guardrail: GuardrailConfig = Field(default_factory=GuardrailConfig)
    auto_promote: bool = True
    auto_rollback: bool = True
    require_approval: bool = False
    all_outcomes_reported: bool = False
    retention: str | float | None = None
    baseline: PolicySource | None = None
    outcome_guard: OutcomeGuardConfig = Field(default_factory=OutcomeGuardConfig)

    @model_validator(mode="after")
    def _known_kind(self) -> DeploymentSpec:
        for field, source in self.policy_sources():
            if source.kind is not None and source.kind not in kinds():
                raise ValueError(f"{field}.kind: unknown kind {source.kind!r} (known: {sorted(kinds())})")
        names = [s.name for s in self.shadows]
        if len(set(names)) != len(names):
            raise ValueError(f"shadows: names must be unique, got {names}")
        seen: dict[str, str] = {}
        for field, source in self.policy_sources():
            if field == "baseline":
                continue  # the baseline may well be the holdout's policy: it serves other units
            key = json.dumps(source.model_dump(mode="json"), sort_keys=True)
            if key in seen:
                raise ValueError(f"{field}: the same policy as {seen[key]} (an arm must differ from the others)")
            seen[key] = field
        if self.canary is not None and self.holdout is not None and self.canary.fraction + self.holdout.fraction >= 1:
            raise ValueError("canary.fraction: canary and holdout together must leave production some units")
        return self

    def policy_sources(self) -> list[tuple[str, PolicySource]]:
        """Every policy the deployment uses, with the field that names it (``policy``, ``canary.policy``...)."""
        sources = [("policy", self.policy)]
        if self.canary is not None:
            sources.append(("canary.policy", self.canary.policy))
        if self.holdout is not None:
            sources.append(("holdout.policy", self.holdout.policy))
        sources.extend((f"shadows[{i}].policy", s.policy) for i, s in enumerate(self.shadows))
        if self.baseline is not None:
            sources.append(("baseline", self.baseline))
        return sources

    @property
    def early_outcomes_usable(self) -> bool:
        """Whether outcomes that arrived before their window closed may be used (online learning, the guardrail,
        retraining) without waiting for the window.

        Only if they are not a selected sample: when clients report an outcome for every decision
        (``all_outcomes_reported``: a click *or* a no-click), or when the reward spec leaves decisions without an
        outcome out anyway. Otherwise the early ones are mostly the positive ones (a click is reported, a
        non-click is the spec's default when the window closes), and using them early would overrate every
        policy, the worse ones most.
        """
        return self.all_outcomes_reported or self.reward.excludes_missing

    @property
    def split_salt(self) -> str:
        """The salt of the sticky split (default: the deployment's name)."""
        return self.name if self.salt is None else self.salt

    @field_validator("window", "retention", mode="before")
    @classmethod
    def _a_duration(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"expected seconds or a duration like '30s', '15m', '1h', '90d', got {value!r}")
        parse_duration(value)  # raises ValueError naming the rule
        return value

    @model_validator(mode="after")
    def _retention_covers_the_window(self) -> DeploymentSpec:
        if self.retention is not None and parse_duration(self.retention) < self.window_seconds:
            raise ValueError(f"retention: {self.retention!r} is shorter than the attribution window "
                             f"({self.window_seconds:g} s): decisions would be deleted before their outcomes count")
        return self

    @property
    def retention_seconds(self) -> float | None:
        """How long the event log keeps this deployment's decisions, seconds (None: forever)."""
        return None if self.retention is None else parse_duration(self.retention)

    @property
    def window_seconds(self) -> float:
        """The attribution window: the deployment's override, else the reward spec's."""
        return self.reward.window_seconds if self.window is None else parse_duration(self.window)

    def content_hash(self) -> str:
        """Hash of everything that defines behaviour (a saved policy counts by its content)."""
        data = self.model_dump(mode="json", by_alias=True)
        # Fields added after revisions were first stored hash as before while they hold their defaults, so an
        # unchanged file applied again after an upgrade makes no new revision.
        for name, default in (("retention", None), ("baseline", None),
                              ("outcome_guard", OutcomeGuardConfig().model_dump(mode="json"))):
            if data.get(name) == default:
                data.pop(name, None)
        if not data["schema"].get("pii"):
            data["schema"].pop("pii", None)
        if self.policy.path is not None:
            data["policy"] = {"content": content_hash(self.policy.path)}
        for role, spec in (("canary", self.canary), ("holdout", self.holdout)):
            if spec is not None and spec.policy.path is not None:
                data[role]["policy"] = {"content": content_hash(spec.policy.path)}
        if self.baseline is not None and self.baseline.path is not None:
            data["baseline"] = {"content": content_hash(self.baseline.path)}
        for i, shadow in enumerate(self.shadows):
            if shadow.policy.path is not None:
                data["shadows"][i]["policy"] = {"content": content_hash(shadow.policy.path)}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def source_hash(self, source: PolicySource) -> str:
        """Hash of one policy as this deployment builds it: its source (a folder by content) and the schema."""
        data: dict[str, Any] = source.model_dump(mode="json")
        if source.path is not None:
            data = {"content": content_hash(source.path)}
        data["schema"] = self.schema_.to_dict()
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    @classmethod
    def load(cls, path: str | Path) -> DeploymentSpec:
        """Read a deployment file, resolving ``schema``/``reward``/``policy.path`` relative to it."""
        path = Path(path)
        raw = read_document(path, "deployment")
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping with name, schema, reward, policy")
        base = path.parent
        data = dict(raw)
        if isinstance(data.get("schema"), str):
            data["schema"] = Schema.load(base / data["schema"]).to_dict()
        if isinstance(data.get("reward"), str):
            data["reward"] = RewardSpec.load(base / data["reward"]).to_dict()
        def resolve(policy: Any) -> Any:
            if isinstance(policy, dict) and isinstance(policy.get("path"), str):
                return {**policy, "path": str((base / policy["path"]).resolve())}
            return policy

        data["policy"] = resolve(data.get("policy"))
        if "baseline" in data:
            data["baseline"] = resolve(data["baseline"])
        for role in ("canary", "holdout"):
            if isinstance(data.get(role), dict):
                data[role] = {**data[role], "policy": resolve(data[role].get("policy"))}
        if isinstance(data.get("shadows"), list):
            data["shadows"] = [{**s, "policy": resolve(s.get("policy"))} if isinstance(s, dict) else s
                               for s in data["shadows"]]
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "deployment") -> DeploymentSpec:
        return parse_model(cls, data, source, "deployment")
