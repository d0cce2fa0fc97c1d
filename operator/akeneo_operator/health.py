"""The operator's own /healthz and /metrics endpoints (plain HTTP, for probes and Prometheus)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from akeneo_connector.health import health_app, serve, sync_check

CONDITION_VALUES = {"True": 1.0, "False": 0.0}  # Unknown: -1


@dataclass(frozen=True)
class ConnectionSample:
    """What the operator knows of one connection, as the alert rules need it."""

    namespace: str
    connection: str
    conditions: dict[str, str] = field(default_factory=dict)  # type -> True/False/Unknown
    last_reconcile: float | None = None  # finish time of the last reconcile Job (epoch)
    last_reconcile_ok: bool | None = None
    reconcile_period: float | None = None  # seconds between two runs of its schedule
    certificate_not_after: float | None = None  # epoch


class ConnectionCollector(Collector):
    """Per-connection series built at scrape time from the reconciler's state, so a deleted
    connection's series vanish with it instead of lingering as stale gauges."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[ConnectionSample]] = lambda: ()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["namespace", "connection"]
        cond = GaugeMetricFamily(
            "akeneo_operator_connection_condition",
            "Status condition of an AkeneoConnection: 1 True, 0 False, -1 Unknown",
            labels=[*labels, "type"],
        )
        last = GaugeMetricFamily(
            "akeneo_operator_reconcile_last_run_timestamp_seconds",
            "When the last reconcile Job of a connection finished",
            labels=labels,
        )
        ok = GaugeMetricFamily(
            "akeneo_operator_reconcile_last_run_success",
            "1 when the last reconcile Job of a connection succeeded, else 0",
            labels=labels,
        )
        period = GaugeMetricFamily(
            "akeneo_operator_reconcile_period_seconds",
            "Seconds between two runs of a connection's reconcile schedule (when scheduled)",
            labels=labels,
        )
        cert = GaugeMetricFamily(
            "akeneo_operator_certificate_expiry_timestamp_seconds",
            "notAfter of the receiver's serving certificate",
            labels=labels,
        )
        for s in self.source():
            key = [s.namespace, s.connection]
            for kind, status in s.conditions.items():
                cond.add_metric([*key, kind], CONDITION_VALUES.get(status, -1.0))
            if s.last_reconcile is not None:
                last.add_metric(key, s.last_reconcile)
            if s.last_reconcile_ok is not None:
                ok.add_metric(key, 1.0 if s.last_reconcile_ok else 0.0)
            if s.reconcile_period is not None:
                period.add_metric(key, s.reconcile_period)
            if s.certificate_not_after is not None:
                cert.add_metric(key, s.certificate_not_after)
        yield from (cond, last, ok, period, cert)


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "akeneo_operator_reconciles",
            "Full reconciles of AkeneoConnections, by result",
            ["result"],
            registry=self.registry,
        )
        for result in ("ok", "error"):  # both series exist from the start, at 0
            self.reconciles.labels(result)
        self.per_connection = ConnectionCollector()
        self.registry.register(self.per_connection)
        self.connections = Gauge(
            "akeneo_operator_connections", "AkeneoConnections known", registry=self.registry
        )
        self.api_calls = Gauge(
            "akeneo_operator_api_calls",
            "Kubernetes API calls made for children",
            registry=self.registry,
        )


async def start_server(
    port: int, metrics: OperatorMetrics, healthy: Callable[[], bool], refresh: Callable[[], None]
) -> web.AppRunner:
    """``/healthz`` (``503 starting`` until kopf is up) and ``/metrics`` on ``port``."""
    live = sync_check(lambda: None if healthy() else "starting")
    app = health_app(live=live, registry=metrics.registry, before_scrape=refresh)
    return await serve(app, "0.0.0.0", port)
