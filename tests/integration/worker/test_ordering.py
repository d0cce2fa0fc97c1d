"""The ordering guard against a real NATS and a real sqlite sink."""

from __future__ import annotations

from pathlib import Path

from nats.js import JetStreamContext

from akeneo_connector.guard_state import GuardEntry, WorkerStats, guard_key, stats_key
from akeneo_connector.names import ConnectionNames
from akeneo_worker.sinks.sqlite import SqliteSink
from tests.integration.worker.support import (
    event,
    eventually,
    publish,
    running,
    sqlite_state,
    version,
)


async def test_newest_wins_whatever_the_delivery_order(
    js: JetStreamContext, names: ConnectionNames, tmp_path: Path
) -> None:
    db = tmp_path / "catalog.db"
    v1, v2, v3 = (event(names, "p1", n) for n in (1, 2, 3))
    resent = v3.model_copy(update={"event_id": "resent-" + v3.event_id})
    for ev in (v3, v1, v2, resent):  # out of order, and the same change sent twice
        await publish(js, names, ev)
    await publish(js, names, event(names, "p2", 5))
    async with running(js, names, SqliteSink(db)) as worker:
        await eventually(lambda: worker.metrics.counts["applied"] >= 2, what="applied")
        await eventually(
            lambda: sum(worker.metrics.counts[r] for r in ("outdated", "duplicate")) >= 3,
            what="skips counted",
        )
        assert worker.metrics.counts["applied"] == 2
    state = sqlite_state(db)
    assert state["p1"]["n"] == 3
    assert state["p2"]["n"] == 5
    kv = await js.key_value(names.guard_bucket)
    entry = GuardEntry.model_validate_json((await kv.get(guard_key("product", "p1"))).value or b"")
    assert entry.version == version(3) and not entry.deleted
    stats = WorkerStats.model_validate_json((await kv.get(stats_key("test"))).value or b"")
    assert stats.applied == 2 and stats.skipped_outdated == 2 and stats.skipped_duplicate == 1


async def test_a_tombstone_is_never_resurrected_by_a_late_update(
    js: JetStreamContext, names: ConnectionNames, tmp_path: Path
) -> None:
    db = tmp_path / "catalog.db"
    async with running(js, names, SqliteSink(db)) as worker:
        await publish(js, names, event(names, "p1", 1))
        await eventually(lambda: "p1" in sqlite_state(db), what="p1 created")
        await publish(js, names, event(names, "p1", 5, delete=True))
        await eventually(lambda: "p1" not in sqlite_state(db), what="p1 removed")
        await publish(js, names, event(names, "p1", 3))  # older than the removal, arrives late
        await publish(js, names, event(names, "p1", 5))  # same version as the removal
        await eventually(
            lambda: worker.metrics.counts["outdated"] >= 2, what="late updates skipped"
        )
        assert "p1" not in sqlite_state(db)
        await publish(js, names, event(names, "p1", 7))  # a genuinely newer update re-creates
        await eventually(lambda: "p1" in sqlite_state(db), what="p1 re-created")
        assert sqlite_state(db)["p1"]["n"] == 7
    kv = await js.key_value(names.guard_bucket)
    entry = GuardEntry.model_validate_json((await kv.get(guard_key("product", "p1"))).value or b"")
    assert entry.version == version(7) and not entry.deleted


async def test_events_of_the_connectors_own_client_are_skipped(
    js: JetStreamContext, names: ConnectionNames, tmp_path: Path
) -> None:
    from dataclasses import replace

    from tests.integration.worker.support import FAST

    db = tmp_path / "catalog.db"
    config = replace(FAST, own_client_id="connector-client")
    await publish(js, names, event(names, "mine", 1, author="connector-client"))
    await publish(js, names, event(names, "theirs", 1, author="someone"))
    async with running(js, names, SqliteSink(db), config) as worker:
        await eventually(lambda: "theirs" in sqlite_state(db), what="foreign change applied")
        assert "mine" not in sqlite_state(db)
        assert worker.metrics.skipped.labels("own_author")._value.get() == 1
