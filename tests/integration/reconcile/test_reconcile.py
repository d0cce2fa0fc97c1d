"""The reconcile job against the real PIM simulator (HTTP) and a real nats-server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nats.js.errors import KeyNotFoundError

from akeneo_connector.guard_state import (
    LOCK_KEY,
    GuardEntry,
    ReconcileLock,
    Watermark,
    guard_key,
    watermark_key,
)
from akeneo_connector.normalized import Action, NormalizedEvent, ResourceKind, SourceFormat
from akeneo_pim.rest import AkeneoApiError, AkeneoRestClient
from akeneo_pim.simulator import PimSimulator
from akeneo_resync.reconcile import LockBusy, LockLost, Resync, ResyncSettings
from tests.integration.reconcile.streams import Connection, provisioned, stream_events


def _client(sim: PimSimulator, **kwargs: Any) -> AkeneoRestClient:
    return AkeneoRestClient(
        sim.url, sim.credentials, backoff_base=0.01, allow_private=True, **kwargs
    )


async def _run(sim: PimSimulator, conn: Connection, **kwargs: object):
    hook = kwargs.pop("on_page", None)
    settings = ResyncSettings(names=conn.names, **kwargs)  # type: ignore[arg-type]
    async with _client(sim) as client:
        return await Resync(settings, client, conn.js, conn.kv, on_page=hook).run()  # type: ignore[arg-type]


async def _watermark(conn: Connection, kind: str) -> Watermark | None:
    try:
        entry = await conn.kv.get(watermark_key(kind))
    except KeyNotFoundError:
        return None
    return Watermark.model_validate_json(entry.value or b"")


def _latest(events: list[NormalizedEvent]) -> dict[tuple[str, str], datetime]:
    """Latest version per (kind, key) as the worker's guard would keep it."""
    latest: dict[tuple[str, str], datetime] = {}
    for e in events:
        k = (e.kind.value, e.key)
        latest[k] = max(latest.get(k, e.version), e.version)
    return latest


def _catalog_versions(sim: PimSimulator) -> dict[tuple[str, str], datetime]:
    out = {
        ("product", k): datetime.fromisoformat(v["updated"])
        for k, v in sim.catalog.products.items.items()
    }
    out.update(
        {
            ("product_model", k): datetime.fromisoformat(v["updated"])
            for k, v in sim.catalog.product_models.items.items()
        }
    )
    return out


async def test_first_run_publishes_everything_then_commits_watermark(nats: str) -> None:
    async with PimSimulator(products=250, product_models=20) as sim, provisioned(nats) as conn:
        before = datetime.now(UTC)
        summary = await _run(sim, conn)
        assert summary.seen == 270
        assert summary.published == 270
        assert summary.kinds["products"].seen == 250
        assert summary.kinds["product_models"].seen == 20
        assert summary.max_in_flight <= 4

        events = await stream_events(conn)
        assert len(events) == 270
        assert _latest(events) == _catalog_versions(sim)
        first = events[0]
        assert first.source is SourceFormat.RECONCILE
        assert first.action is Action.UPSERT
        assert first.resource is not None and "_links" not in first.resource
        assert first.connection == conn.names.ref
        product = next(e for e in events if e.kind is ResourceKind.PRODUCT)
        assert product.resource == sim.catalog.products.items[product.key]

        for kind in ("product", "product_model"):
            mark = await _watermark(conn, kind)
            assert mark is not None
            assert before <= mark.updated_since <= mark.run_finished_at
        with pytest.raises(KeyNotFoundError):
            await conn.kv.get(LOCK_KEY)  # released


async def test_rerun_after_lost_watermark_is_deduplicated(nats: str) -> None:
    async with PimSimulator(products=120, product_models=5) as sim, provisioned(nats) as conn:
        await _run(sim, conn)
        for kind in ("product", "product_model"):
            await conn.kv.delete(watermark_key(kind))
        again = await _run(sim, conn)
        assert again.seen == 125
        assert again.published == 0
        assert sum(k.duplicates for k in again.kinds.values()) == 125
        assert len(await stream_events(conn)) == 125


