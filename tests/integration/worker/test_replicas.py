"""Two worker replicas on one stream: the guard's CAS keeps the newest version of everything."""

from __future__ import annotations

import random
from pathlib import Path

from nats.js import JetStreamContext

from akeneo_connector.names import ConnectionNames
from akeneo_worker.sinks.sqlite import SqliteSink
from tests.integration.worker.support import event, sqlite_state, two_replicas_drain


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
    sinks = (SqliteSink(db), SqliteSink(db))
    await two_replicas_drain(nats, js, names, sinks, (10, 10), deliveries)
    state = sqlite_state(db)
    assert {k: v["n"] for k, v in state.items()} == {f"p{i}": 10 for i in range(20)}
