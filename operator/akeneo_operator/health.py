"""The operator's own /healthz and /metrics endpoints (plain HTTP, for probes and Prometheus)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "akeneo_operator_reconciles",
            "Full reconciles of AkeneoConnections, by result",
            ["result"],
            registry=self.registry,
        )
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
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(
            text="ok" if healthy() else "starting", status=200 if healthy() else 503
        )

    async def metrics_view(_: web.Request) -> web.Response:
        refresh()
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner
