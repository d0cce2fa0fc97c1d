"""The sqlite sink writes on the event loop, waits for a locked file in its thread, and
guards itself: tombstones in ``<table>_tombstones``, no older update ever lands."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from akeneo_connector.changes import Change
from akeneo_worker.sinks.sqlite import SqliteSink
from akeneo_worker.sinks.tombstones import tombstone_table
from tests.unit.worker.sql_cases import CASES, Case, Tables, apply_all, orders, rm, up

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def change(key: str, n: int, *, delete: bool = False) -> Change:
    return Change(
        connection="t/c", kind="product", key=key, operation="delete" if delete else "upsert",
        version=T0 + timedelta(seconds=n), event_id=f"{key}-{n}",
        resource=None if delete else {"uuid": key, "n": n},
    )  # fmt: skip


async def test_batches_upsert_delete_and_never_go_back(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "c.db")
    await sink.open()
    try:
        await sink.apply([change(f"p{i}", 2) for i in range(1200)])  # three statements
        await sink.apply([change("p0", 1), change("p1", 3), change("p2", 3, delete=True)])
        await sink.apply([change("p3", 1, delete=True)])  # older removal: row stays
    finally:
        await sink.close()
    rows = SqliteSink(tmp_path / "c.db").read_all()
    assert len(rows) == 1199
    assert rows[("product", "p0")][1]["n"] == 2
    assert rows[("product", "p1")][1]["n"] == 3
    assert ("product", "p2") not in rows and ("product", "p3") in rows


async def test_a_locked_file_is_waited_for_off_the_loop(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "c.db")
    await sink.open()
    other = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(ticker())
    try:
        write = asyncio.create_task(sink.apply([change("p1", 1)]))
        await asyncio.sleep(0.3)
        assert not write.done()
        other.execute("COMMIT")
        await asyncio.wait_for(write, 10)
    finally:
        beat.cancel()
        other.close()
        await sink.close()
    assert ticks >= 15  # the loop kept running while the write waited
    assert ("product", "p1") in SqliteSink(tmp_path / "c.db").read_all()


def tables(sink: SqliteSink) -> Tables:
    def n(text: str) -> int:
        return int((datetime.fromisoformat(text) - T0).total_seconds())

    rows = {key: n(v) for (_, key), (v, _) in sink.read_all().items()}
    return rows, {key: n(v) for (_, key), v in sink.read_tombstones().items()}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_self_guarding_rule(tmp_path: Path, case: Case) -> None:
    sink = SqliteSink(tmp_path / "c.db")
    await sink.open()
    try:
        await apply_all(sink.apply, case.batches)
    finally:
        await sink.close()
    assert tables(sink) == (case.rows, case.tombstones)


@pytest.mark.parametrize(("order", "want"), orders())
async def test_any_order_of_a_history_ends_on_its_newest_change(
    tmp_path: Path, order: list[Change], want: Tables
) -> None:
    sink = SqliteSink(tmp_path / "c.db")
    await sink.open()
    try:
        await apply_all(sink.apply, [[c] for c in order])
    finally:
        await sink.close()
    assert tables(sink) == want


async def test_replica_a_old_update_lands_after_replica_b_newer_removal(tmp_path: Path) -> None:
    """The interleaving the guard's claim used to prevent: two sinks (one per replica) on
    one file; A judged its update against the guard before B's removal, and sends it last."""
    a, b = SqliteSink(tmp_path / "c.db"), SqliteSink(tmp_path / "c.db")
    await a.open()
    await b.open()
    try:
        await a.apply([up("p1", 1)])  # the row both replicas saw
        await b.apply([rm("p1", 3)])  # B applies the newer removal
        await a.apply([up("p1", 2)])  # A's older update arrives last
    finally:
        await a.close()
        await b.close()
    assert tables(a) == ({}, {"p1": 3})


async def test_a_tie_is_applied(tmp_path: Path) -> None:
    """Equal versions with other content: the guard decided to apply it, the SQL lets it."""
    sink = SqliteSink(tmp_path / "c.db")
    await sink.open()
    try:
        await sink.apply([up("p1", 5, "first")])
        await sink.apply([up("p1", 5, "second")])
    finally:
        await sink.close()
    assert sink.read_all()[("product", "p1")][1]["content"] == "second"


async def test_a_database_of_an_earlier_version_gains_the_tombstone_table(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.db"
    with sqlite3.connect(path) as db:  # the schema before tombstones, with a row
        db.execute(
            "CREATE TABLE akeneo_resources (kind TEXT NOT NULL, key TEXT NOT NULL,"
            " version TEXT NOT NULL, resource TEXT NOT NULL, updated_at TEXT NOT NULL,"
            " PRIMARY KEY (kind, key))"
        )
        db.execute(
            "INSERT INTO akeneo_resources VALUES"
            " ('product', 'p1', '2026-01-01T00:00:01.000000Z', '{\"n\": 1}', 'x')"
        )
    db.close()
    for _ in range(2):  # idempotent: opening again changes nothing
        sink = SqliteSink(path)
        await sink.open()
        await sink.close()
    assert tables(sink) == ({"p1": 1}, {})
    sink = SqliteSink(path)
    await sink.open()
    try:
        await sink.apply([rm("p1", 2)])
        await sink.apply([up("p1", 1)])
    finally:
        await sink.close()
    assert tables(sink) == ({}, {"p1": 2})


def test_tombstone_table_names_fit_postgres() -> None:
    assert tombstone_table("akeneo_resources") == "akeneo_resources_tombstones"
    long = "t" * 63
    name = tombstone_table(long)
    assert len(name) == 63 and name != long and name.endswith("_tombstones")
    assert tombstone_table("t" * 62 + "u") != name
