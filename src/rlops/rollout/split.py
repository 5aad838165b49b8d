"""The sticky traffic split: which arm of a deployment serves a unit.

A unit's place on ``[0, 1)`` is a hash of the deployment's salt and the unit id, so the same unit always lands on
the same spot, in every process and after every restart, and different deployments (different salts) split
independently. The canary takes ``[0, c)``, the holdout ``[1 - h, 1)``, production what lies between. Raising the
canary's fraction only adds units to it (none moves from canary to production), and adding, changing or removing
the holdout moves no canary unit; promoting or rolling back moves everyone to production at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

_SCALE = float(2**64)


class Slot(IntEnum):
    """Which served arm a unit falls into."""

    PRODUCTION = 0
    CANARY = 1
    HOLDOUT = 2


def unit_position(salt: str, unit_id: str) -> float:
    """Where a unit sits on ``[0, 1)`` for a salt: the first 8 bytes of BLAKE2b(salt, unit id)."""
    digest = hashlib.blake2b(unit_id.encode(), digest_size=8, key=salt.encode()[:64]).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True)
class Split:
    """A deployment's split: the holdout's and the canary's shares of units (each in [0, 1), summing below 1)."""

    salt: str
    holdout: float = 0.0
    canary: float = 0.0

    @property
    def trivial(self) -> bool:
        """Everyone goes to production: no hashing needed."""
        return self.holdout == 0.0 and self.canary == 0.0

    def slot(self, unit_id: str) -> Slot:
        """The arm that serves ``unit_id``."""
        if self.trivial:
            return Slot.PRODUCTION
        u = unit_position(self.salt, unit_id)
        if u < self.canary:
            return Slot.CANARY
        if u >= 1.0 - self.holdout:
            return Slot.HOLDOUT
        return Slot.PRODUCTION

    def slots(self, unit_ids: Sequence[str]) -> NDArray[np.int8]:
        """The arm of each unit, as :class:`Slot` values."""
        if self.trivial:
            return np.zeros(len(unit_ids), dtype=np.int8)
        return np.fromiter((self.slot(u) for u in unit_ids), dtype=np.int8, count=len(unit_ids))
