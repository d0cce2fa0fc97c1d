"""Two worker replicas on one stream: the guard's CAS keeps the newest version of everything."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import nats as nats_client
from nats.js import JetStreamContext

from akeneo_connector.names import ConnectionNames
from akeneo_worker.sinks.sqlite import SqliteSink
from tests.integration.worker.support import FAST, event, eventually, publish, running, sqlite_state


async def test_two_replicas_converge_on_the_newest_versions(
    js: JetStreamContext, names: ConnectionNames, nats: str, tmp_path: Path
) -> None:
    rng = random.Random(7)
    db = tmp_path / "shared.db"
    history = [event(names, f"p{i}", n) for i in range(20) for n in range(1, 11)]
    deliveries = history + rng.sample(history, 60)  # 60 duplicates
    deliveries = [
        e.model_copy(update={"event_id": f"{e.event_id}-{j}"}) for j, e in enumerate(deliveries)
    ]
    rng.shuffle(deliveries)
    second = await nats_client.connect(nats)
    try:
        a_cfg, b_cfg = (
            replace(FAST, batch_size=10, replica="a"),
            replace(FAST, batch_size=10, replica="b"),
        )
        async with (
            running(js, names, SqliteSink(db), a_cfg) as a,
            running(second.jetstream(), names, SqliteSink(db), b_cfg) as b,
        ):
            for ev in deliveries:
                await publish(js, names, ev)

            def settled() -> bool:
                done = sum(
                    w.metrics.counts[k]
                    for w in (a, b)
                    for k in ("applied", "outdated", "duplicate")
                )
                return done == len(deliveries)

            await eventually(settled, timeout=60, what="every delivery acked")
            assert a.metrics.counts["applied"] > 0 and b.metrics.counts["applied"] > 0
    finally:
        await second.drain()
    state = sqlite_state(db)
    assert {k: v["n"] for k, v in state.items()} == {f"p{i}": 10 for i in range(20)}
