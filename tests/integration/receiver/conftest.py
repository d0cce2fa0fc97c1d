"""A receiver served in-process over real TLS, talking to a real nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nats.aio.client import Client as NATS

from akeneo_connector.jetstream import delete_all
from akeneo_connector.names import ConnectionNames
from akeneo_connector.normalized import NormalizedEvent
from akeneo_receiver.app import Receiver
from akeneo_receiver.config import ReceiverConfig
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import free_port
from akeneo_testing.ground.tls import CertificateAuthority

EVENTS_API_SECRET = "legacy-secret-d41d8cd9"
EVENT_PLATFORM_SECRETS = ("ep-primary-8f14e45f", "ep-secondary-c9f0f895")
NOTIFICATION_SECRET = "ep-notifications-45c48cce2e2d7fbd"  # 16 to 256 characters, per Akeneo
_counter = itertools.count()


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    return CertificateAuthority("receiver test CA")


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of the test's own, to stop and start (the session one stays up)."""
    data_dir = tmp_path / "own-nats"
    data_dir.mkdir()
    server = NatsServer(data_dir).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Running:
    receiver: Receiver
    config: ReceiverConfig
    url: str
    http: aiohttp.ClientSession
    nc: NATS
    files: Path

    @property
    def stream(self) -> str:
        return self.config.names.stream

    @property
    def admin_url(self) -> str:
        """Probes and metrics: plain HTTP on the admin port."""
        return f"http://127.0.0.1:{self.config.admin_port}"

    async def post(
        self, body: bytes | AsyncIterator[bytes], headers: dict[str, str], path: str = "/events"
    ) -> tuple[int, dict[str, Any]]:
        async with self.http.post(self.url + path, data=body, headers=headers) as resp:
            text = await resp.text()
            try:
                payload = json.loads(text)
            except ValueError:
                payload = {"text": text}
            return resp.status, payload

    async def messages(self) -> list[tuple[str, str, bytes]]:
        """(subject, Nats-Msg-Id, data) of every message in the stream."""
        js = self.nc.jetstream()
        info = await js.stream_info(self.stream)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if info.state.messages == 0:
                break
            msg = await js.get_msg(self.stream, seq)
            msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
            out.append((msg.subject or "", msg_id, msg.data or b""))
        return out

    async def stored(self) -> list[tuple[str, str, NormalizedEvent]]:
        """(subject, Nats-Msg-Id, event) of every event in the stream."""
        events = f"{self.config.prefix}.events."
        return [
            (subject, msg_id, NormalizedEvent.from_message(data))
            for subject, msg_id, data in await self.messages()
            if subject.startswith(events)
        ]

    async def notifications(self) -> list[tuple[str, str, bytes]]:
        """(subject, Nats-Msg-Id, raw body) of every notification in the stream."""
        return [m for m in await self.messages() if m[0] == self.config.notifications_subject]


async def poll(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 10, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{what} not reached in {timeout}s")


def write_files(files: Path, ca: CertificateAuthority) -> None:
    files.mkdir(parents=True, exist_ok=True)
    ca.issue().write(files / "tls.crt", files / "tls.key")
    (files / "eventsApiSecret").write_text(EVENTS_API_SECRET + "\n")
    (files / "eventPlatformSecrets").write_text("\n".join(EVENT_PLATFORM_SECRETS) + "\n")
    (files / "eventPlatformNotificationSecret").write_text(NOTIFICATION_SECRET + "\n")


def make_config(files: Path, nats_url: str, **overrides: Any) -> ReceiverConfig:
    config = ReceiverConfig(
        names=ConnectionNames("tenant-test", f"conn-{next(_counter)}-{int(time.time())}"),
        nats_url=nats_url,
        host="127.0.0.1",
        port=free_port(),
        admin_port=free_port(),
        tls_cert_file=files / "tls.crt",
        tls_key_file=files / "tls.key",
        events_api_secret_file=files / "eventsApiSecret",
        event_platform_secrets_file=files / "eventPlatformSecrets",
        notification_secret_file=files / "eventPlatformNotificationSecret",
        max_body_bytes=64 * 1024,
        ensure_stream=True,
        reload_interval=0.1,
    )
    return replace(config, **overrides)


StartReceiver = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_receiver(
    tmp_path: Path, ca: CertificateAuthority, nats: str
) -> AsyncIterator[StartReceiver]:
    """Start a receiver (defaults: session nats-server, fresh stream, TLS, both secrets)."""
    started: list[Running] = []

    async def start(
        nats_url: str = nats, wait_ready: bool = True, connect_nats: bool = True, **overrides: Any
    ) -> Running:
        """``connect_nats=False``: the test's own client stays off (the server may be down)."""
        files = tmp_path / f"r{len(started)}"
        write_files(files, ca)
        config = make_config(files, nats_url, **overrides)
        receiver = Receiver(config)
        await receiver.start()
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ca.client_context()))
        nc = NATS()
        if connect_nats:
            await nc.connect(nats_url, max_reconnect_attempts=-1, reconnect_time_wait=1)
        url = f"https://localhost:{config.port}"
        running = Running(receiver, config, url, http, nc, files)
        started.append(running)
        if wait_ready:

            async def ready() -> bool:
                async with http.get(running.admin_url + "/readyz") as resp:
                    return resp.status == 200

            await poll(ready, what="receiver ready")
        return running

    yield start
    for running in started:
        await running.http.close()
        await running.receiver.stop()
        if running.nc.is_connected:
            with contextlib.suppress(Exception):
                await delete_all(running.nc.jetstream(), running.config.names)
        if running.nc.is_connected or running.nc.is_reconnecting:
            await running.nc.close()
