"""ADWIN2 (Bifet & Gavaldà 2007): an adaptive window over an exponential histogram, vectorised over chunks.

How it is vectorised. ADWIN2 keeps the window as rows of buckets, row ``i`` holding at most ``max_buckets``
buckets of ``2**i`` observations, newest rows first; a new observation is a bucket in row 0, and a row that
overflows merges its two oldest buckets into one bucket of the next row. Which observations a bucket covers
depends only on how many observations arrived, never on their values, and a row's bucket count after ``a``
arrivals has a closed form (it fills up to ``max_buckets + 1``, then alternates between ``max_buckets - 1`` and
``max_buckets``, passing one bucket up every second arrival). So the layout of the window at every check in a
chunk is computed at once with a few array operations per row, and each bucket's sum and sum of squares are
differences of running sums over the stream. Running sums are kept only at the bucket edges that exist, so memory
stays ``O(max_buckets * log(window))`` as in the paper. The cut test then runs on a (checks x split points) array.
Only when a cut is found does the code step through the window shrinking, one oldest bucket at a time, as the
paper's algorithm does.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rlops.monitoring.drift.detector import StreamDetector, check_int, check_open_unit

#: Upper bound on (checks x split points) evaluated per step; bounds memory for any ``clock``.
_CELLS_PER_STEP = 1 << 16
_MAX_STEP = 1 << 16


class ADWIN(StreamDetector):
    """ADaptive WINdowing, ADWIN2 of Bifet & Gavaldà, *Learning from time-changing data with adaptive windowing*,
    SIAM SDM 2007.

    The window holds the observations since the last change. Every ``clock`` observations, once the window has
    more than ``grace_period`` of them, ADWIN tries every split of the window at a bucket edge into an older part
    ``W0`` (``n0`` observations, mean ``mu0``) and a newer part ``W1`` (``n1``, ``mu1``) with both parts at least
    ``min_window_length`` long, and cuts when::

        |mu0 - mu1| > sqrt(2 * m * var_W * d) + 2/3 * d * m
        m = 1 / (n0 - min_window_length + 1) + 1 / (n1 - min_window_length + 1)
        d = ln(2 * ln(n) / delta)

    with ``n`` the window length and ``var_W`` its (population) variance: the paper's Bernstein-type bound (its
    section 4, with ``delta' = delta / ln n`` since only ``O(log n)`` bucket edges are tried) in the form used by
    MOA and river. On a cut, the oldest bucket is dropped and the test repeated until no split is significant, so
    the window keeps only the recent part; that check reports one detection. Parameter names and defaults are
    river's ``drift.ADWIN``'s. One deliberate difference: river discards the whole window after a detection, this
    class keeps the part the paper keeps.

    Args:
        delta: confidence of the cut test, in (0, 1); smaller means fewer false alarms and later detection
            (default 0.002).
        clock: check every ``clock`` observations (default 32).
        max_buckets: buckets of each size kept before merging, ``M`` in the paper (default 5).
        min_window_length: shortest sub-window a split may leave on either side (default 5).
        grace_period: observations in the window before the first check (default 10).

    Raises:
        ValidationError: a parameter out of range, naming it.
    """

    def __init__(self, delta: float = 0.002, clock: int = 32, max_buckets: int = 5, min_window_length: int = 5,
                 grace_period: int = 10) -> None:
        self.delta = check_open_unit("delta", delta)
        self.clock = check_int("clock", clock, 1)
        self.max_buckets = check_int("max_buckets", max_buckets, 2)
        self.min_window_length = check_int("min_window_length", min_window_length, 1)
        self.grace_period = check_int("grace_period", grace_period, 1)
        super().__init__()

    # ---- public state -------------------------------------------------------------------------------------------

    @property
    def width(self) -> int:
        """Observations in the current window."""
        return self._tick - self._start

    @property
    def estimation(self) -> float:
        """Mean of the window (0.0 while empty)."""
        if self.width == 0:
            return 0.0
        return (self._p1[-1] - self._p1[0]) / self.width + self._shift

    @property
    def variance(self) -> float:
        """Population variance of the window (0.0 while empty)."""
        return float(self._variance(self.width, self._p1[-1] - self._p1[0], self._p2[-1] - self._p2[0]))

    # ---- state --------------------------------------------------------------------------------------------------

    def _clear(self) -> None:
        self._tick = 0  # observations since construction or reset; position of the window's end
        self._start = 0  # position of the window's start (the window is observations start .. tick-1)
        self._counts = np.zeros(0, dtype=np.int64)  # buckets in row i, each of 2**i observations
        self._shift = 0.0  # the first observation: running sums are of x - shift, which keeps them small
        # Running sums of (x - shift) and its square over observations before each bucket edge, oldest edge first.
        self._edges = np.zeros(1, dtype=np.int64)
        self._p1 = np.zeros(1)
        self._p2 = np.zeros(1)

    def _consume(self, values: npt.NDArray[np.float64]) -> list[int]:
        if self._tick == 0:
            self._shift = float(values[0])
        found: list[int] = []
        done = 0
        while done < values.size:
            rows = max(1, self._counts.size) + 1
            step = min(_MAX_STEP, self.clock * max(1, _CELLS_PER_STEP // (rows * self.max_buckets)))
            chunk = values[done:done + step]
            hit = self._advance(chunk)
            if hit is None:
                done += chunk.size
            else:
                found.append(done + hit)
                done += hit + 1
        return found

    def _advance(self, x: npt.NDArray[np.float64]) -> int | None:
        """Insert ``x`` and run the checks inside it; stop after the first check that cuts and return its position."""
        begin = self._tick
        centred = x - self._shift
        run1 = np.cumsum(np.concatenate(([self._p1[-1]], centred)))  # run1[j]: sum before observation begin + j
        run2 = np.cumsum(np.concatenate(([self._p2[-1]], centred * centred)))
        first = -(-(begin + 1) // self.clock) * self.clock
        checks = np.arange(first, begin + x.size + 1, self.clock, dtype=np.int64)
        checks = checks[checks - self._start > self.grace_period]
        if checks.size:
            counts, moving = self._rows_after(checks - begin)
            cut = self._scan(checks, counts, moving, begin, run1, run2)
            if cut.any():
                k = int(np.argmax(cut))
                end = int(checks[k])
                self._settle(end, counts[k], begin, run1, run2)
                self._shrink()
                return end - begin - 1
        end = begin + x.size
        self._settle(end, self._counts_after(x.size), begin, run1, run2)
        return None

    # ---- the exponential histogram's layout ---------------------------------------------------------------------

    def _rows_after(self, arrivals: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], int]:
        """Bucket counts per row after each of ``arrivals`` (ascending) more observations: shape (len, rows).

        Also returns how many rows (always the newest ones) received buckets by the last entry; the older rows keep
        theirs unchanged. A row holding ``c`` buckets that receives ``a`` passes ``max(0, a + c - top + 1) // 2``
        merged buckets up (it merges whenever it would hold ``top + 1``) and keeps ``c + a`` minus twice that.
        """
        top = self.max_buckets
        old = self._counts
        columns: list[npt.NDArray[np.int64]] = []
        incoming = arrivals
        while incoming.size and incoming[-1] > 0:
            start = int(old[len(columns)]) if len(columns) < old.size else 0
            passed = np.maximum(incoming + (start + 1 - top), 0) >> 1
            columns.append(incoming + (start - 2 * passed))
            incoming = passed
        moving = len(columns)
        columns.extend(np.full(arrivals.size, c, dtype=np.int64) for c in old[moving:].tolist())
        if not columns:
            return np.zeros((arrivals.size, 0), dtype=np.int64), 0
        return np.stack(columns, axis=1), moving

    def _counts_after(self, arrivals: int) -> npt.NDArray[np.int64]:
        """:meth:`_rows_after` for one number of arrivals, in plain integers."""
        top = self.max_buckets
        counts = self._counts.tolist()
        incoming, i = arrivals, 0
        while incoming > 0:
            if i == len(counts):
                counts.append(0)
            passed = max(incoming + counts[i] + 1 - top, 0) >> 1
            counts[i] += incoming - 2 * passed
            incoming, i = passed, i + 1
        return np.array(counts, dtype=np.int64)

    def _edge_offsets(self, counts: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Distances from the newest end of ``counts``' rows to each bucket edge: shape (..., rows * max_buckets).

        Slot ``m`` of row ``i`` is the edge after ``m + 1`` buckets of that row; it exists when ``m < counts[i]``.
        """
        rows = counts.shape[-1]
        size = np.left_shift(1, np.arange(rows, dtype=np.int64))
        before = np.cumsum(counts * size, axis=-1) - counts * size  # observations in the newer rows
        slot = np.arange(1, self.max_buckets + 1, dtype=np.int64)
        offsets = before[..., :, None] + slot * size[:, None]
        exists = slot <= counts[..., :, None]
        shape = (*counts.shape[:-1], rows * self.max_buckets)
        return offsets.reshape(shape), exists.reshape(shape)

    # ---- the cut test -------------------------------------------------------------------------------------------

    def _scan(self, ends: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], moving: int, begin: int,
              run1: npt.NDArray[np.float64], run2: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Whether some split is significant at each check ``ends`` (window bucket ``counts`` per check).

        The ``moving`` newest rows received buckets during this chunk; their edges are either inside the chunk or
        stored edges no older than ``reach``, so one array indexed by position serves them all. The older rows did
        not change: their edges and sums are the stored ones at every check.
        """
        old_counts = self._counts
        reach = begin - int((old_counts[:moving] << np.arange(min(moving, old_counts.size))).sum())
        by_position = np.empty(begin - reach + run1.size)
        by_position[begin - reach:] = run1
        near = (self._edges >= reach) & (self._edges < begin)
        by_position[self._edges[near] - reach] = self._p1[near]
        window = ends - self._start
        end1 = run1[ends - begin]
        start1 = float(self._p1[0])
        var = self._variance(window, end1 - start1, run2[ends - begin] - self._p2[0])
        d = self._log_term(window)
        offsets, exists = self._edge_offsets(counts[:, :moving])
        at = by_position.take(ends[:, None] - offsets - reach, mode="clip")
        cut = self._significant(offsets, exists, at, window, end1, start1, var, d)
        if moving < old_counts.size:
            still, there = self._edge_offsets(old_counts)  # the stored layout, measured back from ``begin``
            still, there = still[moving * self.max_buckets:], there[moving * self.max_buckets:]
            positions = begin - still[there]
            at_still = self._p1[np.searchsorted(self._edges, positions)]
            cut |= self._significant(ends[:, None] - positions, np.ones(positions.size, dtype=bool), at_still,
                                     window, end1, start1, var, d)
        return cut

    def _cut_now(self) -> bool:
        """Whether some split of the stored window is significant (used while shrinking)."""
        offsets, exists = self._edge_offsets(self._counts)
        end = self._tick
        positions = np.clip(end - offsets, self._edges[0], end)
        at = self._p1[np.minimum(np.searchsorted(self._edges, positions), self._edges.size - 1)]
        window = np.array([end - self._start])
        end1, start1 = np.array([self._p1[-1]]), float(self._p1[0])
        var = self._variance(window, end1 - start1, self._p2[-1] - self._p2[0])
        return bool(self._significant(offsets[None, :], exists, at[None, :], window, end1, start1, var,
                                      self._log_term(window))[0])

    def _significant(self, n1: npt.NDArray[np.int64], exists: npt.NDArray[np.bool_], at: npt.NDArray[np.float64],
                     window: npt.NDArray[np.int64], end1: npt.NDArray[np.float64], start1: float,
                     var: npt.NDArray[np.float64], d: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Cut test for splits leaving ``n1`` newest observations (shape (checks, splits)), any per check."""
        shortest = self.min_window_length
        with np.errstate(all="ignore"):  # unusable cells may hold anything; they are masked out below
            f1 = n1.astype(np.float64)
            f0 = window.astype(np.float64)[:, None] - f1
            usable = exists & (f1 >= shortest) & (f0 >= shortest)
            # In place, to keep the temporaries few: the arrays are (checks x splits) and this runs per chunk.
            gap = (at - start1) / f0
            newer = (end1[:, None] - at) / f1
            np.subtract(gap, newer, out=gap)
            np.abs(gap, out=gap)  # |mu0 - mu1|
            np.add(f0, 1.0 - shortest, out=f0)
            np.reciprocal(f0, out=f0)
            np.add(f1, 1.0 - shortest, out=f1)
            np.reciprocal(f1, out=f1)
            m = np.add(f0, f1, out=f0)
            np.multiply(m, ((2.0 / 3.0) * d)[:, None], out=newer)
            np.multiply(m, (2.0 * var * d)[:, None], out=m)
            np.sqrt(m, out=m)
            np.add(m, newer, out=m)  # the bound
            usable &= gap > m
            return np.asarray(usable.any(axis=1), dtype=bool)

    def _log_term(self, window: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """``ln(2 ln(n) / delta)`` per window length ``n`` (windows shorter than 2 are never split)."""
        return np.log(2.0 * np.log(np.maximum(window, 2).astype(np.float64)) / self.delta)

    @staticmethod
    def _variance(width: npt.ArrayLike, total: npt.ArrayLike, squares: npt.ArrayLike) -> npt.NDArray[np.float64]:
        w = np.maximum(np.asarray(width, dtype=np.float64), 1.0)
        mean = np.asarray(total) / w
        return np.maximum(np.asarray(squares) / w - mean * mean, 0.0)

    def _sum_before(self, positions: npt.NDArray[np.int64], begin: int, run: npt.NDArray[np.float64],
                    stored: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Running sum before each position: from this chunk's sums, or from the stored edge sums for older ones."""
        recent = positions >= begin
        out = run[np.where(recent, positions - begin, 0)]
        if not recent.all():
            old = ~recent
            out[old] = stored[np.searchsorted(self._edges, positions[old])]
        return out

    # ---- moving the stored state --------------------------------------------------------------------------------

    def _settle(self, end: int, counts: npt.NDArray[np.int64], begin: int, run1: npt.NDArray[np.float64],
                run2: npt.NDArray[np.float64]) -> None:
        """Make the state that of the window ending at ``end`` with bucket ``counts``."""
        counts = np.trim_zeros(np.asarray(counts, dtype=np.int64), "b")
        offsets, exists = self._edge_offsets(counts)
        positions = np.unique(np.concatenate(([end, self._start], end - offsets[exists])))
        p1 = self._sum_before(positions, begin, run1, self._p1)
        p2 = self._sum_before(positions, begin, run2, self._p2)
        self._tick, self._counts, self._edges, self._p1, self._p2 = end, counts, positions, p1, p2

    def _shrink(self) -> None:
        """Drop the oldest bucket while some split of the window is significant (the paper's loop)."""
        while self._counts.size and self._cut_now():
            top = self._counts.size - 1
            self._counts[top] -= 1
            self._counts = np.trim_zeros(self._counts, "b")
            self._start += 1 << top
            keep = self._edges >= self._start
            self._edges, self._p1, self._p2 = self._edges[keep], self._p1[keep], self._p2[keep]

    def __repr__(self) -> str:
        return (f"ADWIN(delta={self.delta}, clock={self.clock}, max_buckets={self.max_buckets}, "
                f"min_window_length={self.min_window_length}, grace_period={self.grace_period})")
