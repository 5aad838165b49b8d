"""The reward join: decisions + outcomes + a reward spec -> interactions, and a dead-letter table.

Rules (DESIGN.md, "Data contracts"):

- Outcomes with the same idempotency key are one outcome: the first stored wins, later ones count as duplicates.
- An outcome for a decision that does not exist, for a shadow decision, or arriving after the attribution window
  (``outcome.ts - decision.ts > window``), or whose fields the reward spec cannot use (a missing field with no
  default, a non-numeric value, a reward out of bounds under ``mode: reject``) goes to the dead-letter table with
  the reason. Nothing is dropped silently.
- Several usable outcomes of one decision combine by the spec's aggregation (sum, first, last, max).
- A decision whose window has closed (``decision.ts + window <= as_of``) without a usable outcome gets the spec's
  ``missing`` reward, or is left out when the spec says ``exclude``.
- A decision whose window is still open is *pending*: left out unless ``include_pending`` is set, in which case
  it is included only if it has at least one usable outcome (its reward may still change).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rlops.events.records import TIMESTAMP, Mode
from rlops.rewards import RewardSpec


class RewardSource(StrEnum):
    """Where an interaction's reward came from."""

    OUTCOME = "outcome"  # computed from the decision's outcomes
    DEFAULT = "default"  # the spec's ``missing`` reward: no usable outcome inside the window


class DeadLetterReason(StrEnum):
    """Why an outcome could not count (the ``reason`` column says it in words, with the numbers)."""

    UNKNOWN_DECISION = "unknown_decision"
    SHADOW_DECISION = "shadow_decision"
    BACKDATED = "backdated"  # dated more than the tolerated clock skew before its decision
    EXPIRED = "expired"  # arrived after the attribution window
    UNUSABLE_FIELDS = "unusable_fields"  # the reward spec could not compute a reward from it


DEAD_LETTER_SCHEMA = pa.schema([
    ("decision_id", pa.string()),
    ("ts", TIMESTAMP),
    ("idempotency_key", pa.string()),
    ("fields", pa.string()),
    ("deployment", pa.string()),
    ("reason_code", pa.string()),
    ("reason", pa.string()),
])

#: How much earlier than its decision an outcome may be dated (clocks of clients and servers differ), µs.
CLOCK_SKEW_US = 60_000_000


@dataclass(frozen=True)
class JoinStats:
    """Counts behind a join; every number can be recomputed from the event log."""

    decisions: int
    outcomes: int  # outcomes of this join's decisions (or all, with deployment=None), duplicates included
    duplicates: int
    dead_letters: int
    joined: int
    defaulted: int
    excluded: int
    pending: int
    quarantined: int = 0  # outcomes held back by the poisoning guard (they count as not having arrived)
    without_consent: int = 0  # decisions for units without consent: never interactions (never learned from)


@dataclass(frozen=True)
class JoinResult:
    """Interactions (one row per decision with a reward) and dead-lettered outcomes."""

    interactions: pa.Table
    dead_letters: pa.Table
    stats: JoinStats


