"""The edge runtime: serve a policy exported to ONNX with numpy and onnxruntime only, and log its decisions.

``import rlops.edge`` loads neither torch nor Stable-Baselines3 (a test checks it in a fresh process); the
exporters that do are in :mod:`rlops.export`. See docs/edge.md.
"""

from rlops.edge.log import DecisionLog
from rlops.edge.manifest import EdgeManifest, manifest_path, read_manifest
from rlops.edge.policy import EdgeBatch, EdgeDecision, EdgePolicy
from rlops.edge.rules import Rule

__all__ = ["DecisionLog", "EdgeBatch", "EdgeDecision", "EdgeManifest", "EdgePolicy", "Rule", "manifest_path",
           "read_manifest"]