async def test_incremental_run_reads_only_what_changed(nats: str) -> None:
    async with PimSimulator(products=200, product_models=10) as sim, provisioned(nats) as conn:
        await _run(sim, conn)
        changes = [
            sim.edit_product(),
            sim.edit_product(),
            sim.create_product(),
            sim.edit_product_model(),
        ]
        summary = await _run(sim, conn)
        assert summary.seen == 4
        assert summary.published == 4
        events = await stream_events(conn)
        tail = {(e.kind.value, e.key): e.version for e in events[-4:]}
        assert tail == {(c.kind, c.key): c.updated for c in changes}
        assert _latest(events) == _catalog_versions(sim)


async def test_pages_over_ten_thousand_items(nats: str) -> None:
    async with PimSimulator(products=10_500, product_models=0) as sim, provisioned(nats) as conn:
        summary = await _run(sim, conn, resources=("products",))
        assert summary.seen == 10_500
        assert summary.published == 10_500
        assert summary.pages >= 105
        assert summary.kinds["products"].slices == 3  # read as 3 cursors side by side
        assert summary.max_in_flight <= 4
        events = await stream_events(conn)
        assert {e.key for e in events} == set(sim.catalog.products.items)


async def test_token_expiry_and_refused_refresh_mid_run(nats: str) -> None:
    async with (
        PimSimulator(products=1_000, product_models=10, latency=0.01) as sim,
        provisioned(nats) as conn,
    ):
        pages = 0

        async def on_page(resource: str, count: int) -> None:
            nonlocal pages
            pages += 1
            if pages == 3:
                sim.expire_tokens()  # the next call gets a 401: refresh grant
            if pages == 6:
                sim.expire_tokens()
                sim.revoke_refresh_tokens()  # refresh refused: log in again

        settings = ResyncSettings(names=conn.names, partitions=1)  # one cursor per kind
        async with _client(sim) as client:
            summary = await Resync(settings, client, conn.js, conn.kv, on_page=on_page).run()
            assert client.stats.refreshes >= 2
            assert client.stats.logins >= 2
        assert summary.kinds["products"].slices == 1
        assert sim.stats.rejected_401 >= 2
        assert sim.stats.refreshes >= 1
        assert summary.published == 1_010
        assert _latest(await stream_events(conn)) == _catalog_versions(sim)


async def test_short_lived_tokens_are_renewed(nats: str) -> None:
    async with (
        PimSimulator(products=1_500, product_models=0, latency=0.03, token_ttl=0.15) as sim,
        provisioned(nats) as conn,
    ):
        summary = await _run(sim, conn, resources=("products",))
        assert summary.published == 1_500
        assert sim.stats.tokens_issued >= 3  # 15 pages of >= 30 ms outlive a 150 ms token
        assert sim.stats.refreshes == sim.stats.tokens_issued - 1


async def test_429_storm_honours_retry_after(nats: str) -> None:
    async with (
        PimSimulator(products=800, product_models=30, rate_429=0.4, retry_after=0.02) as sim,
        provisioned(nats) as conn,
    ):
        summary = await _run(sim, conn)
        assert summary.published == 830
        assert summary.throttled_429 == sim.stats.throttled_429 > 0
        assert _latest(await stream_events(conn)) == _catalog_versions(sim)


async def test_failed_run_commits_nothing_and_releases_lock(nats: str) -> None:
    async with PimSimulator(products=2_000, product_models=0) as sim, provisioned(nats) as conn:

        async def on_page(resource: str, count: int) -> None:
            sim.fail_next(500, 50)  # beyond the client's tries

        with pytest.raises(AkeneoApiError) as caught:
            await _run(sim, conn, resources=("products",), on_page=on_page)
        assert caught.value.status == 500
        assert await _watermark(conn, "product") is None
        with pytest.raises(KeyNotFoundError):
            await conn.kv.get(LOCK_KEY)

        sim.clear_failures()
        summary = await _run(sim, conn, resources=("products",))
        assert summary.seen == 2_000
        assert summary.published + summary.kinds["products"].duplicates == 2_000
        assert await _watermark(conn, "product") is not None


