"""Notifications sent while NATS is down are spooled to disk, answered 200, and stored on
the stream once it is back: real nats-server stopped and started, real TLS, and a receiver
process SIGKILLed while a notification is spooled.

Why: the outage itself makes the Event Platform suspend the subscription, and Akeneo
retries a notification only 3 times, 1 s and 2 s apart, then falls back to email
(https://api.akeneo.com/event-platform/notification-webhooks.html: "Reply with a `2xx`
status within **5 seconds** [...] the platform retries up to **3 times**"). A 503 for the
whole outage loses the `subscription.suspended.system` notification, and with it the
operator's knowledge that the suspension was the system's (safe to resume).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

import pytest
from nats import connect as nats_connect
from prometheus_client.parser import text_string_to_metric_families

from akeneo_connector.names import ConnectionNames
from akeneo_pim.notifications import parse_notification
from akeneo_pim.paths import NOTIFICATIONS_PATH
from akeneo_pim.signatures import notification_headers
from akeneo_receiver.app import NOTIFICATION_SPOOL_MAX as MAX_SPOOLED
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import free_port
from akeneo_testing.ground.tls import CertificateAuthority
from tests.integration.receiver.conftest import (
    NOTIFICATION_SECRET,
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
from tests.integration.receiver.test_notifications import notification, post
from tests.unit.pim_formats.test_notifications import DOC_SAMPLE

SPOOLED = {
    "status": "spooled",
    "accepted": 1,
    "duplicates": 0,
    "detail": "the queue is unavailable: kept on the receiver's disk and stored on the "
    "stream once it is back",
}


async def test_notifications_during_an_outage_are_stored_once_in_order_when_nats_is_back(
    own_nats: NatsServer,
    start_receiver: StartReceiver,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spool = tmp_path / "notifications.json"
    r = await start_receiver(nats_url=own_nats.url, notification_spool_file=spool)
    caplog.set_level(logging.DEBUG)
    resumed = notification(
        notification_type="subscription.resumed", reason=..., timestamp="2026-04-29T12:40:00Z"
    )
    own_nats.kill()
    assert await post(r, DOC_SAMPLE) == (200, SPOOLED)
    assert await post(r, DOC_SAMPLE) == (200, {**SPOOLED, "duplicates": 1})  # Akeneo's retry
    assert await post(r, resumed) == (200, SPOOLED)
    assert spool.exists()  # on disk while NATS cannot take them
    # a full spool refuses what comes next: 503, which Akeneo retries, as before the spool
    fillers = [notification(reason=f"filler {n}") for n in range(MAX_SPOOLED - 2)]
    for body in fillers:
        assert (await post(r, body))[0] == 200
    status, answer = await post(r, notification(reason="one too many"))
    assert (status, answer["error"]) == (503, "spool_full")
    assert await spooled_gauge(r) == MAX_SPOOLED

    own_nats.start()
    expected = [DOC_SAMPLE, resumed, *fillers]

    async def all_stored() -> bool:
        return len(await r.notifications()) >= len(expected)

    await poll(all_stored, timeout=30, what="spooled notifications on the stream")
    stored = await r.notifications()
    # each exactly once, in arrival order, with the normal path's Nats-Msg-Id
    assert [data for _, _, data in stored] == expected
    assert [msg_id for _, msg_id, _ in stored] == [hashlib.sha256(b).hexdigest() for b in expected]
    await poll(lambda: _gone(spool), what="spool file removed")
    assert await spooled_gauge(r) == 0
    # a late retry of a spooled one is a duplicate, stored directly again
    status, answer = await post(r, DOC_SAMPLE)
    assert (status, answer) == (200, {"status": "ok", "accepted": 1, "duplicates": 1})
    assert len(await r.notifications()) == len(expected)
    # never a body or a secret in the logs: type and subscription only
    assert NOTIFICATION_SECRET not in caplog.text
    assert "Success rate dropped below 90%" not in caplog.text
    assert "filler" not in caplog.text


async def spooled_gauge(r: Running) -> float:
    async with r.http.get(r.admin_url + "/metrics") as resp:
        text = await resp.text()
    (value,) = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "akeneo_receiver_spooled" and s.labels["spool"] == "notifications"
    ]
    return value


async def _gone(path: Path) -> bool:
    return not await asyncio.to_thread(path.exists)


async def test_without_a_spool_file_a_notification_gets_503_while_nats_is_down(
    own_nats: NatsServer, start_receiver: StartReceiver
) -> None:
    r = await start_receiver(nats_url=own_nats.url)
    own_nats.kill()
    status, answer = await post(r, DOC_SAMPLE)
    assert (status, answer["error"]) == (503, "jetstream_unavailable")


async def test_a_notification_spooled_by_a_killed_receiver_is_stored_by_the_next(
    own_nats: NatsServer, tmp_path: Path, ca: CertificateAuthority
) -> None:
    files = tmp_path / "files"
    write_files(files, ca)
    spool = tmp_path / "notifications.json"
    port, admin_port = free_port(), free_port()
    env = {
        "AKENEO_EVENT_PLATFORM_NOTIFICATION_SECRET_FILE": str(
            files / "eventPlatformNotificationSecret"
        ),
        "AKENEO_NOTIFICATION_SPOOL_FILE": str(spool),
    }
    proc = receiver_process(tmp_path, own_nats.url, port, admin_port, env)
    url = f"https://localhost:{port}{NOTIFICATIONS_PATH}"
    try:
        async with ready_session(ca, admin_port, total=10) as http:
            own_nats.kill()
            headers = notification_headers(NOTIFICATION_SECRET, DOC_SAMPLE)
            async with http.post(url, data=DOC_SAMPLE, headers=headers) as resp:
                assert (resp.status, (await resp.json())["status"]) == (200, "spooled")
            proc.kill()  # SIGKILL while the notification is only on disk
            assert spool.exists()
            own_nats.start()
            # the next process, same spool file
            proc = receiver_process(tmp_path, own_nats.url, port, admin_port, env)

            await poll(lambda: _gone(spool), timeout=30, what="spool stored and removed")
    finally:
        proc.kill()
    names = ConnectionNames.parse(CONNECTION)
    nc = await nats_connect(own_nats.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(names.stream)
        msgs = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(names.stream, seq)
            if msg.subject == names.notifications_subject:
                msgs.append(msg.data or b"")
    finally:
        await nc.close()
    assert msgs == [DOC_SAMPLE]  # exactly once
    assert parse_notification(msgs[0]).notification_type == "subscription.suspended.system"
    log = proc.log_path.read_text()
    assert NOTIFICATION_SECRET not in log and "Success rate dropped" not in log
    assert "spooled messages of a previous run to store" in log
