"""``replay --all-events --reset-guard`` rebuilds an emptied sink while the worker runs.

The worker caches guard entries; the reset empties the bucket under it. Without noticing,
a running worker would skip every re-delivered event as already applied and the rebuilt
sink would stay empty until the worker restarted.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from nats.js import JetStreamContext

from akeneo_connector.names import ConnectionNames
from akeneo_resync.replay import redeliver_stream
from akeneo_worker.sinks.sqlite import SqliteSink
from tests.integration.worker.support import event, eventually, publish, running, sqlite_state


async def test_a_running_worker_rebuilds_an_emptied_sink_from_a_reset_redelivery(
    js: JetStreamContext, names: ConnectionNames, tmp_path: Path
) -> None:
    db = tmp_path / "catalog.db"
    history = [event(names, f"p{i}", n) for i in range(30) for n in (1, 2, 3)]
    async with running(js, names, SqliteSink(db)) as worker:
        for ev in history:
            await publish(js, names, ev)

        def settled() -> bool:
            counts = worker.metrics.counts
            return sum(counts[k] for k in ("applied", "outdated", "duplicate")) == 90

        await eventually(settled, what="every event acked")
        assert len(sqlite_state(db)) == 30
        with sqlite3.connect(db) as conn:  # the merchant empties the table to rebuild it
            conn.execute("DELETE FROM akeneo_resources")
        assert sqlite_state(db) == {}

        report = await redeliver_stream(js, names, reset_guard=True)
        assert report.published == 90

        def rebuilt() -> bool:
            state = sqlite_state(db)
            return len(state) == 30 and all(row["n"] == 3 for row in state.values())

        await eventually(rebuilt, what="the sink rebuilt by the running worker")
