"""creds_watch: a client reconnects once per change of its creds file, and stops with it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from akeneo_connector import creds_watch


class FakeClient:
    def __init__(self) -> None:
        self.reconnects = 0
        self.closed = False

    @property
    def is_closed(self) -> bool:
        return self.closed

    async def force_reconnect(self) -> None:
        self.reconnects += 1


async def test_reconnects_on_each_change_and_ends_with_the_client(tmp_path: Path) -> None:
    path = tmp_path / "nats.creds"
    path.write_text("first")
    nc = FakeClient()
    task = creds_watch.start(nc, path, interval=0.02)
    path.write_text("second")  # changed before the task even ran: still noticed
    await asyncio.sleep(0.1)
    assert nc.reconnects == 1
    path.write_text("second")  # same content rewritten: nothing to do
    await asyncio.sleep(0.1)
    assert nc.reconnects == 1
    path.unlink()  # mid-swap: keep the connection
    await asyncio.sleep(0.1)
    path.write_text("third")
    await asyncio.sleep(0.1)
    assert nc.reconnects == 2
    nc.closed = True
    await asyncio.wait_for(task, 1)


def test_interval_from_env(monkeypatch) -> None:
    monkeypatch.setenv("AKENEO_NATS_CREDS_CHECK_INTERVAL", "2.5")
    assert creds_watch.interval_from_env() == 2.5
    monkeypatch.setenv("AKENEO_NATS_CREDS_CHECK_INTERVAL", "nonsense")
    assert creds_watch.interval_from_env() == creds_watch.DEFAULT_INTERVAL
