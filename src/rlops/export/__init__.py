"""Export policies to ONNX for the edge runtime (:mod:`rlops.edge`); this part may import torch, the runtime never."""

from rlops.export.deployment import export_deployment
from rlops.export.exporter import SUPPORTED, ExportResult, export_policy, policy_head

__all__ = ["SUPPORTED", "ExportResult", "export_deployment", "export_policy", "policy_head"]
