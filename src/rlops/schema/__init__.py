"""Typed context features and action spaces, validated with errors that name the field and the rule."""

from rlops.schema.actions import ActionSpace, BoxActions, CandidateActions, DiscreteActions
from rlops.schema.features import (
    BoolFeature,
    CategoricalFeature,
    Feature,
    FloatFeature,
    IntFeature,
    VectorFeature,
)
from rlops.schema.schema import Context, Schema

__all__ = [
    "ActionSpace",
    "BoolFeature",
    "BoxActions",
    "CandidateActions",
    "CategoricalFeature",
    "Context",
    "DiscreteActions",
    "Feature",
    "FloatFeature",
    "IntFeature",
    "Schema",
    "VectorFeature",
]
