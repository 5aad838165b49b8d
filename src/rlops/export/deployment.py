"""Export a deployment's live policy: the newest revision's saved policy folder, attributed to ``NAME@rN``."""

from __future__ import annotations

import os

from rlops.engine.store import DeploymentStore
from rlops.export.exporter import ExportResult, export_policy
from rlops.home import Home
from rlops.policies import content_hash, load_policy


def export_deployment(home: Home, name: str, out: str | os.PathLike[str]) -> ExportResult:
    """Export the policy of deployment ``name``'s live revision to ``out`` (``.onnx``) and its manifest.

    The policy is the revision's saved folder (verified on load). State an online learner has learned in a
    running server is not in that folder until it is saved (``Engine.save_learned``) and applied as a revision.

    Raises:
        NotFoundError: no such deployment in ``home``.
        ValidationError: the policy cannot be exported (the message lists what can), or ``out`` is not ``.onnx``.
    """
    store = DeploymentStore(home.metadata_url)
    try:
        revision = store.latest(name)
    finally:
        store.close()
    folder = revision.spec["policy_folder"]
    policy = load_policy(folder)
    return export_policy(policy, out, policy_version=revision.policy_version, deployment=name,
                         content_hash=content_hash(folder))
