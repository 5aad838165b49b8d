"""Retention of the event log: remove decisions older than their deployment's cutoff, with their outcomes.

What goes (a :class:`~rlops.events.rewrite.Selection` for :func:`rlops.events.rewrite.remove_records`, which says
how this stays crash-safe and works next to live writers):

- a decision of a deployment with a cutoff, made before it (``ts < cutoff``);
- every outcome of such a decision (whenever it arrived: an outcome is kept exactly as long as its decision);
- with ``orphan_cutoff_us``, an outcome whose decision the log does not hold (a dead letter for an unknown
  decision, or one that arrived after its decision was removed) and that arrived before that cutoff. Such an
  outcome belongs to no deployment, so the caller decides whether any cutoff applies to it.

Nothing else: decisions of deployments without a cutoff stay, and so do the outcomes of every decision that stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from rlops.events.log import EventLog
from rlops.events.rewrite import Mask, Progress, Removal, remove_records


def _ts(table: pa.Table) -> pa.ChunkedArray:
    return pc.cast(table["ts"], pa.int64())


@dataclass
class CutoffSelection:
    """Decisions older than their deployment's cutoff, their outcomes, and old orphan outcomes.

    Attributes:
        cutoffs: ``deployment -> cutoff``, microseconds since the epoch: its decisions with ``ts`` before go.
        orphan_cutoff_us: outcomes of decisions the log does not hold, with ``ts`` before this, go too (None: such
            outcomes stay).
        decision_ids: ids of the decisions chosen so far (their outcomes go; kept across rounds).
        known_ids: ids of every stored decision, as of the last look.
    """

    cutoffs: Mapping[str, int]
    orphan_cutoff_us: int | None = None
    decision_ids: set[str] = field(default_factory=set)
    known_ids: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    decision_columns: tuple[str, ...] = ("deployment", "ts")
    outcome_columns: tuple[str, ...] = ("decision_id", "ts")

    def prepare(self, decisions: pa.Table, outcomes: pa.Table) -> None:
        chosen = decisions.filter(pc.fill_null(self.decisions(decisions), False))
        self.decision_ids.update(chosen["decision_id"].to_pylist())
        self.known_ids = decisions["decision_id"].combine_chunks()

    def decisions(self, table: pa.Table) -> Mask:
        mask: Mask = pc.is_in(table["deployment"], value_set=pa.array(list(self.cutoffs), pa.string()))
        if not self.cutoffs or table.num_rows == 0:
            return mask  # all False
        ts = _ts(table)
        for deployment, cutoff in self.cutoffs.items():
            mask = pc.and_(mask, pc.or_(pc.not_equal(table["deployment"], deployment), pc.less(ts, cutoff)))
        return mask

    def outcomes(self, table: pa.Table) -> Mask:
        ids = table["decision_id"]
        mask = pc.is_in(ids, value_set=pa.array(sorted(self.decision_ids), pa.string()))
        if self.orphan_cutoff_us is not None and table.num_rows:
            orphan = pc.invert(pc.is_in(ids, value_set=self.known_ids))
            mask = pc.or_(mask, pc.and_(orphan, pc.less(_ts(table), self.orphan_cutoff_us)))
        return mask


def expire_records(log: EventLog, cutoffs: Mapping[str, int], *, orphan_cutoff_us: int | None = None,
                   dry_run: bool = False, wait_s: float = 30.0, progress: Progress | None = None) -> Removal:
    """Remove the decisions older than their deployment's cutoff, their outcomes, and (with ``orphan_cutoff_us``)
    older outcomes of decisions the log does not hold.

    Args:
        log: the event log.
        cutoffs: ``deployment -> cutoff`` in microseconds since the epoch; deployments not named keep everything.
        orphan_cutoff_us: see :class:`CutoffSelection` (default None: orphan outcomes stay).
        dry_run: only count; change nothing.
        wait_s: how long to wait for live writers to seal segments holding expired records, seconds.
        progress: called with ``(phase, done, total)``.

    Raises:
        ConflictError: another erasure or retention run kept the log busy for longer than ``wait_s``.
        StorageError: a file could not be read or written (every file is still whole; run it again).
    """
    selection = CutoffSelection(dict(cutoffs), orphan_cutoff_us)
    return remove_records(log, selection, wait_s=wait_s, dry_run=dry_run, progress=progress)
