"""The one probe and metrics app every process serves (``akeneo_connector.health``), over
real HTTP on loopback."""

from __future__ import annotations

from aiohttp import ClientSession
from prometheus_client import CollectorRegistry, Counter

from akeneo_connector.health import health_app, serve, sync_check


async def _get(port: int, path: str) -> tuple[int, str]:
    async with ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as answer:
        return answer.status, await answer.text()


def _port(runner: object) -> int:
    site = next(iter(runner.sites))  # type: ignore[attr-defined]
    return int(site._server.sockets[0].getsockname()[1])


async def test_probes_answer_503_with_the_reason_and_metrics_are_refreshed() -> None:
    registry = CollectorRegistry()
    scraped = Counter("scrapes", "scrapes seen", registry=registry)
    state: dict[str, str | None] = {"ready": "NATS not connected"}

    async def ready() -> str | None:
        return state["ready"]

    app = health_app(ready=ready, registry=registry, before_scrape=scraped.inc)
    runner = await serve(app, "127.0.0.1", 0)
    try:
        port = _port(runner)
        assert await _get(port, "/healthz") == (200, "ok\n")
        assert await _get(port, "/readyz") == (503, "NATS not connected\n")
        state["ready"] = None
        assert await _get(port, "/readyz") == (200, "ready\n")
        status, body = await _get(port, "/metrics")
        assert status == 200 and "scrapes_total 1.0" in body
    finally:
        await runner.cleanup()


async def test_without_a_readiness_check_there_is_no_readyz() -> None:
    runner = await serve(health_app(live=sync_check(lambda: "starting")), "127.0.0.1", 0)
    try:
        port = _port(runner)
        assert await _get(port, "/healthz") == (503, "starting\n")
        assert (await _get(port, "/readyz"))[0] == 404
    finally:
        await runner.cleanup()
