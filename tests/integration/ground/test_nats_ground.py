"""The NATS part of the test ground is real: JetStream file storage survives a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import nats
import nats as nats_client
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from akeneo_testing.ground.nats import NatsServer


@pytest.fixture
async def restartable_nats(tmp_path: Path) -> AsyncIterator[NatsServer]:
    server = NatsServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


async def test_acked_messages_and_durable_consumer_survive_restart(
    restartable_nats: NatsServer,
) -> None:
    nc = await nats.connect(restartable_nats.url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name="GROUND", subjects=["ground.>"], storage=StorageType.FILE)
    )
    for i in range(5):
        ack = await js.publish(f"ground.{i}", f"m{i}".encode())
        assert ack.seq == i + 1
    sub = await js.pull_subscribe(
        "ground.>", durable="d1", config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)
    )
    first = await sub.fetch(2, timeout=5)
    for msg in first:
        await msg.ack_sync()
    await nc.close()

    restartable_nats.restart()

    nc = await nats.connect(restartable_nats.url)
    js = nc.jetstream()
    info = await js.stream_info("GROUND")
    assert info.state.messages == 5
    sub = await js.pull_subscribe("ground.>", durable="d1")
    rest = await sub.fetch(3, timeout=5)
    assert [m.data for m in rest] == [b"m2", b"m3", b"m4"]
    await nc.close()


async def test_session_nats_has_jetstream(nats: str) -> None:
    nc = await nats_client.connect(nats)
    account = await nc.jetstream().account_info()
    assert account.limits is not None
    await nc.close()
