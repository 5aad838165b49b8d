"""Reference scenarios: environments and simulators with known behaviour, and their baseline controllers.

The five case-study environments (``hvac``, ``manufacturing``, ``portfolio``, ``glucose``, ``recommendation``) are
registered with Gymnasium under ``rlops/`` on import; see ``docs/scenarios.md``.
"""

from rlops.scenarios.base import KPI, Aggregation, Better, Controller, ScenarioSpec
from rlops.scenarios.catalog import SCENARIOS, get_scenario, register_scenarios, scenario_name
from rlops.scenarios.rollout import EpisodeResult, evaluate_controller, run_episode
from rlops.scenarios.synthetic_bandit import SyntheticBandit, bandit_schema

register_scenarios()

__all__ = [
    "KPI",
    "SCENARIOS",
    "Aggregation",
    "Better",
    "Controller",
    "EpisodeResult",
    "ScenarioSpec",
    "SyntheticBandit",
    "bandit_schema",
    "evaluate_controller",
    "get_scenario",
    "register_scenarios",
    "run_episode",
    "scenario_name",
]