def _ts_us(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def join(
    decisions: pa.Table,
    outcomes: pa.Table,
    spec: RewardSpec,
    *,
    deployment: str | None,
    window_seconds: float | None = None,
    as_of_us: int,
    include_pending: bool = False,
) -> JoinResult:
    """Join decisions with outcomes under ``spec``.

    Args:
        decisions: the log's decisions (``DECISION_SCHEMA``).
        outcomes: the log's outcomes in arrival order (``OUTCOME_SCHEMA``).
        spec: the reward spec.
        deployment: only this deployment's decisions; ``None`` for all (then unknown-decision dead letters are
            included too, since they belong to no deployment).
        window_seconds: the attribution window (default: the spec's).
        as_of_us: "now" for deciding which windows have closed, microseconds since the epoch.
        include_pending: also return decisions whose window is open but which have an outcome.
    """
    window_us = int((spec.window_seconds if window_seconds is None else window_seconds) * 1e6)
    all_ids = decisions["decision_id"].to_pylist()
    position = {d: i for i, d in enumerate(all_ids)}
    dep_col = decisions["deployment"].to_pylist()
    mode_col = decisions["mode"].to_pylist()
    dec_ts = _ts_us(decisions["ts"])
    keep = np.array([(deployment is None or dep == deployment) and mode == Mode.SERVED
                     for dep, mode in zip(dep_col, mode_col, strict=True)], dtype=bool)
    # A unit without consent: its decisions are never interactions, so no learner or estimator ever sees them.
    consented = (np.ones(len(all_ids), dtype=bool) if "consent" not in decisions.column_names
                 else np.asarray(decisions["consent"].fill_null(True).to_numpy(zero_copy_only=False), dtype=bool))
    without_consent = int((keep & ~consented).sum())
    keep &= consented
    kept_rows = np.flatnonzero(keep)
    group_of = np.full(len(all_ids), -1, dtype=np.int64)
    group_of[kept_rows] = np.arange(len(kept_rows))

    # ---- classify every outcome ----
    out_ids = outcomes["decision_id"].to_pylist()
    out_keys = outcomes["idempotency_key"].to_pylist()
    out_fields = outcomes["fields"].to_pylist()
    out_ts = _ts_us(outcomes["ts"])
    held = (outcomes["quarantine"].to_pylist() if "quarantine" in outcomes.column_names
            else [None] * outcomes.num_rows)
    seen: set[tuple[str, str]] = set()
    duplicates = quarantined = 0
    considered = 0
    dead: list[tuple[int, str | None, DeadLetterReason, str]] = []  # (outcome row, deployment, code, reason)
    usable: list[int] = []
    for j, (decision_id, key) in enumerate(zip(out_ids, out_keys, strict=True)):
        row = position.get(decision_id)
        if row is not None and deployment is not None and dep_col[row] != deployment:
            continue  # another deployment's outcome: not counted here at all
        if row is None and deployment is not None:
            continue  # unknown decisions belong to no deployment; the all-deployments join reports them
        if row is not None and not consented[row]:
            continue  # an outcome of a decision that is not an interaction (no consent)
        considered += 1
        if held[j] is not None and row is not None and mode_col[row] == Mode.SERVED:
            quarantined += 1  # stored, but held back: as if it had not arrived (and it holds no idempotency key)
            continue
        if (decision_id, key) in seen:  # idempotency keys are scoped to their decision
            duplicates += 1
            continue
        seen.add((decision_id, key))
        if row is None:
            dead.append((j, None, DeadLetterReason.UNKNOWN_DECISION, "unknown decision"))
            continue
        if mode_col[row] != Mode.SERVED:
            dead.append((j, dep_col[row], DeadLetterReason.SHADOW_DECISION, "outcome for a shadow decision"))
            continue
        delay = int(out_ts[j] - dec_ts[row])
        if delay < -CLOCK_SKEW_US:
            dead.append((j, dep_col[row], DeadLetterReason.BACKDATED,
                         f"dated {-delay / 1e6:.3f} s before its decision (more than the "
                                          f"{CLOCK_SKEW_US / 1e6:.0f} s of clock skew tolerated)"))
            continue
        if delay > window_us:
            dead.append((j, dep_col[row], DeadLetterReason.EXPIRED,
                         f"expired: arrived {delay / 1e6:.3f} s after the decision, "
                                          f"the window is {window_us / 1e6:.3f} s"))
            continue
        usable.append(j)

    # ---- rewards of usable outcomes ----
    contexts_json = decisions["context"].to_pylist()
    fields = [json.loads(out_fields[j]) for j in usable]
    ctx = [json.loads(contexts_json[position[out_ids[j]]]) for j in usable] if spec.context else [{}] * len(usable)
    batch = spec.compute(fields, ctx)
    good = np.array([r is None for r in batch.reason], dtype=bool)
    for j, reason in zip(usable, batch.reason, strict=True):
        if reason is not None:
            dead.append((j, dep_col[position[out_ids[j]]], DeadLetterReason.UNUSABLE_FIELDS, reason))
    usable_arr = np.asarray(usable, dtype=np.int64)[good]
    groups = np.array([group_of[position[out_ids[j]]] for j in usable_arr], dtype=np.int64)
    n_groups = len(kept_rows)
    agg = spec.aggregate(batch.reward[good], groups, out_ts[usable_arr], n_groups)
    n_outcomes = np.bincount(groups, minlength=n_groups).astype(np.int64)

    # ---- per decision: joined, defaulted, excluded or pending ----
    closed = dec_ts[kept_rows] + window_us <= as_of_us
    has = n_outcomes > 0
    reward = agg.copy()
    source = np.where(has, RewardSource.OUTCOME.value, RewardSource.DEFAULT.value).astype(object)
    include = (has & closed) | (has & ~closed & include_pending)
    missing_closed = ~has & closed
    if spec.excludes_missing:
        excluded = int(missing_closed.sum())
    else:
        reward[missing_closed] = spec.missing_reward
        include |= missing_closed
        excluded = 0
    pending = int((~closed & ~(include & has)).sum())
    rows = kept_rows[include]
    table = decisions.take(pa.array(rows, type=pa.int64()))
    for name, values in (
        ("reward", pa.array(reward[include], type=pa.float64())),
        ("reward_spec", pa.array([spec.ref] * len(rows), type=pa.string())),
        ("reward_source", pa.array(source[include].tolist(), type=pa.string())),
        ("n_outcomes", pa.array(n_outcomes[include], type=pa.int64())),
        ("window_closed", pa.array(closed[include], type=pa.bool_())),
    ):
        table = table.append_column(name, values)

    dead.sort(key=lambda item: item[0])
    dead_table = pa.Table.from_pydict({
        "decision_id": [out_ids[d[0]] for d in dead],
        "ts": pa.array([int(out_ts[d[0]]) for d in dead], type=pa.int64()).cast(TIMESTAMP),
        "idempotency_key": [out_keys[d[0]] for d in dead],
        "fields": [out_fields[d[0]] for d in dead],
        "deployment": [d[1] for d in dead],
        "reason_code": [d[2].value for d in dead],
        "reason": [d[3] for d in dead],
    }, schema=DEAD_LETTER_SCHEMA)
    stats = JoinStats(
        decisions=n_groups, outcomes=considered, duplicates=duplicates, dead_letters=len(dead),
        joined=int((include & has).sum()), defaulted=int((include & ~has).sum()), excluded=excluded,
        pending=pending, quarantined=quarantined, without_consent=without_consent,
    )
    return JoinResult(table, dead_table, stats)


def orphan_outcomes(decisions: pa.Table, outcomes: pa.Table) -> pa.Table:
    """Dead letters for outcomes whose decision id is in no decision at all (first of each idempotency key)."""
    known = set(decisions["decision_id"].to_pylist())
    seen: set[tuple[str, str]] = set()
    rows: dict[str, list[Any]] = {name: [] for name in DEAD_LETTER_SCHEMA.names}
    ts = _ts_us(outcomes["ts"])
    for j, (decision_id, key, fields) in enumerate(zip(outcomes["decision_id"].to_pylist(),
                                                       outcomes["idempotency_key"].to_pylist(),
                                                       outcomes["fields"].to_pylist(), strict=True)):
        if (decision_id, key) in seen:
            continue
        seen.add((decision_id, key))
        if decision_id not in known:
            for name, value in (("decision_id", decision_id), ("ts", int(ts[j])), ("idempotency_key", key),
                                ("fields", fields), ("deployment", None),
                                ("reason_code", DeadLetterReason.UNKNOWN_DECISION.value),
                                ("reason", "unknown decision")):
                rows[name].append(value)
    rows["ts"] = pa.array(rows["ts"], type=pa.int64()).cast(TIMESTAMP)  # type: ignore[assignment]
    return pa.Table.from_pydict(rows, schema=DEAD_LETTER_SCHEMA)


def flatten_context(table: pa.Table) -> pa.Table:
    """Replace the JSON ``context`` column with a struct column that pandas, polars and DuckDB read directly."""
    if table.num_rows == 0:
        return table  # Parquet cannot store a struct with no fields; an empty table keeps the JSON column
    contexts: list[dict[str, Any]] = [json.loads(c) for c in table["context"].to_pylist()]
    return table.set_column(table.schema.get_field_index("context"), "context", pa.array(contexts))
