"""Fixtures of the worker's integration tests: a JetStream context and a fresh connection."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from nats.js import JetStreamContext

from akeneo_connector.jetstream import ensure_all
from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import StreamSpec

_counter = itertools.count()


@pytest.fixture(scope="session")
async def js(nats: str) -> AsyncIterator[JetStreamContext]:
    import nats as nats_client

    nc = await nats_client.connect(nats)
    try:
        yield nc.jetstream()
    finally:
        await nc.drain()


async def fresh_connection(js: JetStreamContext, prefix: str = "w") -> ConnectionNames:
    names = ConnectionNames("tenant-worker", f"{prefix}{next(_counter)}")
    await ensure_all(js, names, StreamSpec())
    return names


@pytest.fixture
async def names(js: JetStreamContext) -> ConnectionNames:
    return await fresh_connection(js)
