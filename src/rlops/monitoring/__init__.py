"""Monitoring: metrics (Prometheus) and drift detection (`rlops.monitoring.drift`); alerts come next."""

from rlops.monitoring.metrics import ServiceMetrics

__all__ = ["ServiceMetrics"]
