"""The model registry: versions, lineage, stages, and signed artefacts (see ``docs/registry.md``).

:class:`Registry` is the entry point; the parts are one module each: names and references (:mod:`.refs`), stages
and their allowed moves (:mod:`.stages`), lineage (:mod:`.lineage`), signing keys (:mod:`.signing`), the files of a
version and their check (:mod:`.artifact`), the database tables (:mod:`.store`) and version diffs (:mod:`.diff`).
"""

from rlops.registry.diff import Change, DiffSection, VersionDetails, diff_versions
from rlops.registry.lineage import EventsRange, Lineage, events_fingerprint, git_commit
from rlops.registry.refs import ModelRef, check_name, parse_version
from rlops.registry.registry import Registry, default_actor
from rlops.registry.signing import ENV_VAR, KeySource, SigningKey, load_signing_key
from rlops.registry.stages import TRANSITIONS, Stage, allowed_targets
from rlops.registry.store import ModelVersion, Transition

__all__ = [
    "ENV_VAR",
    "TRANSITIONS",
    "Change",
    "DiffSection",
    "EventsRange",
    "KeySource",
    "Lineage",
    "ModelRef",
    "ModelVersion",
    "Registry",
    "SigningKey",
    "Stage",
    "Transition",
    "VersionDetails",
    "allowed_targets",
    "check_name",
    "default_actor",
    "diff_versions",
    "events_fingerprint",
    "git_commit",
    "load_signing_key",
    "parse_version",
]
