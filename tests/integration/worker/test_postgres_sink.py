"""The postgres sink against a real PostgreSQL: upserts, deletes, a table that never goes back."""

from __future__ import annotations

from typing import Any

import psycopg
from nats.js import JetStreamContext

from akeneo_connector.names import ConnectionNames
from akeneo_worker.changes import Change
from akeneo_worker.sinks.postgres import PostgresSink
from tests.integration.worker.support import event, eventually, publish, running, version


def rows(dsn: str, table: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(f"SELECT key, version, resource FROM {table}").fetchall()
    return {key: (v, resource) for key, v, resource in found}


async def test_worker_applies_to_postgres(
    js: JetStreamContext, names: ConnectionNames, postgres: str
) -> None:
    table = f"resources_{names.name}"
    await publish(js, names, event(names, "p1", 2))
    await publish(js, names, event(names, "p1", 1))
    await publish(js, names, event(names, "p2", 1))
    await publish(js, names, event(names, "gone", 1))
    await publish(js, names, event(names, "gone", 3, delete=True))
    async with running(js, names, PostgresSink(postgres, table=table)):
        await eventually(lambda: set(rows(postgres, table)) == {"p1", "p2"}, what="rows")
    found = rows(postgres, table)
    assert found["p1"] == (version(2), {"uuid": "p1", "n": 2, "updated": version(2).isoformat()})


def change(key: str, n: int, *, delete: bool = False) -> Change:
    return Change(
        connection="ns/c",
        kind="product",
        key=key,
        operation="delete" if delete else "upsert",
        version=version(n),
        event_id=f"{key}-{n}",
        resource=None if delete else {"n": n},
    )


async def test_the_table_never_goes_backwards(postgres: str) -> None:
    sink = PostgresSink(postgres, table="never_backwards")
    await sink.open()
    try:
        await sink.apply([change("a", 5), change("b", 1)])
        await sink.apply([change("a", 3), change("b", 2)])  # a: older, refused by the SQL itself
        await sink.apply([change("a", 5)])  # the same change again: idempotent
        assert {k: r["n"] for k, (_, r) in rows(postgres, "never_backwards").items()} == {
            "a": 5,
            "b": 2,
        }
        await sink.apply([change("b", 1, delete=True)])  # an older removal leaves b alone
        assert set(rows(postgres, "never_backwards")) == {"a", "b"}
        await sink.apply([change("b", 4, delete=True)])
        assert set(rows(postgres, "never_backwards")) == {"a"}
    finally:
        await sink.close()
