"""The simulated Event Platform over real TLS: a PIM, its platform, and HTTPS destinations."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from akeneo_pim.simulator import EventPlatform, PimSimulator, PlatformSettings
from akeneo_testing.ground.tls import CertificateAuthority

PRIMARY, SECONDARY = "ep-primary-secret-0001", "ep-secondary-secret-0002"
NOTIFICATION_SECRET = "notification-secret-0123456789"


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    return CertificateAuthority("event platform test CA")


@pytest.fixture(scope="session")
def server_tls(
    ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> ssl.SSLContext:
    pair = ca.issue("127.0.0.1")
    directory = tmp_path_factory.mktemp("tls")
    pair.write(directory / "tls.crt", directory / "tls.key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    return context


@dataclass
class Received:
    at: float  # monotonic
    raw: bytes
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


Answer = Callable[[Received], int]


@dataclass
class Destination:
    """An HTTPS endpoint recording every request; ``answer`` picks each status (2xx default)."""

    answer: Answer = lambda _: 200
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        got = Received(time.monotonic(), await request.read(), dict(request.headers))
        self.requests.append(got)
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.answer(got)
        if 300 <= status < 400:
            return web.Response(status=status, headers={"Location": "https://127.0.0.1:9/moved"})
        return web.json_response({"status": status}, status=status)

    def events(self) -> list[dict[str, Any]]:
        return [r.json for r in self.requests]


Serve = Callable[..., Any]


@pytest.fixture
async def serve(server_tls: ssl.SSLContext) -> AsyncIterator[Callable[..., Any]]:
    """``await serve(destination)``: the destination on its own HTTPS port."""
    runners: list[web.AppRunner] = []

    async def start(destination: Destination, path: str = "/event-platform") -> Destination:
        app = web.Application()
        app.router.add_post(path, destination.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
        await site.start()
        runners.append(runner)
        destination.url = f"https://127.0.0.1:{runner.addresses[0][1]}{path}"
        return destination

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def pim(server_tls: ssl.SSLContext) -> AsyncIterator[PimSimulator]:
    async with PimSimulator(products=30, product_models=5, ssl_context=server_tls) as sim:
        yield sim


MakePlatform = Callable[..., Any]


@pytest.fixture
async def make_platform(
    pim: PimSimulator, ca: CertificateAuthority, server_tls: ssl.SSLContext
) -> AsyncIterator[Callable[..., Any]]:
    """``await make_platform(**settings)``: the PIM's Event Platform, management API on TLS."""
    started: list[EventPlatform] = []

    async def make(**knobs: Any) -> EventPlatform:
        knobs.setdefault("activation_delay", 0.0)
        platform = pim.event_platform(
            PlatformSettings(**knobs), verify=ca.client_context(), ssl_context=server_tls
        )
        await platform.start()
        started.append(platform)
        return platform

    yield make
    for platform in started:
        await platform.stop()


def hmac_openssl(secret: str, raw: bytes, tmp: Path) -> str:
    """The hex HMAC-SHA256 of ``raw``, computed by openssl (independent of the project)."""
    import subprocess

    body = tmp / "body.bin"
    body.write_bytes(raw)
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", secret, str(body)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.rsplit("= ", 1)[1].strip()


async def eventually(check: Callable[[], bool], *, timeout: float = 15, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or 'a condition'}")
        await asyncio.sleep(0.02)
