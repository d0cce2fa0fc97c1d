"""SIGTERM ends the receiver and the worker within 2 s, whatever the NATS server is doing.

Real processes, started as the CLI and the operator's pods start them
(``python -m akeneo_cli receiver|worker``), a real nats-server that is up, killed,
frozen (SIGSTOP: a server that vanished without closing its connections, the hardest case)
or never started, and a real SIGTERM. The time is taken from the signal to the exit (the
parent reaping the process) and each case is measured ``REPEATS`` times; every measurement
must be under the 2 s requirement (nominally they are a few tens of ms to about half a
second, see the printed figures). Nothing acknowledged may be lost: every event the receiver
answered 200 is in the stream, and every message the worker acked reached the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import nats as nats_client
import pytest
from aiohttp import web

from akeneo_connector.jetstream import ensure_all
from akeneo_connector.names import ConnectionNames
from akeneo_connector.normalized import NormalizedEvent
from akeneo_connector.spec import StreamSpec
from akeneo_connector.stream_reader import read_messages
from akeneo_pim.signatures import event_platform_headers, events_api_headers
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import ServerProcess, free_port
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_testing.payloads import cloud_event, legacy_body, legacy_event
from tests.integration.worker.support import event, publish

STOP_LIMIT = 2.0  # seconds from SIGTERM to exit: the requirement itself
REPEATS = 3
LEGACY_SECRET = "stop-legacy-secret"
PLATFORM_SECRET = "stop-platform-secret"
MEASURED: dict[str, list[float]] = {}


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    lines = [f"  {case:<34} {' '.join(f'{t:.3f}' for t in times)}  (max {max(times):.3f})"
             for case, times in MEASURED.items()]  # fmt: skip
    print("\nSIGTERM -> exit, seconds:\n" + "\n".join(lines))


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("stop test CA")


def start_nats(folder: Path) -> NatsServer:
    folder.mkdir(parents=True, exist_ok=True)
    return NatsServer(folder).start()


async def fresh_stream(url: str, name: str) -> ConnectionNames:
    names = ConnectionNames("tenant-stop", name)
    nc = await nats_client.connect(url)
    try:
        await ensure_all(nc.jetstream(), names, StreamSpec())
    finally:
        await nc.close()
    return names


def _handles_sigterm(pid: int) -> bool:
    """The process installed its SIGTERM handler (``SigCgt`` in /proc): it is in its loop."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@dataclass
class Component:
    """``python -m akeneo_cli <name>`` with its env, stopped with a timed SIGTERM."""

    name: str
    env: dict[str, str]
    folder: Path
    process: ServerProcess | None = field(default=None, init=False)

    async def start(self) -> Component:
        argv = [sys.executable, "-m", "akeneo_cli", self.name]
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = ServerProcess(f"{self.name}-{uuid.uuid4().hex[:6]}", argv, self.folder)
        self.process.start(env={**os.environ, **self.env})
        await until(lambda: _handles_sigterm(self.pid), f"{self.name} running", self)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        assert self.process is not None
        return self.process.log_path.read_text(errors="replace")

    async def stop_timed(self, case: str) -> float:
        assert self.process is not None and self.process.alive, self.log()
        started = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        while self.process.alive and time.monotonic() - started < 30:  # noqa: ASYNC110 (1 ms steps)
            await asyncio.sleep(0.001)
        elapsed = time.monotonic() - started
        MEASURED.setdefault(case, []).append(elapsed)
        assert not self.process.alive, f"{case}: still running 30 s after SIGTERM"
        assert self.process.returncode == 0, self.log()[-3000:]
        assert "Traceback" not in self.log(), self.log()[-3000:]
        return elapsed

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


async def until(check: Callable[[], Any], what: str, component: Component | None = None) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(Exception):
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
        if component is not None and component.process is not None:
            assert component.process.alive, component.log()[-3000:]
        assert time.monotonic() < deadline, f"{what}: not within 60 s"
        await asyncio.sleep(0.05)


# --- the receiver ------------------------------------------------------------------------


@dataclass
class ReceiverUnderTest:
    component: Component
    url: str
    ssl: ssl.SSLContext
    admin_port: int

    async def get(self, path: str) -> int:
        """A probe on the admin port (plain HTTP)."""
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r,
        ):
            return r.status


def receiver_files(folder: Path, ca: CertificateAuthority) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ca.issue("127.0.0.1").write(folder / "tls.crt", folder / "tls.key")
    (folder / "legacy").write_text(LEGACY_SECRET)
    (folder / "platform").write_text(PLATFORM_SECRET + "\n")


