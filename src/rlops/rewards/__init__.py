"""The reward calculator: a named, versioned reward spec over outcome fields, evaluated safely (no ``eval``).

Example:
    >>> from rlops.rewards import RewardSpec
    >>> spec = RewardSpec.from_dict({"name": "click", "version": 1, "expression": "5 if clicked else 0",
    ...                              "fields": {"clicked": {"default": False}}})
    >>> spec.compute([{"clicked": True}, {}, {"clicked": "yes"}]).reason
    [None, None, "field 'clicked': expected a number or boolean, got str"]
"""

from rlops.rewards.aggregation import Aggregation, aggregate
from rlops.rewards.expression import FUNCTIONS, MAX_DEPTH, MAX_LENGTH, Expression, ExpressionError
from rlops.rewards.preview import RewardSummary, summarize, text_histogram
from rlops.rewards.spec import Bounds, BoundsMode, FieldSpec, RewardBatch, RewardSpec, parse_duration

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Aggregation",
    "Bounds",
    "BoundsMode",
    "Expression",
    "ExpressionError",
    "FieldSpec",
    "RewardBatch",
    "RewardSpec",
    "RewardSummary",
    "aggregate",
    "parse_duration",
    "summarize",
    "text_histogram",
]
