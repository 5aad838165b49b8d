"""Explainability: per-decision attributions, partial dependence and ICE, and model cards."""

# One line per public name (``name as name`` re-exports it under mypy's strict mode without an ``__all__``).
from rlops.explain.attributions import Attribution as Attribution
from rlops.explain.attributions import Method as Method
from rlops.explain.attributions import attribute as attribute
from rlops.explain.attributions import baseline_from_context as baseline_from_context
from rlops.explain.attributions import baseline_from_profile as baseline_from_profile
from rlops.explain.attributions import integrated_gradients as integrated_gradients
from rlops.explain.attributions import linear_attribution as linear_attribution
from rlops.explain.attributions import shapley_sampling as shapley_sampling
from rlops.explain.decision import BaselineSource as BaselineSource
from rlops.explain.decision import DecisionExplanation as DecisionExplanation
from rlops.explain.decision import PolicyOrigin as PolicyOrigin
from rlops.explain.decision import explain_decision as explain_decision
from rlops.explain.scores import ScoreFunction as ScoreFunction
from rlops.explain.scores import ScoreKind as ScoreKind
from rlops.explain.scores import score_function as score_function
from rlops.explain.scores import score_kinds as score_kinds
