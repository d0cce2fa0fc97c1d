"""Helpers to read what the reconcile job left in a connection's stream and bucket."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from akeneo_connector.jetstream import ensure_all
from akeneo_connector.names import ConnectionNames
from akeneo_connector.normalized import NormalizedEvent
from akeneo_connector.spec import StreamSpec

_counter = itertools.count()


@dataclass
class Connection:
    nc: Client
    js: JetStreamContext
    kv: KeyValue
    names: ConnectionNames


@asynccontextmanager
async def provisioned(
    url: str, prefix: str = "reconcile", spec: StreamSpec | None = None
) -> AsyncIterator[Connection]:
    """A fresh connection (unique name) with its stream and bucket, deleted afterwards."""
    names = ConnectionNames("tenant-test", f"{prefix}-{next(_counter)}")
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_all(js, names, spec or StreamSpec())
    kv = await js.key_value(names.guard_bucket)
    try:
        yield Connection(nc, js, kv, names)
    finally:
        for stream in (names.stream, f"KV_{names.guard_bucket}"):
            await js.delete_stream(stream)
        await nc.close()


async def stream_events(conn: Connection) -> list[NormalizedEvent]:
    """Every event message in the stream, in stream order (an ordered consumer)."""
    total = await stream_count(conn)
    events: list[NormalizedEvent] = []
    if total == 0:
        return events
    sub = await conn.js.subscribe(
        f"{conn.names.events_subject}.>", stream=conn.names.stream, ordered_consumer=True
    )
    try:
        while len(events) < total:
            msg = await sub.next_msg(timeout=10)
            events.append(NormalizedEvent.from_message(msg.data))
    finally:
        await sub.unsubscribe()
    return events


async def stream_count(conn: Connection) -> int:
    info = await conn.js.stream_info(conn.names.stream)
    return int(info.state.messages)
