"""Prometheus metrics of one worker (own registry, so several workers can share a process)."""

from __future__ import annotations

from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from akeneo_connector.normalized import ResourceKind

SKIP_REASONS = ("outdated", "duplicate", "own_author", "not_found")


class WorkerMetrics:
    def __init__(self, *, keep_latencies: int = 0) -> None:
        self.registry = CollectorRegistry()
        self.applied = Counter(
            "akeneo_worker_applied_total", "Changes applied to the sink", ["kind", "operation"],
            registry=self.registry,
        )  # fmt: skip
        self.skipped = Counter(
            "akeneo_worker_skipped_total", "Events acked without applying", ["reason"],
            registry=self.registry,
        )  # fmt: skip
        self.ties = Counter(
            "akeneo_worker_ties_total", "Equal versions with different content", ["resolution"],
            registry=self.registry,
        )  # fmt: skip
        self.retried = Counter(
            "akeneo_worker_retried_total", "Deliveries handed back for a later retry",
            registry=self.registry,
        )  # fmt: skip
        self.dead_lettered = Counter(
            "akeneo_worker_dead_lettered_total", "Messages moved to the dead-letter subject",
            ["cause"], registry=self.registry,
        )  # fmt: skip
        self.sink_latency = Histogram(
            "akeneo_worker_sink_seconds", "Duration of one sink batch",
            registry=self.registry,
        )  # fmt: skip
        self.stream_to_sink = Histogram(
            "akeneo_worker_stream_to_sink_seconds", "From stream publish to sink confirmation",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )  # fmt: skip
        self.lag = Gauge(
            "akeneo_worker_consumer_lag", "Messages pending for the worker's consumer",
            registry=self.registry,
        )  # fmt: skip
        for kind in ResourceKind:  # every series exists from the start, at 0
            for operation in ("upsert", "delete"):
                self.applied.labels(kind.value, operation)
        self.counts: dict[str, int] = {
            "applied": 0, "outdated": 0, "duplicate": 0, "dead_lettered": 0,
        }  # fmt: skip
        self._applied: dict[tuple[str, str], Any] = {}
        self._skipped: dict[str, Any] = {}
        self.latencies: deque[float] | None = (
            deque(maxlen=keep_latencies) if keep_latencies else None
        )

    def count_applied(self, kind: str, operation: str, latency: float) -> None:
        child = self._applied.get((kind, operation))
        if child is None:  # labels() takes a lock and builds a key: once per label set
            child = self._applied[(kind, operation)] = self.applied.labels(kind, operation)
        child.inc()
        self.stream_to_sink.observe(latency)
        self.counts["applied"] += 1
        if self.latencies is not None:
            self.latencies.append(latency)

    def count_skipped(self, reason: str) -> None:
        child = self._skipped.get(reason)
        if child is None:
            child = self._skipped[reason] = self.skipped.labels(reason)
        child.inc()
        if reason in self.counts:
            self.counts[reason] += 1

    def count_dead_letter(self, cause: str) -> None:
        self.dead_lettered.labels(cause).inc()
        self.counts["dead_lettered"] += 1