async def start_receiver(
    folder: Path, ca: CertificateAuthority, nats_url: str, names: ConnectionNames
) -> ReceiverUnderTest:
    receiver_files(folder, ca)
    port, admin_port = free_port(), free_port()
    env = {
        "AKENEO_CONNECTION": names.ref,
        "AKENEO_NATS_URL": nats_url,
        "AKENEO_HOST": "127.0.0.1",
        "AKENEO_PORT": str(port),
        "AKENEO_ADMIN_PORT": str(admin_port),
        "AKENEO_TLS_CERT_FILE": str(folder / "tls.crt"),
        "AKENEO_TLS_KEY_FILE": str(folder / "tls.key"),
        "AKENEO_EVENTS_API_SECRET_FILE": str(folder / "legacy"),
        "AKENEO_EVENT_PLATFORM_SECRETS_FILE": str(folder / "platform"),
    }
    component = await Component("receiver", env, folder).start()
    r = ReceiverUnderTest(component, f"https://127.0.0.1:{port}", ca.client_context(), admin_port)
    await until(lambda: r.get("/healthz"), "receiver serving", component)
    return r


def accepted_at_least(answers: Answers, count: int) -> bool:
    return len(answers.accepted()) >= count


@dataclass
class Answers:
    """What each POSTed event got: 200 (stored), another status, or no answer (-1)."""

    by_event: dict[str, int] = field(default_factory=dict)

    def accepted(self) -> set[str]:
        return {e for e, status in self.by_event.items() if status == 200}


async def post_until_gone(
    r: ReceiverUnderTest, answers: Answers, *, platform: bool, clients: int = 4
) -> None:
    """Clients POSTing one event at a time until the receiver no longer takes connections."""

    async def client(http: aiohttp.ClientSession) -> None:
        while True:
            if platform:
                ce = cloud_event(str(uuid.uuid4()))
                event_id, body = ce["id"], json.dumps(ce).encode()
                headers = event_platform_headers(PLATFORM_SECRET, body)
            else:
                ev = legacy_event(f"p-{uuid.uuid4().hex[:8]}")
                event_id, body = ev["event_id"], legacy_body([ev])
                headers = events_api_headers(LEGACY_SECRET, body)
            try:
                async with http.post(r.url + "/events", data=body, headers=headers) as resp:
                    await resp.read()
                    answers.by_event[event_id] = resp.status
            except aiohttp.ClientConnectorError:
                answers.by_event[event_id] = -1
                return  # nothing listens any more
            except (aiohttp.ClientError, TimeoutError):
                answers.by_event[event_id] = -1  # cut by the stop: not answered 200
                await asyncio.sleep(0.01)

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, connector=_connector(r)) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))


def _connector(r: ReceiverUnderTest) -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(ssl=r.ssl)


async def stored_event_ids(url: str, names: ConnectionNames) -> set[str]:
    nc = await nats_client.connect(url)
    try:
        js = nc.jetstream()
        return {
            NormalizedEvent.from_message(m.data).event_id
            async for m in read_messages(js, names.stream, f"{names.events_subject}.>")
        }
    finally:
        await nc.close()


