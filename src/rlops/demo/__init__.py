"""``rlops demo``: the loop on a built-in scenario, so that a new user sees it work on day one."""

from rlops.demo.bandit import DemoResult, HttpResult, PolicyResult, run

__all__ = ["DemoResult", "HttpResult", "PolicyResult", "run"]
