"""AkeneoRestClient against the PIM simulator over real loopback HTTP (and TLS)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from akeneo_pim.rest import (
    PRODUCT_MODELS_PATH,
    PRODUCTS_UUID_PATH,
    AkeneoApiError,
    AkeneoAuthError,
    AkeneoRestClient,
    PimCredentials,
    akeneo_date,
    search_param,
)
from akeneo_pim.simulator import PimSimulator
from akeneo_pim.simulator.rest_app import Handler
from akeneo_pim.structure import CATEGORIES_PATH, FAMILIES_PATH
from tests.unit.pim_rest.certs import make_pki


def _client(sim: PimSimulator, **kwargs: object) -> AkeneoRestClient:
    kwargs.setdefault("backoff_base", 0.005)
    return AkeneoRestClient(sim.url, sim.credentials, allow_private=True, **kwargs)  # type: ignore[arg-type]


async def _all(client: AkeneoRestClient, path: str, params: dict[str, str] | None = None):
    items = []
    async for page in client.iter_pages(path, params or {}):
        items.extend(page)
    return items


async def test_pages_through_everything_with_search_after() -> None:
    async with PimSimulator(products=1_234, product_models=7) as sim, _client(sim) as client:
        items = await _all(client, PRODUCTS_UUID_PATH)
        assert [i["uuid"] for i in items] == sim.catalog.products.keys
        assert client.stats.pages == 13  # 12 full pages and the last one
        assert client.stats.logins == 1
        assert all(i["_links"]["self"]["href"].endswith(i["uuid"]) for i in items)
        models = await _all(client, PRODUCT_MODELS_PATH)
        assert sorted(m["code"] for m in models) == sim.catalog.product_models.keys


async def test_updated_filter_in_akeneo_date_format() -> None:
    async with PimSimulator(products=300, product_models=0) as sim, _client(sim) as client:
        since = datetime.now(UTC) - timedelta(minutes=1)
        edited = {sim.edit_product().key for _ in range(5)}
        search = search_param({"updated": [{"operator": ">", "value": akeneo_date(since)}]})
        items = await _all(client, PRODUCTS_UUID_PATH, {"search": search})
        assert {i["uuid"] for i in items} == edited


async def test_batch_reads_by_uuid_and_code_skip_missing_ones() -> None:
    async with PimSimulator(products=450, product_models=150) as sim, _client(sim) as client:
        wanted = sim.catalog.products.keys[:260]
        found = await client.get_products_by_uuid([*wanted, "00000000-0000-4000-8000-000000000000"])
        assert sorted(i["uuid"] for i in found) == sorted(wanted)
        assert client.stats.pages == 3  # batches of <= 100, one call each
        codes = sim.catalog.product_models.keys[:120]
        models = await client.get_product_models_by_code([*codes, "nope"])
        assert sorted(m["code"] for m in models) == codes


async def test_offset_pages_are_read_side_by_side_in_ceil_n_over_100_calls() -> None:
    async with (
        PimSimulator(products=0, product_models=0, categories=1_000, latency=0.02) as sim,
        _client(sim) as client,
    ):
        pages = [page async for page in client.iter_offset_pages(CATEGORIES_PATH)]
        assert [i["code"] for page in pages for i in page] == sim.catalog.structure.codes(
            "categories"
        )
        calls = [e for e in sim.stats.log if e[1] == CATEGORIES_PATH]
        assert len(calls) == 10  # 1,000 items: no 11th call for the empty page after them
        assert sim.stats.max_in_flight == client.stats.max_in_flight == 4
        families = [i async for page in client.iter_offset_pages(FAMILIES_PATH) for i in page]
        assert len(families) == 5
        found = await client.get_by_codes(FAMILIES_PATH, ["shoes", "nope"])
        assert [f["code"] for f in found] == ["shoes"]


async def test_offset_pages_follow_next_links_without_a_count() -> None:
    sim = PimSimulator(products=0, product_models=0, families=250)
    sim.api.app.middlewares.append(_drop_items_count)
    async with sim, _client(sim) as client:
        items = [i async for page in client.iter_offset_pages(FAMILIES_PATH) for i in page]
    assert [i["code"] for i in items] == sim.catalog.structure.codes("families")
    assert len([e for e in sim.stats.log if e[1] == FAMILIES_PATH]) == 3


@web.middleware
async def _drop_items_count(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A PIM that ignores ``with_count``."""
    response = await handler(request)
    if isinstance(response, web.Response) and response.body and request.path == FAMILIES_PATH:
        raw = bytes(response.body)  # type: ignore[arg-type]
        gzipped = response.headers.get("Content-Encoding") == "gzip"
        body = json.loads(gzip.decompress(raw) if gzipped else raw)
        body.pop("items_count", None)
        return web.json_response(body)
    return response


async def test_never_more_than_four_calls_in_flight() -> None:
    async with (
        PimSimulator(products=2_000, product_models=0, latency=0.02) as sim,
        _client(sim) as client,
    ):
        keys = sim.catalog.products.keys
        await asyncio.gather(
            *(client.get_products_by_uuid(keys[i : i + 200]) for i in range(0, 2_000, 200))
        )
        assert sim.stats.max_in_flight == 4
        assert client.stats.max_in_flight == 4


async def test_429_waits_for_retry_after() -> None:
    async with (
        PimSimulator(products=400, product_models=0, rate_429=0.5, retry_after=0.05) as sim,
        _client(sim, max_concurrency=1) as client,
    ):
        items = await _all(client, PRODUCTS_UUID_PATH)
        assert len(items) == 400
        assert client.stats.throttled_429 == sim.stats.throttled_429 > 0
        log = sim.stats.log
        gaps = [log[i + 1][0] - log[i][0] for i in range(len(log) - 1) if log[i][2] == 429]
        assert gaps and min(gaps) >= 0.05


