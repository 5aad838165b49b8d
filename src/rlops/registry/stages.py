"""The stages a registered version moves through, and which moves are allowed.

::

    candidate ──► shadow ──► canary ──► production ──► retired
        │  ▲        │  ▲       │  │                       │
        │  └────────┘  │       │  └──► candidate          │
        └──────────────┴───────┴──────────► retired       └──► candidate (re-qualify)
                                              retired ──► production (rollback; only a former production version)

* **candidate**: registered, not serving. May go to shadow (logged next to production, not served), straight to
  canary (serves a slice of traffic), or be retired.
* **shadow**: may go on to canary, back to candidate (shadow showed a problem), or be retired.
* **canary**: may be promoted to production, sent back to candidate (a guardrail rolled it back), or retired.
* **production**: only leaves by being retired. Promoting another version of the same name to production retires
  the current one in the same transaction ("replaced by NAME@V"), so a name has at most one production version.
* **retired**: may re-enter as a candidate and go through the stages again; a version that *was* in production may
  also go straight back to production, which is how a bad promotion is rolled back.

Every move is recorded with who made it, why and when (:class:`rlops.registry.store.Transition`).
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    CANDIDATE = "candidate"
    SHADOW = "shadow"
    CANARY = "canary"
    PRODUCTION = "production"
    RETIRED = "retired"


#: ``stage -> stages it may move to`` (the rollback ``retired -> production`` is checked separately, see
#: :func:`allowed_targets`).
TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    Stage.CANDIDATE: frozenset({Stage.SHADOW, Stage.CANARY, Stage.RETIRED}),
    Stage.SHADOW: frozenset({Stage.CANARY, Stage.CANDIDATE, Stage.RETIRED}),
    Stage.CANARY: frozenset({Stage.PRODUCTION, Stage.CANDIDATE, Stage.RETIRED}),
    Stage.PRODUCTION: frozenset({Stage.RETIRED}),
    Stage.RETIRED: frozenset({Stage.CANDIDATE}),
}

#: Stages in which a version serves or is logged next to production: entering one re-verifies the artefact.
LIVE = frozenset({Stage.SHADOW, Stage.CANARY, Stage.PRODUCTION})

_ORDER = list(Stage)


def allowed_targets(current: Stage, *, was_production: bool = False) -> list[Stage]:
    """Stages ``current`` may move to, in lifecycle order; ``was_production`` allows the rollback from retired."""
    targets = set(TRANSITIONS[current])
    if current is Stage.RETIRED and was_production:
        targets.add(Stage.PRODUCTION)
    return sorted(targets, key=_ORDER.index)
