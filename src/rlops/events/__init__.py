"""The event log of decisions and outcomes (see DESIGN.md, "Data contracts" and "Storage").

:class:`EventLog` is the durable, multi-process, group-committed log; records and their Arrow layouts are in
:mod:`rlops.events.records`; the reward join is in :mod:`rlops.events.join`.
"""

from rlops.events.compaction import CompactionResult
from rlops.events.ids import new_id
from rlops.events.log import DEFAULT_SEGMENT_BYTES, EventLog, EventStats
from rlops.events.records import DECISION_SCHEMA, OUTCOME_SCHEMA, DecisionRecord, Mode, OutcomeRecord

__all__ = [
    "DECISION_SCHEMA",
    "DEFAULT_SEGMENT_BYTES",
    "OUTCOME_SCHEMA",
    "CompactionResult",
    "DecisionRecord",
    "EventLog",
    "EventStats",
    "Mode",
    "OutcomeRecord",
    "new_id",
]
