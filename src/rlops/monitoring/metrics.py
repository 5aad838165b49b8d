"""Prometheus metrics of the decision service, on a registry of their own (nothing global, nothing at import)."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from rlops.engine import Decision, ReportResult
from rlops.events.records import DecisionRecord

#: Request latency buckets, seconds: from 100 µs to 5 s.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """Counters and histograms the service updates, and their text exposition.

    Metrics (all prefixed ``rlops_``):
        decisions_total{deployment, policy_version, action, mode}: decisions made.
        decision_policy_seconds{deployment}: time the policy took per decision (the ``latency_us`` logged).
        outcomes_total{status}: outcomes reported, by accepted / duplicate / dead_letter / quarantined.
        rewards_out_of_bounds_total: outcomes whose reward lay outside the reward spec's bounds (clipped, or
            dead-lettered under ``bounds.mode: reject``).
        http_requests_total{route, method, status}: requests answered.
        http_request_seconds{route, method}: wall time per request, from the first byte read to the last written.

    Plus, with ``extra``, the monitor's gauges (reward per version, drift, guardrail, lift...: see
    :mod:`rlops.monitoring.watch`), computed by the leader process and read from the home folder by every worker.

    With several server processes (``rlops serve --workers N``), the parent sets ``PROMETHEUS_MULTIPROC_DIR``
    before the workers start; prometheus_client then keeps every process's values in files there, and
    :meth:`exposition` sums them, so any worker answers ``/metrics`` for the whole server.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, extra: Collector | None = None) -> None:
        self.extra = extra  # e.g. the monitor's signals (rlops.monitoring.watch.SignalCollector)
        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter("rlops_decisions", "Decisions made.", ["deployment", "policy_version", "action",
                                                                       "mode"], registry=self.registry)
        self.policy_seconds = Histogram("rlops_decision_policy_seconds", "Policy time per decision.",
                                        ["deployment"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.outcomes = Counter("rlops_outcomes", "Outcomes reported, by status.", ["status"],
                                registry=self.registry)
        self.out_of_bounds = Counter("rlops_rewards_out_of_bounds", "Outcomes whose reward lay outside the reward "
                                     "spec's bounds.", registry=self.registry)
        self.requests = Counter("rlops_http_requests", "HTTP requests answered.", ["route", "method", "status"],
                                registry=self.registry)
        self.request_seconds = Histogram("rlops_http_request_seconds", "Wall time per HTTP request.",
                                         ["route", "method"], buckets=LATENCY_BUCKETS, registry=self.registry)
        if extra is not None:
            self.registry.register(extra)

    def record_decisions(self, decisions: list[Decision]) -> None:
        for d in decisions:
            action = d.action if isinstance(d.action, str) else "<vector>"  # box actions: no label explosion
            self.decisions.labels(d.deployment, d.policy_version, action, "served").inc()
            self.policy_seconds.labels(d.deployment).observe(d.latency_us / 1e6)

    def record_shadow(self, records: list[DecisionRecord]) -> None:
        """Count shadow decisions (logged, never answered) under ``mode="shadow"``."""
        for r in records:
            action = r.action if isinstance(r.action, str) else "<vector>"
            self.decisions.labels(r.deployment, r.policy_version, action, "shadow").inc()

    def record_outcomes(self, results: list[ReportResult]) -> None:
        for r in results:
            self.outcomes.labels(r.status.value).inc()
            if r.out_of_bounds:
                self.out_of_bounds.inc()

    def record_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.request_seconds.labels(route, method).observe(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric (of every worker process, when there are several)."""
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if shared:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=shared)  # type: ignore[no-untyped-call]
            if self.extra is not None:
                registry.register(self.extra)
            return generate_latest(registry)
        return generate_latest(self.registry)
