"""JetStream outages, back-pressure, and files rotated under a running receiver."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from nats.js.api import AckPolicy, ConsumerConfig

from akeneo_connector.gaps import GapRecord, GapSource
from akeneo_pim.signatures import event_platform_headers, events_api_headers
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_testing.payloads import cloud_event, legacy_batch
from tests.integration.receiver.conftest import (
    EVENT_PLATFORM_SECRETS,
    EVENTS_API_SECRET,
    StartReceiver,
    poll,
)

PIM_DEADLINE = 0.5  # the legacy PIM gives up on an answer after this
# The answer itself may take longer on a loaded 2-core CI (processes stalled for seconds);
# the PIM's 0.5 s is measured strictly by bench/faults.py (nats-restart: legacy answers slower
# than 0.5 s during the outage). Here: the budget is set within it, and is what answers.
CI_ANSWER_MARGIN = 2.0


async def test_jetstream_down_is_503_on_the_ack_budget(
    own_nats: NatsServer, start_receiver: StartReceiver
) -> None:
    r = await start_receiver(nats_url=own_nats.url)
    assert r.config.ack_budget < PIM_DEADLINE
    body = legacy_batch(10)

    async def timed_post() -> tuple[int, str, float]:
        started = time.monotonic()
        status, answer = await r.post(body, events_api_headers(EVENTS_API_SECRET, body))
        return status, answer.get("error", ""), time.monotonic() - started

    # connection up but no ack ever comes (server frozen)
    os.kill(own_nats.process.pid, signal.SIGSTOP)
    try:
        status, reason, elapsed = await timed_post()
    finally:
        os.kill(own_nats.process.pid, signal.SIGCONT)
    assert (status, reason) == (503, "ack_timeout")
    assert elapsed < CI_ANSWER_MARGIN

    # server gone
    own_nats.kill()
    for _ in range(3):
        status, reason, elapsed = await timed_post()
        assert status == 503 and elapsed < CI_ANSWER_MARGIN, reason
    async with r.http.get(r.admin_url + "/readyz") as resp:
        assert resp.status == 503

    # back, with its store: answers 200 again without a receiver restart
    own_nats.start()

    async def accepted() -> bool:
        return (await timed_post())[0] == 200

    await poll(accepted, timeout=15, what="200 after nats-server came back")


async def test_event_platform_rides_out_a_stall_the_legacy_budget_cannot(
    own_nats: NatsServer, start_receiver: StartReceiver
) -> None:
    """A 1 s JetStream stall: the legacy delivery gets its 503 on the ack budget (set within
    the PIM's 0.5 s) instead of waiting, the Event Platform one (its sender waits 5 s) is
    stored and answered 200 once acks flow."""
    r = await start_receiver(nats_url=own_nats.url)
    legacy = legacy_batch(2)
    ep = json.dumps(cloud_event("6f1c3c5e-0000-4000-8000-00000000e901")).encode()

    async def post(body: bytes, headers: dict[str, str]) -> tuple[int, float]:
        started = time.monotonic()
        status, _ = await r.post(body, headers)
        return status, time.monotonic() - started

    os.kill(own_nats.process.pid, signal.SIGSTOP)
    try:
        tasks = [
            asyncio.create_task(post(legacy, events_api_headers(EVENTS_API_SECRET, legacy))),
            asyncio.create_task(post(ep, event_platform_headers(EVENT_PLATFORM_SECRETS[0], ep))),
        ]
        await asyncio.sleep(1.0)
    finally:
        os.kill(own_nats.process.pid, signal.SIGCONT)
    (legacy_status, legacy_s), (ep_status, ep_s) = await asyncio.gather(*tasks)
    # a legacy delivery that waited for the stall to end would have been stored and got 200
    assert legacy_status == 503 and legacy_s < ep_s
    assert ep_status == 200 and ep_s >= 1.0
    stored = await r.stored()
    # stored (the legacy batch may land too, before or after: both were sent at once)
    assert json.loads(ep)["id"] in [ev.event_id for _, _, ev in stored]


async def test_receiver_started_before_nats_serves_once_it_is_up(
    tmp_path: Path, start_receiver: StartReceiver
) -> None:
    data_dir = tmp_path / "late-nats"
    data_dir.mkdir()
    late = NatsServer(data_dir)  # not started yet
    r = await start_receiver(nats_url=late.url, wait_ready=False, connect_nats=False)
    body = legacy_batch(2)
    try:
        async with r.http.get(r.admin_url + "/readyz") as resp:
            assert resp.status == 503
        status, answer = await r.post(body, events_api_headers(EVENTS_API_SECRET, body))
        assert (status, answer["error"]) == (503, "jetstream_unavailable")
        late.start()

        async def accepted() -> bool:
            status, _ = await r.post(body, events_api_headers(EVENTS_API_SECRET, body))
            return status == 200

        await poll(accepted, timeout=20, what="200 once NATS is up")
    finally:
        await r.receiver.stop()
        late.stop()


async def test_event_platform_429_over_pending_limit(start_receiver: StartReceiver) -> None:
    r = await start_receiver(max_pending=3)
    primary = EVENT_PLATFORM_SECRETS[0]

    async def post_ep() -> int:
        body = json.dumps([cloud_event("u-1"), cloud_event("u-2")]).encode()
        status, _ = await r.post(body, event_platform_headers(primary, body))
        return status

    for _ in range(3):  # no worker consumer yet: nothing to protect, never 429
        assert await post_ep() == 200
    await r.nc.jetstream().add_consumer(
        r.stream,
        ConsumerConfig(
            durable_name=r.config.names.consumer,
            filter_subject=f"{r.config.prefix}.events.>",
            ack_policy=AckPolicy.EXPLICIT,
        ),
    )

    async def throttled() -> bool:
        return await post_ep() == 429

    await poll(throttled, what="429 once the consumer has 6+ pending")
    legacy = legacy_batch(2)
    status, _ = await r.post(legacy, events_api_headers(EVENTS_API_SECRET, legacy))
    assert status == 200  # the legacy PIM does not honour 429: it would only lose events


def _swap(path: Path, data: bytes) -> None:
    """Replace a file atomically, as a Secret volume update does."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


async def test_secret_files_are_reloaded(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    body = legacy_batch(1)
    _swap(r.files / "eventsApiSecret", b"rotated-legacy\n")
    _swap(r.files / "eventPlatformSecrets", b"rotated-ep\n")

    async def legacy_rotated() -> bool:
        status, _ = await r.post(body, events_api_headers("rotated-legacy", body))
        return status == 200

    await poll(legacy_rotated, what="new legacy secret accepted")
    status, _ = await r.post(body, events_api_headers(EVENTS_API_SECRET, body))
    assert status == 401
    ep = json.dumps(cloud_event("u")).encode()

    async def ep_rotated() -> bool:
        status, _ = await r.post(ep, event_platform_headers("rotated-ep", ep))
        return status == 200

    await poll(ep_rotated, what="new Event Platform secret accepted")
    status, _ = await r.post(ep, event_platform_headers(EVENT_PLATFORM_SECRETS[0], ep))
    assert status == 401


class RawConnection:
    """One keep-alive HTTPS connection, to see which certificate it was served."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, ca: CertificateAuthority) -> RawConnection:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ca.client_context(), server_hostname="localhost"
        )
        return cls(reader, writer)

    @property
    def serial(self) -> int:
        der = self.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).serial_number

    async def probe(self) -> int:
        """A request answered over this (kept-alive) connection: GET on an event URL, 405."""
        self.writer.write(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await self.reader.readexactly(length)
        return int(head.split(b" ")[1])

    def close(self) -> None:
        self.writer.close()


async def test_tls_rotation_serves_new_cert_without_dropping_connections(
    start_receiver: StartReceiver, ca: CertificateAuthority
) -> None:
    r = await start_receiver()
    old = await RawConnection.open(r.config.port, ca)
    try:
        assert await old.probe() == 405
        old_serial = old.serial
        new_pair = ca.issue()
        _swap(r.files / "tls.key", new_pair.key_pem)
        _swap(r.files / "tls.crt", new_pair.cert_pem)

        async def new_cert_served() -> bool:
            conn = await RawConnection.open(r.config.port, ca)
            try:
                return conn.serial == new_pair.serial and await conn.probe() == 405
            finally:
                conn.close()

        await poll(new_cert_served, what="rotated certificate served")
        # the connection opened before the rotation is still up, on its old session
        assert await old.probe() == 405
        assert old.serial == old_serial != new_pair.serial
    finally:
        old.close()


async def test_an_outage_is_recorded_as_a_gap_once_nats_is_back(
    own_nats: NatsServer, start_receiver: StartReceiver, tmp_path: Path
) -> None:
    """Events answered 503 are lost for the legacy PIM: the receiver records the span from
    its first to its last 503 on the stream once JetStream is back, for a catch-up."""
    spool = tmp_path / "gaps.json"
    r = await start_receiver(nats_url=own_nats.url, gap_spool_file=spool)
    body = legacy_batch(3)
    own_nats.kill()
    first = datetime.now(UTC)
    for _ in range(3):
        status, _ = await r.post(body, events_api_headers(EVENTS_API_SECRET, body))
        assert status == 503
        await asyncio.sleep(0.3)
    last = datetime.now(UTC)
    assert spool.exists()  # kept on disk while NATS cannot take it
    own_nats.start()

    async def recorded() -> bool:
        subject = r.config.gap_subject(GapSource.RECEIVER_503.value)
        return any(m[0] == subject for m in await r.messages())

    await poll(recorded, timeout=30, what="gap record on the stream")
    (gap,) = [
        GapRecord.model_validate_json(data)
        for subject, _, data in await r.messages()
        if subject.startswith(f"{r.config.prefix}.gaps.")
    ]
    assert gap.source is GapSource.RECEIVER_503
    assert first <= gap.start <= gap.end <= last
    assert gap.end - gap.start >= timedelta(seconds=0.5)  # from the first 503 to the last
    assert not spool.exists()
