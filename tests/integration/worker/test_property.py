"""Property: whatever Akeneo does to the deliveries, the sink ends on the newest version.

A history of changes to a few resources is delivered shuffled, with duplicates (re-sent with
new event ids), with drops, and with worker restarts (graceful, or a crash that leaves
messages unacked) in between; then a reconciliation publishes every resource's current
state, as the reconcile job does. The sink must then equal the newest version of each
resource, and removed resources must be absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nats as nats_client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from nats.js import JetStreamContext

from akeneo_connector.names import ConnectionNames
from akeneo_connector.normalized import Action, NormalizedEvent, ResourceKind, SourceFormat
from akeneo_worker.sinks.sqlite import SqliteSink
from akeneo_worker.worker import Worker
from tests.integration.worker.conftest import fresh_connection
from tests.integration.worker.support import FAST, eventually, publish, version


@dataclass(frozen=True)
class Step:
    kind: ResourceKind
    key: str
    n: int  # version number, strictly increasing per resource
    delete: bool

    def event(self, names: ConnectionNames, source: SourceFormat) -> NormalizedEvent:
        return NormalizedEvent(
            connection=names.ref,
            source=source,
            event_id=str(uuid.uuid4()),
            action=Action.DELETE if self.delete else Action.UPSERT,
            kind=self.kind,
            key=self.key,
            version=version(self.n),
            resource=None if self.delete else {"key": self.key, "n": self.n},
        )


@st.composite
def histories(draw: st.DrawFn) -> list[Step]:
    steps: list[Step] = []
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(list(ResourceKind)))
        n = 0
        for _ in range(draw(st.integers(1, 5))):
            n += draw(st.integers(1, 3))
            steps.append(Step(kind, f"r{i}", n, draw(st.booleans())))
    return steps


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    history = draw(histories())
    order = draw(st.permutations(history))
    duplicates = draw(st.lists(st.sampled_from(history), max_size=6))
    deliveries = list(order)
    for dup in duplicates:
        deliveries.insert(draw(st.integers(0, len(deliveries))), dup)
    dropped = draw(st.sets(st.integers(0, len(deliveries) - 1), max_size=len(deliveries) // 3))
    deliveries = [d for i, d in enumerate(deliveries) if i not in dropped]
    restarts = draw(
        st.dictionaries(
            st.integers(0, max(0, len(deliveries) - 1)), st.sampled_from(["stop", "crash"]),
            max_size=2,
        )
    )  # fmt: skip
    return {
        "history": history,
        "deliveries": deliveries,
        "restarts": restarts,
        "batch_size": draw(st.sampled_from([1, 3, 50])),
    }


def newest(history: list[Step]) -> dict[tuple[str, str], Step]:
    latest: dict[tuple[str, str], Step] = {}
    for step in history:
        k = (step.kind.value, step.key)
        if k not in latest or step.n > latest[k].n:
            latest[k] = step
    return latest


class Runner:
    """Starts, stops and crashes workers of one connection."""

    def __init__(self, url: str, names: ConnectionNames, db: Path, batch: int) -> None:
        self.url, self.names, self.db = url, names, db
        self.config = replace(FAST, ack_wait=1.0, batch_size=batch, max_deliver=10)
        self.task: asyncio.Task[None] | None = None
        self.nc: Any = None
        self.stop_event = asyncio.Event()

    async def start(self) -> None:
        self.nc = await nats_client.connect(self.url)
        worker = Worker(self.nc.jetstream(), self.names, SqliteSink(self.db), self.config)
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(worker.run(self.stop_event))
        await eventually(
            lambda: worker.ready or self.task is None or self.task.done(), what="ready"
        )

    async def stop(self) -> None:
        assert self.task is not None
        self.stop_event.set()
        await asyncio.wait_for(self.task, 15)
        await self.nc.drain()

    async def crash(self) -> None:
        """The connection drops mid-work: whatever was fetched and not acked is redelivered."""
        assert self.task is not None
        await self.nc.close()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 15)


@settings(
    max_examples=20,
    deadline=None,
    # no shrinking: each example runs real servers for seconds; the failing example is printed
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=scenarios())
async def test_the_sink_ends_on_the_newest_version_of_every_resource(
    js: JetStreamContext, nats: str, scenario: dict[str, Any]
) -> None:
    names = await fresh_connection(js, "prop")
    db = Path(tempfile.mkdtemp(prefix="worker-prop-")) / "catalog.db"
    runner = Runner(nats, names, db, scenario["batch_size"])
    await runner.start()
    for i, step in enumerate(scenario["deliveries"]):
        action = scenario["restarts"].get(i)
        if action == "stop":
            await runner.stop()
            await runner.start()
        elif action == "crash":
            await runner.crash()
            await runner.start()
        await publish(js, names, step.event(names, SourceFormat.EVENTS_API))
    # The reconciliation refills what was dropped: the current state of every resource.
    latest = newest(scenario["history"])
    for step in latest.values():
        await publish(js, names, step.event(names, SourceFormat.RECONCILE))
    expected = {k: {"key": s.key, "n": s.n} for k, s in latest.items() if not s.delete}

    def state() -> dict[tuple[str, str], Any]:
        if not db.exists():
            return {}
        return {k: resource for k, (_, resource) in SqliteSink(db).read_all().items()}

    async def settled() -> bool:
        info = await js.consumer_info(names.stream, names.consumer)
        return info.num_pending == 0 and info.num_ack_pending == 0 and state() == expected

    try:
        await eventually(settled, timeout=30, what=f"all acked and sink == {expected}")
    finally:
        await runner.stop()
    assert state() == expected
    shutil.rmtree(db.parent, ignore_errors=True)
    await js.delete_stream(names.stream)
    await js.delete_stream(f"KV_{names.guard_bucket}")
