"""Reference scenarios: environments and simulators with known behaviour, and their baseline controllers."""

from rlops.scenarios.synthetic_bandit import SyntheticBandit, bandit_schema

__all__ = ["SyntheticBandit", "bandit_schema"]
