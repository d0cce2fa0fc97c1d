"""The sqlite sink writes on the event loop, and waits for a locked file in its thread."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from akeneo_worker.changes import Change
from akeneo_worker.sinks.sqlite import SqliteSink

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def change(key: str, n: int, *, delete: bool = False) -> Change:
    return Change(
        connection="t/c", kind="product", key=key, operation="delete" if delete else "upsert",
        version=T0 + timedelta(seconds=n), event_id=f"{key}-{n}",
        resource=None if delete else {"uuid": key, "n": n},
    )  # fmt: skip


async def test_batches_upsert_delete_and_never_go_back(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "c.db")
    await sink.open()
    try:
        await sink.apply([change(f"p{i}", 2) for i in range(1200)])  # three statements
        await sink.apply([change("p0", 1), change("p1", 3), change("p2", 3, delete=True)])
        await sink.apply([change("p3", 1, delete=True)])  # older removal: row stays
    finally:
        await sink.close()
    rows = SqliteSink(tmp_path / "c.db").read_all()
    assert len(rows) == 1199
    assert rows[("product", "p0")][1]["n"] == 2
    assert rows[("product", "p1")][1]["n"] == 3
    assert ("product", "p2") not in rows and ("product", "p3") in rows


async def test_a_locked_file_is_waited_for_off_the_loop(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "c.db")
    await sink.open()
    other = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(ticker())
    try:
        write = asyncio.create_task(sink.apply([change("p1", 1)]))
        await asyncio.sleep(0.3)
        assert not write.done()
        other.execute("COMMIT")
        await asyncio.wait_for(write, 10)
    finally:
        beat.cancel()
        other.close()
        await sink.close()
    assert ticks >= 15  # the loop kept running while the write waited
    assert ("product", "p1") in SqliteSink(tmp_path / "c.db").read_all()
