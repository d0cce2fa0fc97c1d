"""The operator's NATS link when NATS cannot be reached: a reconcile says so, it does not wait.

nats-py retries a first connect for ever with the failover options (unbounded reconnects), so
without a bound every reconcile would hold its slot until NATS came back, and no connection
would ever show ``StreamReady=False`` / ``NatsUnavailable``.
"""

from __future__ import annotations

import asyncio

import pytest

from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import StreamSpec
from akeneo_operator import streams
from akeneo_operator.settings import OperatorSettings
from akeneo_testing.ground.processes import free_port


async def test_unreachable_nats_gives_nats_unavailable_within_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streams, "FIRST_CONNECT_SECONDS", 1.0)
    link = streams.NatsLink(OperatorSettings(nats_url=f"nats://127.0.0.1:{free_port()}"))
    names = ConnectionNames("shop", "main")
    loop = asyncio.get_running_loop()
    started = loop.time()
    cond, changed = await asyncio.wait_for(link.ensure(names, StreamSpec()), timeout=30)
    assert (cond.status, cond.reason, changed) == ("False", "NatsUnavailable", False)
    # the next callers fail fast instead of each waiting the bound again
    second = loop.time()
    cond, _ = await asyncio.wait_for(link.ensure(names, StreamSpec()), timeout=30)
    assert cond.reason == "NatsUnavailable"
    assert loop.time() - second < loop.time() - started
    await link.close()
