"""Reading the guard once: every live entry, each at its latest value, nothing removed.

The full scan's removals and the operator's counters depend on it: an entry missing from
the read is a removal never published (or a counter that goes backwards in status).
"""

from __future__ import annotations

import asyncio

from akeneo_connector.guard_state import GuardEntry, guard_key, read_guard_entries
from akeneo_connector.stream_reader import kv_latest
from tests.integration.reconcile.streams import provisioned
from tests.integration.worker.support import version


async def test_the_snapshot_holds_every_live_key_at_its_latest_value(nats: str) -> None:
    async with provisioned(nats, "snapshot") as conn:
        assert await kv_latest(conn.js, conn.names.guard_bucket, "guard.product.>") == {}
        for i in range(600):
            entry = GuardEntry(version=version(1), event_id=f"e{i}")
            await conn.kv.put(guard_key("product", f"p{i}"), entry.to_bytes())
        for i in range(0, 600, 3):  # a newer version of every third
            entry = GuardEntry(version=version(2), event_id=f"e{i}-2")
            await conn.kv.put(guard_key("product", f"p{i}"), entry.to_bytes())
        for i in range(1, 60, 3):
            await conn.kv.delete(guard_key("product", f"p{i}"))
        await conn.kv.purge(guard_key("product", "p2"))
        await conn.kv.put(guard_key("product_model", "m1"), b'{"version": "2026-01-01T00:00:00Z"}')
        await conn.kv.put("stats.worker.a", b"{}")

        # Several at once, as the scans of a run and the operator read: each is complete.
        reads = await asyncio.gather(
            *(read_guard_entries(conn.js, conn.names.guard_bucket, "product") for _ in range(8))
        )
        removed = {f"p{i}" for i in range(1, 60, 3)} | {"p2"}
        for entries in reads:
            assert set(entries) == {f"p{i}" for i in range(600)} - removed
            assert all(
                e.version == (version(2) if int(k[1:]) % 3 == 0 else version(1))
                for k, e in entries.items()
            )
        models = await read_guard_entries(conn.js, conn.names.guard_bucket, "product_model")
        assert set(models) == {"m1"}
        info = await conn.js.stream_info(f"KV_{conn.names.guard_bucket}")
        assert info.state.consumer_count == 0  # the readers removed their consumers
