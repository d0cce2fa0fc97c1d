"""The postgres sink against a real PostgreSQL: upserts, deletes, a table that never goes
back nor gets a removed row back, whatever two replicas' transactions do at once."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
from typing import Any

import psycopg
import pytest
from nats.js import JetStreamContext

from akeneo_connector.changes import Change
from akeneo_connector.names import ConnectionNames
from akeneo_worker.sinks.postgres import PostgresSink
from tests.integration.worker.support import event, eventually, publish, running, version
from tests.unit.worker.sql_cases import (
    CASES,
    Case,
    Tables,
    apply_all,
    newest,
    numbered,
    orders,
    rm,
    up,
)

_tables = itertools.count()


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
    async with running(js, names, PostgresSink(postgres, table=table, allow_private=True)):
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
    sink = PostgresSink(postgres, table="never_backwards", allow_private=True)
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


def fresh_table() -> str:
    return f"guarded_{next(_tables)}"


def tables(dsn: str, sink: PostgresSink) -> Tables:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(f"SELECT key, version FROM {sink.table}").fetchall()
        gone = conn.execute(f"SELECT key, version FROM {sink.tombstones}").fetchall()
    return numbered(dict(found)), numbered(dict(gone))


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_self_guarding_rule(postgres: str, case: Case) -> None:
    sink = PostgresSink(postgres, table=fresh_table(), allow_private=True)
    await sink.open()
    try:
        await apply_all(sink.apply, case.batches)
    finally:
        await sink.close()
    assert tables(postgres, sink) == (case.rows, case.tombstones)


@pytest.mark.parametrize(("order", "want"), orders())
async def test_any_order_of_a_history_ends_on_its_newest_change(
    postgres: str, order: list[Change], want: Tables
) -> None:
    sink = PostgresSink(postgres, table=fresh_table(), allow_private=True)
    await sink.open()
    try:
        await apply_all(sink.apply, [[c] for c in order])
    finally:
        await sink.close()
    assert tables(postgres, sink) == want


async def test_replica_a_old_update_lands_after_replica_b_newer_removal(postgres: str) -> None:
    table = fresh_table()
    a, b = (
        PostgresSink(postgres, table=table, allow_private=True),
        PostgresSink(postgres, table=table, allow_private=True),
    )
    await a.open()
    await b.open()
    try:
        await a.apply([up("p1", 1)])
        await b.apply([rm("p1", 3)])
        await a.apply([up("p1", 2)])  # A's older update arrives last
    finally:
        await a.close()
        await b.close()
    assert tables(postgres, a) == ({}, {"p1": 3})


def _interleave(
    dsn: str, sink: PostgresSink, level: psycopg.IsolationLevel, *, row: bool
) -> dict[str, str]:
    """B's removal (v3) runs first but commits only after A's older update (v2) ran.

    With ``row`` a version 1 exists, and A's statement waits for B's row lock until B
    commits; without, nothing makes them wait for each other. Returns how each ended.
    """
    with psycopg.connect(dsn, autocommit=True) as setup:
        if row:
            setup.execute(*sink.statements([up("p1", 1)])[0])
    a, b = psycopg.connect(dsn), psycopg.connect(dsn)
    a.isolation_level = b.isolation_level = level
    outcomes: dict[str, str] = {}

    def run(name: str, conn: psycopg.Connection[Any], change: Change, *, commit: bool) -> None:
        try:
            conn.execute(*sink.statements([change])[0])
            if commit:
                conn.commit()
                outcomes[name] = "committed"
        except psycopg.Error as exc:
            outcomes[name] = type(exc).__name__
            conn.rollback()

    try:
        run("B", b, rm("p1", 3), commit=False)
        thread = threading.Thread(target=run, args=("A", a, up("p1", 2)), kwargs={"commit": True})
        thread.start()
        thread.join(0.5)  # blocked on B's row lock (row) or committed (no row)
        try:
            b.commit()
            outcomes["B"] = "committed"
        except psycopg.Error as exc:
            outcomes["B"] = type(exc).__name__
        thread.join(10)
        return outcomes
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("row", [False, True], ids=["no row yet", "row present"])
async def test_serializable_batches_refuse_the_interleaving_that_resurrects(
    postgres: str, row: bool
) -> None:
    """Why the sink runs SERIALIZABLE: under READ COMMITTED, A's older update gets in after
    B's removal (neither statement saw the other's uncommitted work) and the row comes back;
    SERIALIZABLE refuses one of the two, and its retry (what ``apply`` does) ends right."""
    level = psycopg.IsolationLevel
    rc = PostgresSink(postgres, table=fresh_table(), allow_private=True)
    await rc.open()
    await rc.close()
    outcomes = await asyncio.to_thread(_interleave, postgres, rc, level.READ_COMMITTED, row=row)
    assert outcomes == {"A": "committed", "B": "committed"}
    assert tables(postgres, rc) == ({"p1": 2}, {"p1": 3})  # resurrected

    sink = PostgresSink(postgres, table=fresh_table(), allow_private=True)
    await sink.open()
    try:
        outcomes = await asyncio.to_thread(_interleave, postgres, sink, level.SERIALIZABLE, row=row)
        assert sorted(outcomes.values()) == ["SerializationFailure", "committed"]
        await sink.apply([up("p1", 2)] if outcomes["A"] != "committed" else [rm("p1", 3)])
    finally:
        await sink.close()
    assert tables(postgres, sink) == ({}, {"p1": 3})


async def test_two_sinks_writing_at_once_end_on_the_newest(postgres: str) -> None:
    """Two replicas' sinks on one table, batches racing: every resource ends on its newest."""
    rng = random.Random(3)
    table = fresh_table()
    a, b = (
        PostgresSink(postgres, table=table, allow_private=True),
        PostgresSink(postgres, table=table, allow_private=True),
    )
    await a.open()
    await b.open()
    histories: dict[str, list[Change]] = {}
    for i in range(40):
        key, n, history = f"p{i}", 0, []
        for _ in range(6):
            n += rng.randint(1, 2)
            history.append(rm(key, n) if rng.random() < 0.35 else up(key, n))
        histories[key] = history
    changes = [c for h in histories.values() for c in h]
    rng.shuffle(changes)
    try:
        for i in range(0, len(changes), 16):  # each round: two batches of 8 sent together
            await asyncio.gather(a.apply(changes[i : i + 8]), b.apply(changes[i + 8 : i + 16]))
    finally:
        await a.close()
        await b.close()
    want_rows: dict[str, int] = {}
    want_gone: dict[str, int] = {}
    for history in histories.values():
        rows, gone = newest(history)
        want_rows |= rows
        want_gone |= gone
    assert tables(postgres, a) == (want_rows, want_gone)


async def test_a_table_of_an_earlier_version_gains_the_tombstone_table(postgres: str) -> None:
    table = fresh_table()
    with psycopg.connect(postgres) as conn:  # the schema before tombstones, with a row
        conn.execute(
            f"CREATE TABLE {table} (kind text NOT NULL, key text NOT NULL,"
            " version timestamptz NOT NULL, resource jsonb NOT NULL,"
            " updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (kind, key))"
        )
        conn.execute(
            f"INSERT INTO {table} (kind, key, version, resource) VALUES (%s, %s, %s, '{{}}')",
            ("product", "p1", version(1)),
        )
    for _ in range(2):  # idempotent
        sink = PostgresSink(postgres, table=table, allow_private=True)
        await sink.open()
        await sink.close()
    assert tables(postgres, sink) == ({"p1": 1}, {})
    await sink.open()
    try:
        await sink.apply([rm("p1", 2)])
        await sink.apply([up("p1", 1)])
    finally:
        await sink.close()
    assert tables(postgres, sink) == ({}, {"p1": 2})
