"""Lineage of a registered version: what it was trained on and where it came from.

A version records the event-log range it was trained on (deployment, time range, the number of decisions and a
hash of their ids, so that "trained on the same data" can be checked later), the reward spec and scenario, the
rlops version and git commit that registered it, and its parent when it was fine-tuned from another version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import subprocess
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rlops import __version__
from rlops.errors import ValidationError
from rlops.events import EventLog
from rlops.events.tables import parse_time_us, served_in
from rlops.registry.refs import ModelRef, check_name

_HEX64 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


@dataclass(frozen=True)
class EventsRange:
    """A range of a deployment's served decisions, and a fingerprint of the ids in it.

    Attributes:
        deployment: the deployment whose decisions were used.
        start_us: first decision time included, microseconds since the epoch (UTC); ``None``: from the start.
        end_us: decision times up to but excluding this one; ``None``: to the end.
        decisions: how many decisions the range held when it was fingerprinted (``None`` if not computed here).
        hash: SHA-256 (hex) of the sorted decision ids, one per line (see :func:`events_fingerprint`).
    """

    deployment: str
    start_us: int | None = None
    end_us: int | None = None
    decisions: int | None = None
    hash: str | None = None

    def __post_init__(self) -> None:
        if not self.deployment:
            raise ValidationError("events.deployment", "must not be empty")
        if self.start_us is not None and self.end_us is not None and self.end_us <= self.start_us:
            raise ValidationError("events", "the range ends before it starts")
        if self.hash is not None and _HEX64.fullmatch(self.hash) is None:
            raise ValidationError("events.hash", "must be 64 lowercase hex digits (a SHA-256)")
        if self.decisions is not None and self.decisions < 0:
            raise ValidationError("events.decisions", "must be >= 0")

    @classmethod
    def parse(cls, text: str) -> EventsRange:
        """Parse ``DEPLOYMENT[@FROM..TO]``; times are ISO 8601 (naive means UTC) or integer microseconds, either
        end may be left open (``pricing@2024-06-01..``)."""
        deployment, sep, span = text.partition("@")
        if not sep:
            return cls(deployment.strip())
        start, dots, end = span.partition("..")
        if not dots:
            raise ValidationError("events_range", f"{text!r}: write the range as DEPLOYMENT@FROM..TO")
        return cls(deployment.strip(), _time_us(start, "events_range.from"), _time_us(end, "events_range.to"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventsRange:
        return cls(str(data.get("deployment", "")), data.get("start_us"), data.get("end_us"), data.get("decisions"),
                   data.get("hash"))

    def __str__(self) -> str:
        def show(us: int | None) -> str:
            if us is None:
                return ""
            return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

        span = "" if self.start_us is None and self.end_us is None else f"@{show(self.start_us)}..{show(self.end_us)}"
        return f"{self.deployment}{span}"


def _time_us(text: str, field: str) -> int | None:
    return parse_time_us(text, field) if text.strip() else None


def events_fingerprint(log: EventLog, deployment: str, start_us: int | None = None,
                       end_us: int | None = None) -> EventsRange:
    """Count and hash the served decisions of ``deployment`` with ``start_us <= ts < end_us``.

    The hash is the SHA-256 of the decision ids sorted and joined with newlines (each id followed by ``\\n``): it
    depends only on which decisions are in the range, not on how the log is split into segments and Parquet parts,
    so it is the same before and after compaction. Shadow decisions are left out (they trained nothing).

    Raises:
        StorageError: the log could not be read.
    """
    table = served_in(log.read_decisions().select(["decision_id", "ts", "deployment", "mode"]), deployment,
                      start_us, end_us)
    ids = sorted(table["decision_id"].to_pylist())
    digest = hashlib.sha256()
    for decision_id in ids:
        digest.update(decision_id.encode())
        digest.update(b"\n")
    return EventsRange(deployment, start_us, end_us, len(ids), digest.hexdigest())


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the rlops source when it runs from a git checkout, else ``None``; never raises.

    Only when the package's own ``__init__.py`` is tracked by that checkout: an installed rlops that merely sits
    inside someone else's repository (a virtualenv in a project) reports ``None``, not that project's commit.
    """
    folder = path if path is not None else Path(__file__).resolve().parents[1]
    try:
        tracked = subprocess.run(["git", "-C", str(folder), "ls-files", "--error-unmatch", "__init__.py"],
                                 capture_output=True, text=True, timeout=5, check=False)
        if tracked.returncode != 0:
            return None
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return commit if head.returncode == 0 and _COMMIT.fullmatch(commit) else None


@dataclass(frozen=True)
class Lineage:
    """Where a version came from.

    Attributes:
        events: the event-log range it was trained on (``None``: not from this event log, e.g. a simulator).
        reward_spec: the reward spec and version its rewards were computed with, e.g. ``revenue@3``.
        scenario: the scenario (simulator) it was trained or validated on.
        parent: the version it was fine-tuned from.
        rlops_version: the rlops that registered it (filled in by the registry).
        git_commit: the commit of that rlops' source if it ran from a git checkout (filled in by the registry).
    """

    events: EventsRange | None = None
    reward_spec: str | None = None
    scenario: str | None = None
    parent: ModelRef | None = None
    rlops_version: str | None = None
    git_commit: str | None = None

    def __post_init__(self) -> None:
        for field in ("reward_spec", "scenario"):
            value = getattr(self, field)
            if value is not None and (not value.strip() or len(value) > 200):
                raise ValidationError(field, "must be 1-200 characters")
        if self.parent is not None:
            check_name(self.parent.name, "parent")
            if self.parent.version is None:
                raise ValidationError("parent", "must name a version: NAME@VERSION")

    def captured(self) -> Lineage:
        """This lineage with the registering rlops' version and git commit filled in."""
        return replace(self, rlops_version=__version__, git_commit=git_commit())

    def to_dict(self) -> dict[str, Any]:
        return {"events": None if self.events is None else self.events.to_dict(), "reward_spec": self.reward_spec,
                "scenario": self.scenario, "parent": None if self.parent is None else str(self.parent),
                "rlops_version": self.rlops_version, "git_commit": self.git_commit}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lineage:
        events = data.get("events")
        parent = data.get("parent")
        return cls(EventsRange.from_dict(events) if events else None, data.get("reward_spec"), data.get("scenario"),
                   ModelRef.parse(parent, "parent") if parent else None, data.get("rlops_version"),
                   data.get("git_commit"))

    def flat(self) -> dict[str, Any]:
        """Every field as ``dotted.key -> value``, for tables and diffs."""
        out: dict[str, Any] = {k: v for k, v in self.to_dict().items() if k != "events"}
        if self.events is None:
            out["events"] = None
        else:
            out.update({f"events.{k}": v for k, v in self.events.to_dict().items()})
        return out
