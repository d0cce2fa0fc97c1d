"""A 200 means durable: receiver SIGKILLed, nats-server restarted, nothing answered 200 lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from nats import connect as nats_connect

from akeneo_pim.signatures import events_api_headers
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import ServerProcess, free_port
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_testing.payloads import legacy_batch
from tests.integration.receiver.conftest import EVENTS_API_SECRET, poll, write_files

CONNECTION = "tenant-durable/acme"
STREAM = "AKENEO_tenant-durable__acme"


@contextlib.asynccontextmanager
async def ready_session(
    ca: CertificateAuthority, admin_port: int, *, total: float
) -> AsyncIterator[aiohttp.ClientSession]:
    """A TLS client session (``total`` s per request) to a receiver subprocess, opened once
    its ``/readyz`` answers 200."""
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ca.client_context()),
        timeout=aiohttp.ClientTimeout(total=total),
    ) as http:

        async def ready() -> bool:
            async with http.get(f"http://127.0.0.1:{admin_port}/readyz") as resp:
                return resp.status == 200

        await poll(ready, timeout=30, what="receiver subprocess ready")
        yield http


def receiver_process(
    tmp_path: Path,
    nats_url: str,
    port: int,
    admin_port: int,
    extra_env: dict[str, str] | None = None,
) -> ServerProcess:
    files = tmp_path / "files"
    argv = [
        str(Path(sys.executable).parent / "akeneo-connector"),
        "receiver",
        "--port", str(port),
        "--admin-port", str(admin_port),
        "--host", "127.0.0.1",
        "--ensure-stream",
    ]  # fmt: skip
    env = {
        **os.environ,
        "AKENEO_CONNECTION": CONNECTION,
        "AKENEO_NATS_URL": nats_url,
        "AKENEO_TLS_CERT_FILE": str(files / "tls.crt"),
        "AKENEO_TLS_KEY_FILE": str(files / "tls.key"),
        "AKENEO_EVENTS_API_SECRET_FILE": str(files / "eventsApiSecret"),
        **(extra_env or {}),
    }
    proc = ServerProcess("receiver", argv, tmp_path)
    proc.start(env=env)
    return proc


async def test_no_event_lost_after_200(
    own_nats: NatsServer, tmp_path: Path, ca: CertificateAuthority
) -> None:
    write_files(tmp_path / "files", ca)
    port = free_port()
    admin_port = free_port()
    proc = receiver_process(tmp_path, own_nats.url, port, admin_port)
    url = f"https://localhost:{port}"
    acked: list[str] = []
    answers: dict[int, int] = {}
    try:
        async with ready_session(ca, admin_port, total=5) as http:
            bad = legacy_batch(1)
            async with http.post(
                url + "/events", data=bad, headers=events_api_headers("wrong", bad)
            ) as resp:
                assert resp.status == 401

            async def sender(worker: int) -> None:
                for n in range(1000):
                    body = legacy_batch(10, prefix=f"w{worker}-{n}")
                    try:
                        async with http.post(
                            url + "/events",
                            data=body,
                            headers=events_api_headers(EVENTS_API_SECRET, body),
                        ) as resp:
                            answers[resp.status] = answers.get(resp.status, 0) + 1
                            if resp.status == 200:
                                acked.extend(e["event_id"] for e in json.loads(body)["events"])
                    except (TimeoutError, aiohttp.ClientError, OSError):
                        return  # the receiver is gone

            senders = [asyncio.create_task(sender(w)) for w in range(5)]  # the PIM's concurrency

            async def enough() -> bool:
                return len(acked) >= 300

            await poll(enough, timeout=60, what="300 events acknowledged")
            proc.kill()  # SIGKILL with requests in flight
            await asyncio.wait_for(asyncio.gather(*senders), 15)
    finally:
        proc.kill()
    log = proc.log_path.read_text()
    assert EVENTS_API_SECRET not in log
    assert '"reason": "bad_signature"' in log and log.count("request rejected") == 1

    own_nats.restart()
    nc = await nats_connect(own_nats.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM)
        stored: set[str] = set()
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(STREAM, seq)
            stored.add((msg.headers or {})["Nats-Msg-Id"])
    finally:
        await nc.close()
    assert len(acked) >= 300 and answers.get(200, 0) * 10 == len(acked)
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} events answered 200 but not stored"
