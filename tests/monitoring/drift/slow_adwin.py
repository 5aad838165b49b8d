"""A plain, loop-by-loop ADWIN2 written straight from the paper's description, to check the vectorised one against.

Buckets are explicit (count, sum of (x - shift), sum of squares), rows newest first, the cut test scans split points
from the oldest bucket on, and a cut drops the oldest bucket and scans again, exactly as described in
:mod:`rlops.monitoring.drift.adwin`. It is slow and obvious on purpose.
"""

from __future__ import annotations

import math


class SlowADWIN:
    def __init__(self, delta: float = 0.002, clock: int = 32, max_buckets: int = 5, min_window_length: int = 5,
                 grace_period: int = 10) -> None:
        self.delta, self.clock, self.max_buckets = delta, clock, max_buckets
        self.min_window_length, self.grace_period = min_window_length, grace_period
        self.rows: list[list[tuple[int, float, float]]] = []  # row i: buckets oldest first, each of 2**i values
        self.tick = 0
        self.shift: float | None = None

    @property
    def width(self) -> int:
        return sum(len(row) << i for i, row in enumerate(self.rows))

    def update(self, x: float) -> bool:
        if self.shift is None:
            self.shift = x
        c = x - self.shift
        self.tick += 1
        if not self.rows:
            self.rows.append([])
        self.rows[0].append((1, c, c * c))
        i = 0
        while i < len(self.rows) and len(self.rows[i]) == self.max_buckets + 1:
            (n_a, s_a, q_a), (n_b, s_b, q_b) = self.rows[i][0], self.rows[i][1]
            del self.rows[i][:2]
            if i + 1 == len(self.rows):
                self.rows.append([])
            self.rows[i + 1].append((n_a + n_b, s_a + s_b, q_a + q_b))
            i += 1
        if self.tick % self.clock or self.width <= self.grace_period:
            return False
        detected = False
        while self._significant_split():
            detected = True
            top = len(self.rows) - 1
            del self.rows[top][0]
            while self.rows and not self.rows[-1]:
                self.rows.pop()
        return detected

    def _significant_split(self) -> bool:
        buckets = [b for row in reversed(self.rows) for b in row]  # oldest first
        n = sum(b[0] for b in buckets)
        total = sum(b[1] for b in buckets)
        squares = sum(b[2] for b in buckets)
        if n < 2:
            return False
        var = max(squares / n - (total / n) ** 2, 0.0)
        d = math.log(2 * math.log(n) / self.delta)
        n0, s0 = 0, 0.0
        for count, s, _ in buckets[:-1]:
            n0 += count
            s0 += s
            n1 = n - n0
            if n0 < self.min_window_length or n1 < self.min_window_length:
                continue
            m = 1 / (n0 - self.min_window_length + 1) + 1 / (n1 - self.min_window_length + 1)
            bound = math.sqrt(2 * m * var * d) + 2 / 3 * d * m
            if abs(s0 / n0 - (total - s0) / n1) > bound:
                return True
        return False