async def test_server_errors_are_retried_with_backoff() -> None:
    async with PimSimulator(products=150, product_models=0) as sim, _client(sim) as client:
        sim.fail_next(503, 2)
        sim.fail_next(500, 1)
        sim.fail_next(408, 1)
        sim.fail_next(507, 1)  # any 5xx, not a fixed list
        items = await _all(client, PRODUCTS_UUID_PATH)
        assert len(items) == 150
        assert client.stats.retries == 5


async def test_gives_up_after_max_tries() -> None:
    async with PimSimulator(products=10) as sim, _client(sim, max_tries=3) as client:
        sim.fail_next(502, 3)
        with pytest.raises(AkeneoApiError) as caught:
            await _all(client, PRODUCTS_UUID_PATH)
        assert caught.value.status == 502
        assert client.stats.retries == 2


async def test_other_4xx_raise_with_akeneos_message() -> None:
    async with PimSimulator(products=10) as sim, _client(sim) as client:
        with pytest.raises(AkeneoApiError) as caught:
            await client.get_json(f"{PRODUCTS_UUID_PATH}?limit=101")
        assert caught.value.status == 422
        assert caught.value.message == "You cannot request more than 100 items."
        with pytest.raises(AkeneoApiError) as missing:
            await client.get_json(f"{PRODUCTS_UUID_PATH}/nope")
        assert missing.value.status == 404
        assert "does not exist" in missing.value.message
        assert client.stats.retries == 0


async def test_expired_token_is_refreshed_with_a_new_refresh_token() -> None:
    async with PimSimulator(products=500) as sim, _client(sim) as client:
        pages = 0
        async for _ in client.iter_pages(PRODUCTS_UUID_PATH, {}):
            pages += 1
            if pages in (2, 4):
                sim.expire_tokens()
        assert pages == 6
        assert client.stats.refreshes == 2
        assert client.stats.logins == 1
        assert sim.stats.rejected_401 == 2


async def test_refused_refresh_logs_in_again() -> None:
    async with PimSimulator(products=300) as sim, _client(sim) as client:
        await client.get_json(f"{PRODUCTS_UUID_PATH}?limit=1")
        sim.expire_tokens()
        sim.revoke_refresh_tokens()
        items = await _all(client, PRODUCTS_UUID_PATH)
        assert len(items) == 300
        assert client.stats.refreshes == 1
        assert client.stats.logins == 2


async def test_short_token_lifetime_is_renewed_before_expiry() -> None:
    async with (
        PimSimulator(products=600, latency=0.03, token_ttl=0.1) as sim,
        _client(sim) as client,
    ):
        assert len(await _all(client, PRODUCTS_UUID_PATH)) == 600
        assert client.stats.refreshes >= 2
        assert client.stats.logins == 1


async def test_wrong_credentials_fail_clearly_without_leaking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with PimSimulator(products=1) as sim:
        wrong = PimCredentials.model_validate(
            {
                "client_id": "sim-client",
                "client_secret": "sim-secret",
                "username": "sim-user",
                "password": "hunter2-wrong",
            }
        )
        async with AkeneoRestClient(sim.url, wrong, allow_private=True) as client:
            with pytest.raises(AkeneoAuthError) as caught:
                await client.get_json(PRODUCTS_UUID_PATH)
        assert caught.value.status == 401
        assert "authentication failed" in str(caught.value)
        for text in (str(caught.value), repr(caught.value), repr(wrong), caplog.text):
            assert "hunter2" not in text
            assert "sim-secret" not in text


async def test_transport_failures_are_retried_then_reported() -> None:
    sim = PimSimulator(products=1)
    await sim.start()
    url = sim.url
    await sim.stop()  # nothing listens there any more: connection refused
    async with AkeneoRestClient(
        url, sim.credentials, max_tries=2, backoff_base=0.001, allow_private=True
    ) as client:
        with pytest.raises(AkeneoApiError) as caught:
            await client.get_json(PRODUCTS_UUID_PATH)
    assert caught.value.status == 0
    assert "no answer from the PIM" in caught.value.message
    assert client.stats.retries == 1


async def test_tls_with_a_private_ca(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    async with PimSimulator(products=120, ssl_context=pki.server_context()) as sim:
        assert sim.url.startswith("https://")
        async with _client(sim, verify=str(pki.ca_file)) as client:
            assert len(await _all(client, PRODUCTS_UUID_PATH)) == 120
        async with _client(sim, max_tries=1) as untrusted:
            with pytest.raises(AkeneoApiError):
                await untrusted.get_json(PRODUCTS_UUID_PATH)


def test_credentials_from_mounted_secret_files(tmp_path: Path) -> None:
    for name, value in {
        "clientId": "id\n",
        "clientSecret": "s3cret",
        "username": "user",
        "password": "pa55\n",
    }.items():
        (tmp_path / name).write_text(value)
    creds = PimCredentials.from_dir(tmp_path)
    assert creds.client_id.get_secret_value() == "id"
    assert creds.password.get_secret_value() == "pa55"
    assert "s3cret" not in repr(creds) and "pa55" not in str(creds)
    (tmp_path / "password").unlink()
    with pytest.raises(ValueError, match="lacks password"):
        PimCredentials.from_dir(tmp_path)


def test_akeneo_date_is_utc() -> None:
    paris = datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Paris")
    )
    assert akeneo_date(paris) == "2026-01-02 03:04:05"
    with pytest.raises(ValueError):
        akeneo_date(datetime(2026, 1, 1))
