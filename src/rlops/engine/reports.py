"""Read-side views over a home folder: per-deployment statistics, Parquet export, reward previews."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rlops.engine.engine import Engine, now_us
from rlops.errors import StorageError
from rlops.events.join import flatten_context, join
from rlops.home import Home
from rlops.rewards import RewardSpec, RewardSummary, summarize


@dataclass(frozen=True)
class DeploymentStats:
    deployment: str
    decisions: int
    outcomes: int
    duplicates: int
    joined: int
    defaulted: int
    pending: int
    dead_letters: int
    mean_reward: float | None


def deployment_stats(engine: Engine) -> tuple[list[DeploymentStats], str]:
    """One row per deployment (joined under its own reward spec, as of now) and a line about storage.

    ``joined`` counts decisions with a usable outcome, including those whose window is still open; ``pending``
    counts decisions still waiting for an outcome inside their window.
    """
    rows = []
    for name, result in engine.join_all(include_pending=True).items():
        s = result.stats
        rewards = np.asarray(result.interactions["reward"].to_numpy(), dtype=np.float64)
        n_outcomes = int(np.asarray(result.interactions["n_outcomes"].to_numpy()).sum()) if s.joined else 0
        rows.append(DeploymentStats(name, s.decisions, n_outcomes + s.dead_letters, s.duplicates, s.joined,
                                    s.defaulted, s.pending, s.dead_letters,
                                    float(rewards.mean()) if len(rewards) else None))
    st = engine.log.stats()
    storage = (f"{st.decisions:,} decisions and {st.outcomes:,} outcomes in {st.segments} segment(s) and "
               f"{st.parquet_parts} Parquet part(s), {st.bytes / 1e6:.1f} MB")
    parts = engine.log.parts
    if parts.local != engine.log.root / "parquet":
        storage += f"; Parquet parts at {parts}"
    return rows, storage


def export_parquet(engine: Engine, out: Path, deployment: str | None = None) -> list[tuple[Path, int]]:
    """Write ``decisions``, ``outcomes``, ``interactions-<deployment>`` and ``dead_letters`` Parquet files.

    Interactions include decisions whose window is still open but which have an outcome (``window_closed`` tells
    them apart). Interactions have the context as a struct column, so pandas, polars and DuckDB read them as they are.
    Files are written to a temporary name and renamed, so a failed export leaves no half-written file.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"--out {out}: cannot create the folder: {e.strerror or e}") from e
    joined = engine.join_all([deployment] if deployment else None, include_pending=True)
    decisions, outcomes = engine.log.read_decisions(), engine.log.read_outcomes()
    if deployment:  # only this deployment's records, and its own dead letters
        decisions = decisions.filter(pc.equal(decisions["deployment"], deployment))
        ids = decisions["decision_id"].combine_chunks()
        outcomes = outcomes.filter(pc.is_in(outcomes["decision_id"], value_set=ids))
        dead_letters = joined[deployment].dead_letters
    else:
        dead_letters = engine.dead_letters()
    tables = [("decisions", decisions), ("outcomes", outcomes)]
    tables += [(f"interactions-{name}", flatten_context(result.interactions)) for name, result in joined.items()]
    tables.append(("dead_letters", dead_letters))
    written = []
    for stem, table in tables:
        path = out / f"{stem}.parquet"
        tmp = out / f".{stem}.parquet.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        written.append((path, table.num_rows))
    return written


@dataclass(frozen=True)
class RewardPreview:
    home: Path
    summary: RewardSummary
    from_outcomes: int
    defaulted: int
    dead_letters: int
    top_reason: str | None


def preview_rewards(home: Home, spec: RewardSpec, deployment: str | None = None, bins: int = 20) -> RewardPreview:
    """Compute ``spec`` over the logged outcomes of ``home`` (as of now, pending windows included)."""
    with Engine(home) as engine:
        if deployment:
            engine.spec(deployment)
        result = join(engine.log.read_decisions(), engine.log.read_outcomes(), spec, deployment=deployment,
                      as_of_us=now_us(), include_pending=True)  # a spec not (yet) in any deployment
    rewards = np.asarray(result.interactions["reward"].to_numpy(), dtype=np.float64)
    reasons = Counter(result.dead_letters["reason"].to_pylist())
    top = reasons.most_common(1)[0][0] if reasons else None
    return RewardPreview(home.root, summarize(rewards, bins=bins), result.stats.joined, result.stats.defaulted,
                         result.stats.dead_letters, top)