async def test_receiver_with_nats_up_stops_in_time_and_every_200_is_stored(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    nats = start_nats(tmp_path / "nats")
    try:
        for rep in range(REPEATS):
            names = await fresh_stream(nats.url, f"up{rep}")
            r = await start_receiver(tmp_path / f"r{rep}", ca, nats.url, names)
            await until(partial(ready_receiver, r), "receiver ready", r.component)
            answers = Answers()
            posting = asyncio.create_task(post_until_gone(r, answers, platform=rep % 2 == 1))
            await until(partial(accepted_at_least, answers, 50), "events accepted")
            elapsed = await r.component.stop_timed("receiver, NATS up, under load")
            await asyncio.wait_for(posting, 30)
            assert elapsed < STOP_LIMIT
            stored = await stored_event_ids(nats.url, names)
            assert answers.accepted() <= stored, "an event answered 200 is not in the stream"
    finally:
        nats.stop()


async def ready_receiver(r: ReceiverUnderTest) -> bool:
    return await r.get("/readyz") == 200


@pytest.mark.parametrize("fault", ["killed", "frozen", "never started"])
async def test_receiver_stops_in_time_when_nats_is_away(
    tmp_path: Path, ca: CertificateAuthority, fault: str
) -> None:
    for rep in range(REPEATS):
        names = ConnectionNames("tenant-stop", f"away{rep}")
        nats = start_nats(tmp_path / f"nats{rep}") if fault != "never started" else None
        url = nats.url if nats is not None else f"nats://127.0.0.1:{free_port()}"
        try:
            if nats is not None:
                names = await fresh_stream(url, names.name)
            r = await start_receiver(tmp_path / f"r{rep}", ca, url, names)
            if nats is not None:
                await until(partial(ready_receiver, r), "ready", r.component)
                if fault == "killed":
                    nats.kill()
                else:
                    os.kill(nats.process.pid, signal.SIGSTOP)
            # Event Platform deliveries wait up to 4 s for acks: some are waiting at the signal
            answers = Answers()
            posting = asyncio.create_task(post_until_gone(r, answers, platform=True))
            await asyncio.sleep(0.5)
            elapsed = await r.component.stop_timed(f"receiver, NATS {fault}")
            await asyncio.wait_for(posting, 30)
            assert elapsed < STOP_LIMIT
            assert not answers.accepted()  # nothing could be stored: nothing answered 200
            assert answers.by_event  # requests were in flight
        finally:
            if nats is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(nats.process.pid, signal.SIGCONT)
                nats.process.kill()


# --- the worker --------------------------------------------------------------------------


@dataclass
class SlowMerchant:
    """A webhook endpoint answering 204 after ``delay``: the worker has POSTs in flight."""

    delay: float = 0.4
    applied: set[str] = field(default_factory=set)
    url: str = ""
    _runner: web.AppRunner | None = None

    def has_at_least(self, count: int) -> bool:
        return len(self.applied) >= count

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(self.delay)
        self.applied.update(c["event_id"] for c in json.loads(body)["changes"])
        return web.Response(status=204)

    async def __aenter__(self) -> SlowMerchant:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def start_worker(
    folder: Path, nats_url: str, names: ConnectionNames, merchant: SlowMerchant
) -> tuple[Component, int]:
    port = free_port()
    env = {
        "AKENEO_CONNECTION": names.ref,
        "AKENEO_NATS_URL": nats_url,
        "AKENEO_PORT": str(port),
        "AKENEO_SINK": "webhook",
        "AKENEO_WEBHOOK_URL": merchant.url,
        "AKENEO_WEBHOOK_ALLOW_PRIVATE": "true",
        "AKENEO_REPLICA": "stop-test",
    }
    return await Component("worker", env, folder).start(), port


async def worker_ready(port: int) -> bool:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as r,
    ):
        return r.status == 200


async def test_worker_busy_with_nats_up_stops_in_time_and_acks_only_what_the_sink_took(
    tmp_path: Path,
) -> None:
    nats = start_nats(tmp_path / "nats")
    nc = await nats_client.connect(nats.url)
    try:
        async with SlowMerchant() as merchant:
            for rep in range(REPEATS):
                names = await fresh_stream(nats.url, f"busy{rep}")
                js = nc.jetstream()
                sent = [event(names, f"p{n}", n) for n in range(1500)]
                for ev in sent:
                    await publish(js, names, ev)
                worker, port = await start_worker(tmp_path / f"w{rep}", nats.url, names, merchant)
                await until(partial(worker_ready, port), "worker ready", worker)
                target = len(merchant.applied) + 100
                await until(partial(merchant.has_at_least, target), "POSTs answered")
                elapsed = await worker.stop_timed("worker, NATS up, POSTs in flight")
                assert elapsed < STOP_LIMIT
                info = await js.consumer_info(names.stream, names.consumer)
                acked = {ev.event_id for ev in sent[: info.ack_floor.stream_seq]}
                assert info.ack_floor.stream_seq > 0
                assert acked <= merchant.applied, "a message was acked the sink never took"
                assert info.num_pending + info.num_ack_pending > 0  # it was stopped mid-way
    finally:
        await nc.close()
        nats.stop()


@pytest.mark.parametrize("fault", ["killed", "frozen", "never started"])
async def test_worker_stops_in_time_when_nats_is_away(tmp_path: Path, fault: str) -> None:
    async with SlowMerchant(delay=0) as merchant:
        for rep in range(REPEATS):
            names = ConnectionNames("tenant-stop", f"away{rep}")
            nats = start_nats(tmp_path / f"nats{rep}") if fault != "never started" else None
            url = nats.url if nats is not None else f"nats://127.0.0.1:{free_port()}"
            try:
                if nats is not None:
                    names = await fresh_stream(url, names.name)
                worker, port = await start_worker(tmp_path / f"w{rep}", url, names, merchant)
                if nats is not None:
                    await until(partial(worker_ready, port), "worker ready", worker)
                    if fault == "killed":
                        nats.kill()
                    else:
                        os.kill(nats.process.pid, signal.SIGSTOP)
                    await asyncio.sleep(1.0)  # fetches fail or hang meanwhile
                else:
                    await asyncio.sleep(1.0)  # connecting, and connecting again
                elapsed = await worker.stop_timed(f"worker, NATS {fault}")
                assert elapsed < STOP_LIMIT
            finally:
                if nats is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(nats.process.pid, signal.SIGCONT)
                    nats.process.kill()
