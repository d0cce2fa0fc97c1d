"""Events JetStream cannot take are spooled to disk, answered 200 at once, and stored on the
stream once it is back, in arrival order and with the normal path's ``Nats-Msg-Id``: real
nats-server stopped and started, real TLS, and a receiver process SIGKILLed while events are
only on its disk.

Why: the legacy PIM waits 0.5 s and never sends an event again
(https://api.akeneo.com/events-documentation/subscription.html), so a 503 while the queue is
down, or while a clustered stream elects a new leader (4 to 9 s), is a lost event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from nats import connect as nats_connect

from akeneo_connector.names import ConnectionNames
from akeneo_pim.signatures import events_api_headers
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import free_port
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_testing.payloads import legacy_batch
from tests.integration.receiver.conftest import (
    EVENT_PLATFORM_SECRETS,
    EVENTS_API_SECRET,
    Running,
    StartReceiver,
    poll,
    write_files,
)
from tests.integration.receiver.test_durability import (
    CONNECTION,
    ready_session,
    receiver_process,
)
from tests.integration.receiver.test_event_platform import as_sent, metric
from tests.unit.pim_formats.cloud_events import handled_event

DETAIL = (
    "the queue is unavailable: kept on the receiver's disk and stored on the stream once it is back"
)


def legacy(count: int, prefix: str) -> tuple[bytes, dict[str, str]]:
    body = legacy_batch(count, prefix)
    return body, events_api_headers(EVENTS_API_SECRET, body)


async def _gone(path: Path) -> bool:
    return not await asyncio.to_thread(path.exists)


async def test_events_during_an_outage_are_answered_200_and_stored_in_order_once_back(
    own_nats: NatsServer,
    start_receiver: StartReceiver,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spool = tmp_path / "events.spool"
    r = await start_receiver(
        nats_url=own_nats.url, event_spool_file=spool, event_spool_max_events=8
    )
    caplog.set_level(logging.DEBUG)
    # stored the normal way first: what is spooled later must come after it
    status, answer = await r.post(*legacy(2, "before"))
    assert (status, answer["status"]) == (200, "ok")
    own_nats.kill()
    first = legacy(3, "outage")
    started = time.monotonic()
    status, answer = await r.post(*first)
    # the legacy PIM's 0.5 s, with a margin for a loaded machine
    assert time.monotonic() - started < 2.0
    spooled = {"status": "spooled", "accepted": 3, "duplicates": 0, "detail": DETAIL}
    assert (status, answer) == (200, spooled)
    cloud, _ = handled_event("com.akeneo.pim.v1.product.updated", "u-1")
    status, answer = await r.post(*as_sent(cloud), path="/event-platform")
    assert (status, answer) == (
        200,
        {"status": "spooled", "accepted": 1, "duplicates": 0, "ignored": 0, "detail": DETAIL},
    )
    # a delivery sent again while spooled is kept once
    status, answer = await r.post(*first)
    assert (status, answer) == (200, {**spooled, "accepted": 3, "duplicates": 3})
    assert spool.exists()  # on disk while NATS cannot take them
    # the spool is bounded (8 events here): a delivery that does not fit whole gets the 503
    # it got before the spool, and a smaller one still fits
    status, answer = await r.post(*legacy(5, "too-many"))
    assert (status, answer["error"]) == (503, "spool_full")
    assert (await r.post(*legacy(4, "last")))[0] == 200
    assert await spooled_gauge(r) == 8

    own_nats.start()

    async def all_stored() -> bool:
        return len(await r.stored()) >= 2 + 8

    await poll(all_stored, timeout=30, what="spooled events on the stream")
    stored = await r.stored()
    keys = [(event.resource or {}).get("identifier") for _, _, event in stored]
    # each exactly once, in arrival order
    assert keys[:2] == ["before-0", "before-1"]
    assert keys[2:5] == ["outage-0", "outage-1", "outage-2"]
    assert keys[5] is None  # the CloudEvent: ids only, read from the PIM by the worker
    assert keys[6:] == [f"last-{i}" for i in range(4)]
    assert len(stored) == len({msg_id for _, msg_id, _ in stored}) == 10
    await poll(lambda: _gone(spool), what="spool file removed")
    assert await spooled_gauge(r) == 0
    counts = await metric(r, "akeneo_receiver_spool_messages_total")
    assert counts[(("outcome", "spooled"), ("spool", "events"))] == 8
    assert counts[(("outcome", "drained"), ("spool", "events"))] == 8
    # the normal path again, with the ids it gives: a late resend is a duplicate the stream
    # drops, so the spool stored them under the same Nats-Msg-Id
    status, answer = await r.post(*first)
    assert (status, answer) == (200, {"status": "ok", "accepted": 3, "duplicates": 3})
    assert len(await r.stored()) == 10
    assert EVENTS_API_SECRET not in caplog.text
    assert all(s not in caplog.text for s in EVENT_PLATFORM_SECRETS)


async def spooled_gauge(r: Running) -> float:
    samples = await metric(r, "akeneo_receiver_spooled")
    return samples[(("spool", "events"),)]


async def test_without_a_spool_file_events_get_503_while_nats_is_down(
    own_nats: NatsServer, start_receiver: StartReceiver
) -> None:
    r = await start_receiver(nats_url=own_nats.url)
    own_nats.kill()
    status, answer = await r.post(*legacy(2, "lost"))
    assert (status, answer["error"]) == (503, "jetstream_unavailable")


async def test_events_spooled_by_a_killed_receiver_are_stored_by_the_next(
    own_nats: NatsServer, tmp_path: Path, ca: CertificateAuthority
) -> None:
    write_files(tmp_path / "files", ca)
    spool = tmp_path / "events.spool"
    port, admin_port = free_port(), free_port()
    env = {"AKENEO_EVENT_SPOOL_FILE": str(spool)}
    proc = receiver_process(tmp_path, own_nats.url, port, admin_port, env)
    url = f"https://localhost:{port}/events"
    try:
        async with ready_session(ca, admin_port, total=10) as http:
            own_nats.kill()
            for prefix in ("one", "two"):
                body, headers = legacy(3, prefix)
                async with http.post(url, data=body, headers=headers) as resp:
                    assert (resp.status, (await resp.json())["status"]) == (200, "spooled")
            proc.kill()  # SIGKILL while the events are only on disk
            assert spool.exists()
            # the next process starts while NATS is still down, then NATS comes back
            proc = receiver_process(tmp_path, own_nats.url, port, admin_port, env)
            await asyncio.sleep(1.0)
            own_nats.start()
            await poll(lambda: _gone(spool), timeout=30, what="spool stored and removed")
    finally:
        proc.kill()
    names = ConnectionNames.parse(CONNECTION)
    nc = await nats_connect(own_nats.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(names.stream)
        ids = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(names.stream, seq)
            ids.append((msg.headers or {}).get("Nats-Msg-Id"))
    finally:
        await nc.close()
    assert len(ids) == 6 == len(set(ids))  # every event exactly once
    log = proc.log_path.read_text()
    assert "spooled messages of a previous run to store" in log
    assert EVENTS_API_SECRET not in log


async def test_a_stopping_receiver_stores_its_spool_before_it_exits(
    own_nats: NatsServer, tmp_path: Path, ca: CertificateAuthority
) -> None:
    """A pod deleted during an outage loses its emptyDir: the stop waits (10 s at most) for
    JetStream to take what is spooled."""
    write_files(tmp_path / "files", ca)
    spool = tmp_path / "events.spool"
    port, admin_port = free_port(), free_port()
    env = {"AKENEO_EVENT_SPOOL_FILE": str(spool)}
    proc = receiver_process(tmp_path, own_nats.url, port, admin_port, env)
    try:
        async with ready_session(ca, admin_port, total=10) as http:
            own_nats.kill()
            body, headers = legacy(3, "stopping")
            async with http.post(
                f"https://localhost:{port}/events", data=body, headers=headers
            ) as resp:
                assert (resp.status, (await resp.json())["status"]) == (200, "spooled")
        stopped = asyncio.create_task(asyncio.to_thread(proc.stop, 20))
        await asyncio.sleep(1.5)  # stopping, NATS still down: the spool is kept
        assert proc.alive and spool.exists()
        own_nats.start()
        await stopped
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert not spool.exists()
    nc = await nats_connect(own_nats.url)
    try:
        info = await nc.jetstream().stream_info(ConnectionNames.parse(CONNECTION).stream)
    finally:
        await nc.close()
    assert info.state.messages == 3
    assert "stopping with spooled messages not stored" not in proc.log_path.read_text()


async def test_a_full_stream_still_pushes_back_while_events_are_spooled(
    own_nats: NatsServer, start_receiver: StartReceiver, tmp_path: Path
) -> None:
    """The spool waits out an unavailable queue, not a full stream: when its drain meets the
    stream's quota, deliveries get the quota answer (429 to the Event Platform, which slows
    down) instead of 200s until the spool is full."""
    spool = tmp_path / "events.spool"
    r = await start_receiver(nats_url=own_nats.url, event_spool_file=spool)
    js = r.nc.jetstream()
    config = (await js.stream_info(r.stream)).config
    config.max_msgs = 3
    await js.update_stream(config)
    assert (await r.post(*legacy(3, "fills")))[0] == 200
    own_nats.kill()
    assert (await r.post(*legacy(1, "spooled")))[0] == 200
    own_nats.start()

    async def pushed_back() -> bool:
        cloud, _ = handled_event("com.akeneo.pim.v1.product.updated", "u-2")
        status, answer = await r.post(*as_sent(cloud), path="/event-platform")
        return (status, answer.get("error")) == (429, "quota_exceeded")

    await poll(pushed_back, timeout=30, what="429 once the drain meets the full stream")
    status, answer = await r.post(*legacy(1, "legacy"))
    assert (status, answer["error"]) == (503, "quota_exceeded")
    # room again: the spool is stored
    config.max_msgs = -1
    await js.update_stream(config)
    await poll(lambda: _gone(spool), timeout=30, what="spool stored once there is room")
    keys = [(event.resource or {}).get("identifier") for _, _, event in await r.stored()]
    assert keys[:4] == ["fills-0", "fills-1", "fills-2", "spooled-0"]
