"""``replay --from-sequence`` / ``--from-time``: only the stream's events from there on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from nats.js import JetStreamContext

from akeneo_connector.names import ConnectionNames
from akeneo_resync.replay import redeliver_stream
from tests.integration.worker.conftest import fresh_connection
from tests.integration.worker.support import event, publish


async def _history(js: JetStreamContext, names: ConnectionNames) -> tuple[list[bytes], datetime]:
    """Ten events; returns their payloads and a time between the 6th and the 7th."""
    payloads: list[bytes] = []
    middle = datetime.now(UTC)
    for i in range(10):
        if i == 6:
            await asyncio.sleep(0.05)
            middle = datetime.now(UTC)
            await asyncio.sleep(0.05)
        ev = event(names, f"p{i}", 1)
        payloads.append(ev.to_message())
        await publish(js, names, ev)
    return payloads, middle


async def _copies(js: JetStreamContext, names: ConnectionNames, after: int) -> list[bytes]:
    last = (await js.stream_info(names.stream)).state.last_seq
    return [(await js.get_msg(names.stream, seq)).data or b"" for seq in range(after + 1, last + 1)]


async def test_redelivery_from_a_sequence_republishes_only_from_there(
    js: JetStreamContext, names: ConnectionNames
) -> None:
    payloads, _ = await _history(js, names)
    report = await redeliver_stream(js, names, start_sequence=8)
    assert (report.scanned, report.published) == (3, 3)
    assert await _copies(js, names, after=10) == payloads[7:]


async def test_redelivery_from_a_time_republishes_only_what_came_after(
    js: JetStreamContext,
) -> None:
    names = await fresh_connection(js, "range")
    payloads, middle = await _history(js, names)
    report = await redeliver_stream(js, names, start_time=middle)
    assert (report.scanned, report.published) == (4, 4)
    assert await _copies(js, names, after=10) == payloads[6:]
