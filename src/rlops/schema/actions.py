"""Action spaces: a fixed set of named actions, per-request candidate sets with features, continuous boxes."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlops.schema.features import Feature


class DiscreteActions(BaseModel):
    """A fixed, ordered set of named actions; a policy returns an index into ``names``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["discrete"] = "discrete"
    names: list[str] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _unique(self) -> DiscreteActions:
        if len(set(self.names)) != len(self.names):
            raise ValueError("actions.names has duplicate entries")
        return self

    @property
    def n(self) -> int:
        return len(self.names)


class CandidateActions(BaseModel):
    """Each request brings its own candidates, each with an ``id`` and features (VW's ADF, Personalizer's Rank).

    A candidate is ``{"id": "item-42", "features": {...}}``; its features follow ``features`` the way a context
    follows the schema's features. A policy returns an index into that request's candidate list.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["candidates"] = "candidates"
    features: list[Feature] = Field(default_factory=list)
    max_candidates: int = Field(default=256, ge=1, le=10_000)

    @model_validator(mode="after")
    def _unique(self) -> CandidateActions:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("actions.features has duplicate names")
        return self

    @property
    def width(self) -> int:
        return sum(f.width for f in self.features)


class BoxActions(BaseModel):
    """A continuous box ``low <= a <= high`` (element-wise); a policy returns a vector."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["box"] = "box"
    low: list[float] = Field(min_length=1)
    high: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> BoxActions:
        if len(self.low) != len(self.high):
            raise ValueError("actions.low and actions.high differ in length")
        for lo, hi in zip(self.low, self.high, strict=True):
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
                raise ValueError(f"actions: bounds [{lo}, {hi}] must be finite with low < high")
        return self

    @property
    def dim(self) -> int:
        return len(self.low)


ActionSpace = Annotated[DiscreteActions | CandidateActions | BoxActions, Field(discriminator="type")]
