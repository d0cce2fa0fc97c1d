"""The catalog structure in the reconcile runs: the simulator over HTTP, real NATS, the worker.

Categories, families and attributes are read in pages of 100 (never one call per item, never
more than 4 calls in flight), reach the sink through the worker, and a re-scan of an
unchanged catalog writes nothing while a change is written exactly once. The periodic run
reads only what changed, ``updated >`` its watermark in ISO 8601
(https://api.akeneo.com/rest-api/filter.html#filter-families); the full scan finds removals.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from akeneo_connector.guard_state import GuardEntry, Watermark, guard_key
from akeneo_connector.normalized import Action, NormalizedEvent, ResourceKind
from akeneo_connector.spec import StreamSpec
from akeneo_pim.rest import AkeneoRestClient
from akeneo_pim.simulator import PimSimulator
from akeneo_pim.structure import STRUCTURE
from akeneo_resync.reconcile import Resync, ResyncSettings, ResyncSummary
from akeneo_resync.structure_scan import StructureScan, StructureSummary
from akeneo_worker.sinks.base import Sink
from akeneo_worker.sinks.postgres import PostgresSink
from akeneo_worker.sinks.sqlite import SqliteSink
from akeneo_worker.worker import Worker
from tests.integration.reconcile.streams import Connection, provisioned, stream_events
from tests.integration.worker.support import eventually, running

ALL = ("products", "product_models", "categories", "families", "attributes")
Rows = dict[tuple[str, str], tuple[str, dict[str, Any], str]]  # -> (version, resource, written)


async def _reconcile(
    sim: PimSimulator, conn: Connection, *, full: bool = True, resources: tuple[str, ...] = ALL
) -> ResyncSummary:
    settings = ResyncSettings(names=conn.names, full=full, resources=resources)
    async with AkeneoRestClient(
        sim.url, sim.credentials, backoff_base=0.01, allow_private=True
    ) as client:
        return await Resync(settings, client, conn.js, conn.kv).run()


def _structure(sim: PimSimulator) -> dict[tuple[str, str], dict[str, Any]]:
    """What the PIM serves: (kind, code) -> item."""
    return {
        (STRUCTURE[name].kind.value, code): item
        for name, items in sim.catalog.structure.items.items()
        for code, item in items.items()
    }


def _calls(sim: PimSimulator, path: str) -> int:
    return sum(1 for _, p, status in sim.stats.log if p == path and status == 200)


async def test_full_scan_reads_the_structure_in_batched_calls(nats: str) -> None:
    sizes = {"categories": 250, "families": 120, "attributes": 130}
    async with (
        PimSimulator(
            products=0, product_models=0, categories=250, families=120, attributes=130, latency=0.01
        ) as sim,
        provisioned(nats) as conn,
    ):
        before = datetime.now(UTC)
        summary = await _reconcile(sim, conn, resources=tuple(sizes))
        for name, n in sizes.items():
            assert _calls(sim, STRUCTURE[name].path) == math.ceil(n / 100)
            part = summary.structure[name]
            assert (part.seen, part.published, part.removals) == (n, n, 0)
            assert part.calls == math.ceil(n / 100)
        assert sim.stats.tokens_issued == 1
        assert sim.stats.requests == 3 + 2 + 2 + 1  # the listings' pages and one token call
        assert sim.stats.max_in_flight <= 4 and summary.max_in_flight <= 4
        line = summary.line()
        assert (
            "[categories: seen=250 published=250 duplicates=0 unchanged=0 removals=0 calls=3]"
            in line
        )
        assert "[families: seen=120 published=120" in line

        events = await stream_events(conn)
        assert len(events) == sum(sizes.values())
        assert {(e.kind.value, e.key): e.resource for e in events} == _structure(sim)
        for e in events:
            assert e.action is Action.UPSERT and e.author == "reconcile"
            if e.kind is ResourceKind.CATEGORY:  # its own updated
                assert e.resource is not None and e.version == datetime.fromisoformat(
                    e.resource["updated"]
                )
            else:  # no updated: the run's start
                assert before <= e.version <= datetime.now(UTC)

        # at once again, before any worker applied them: the categories keep their version
        # and message id (JetStream drops them); the others, unknown to the guard, are read
        # at this run's start and stored again (the worker's guard applies the newer copy)
        again = await _reconcile(sim, conn, resources=tuple(sizes))
        assert again.structure["categories"].duplicates == 250
        assert again.structure["families"].published == 120


async def test_429s_during_the_structure_scan_are_waited_out(nats: str) -> None:
    async with (
        PimSimulator(
            products=0, product_models=0, families=450, rate_429=0.3, retry_after=0.01
        ) as sim,
        provisioned(nats) as conn,
    ):
        summary = await _reconcile(sim, conn, resources=("families",))
        assert summary.structure["families"].published == 450
        assert summary.throttled_429 == sim.stats.throttled_429 > 0
        assert summary.max_in_flight <= 4


async def test_a_failing_listing_fails_the_run_and_leaves_no_call_behind(nats: str) -> None:
    async with (
        PimSimulator(products=0, product_models=0, families=900, latency=0.02) as sim,
        provisioned(nats) as conn,
    ):
        calls = 0

        async def publish_then_fail(events: list[NormalizedEvent]) -> tuple[int, int]:
            nonlocal calls
            calls += 1
            raise RuntimeError("the stream is gone")

        async with AkeneoRestClient(sim.url, sim.credentials, allow_private=True) as client:
            scan = StructureScan(
                client,
                conn.js,
                conn.names.guard_bucket,
                publish_then_fail,
                connection="ns/c",
                started=datetime.now(UTC),
            )
            with pytest.raises(RuntimeError, match="stream is gone"):
                await scan.run(STRUCTURE["families"], StructureSummary())
            await asyncio.sleep(0.1)
            assert client.stats.in_flight == 0  # the pages requested ahead were cancelled
        assert calls == 1 and _calls(sim, STRUCTURE["families"].path) < 9


# -- through the worker into a sink ----------------------------------------------------------


def _sqlite_rows(db: Path) -> Callable[[], Rows]:
    def read() -> Rows:
        if not db.exists():
            return {}
        with sqlite3.connect(db) as conn:
            try:
                found = conn.execute(
                    "SELECT kind, key, version, resource, updated_at FROM akeneo_resources"
                ).fetchall()
            except sqlite3.OperationalError:  # table not created yet
                return {}
        return {(k, key): (v, json.loads(r), str(at)) for k, key, v, r, at in found}

    return read


def _postgres_rows(dsn: str, table: str) -> Callable[[], Rows]:
    def read() -> Rows:
        with psycopg.connect(dsn) as conn:
            found = conn.execute(
                f"SELECT kind, key, version, resource, updated_at FROM {table}"
            ).fetchall()
        return {(k, key): (v.isoformat(), r, at.isoformat()) for k, key, v, r, at in found}

    return read


@asynccontextmanager
async def _sink(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, table: str
) -> AsyncIterator[tuple[Sink, Callable[[], Rows]]]:
    if kind == "sqlite":
        db = tmp_path / "catalog.db"
        yield SqliteSink(db), _sqlite_rows(db)
        return
    dsn = request.getfixturevalue("postgres")
    yield PostgresSink(dsn, table=table, allow_private=True), _postgres_rows(dsn, table)


def _resources(rows: Rows) -> dict[tuple[str, str], dict[str, Any]]:
    structure = {listing.kind.value for listing in STRUCTURE.values()}
    return {key: resource for key, (_, resource, _) in rows.items() if key[0] in structure}


async def _applied(worker: Worker, want: int) -> None:
    await eventually(lambda: worker.metrics.counts["applied"] == want, what=f"{want} applied")
    await asyncio.sleep(0.3)  # and nothing more comes
    assert worker.metrics.counts["applied"] == want


@pytest.mark.parametrize("sink_kind", ["sqlite", "postgres"])
async def test_structure_reaches_the_sink_and_only_changes_are_written(
    nats: str, tmp_path: Path, request: pytest.FixtureRequest, sink_kind: str
) -> None:
    window = StreamSpec(duplicate_window="1s")  # so a re-scan 1 s later reaches the worker
    sim = PimSimulator(products=20, product_models=2, categories=130, families=8, attributes=10)
    async with sim, provisioned(nats, spec=window) as conn:
        table = f"structure_{conn.names.name}".replace("-", "_")
        async with (
            _sink(sink_kind, request, tmp_path, table) as (sink, rows),
            running(conn.js, conn.names, sink) as worker,
        ):
            await _scan_until_only_changes_are_written(sim, conn, worker, rows)


async def _scan_until_only_changes_are_written(
    sim: PimSimulator, conn: Connection, worker: Worker, rows: Callable[[], Rows]
) -> None:
    n = 130 + 8 + 10
    first = await _reconcile(sim, conn)
    assert first.seen == 22 + n
    await _applied(worker, 22 + n)
    assert _resources(rows()) == _structure(sim)
    written = rows()

    # a re-scan: every message stored (past the duplicate window), every one a duplicate
    # for the guard, as it carries the version and content the guard applied
    await asyncio.sleep(1.2)
    skipped = worker.metrics.counts["duplicate"]
    later = await _reconcile(sim, conn)
    assert sum(p.published for p in later.structure.values()) == n
    assert sum(p.unchanged for p in later.structure.values()) == n
    await eventually(
        lambda: worker.metrics.counts["duplicate"] == skipped + n, what="guard duplicates"
    )
    await _applied(worker, 22 + n)
    assert rows() == written  # not one row rewritten

    # a changed family: exactly one write
    sim.edit_structure("families", "shoes", label="Sneakers")
    changed = await _reconcile(sim, conn)
    assert changed.structure["families"].unchanged == 7
    await _applied(worker, 22 + n + 1)
    now = rows()
    assert now[("family", "shoes")][1]["labels"]["en_US"] == "Sneakers"
    assert {k: v for k, v in now.items() if k != ("family", "shoes")} == {
        k: v for k, v in written.items() if k != ("family", "shoes")
    }

    # a deleted category: removed from the sink, a tombstone in the guard
    leaf = "category_00042"
    assert sim.delete_structure("categories", leaf) == [leaf]
    removed = await _reconcile(sim, conn)
    assert removed.structure["categories"].removals == 1
    await _applied(worker, 22 + n + 2)
    assert ("category", leaf) not in rows()
    entry = await conn.kv.get(guard_key("category", leaf))
    assert GuardEntry.model_validate_json(entry.value or b"").deleted
    assert _resources(rows()) == _structure(sim)


async def test_periodic_runs_read_the_structure_changed_since_their_watermark(
    nats: str, tmp_path: Path
) -> None:
    """A family and an attribute show no ``updated`` (their update date is the PIM's own),
    yet the periodic run finds them edited through the ``updated >`` filter; a removal is
    left to the full scan."""
    db = tmp_path / "catalog.db"
    structure = ("categories", "families", "attributes")
    async with (
        PimSimulator(products=30, product_models=2, families=150, attributes=12) as sim,
        provisioned(nats) as conn,
        running(conn.js, conn.names, SqliteSink(db)) as worker,
    ):
        first = await _reconcile(sim, conn, full=False)
        n = 10 + 150 + 12
        assert first.seen == 32 + n  # no watermark yet: every item
        assert "full-scan-only" not in first.line()
        assert first.structure["families"].since is None
        assert _calls(sim, STRUCTURE["families"].path) == 2  # 150 families: two pages
        await _applied(worker, 32 + n)
        marks = {r: await conn.kv.get(f"reconcile.watermark.{STRUCTURE[r].kind.value}")
                 for r in structure}  # fmt: skip

        sim.edit_structure_item("families", "family_00042", label="Boots")
        sim.edit_structure_item("attributes", "ean", label="GTIN")
        sim.edit_structure_item("categories", "kids", label="Children")
        calls = {r: _calls(sim, STRUCTURE[r].path) for r in structure}
        later = await _reconcile(sim, conn, full=False)
        for r in structure:
            part = later.structure[r]
            assert (part.seen, part.published, part.calls) == (1, 1, 1), (r, part)
            assert _calls(sim, STRUCTURE[r].path) == calls[r] + 1  # one page, filtered
            mark = marks[r]
            assert part.since is not None and mark.value is not None
            assert part.since == Watermark.model_validate_json(mark.value).updated_since - (
                timedelta(minutes=5)
            )
        await _applied(worker, 32 + n + 3)
        rows = _sqlite_rows(db)()
        assert rows[("family", "family_00042")][1]["labels"]["en_US"] == "Boots"
        assert rows[("attribute", "ean")][1]["labels"]["en_US"] == "GTIN"
        assert rows[("category", "kids")][1]["labels"]["en_US"] == "Children"
        assert _resources(rows) == _structure(sim)

        # a removal shows in no `updated` filter: the periodic run misses it, the full finds it
        sim.delete_structure("families", "family_00007")
        quiet = await _reconcile(sim, conn, full=False)
        part = quiet.structure["families"]
        # only the edit inside the safety margin, read again: unchanged, no sink write
        assert (part.seen, part.unchanged, part.duplicates, part.removals) == (1, 1, 1, 0)
        full = await _reconcile(sim, conn, full=True)
        assert full.structure["families"].removals == 1
        await _applied(worker, 32 + n + 4)
        assert ("family", "family_00007") not in _sqlite_rows(db)()


async def test_the_filter_sent_is_iso_8601_with_the_safety_margin(nats: str) -> None:
    async with PimSimulator(products=0, product_models=0) as sim, provisioned(nats) as conn:
        await _reconcile(sim, conn, full=False, resources=("families",))
        mark = await conn.kv.get("reconcile.watermark.family")
        since = Watermark.model_validate_json(mark.value or b"").updated_since
        seen: list[str] = []
        original = AkeneoRestClient.get_json

        async def spy(self: AkeneoRestClient, url: str) -> Any:
            seen.append(url)
            return await original(self, url)

        AkeneoRestClient.get_json = spy  # type: ignore[method-assign]
        try:
            await _reconcile(sim, conn, full=False, resources=("families",))
        finally:
            AkeneoRestClient.get_json = original  # type: ignore[method-assign]
        [url] = [u for u in seen if u.startswith(STRUCTURE["families"].path)]
        query = parse_qs(urlsplit(url).query)
        bound = (since - timedelta(minutes=5)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert json.loads(query["search"][0]) == {"updated": [{"operator": ">", "value": bound}]}
        assert query["page"] == ["1"] and query["limit"] == ["100"]
        assert "pagination_type" not in query  # `page`, the only one these listings take


async def test_the_full_scan_reads_every_option_of_every_select_attribute(
    nats: str, tmp_path: Path
) -> None:
    """Attribute options take no filter (https://api.akeneo.com/api-reference.html#Attributeoption):
    the periodic run leaves them to the full scan, which lists the select attributes, pages
    each one's options, keys them ``<attribute>/<code>`` and finds the ones removed."""
    db = tmp_path / "catalog.db"
    async with (
        PimSimulator(products=3, product_models=0) as sim,
        provisioned(nats) as conn,
        running(conn.js, conn.names, SqliteSink(db)) as worker,
    ):
        tags = sim.create_structure_item("attributes", attribute_type="pim_catalog_multiselect")
        for code in ("eco", "new", "sale"):
            sim.create_attribute_option(tags.key, code)
        options = sim.catalog.structure.options
        want = {("attribute_option", f"{a}/{c}"): o for a, opts in options.items()
                for c, o in opts.items()}  # fmt: skip
        assert len(want) == 7 + 5 + 3
        periodic = await _reconcile(sim, conn, full=False, resources=("attribute_options",))
        assert periodic.structure == {} and "full-scan-only=attribute_options" in periodic.line()
        assert not any("/options" in path for _, path, _ in sim.stats.log)

        full = await _reconcile(sim, conn, resources=("attribute_options",))
        part = full.structure["attribute_options"]
        assert (part.seen, part.published, part.removals) == (15, 15, 0)
        assert part.calls == 1 + 3  # the select attributes, then one page of options each
        await _applied(worker, 15)
        rows = _sqlite_rows(db)()
        assert {k: r for k, (_, r, _) in rows.items()} == want

        sim.delete_attribute_option("size", "xl")
        sim.delete_structure_item("attributes", tags.key)  # its options go with it
        again = await _reconcile(sim, conn, resources=("attribute_options",))
        part = again.structure["attribute_options"]
        assert (part.seen, part.unchanged, part.removals) == (11, 11, 4)
        assert part.calls == 1 + 2 + 4  # and one GET per missing option, confirming it
        await _applied(worker, 15 + 4)
        rows = _sqlite_rows(db)()
        assert ("attribute_option", "size/xl") not in rows
        assert not [k for k in rows if k[1].startswith(f"{tags.key}/")]
        assert len(rows) == 11
