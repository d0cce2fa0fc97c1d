"""The one probe and metrics app of every process: ``/healthz``, ``/readyz``, ``/metrics``.

Plain HTTP on its own port: kubelet probes and Prometheus reach the pod directly, and the
receiver's public TLS port never serves them (volumes and backlog are nobody else's
business). Each check answers ``None`` when all is well, else the short reason, which
becomes the ``503`` body; ``/readyz`` is only served when the process has a readiness check
(the operator has none: kopf's peering decides which replica acts).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

Check = Callable[[], Awaitable[str | None]]


def sync_check(check: Callable[[], str | None]) -> Check:
    """A check that needs no I/O, as the app wants it."""

    async def run() -> str | None:
        return check()

    return run


def health_app(
    *,
    live: Check | None = None,
    ready: Check | None = None,
    registry: CollectorRegistry = REGISTRY,
    before_scrape: Callable[[], None] | None = None,
) -> web.Application:
    """``/healthz`` (``live``: alive unless it says otherwise), ``/readyz`` (``ready``) and
    ``/metrics`` (``registry``, refreshed by ``before_scrape`` first)."""

    def probe(check: Check | None, ok: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def view(_: web.Request) -> web.Response:
            reason = await check() if check is not None else None
            if reason is None:
                return web.Response(text=f"{ok}\n")
            return web.Response(status=503, text=f"{reason}\n")

        return view

    async def metrics(_: web.Request) -> web.Response:
        if before_scrape is not None:
            before_scrape()
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", probe(live, "ok"))
    if ready is not None:
        app.router.add_get("/readyz", probe(ready, "ready"))
    app.router.add_get("/metrics", metrics)
    return app


async def serve(app: web.Application, host: str, port: int, **runner: Any) -> web.AppRunner:
    """Start ``app`` on ``host:port`` (``runner``: ``web.AppRunner`` options); the caller
    stops it with ``cleanup()``."""
    started = web.AppRunner(app, access_log=None, **runner)
    await started.setup()
    await web.TCPSite(started, host, port).start()
    return started
