"""Monitoring: metrics (Prometheus), and later drift detectors and alerts."""

from rlops.monitoring.metrics import ServiceMetrics

__all__ = ["ServiceMetrics"]