async def test_full_scan_publishes_removals_for_deleted_resources(nats: str) -> None:
    async with PimSimulator(products=300, product_models=12) as sim, provisioned(nats) as conn:
        await _run(sim, conn)
        # what the worker's guard holds once it applied everything
        applied = datetime.now(UTC)
        for (kind, key), version in _catalog_versions(sim).items():
            await conn.kv.put(guard_key(kind, key), GuardEntry(version=version).to_bytes())
        tombstone = GuardEntry(version=applied, deleted=True)
        await conn.kv.put(guard_key("product", "already-removed"), tombstone.to_bytes())
        gone = [sim.delete_product().key for _ in range(3)]
        gone_model = sim.delete_product_model().key

        summary = await _run(sim, conn, full=True)
        assert summary.removals == 4
        assert summary.kinds["products"].scanned == 297
        assert summary.kinds["product_models"].scanned == 11
        attribute_calls = [e for e in sim.stats.log if e[1] == "/api/rest/v1/attributes"]
        assert len(attribute_calls) == 1  # the identifier attribute, looked up once per run
        removals = [e for e in await stream_events(conn) if e.action is Action.DELETE]
        assert {(e.kind.value, e.key) for e in removals} == {
            *(("product", k) for k in gone),
            ("product_model", gone_model),
        }
        for e in removals:
            assert e.source is SourceFormat.RECONCILE
            assert e.resource is None
            entry = GuardEntry.model_validate_json(
                (await conn.kv.get(guard_key(e.kind.value, e.key))).value or b""
            )
            assert e.version > entry.version

        # a second full scan publishes the same removal ids: de-duplicated by the stream
        again = await _run(sim, conn, full=True)
        assert again.removals == 4
        assert len([e for e in await stream_events(conn) if e.action is Action.DELETE]) == 4


async def test_overlapping_runs_one_wins_and_watermark_is_consistent(nats: str) -> None:
    async with (
        PimSimulator(products=400, product_models=0, latency=0.02) as sim,
        provisioned(nats) as conn,
    ):
        first = asyncio.create_task(_run(sim, conn, resources=("products",)))
        # the first run holds the lock once it has published a page
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            try:
                await conn.kv.get(LOCK_KEY)
                break
            except KeyNotFoundError:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
        with pytest.raises(LockBusy):
            await _run(sim, conn, resources=("products",))
        summary = await first
        assert summary.published == 400
        mark = await _watermark(conn, "product")
        assert mark is not None


async def test_expired_lock_is_taken_over(nats: str) -> None:
    async with PimSimulator(products=50, product_models=0) as sim, provisioned(nats) as conn:
        stale = ReconcileLock(
            holder="dead-pod", expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
        await conn.kv.put(LOCK_KEY, stale.to_bytes())
        summary = await _run(sim, conn, resources=("products",))
        assert summary.published == 50


async def test_lost_lock_commits_nothing(nats: str) -> None:
    async with PimSimulator(products=300, product_models=0) as sim, provisioned(nats) as conn:

        async def on_page(resource: str, count: int) -> None:
            other = ReconcileLock(holder="other", expires_at=datetime.now(UTC) + timedelta(hours=1))
            await conn.kv.put(LOCK_KEY, other.to_bytes())

        with pytest.raises(LockLost):
            await _run(sim, conn, resources=("products",), on_page=on_page)
        assert await _watermark(conn, "product") is None
        entry = await conn.kv.get(LOCK_KEY)  # the other holder's lock is left alone
        assert ReconcileLock.model_validate_json(entry.value or b"").holder == "other"
