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

Applying a file is idempotent: the same content makes no new revision; a change makes revision N+1.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rlops.configfile import parse_model, read_document
from rlops.errors import ConfigError
from rlops.policies import content_hash, kinds
from rlops.rewards import RewardSpec, parse_duration
from rlops.schema import Schema


class PolicySource(BaseModel):
    """Where a deployment's policy comes from: a saved folder (``path``) or a fresh one of a ``kind``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    path: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> PolicySource:
        if (self.kind is None) == (self.path is None):
            raise ValueError("give exactly one of policy.kind or policy.path")
        if self.path is not None and self.params:
            raise ValueError("policy.params only go with policy.kind (a saved folder has its own)")
        return self


class LearningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    online: bool = False


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

    @model_validator(mode="after")
    def _known_kind(self) -> DeploymentSpec:
        if self.policy.kind is not None and self.policy.kind not in kinds():
            raise ValueError(f"policy.kind: unknown kind {self.policy.kind!r} (known: {sorted(kinds())})")
        return self

    @field_validator("window", mode="before")
    @classmethod
    def _window_is_a_duration(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"expected seconds or a duration like '30s', '15m', '1h', '7d', got {value!r}")
        parse_duration(value)  # raises ValueError naming the rule
        return value

    @property
    def window_seconds(self) -> float:
        """The attribution window: the deployment's override, else the reward spec's."""
        return self.reward.window_seconds if self.window is None else parse_duration(self.window)

    def content_hash(self) -> str:
        """Hash of everything that defines behaviour (a saved policy counts by its content)."""
        data = self.model_dump(mode="json", by_alias=True)
        if self.policy.path is not None:
            data["policy"] = {"content": content_hash(self.policy.path)}
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
        policy = data.get("policy")
        if isinstance(policy, dict) and isinstance(policy.get("path"), str):
            data["policy"] = {**policy, "path": str((base / policy["path"]).resolve())}
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "deployment") -> DeploymentSpec:
        return parse_model(cls, data, source, "deployment")
