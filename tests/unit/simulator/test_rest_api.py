"""The simulator's REST API as Akeneo documents it: raw HTTP, error bodies, paging limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from akeneo_pim.simulator import PimSimulator

TOKEN = "/api/oauth/v1/token"
PRODUCTS = "/api/rest/v1/products-uuid"


@pytest.fixture
async def sim() -> AsyncIterator[PimSimulator]:
    async with PimSimulator(products=250, product_models=30, token_ttl=60) as simulator:
        yield simulator


async def _token(http: httpx.AsyncClient, **body: str) -> httpx.Response:
    return await http.post(TOKEN, json=body, auth=("sim-client", "sim-secret"))


async def _bearer(http: httpx.AsyncClient) -> dict[str, str]:
    answer = await _token(http, grant_type="password", username="sim-user", password="sim-password")
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def test_password_and_refresh_grants(sim: PimSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        first = await _token(
            http, grant_type="password", username="sim-user", password="sim-password"
        )
        assert first.status_code == 200
        body = first.json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 60
        refreshed = await _token(
            http, grant_type="refresh_token", refresh_token=body["refresh_token"]
        )
        assert refreshed.status_code == 200
        assert refreshed.json()["refresh_token"] != body["refresh_token"]
        reused = await _token(http, grant_type="refresh_token", refresh_token=body["refresh_token"])
        assert reused.status_code == 422  # a refresh token is single use
        form = await http.post(
            TOKEN,
            data={"grant_type": "password", "username": "sim-user", "password": "sim-password"},
            auth=("sim-client", "sim-secret"),
        )
        assert form.status_code == 200


async def test_wrong_credentials_are_401(sim: PimSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        bad_user = await _token(http, grant_type="password", username="sim-user", password="x")
        assert bad_user.status_code == 401
        assert bad_user.json()["code"] == 401
        bad_client = await http.post(
            TOKEN,
            json={"grant_type": "password", "username": "sim-user", "password": "sim-password"},
            auth=("sim-client", "wrong"),
        )
        assert bad_client.status_code == 401
        anonymous = await http.get(PRODUCTS)
        assert anonymous.status_code == 401
        stale = await http.get(PRODUCTS, headers={"Authorization": "Bearer nope"})
        assert stale.json() == {"code": 401, "message": "The access token provided is invalid."}


async def test_expired_token_is_401(sim: PimSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        headers = await _bearer(http)
        assert (await http.get(PRODUCTS, headers=headers)).status_code == 200
        sim.expire_tokens()
        assert (await http.get(PRODUCTS, headers=headers)).status_code == 401


async def _get(sim: PimSimulator, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        query = {k: json.dumps(v) if k == "search" else str(v) for k, v in params.items()}
        return await http.get(path, params=query, headers=await _bearer(http))


async def test_limits_and_paging_errors_are_akeneos(sim: PimSimulator) -> None:
    too_many = await _get(sim, PRODUCTS, limit=101)
    assert too_many.status_code == 422
    assert too_many.json() == {"code": 422, "message": "You cannot request more than 100 items."}
    deep = await _get(sim, PRODUCTS, limit=100, page=101)
    assert deep.status_code == 422
    assert "search after" in deep.json()["message"]
    assert (await _get(sim, PRODUCTS, pagination_type="cursor")).status_code == 422
    async with httpx.AsyncClient(base_url=sim.url) as http:
        bad_json = await http.get(PRODUCTS, params={"search": "{"}, headers=await _bearer(http))
    assert bad_json.status_code == 400
    unknown = await _get(sim, PRODUCTS, search={"colour": [{"operator": "=", "value": 1}]})
    assert unknown.status_code == 422
    bad_date = await _get(
        sim, PRODUCTS, search={"updated": [{"operator": ">", "value": "2020-01-01T00:00:00"}]}
    )
    assert bad_date.status_code == 422
    assert "yyyy-mm-dd H:i:s" in bad_date.json()["message"]


async def test_page_pagination_with_count(sim: PimSimulator) -> None:
    first = (await _get(sim, PRODUCTS, limit=100, with_count="true")).json()
    assert first["current_page"] == 1 and first["items_count"] == 250
    assert len(first["_embedded"]["items"]) == 100
    assert "page=2" in first["_links"]["next"]["href"]
    last = (await _get(sim, PRODUCTS, limit=100, page=3)).json()
    assert len(last["_embedded"]["items"]) == 50
    assert "next" not in last["_links"]


async def test_search_after_follows_next_links(sim: PimSimulator) -> None:
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=sim.url) as auth, httpx.AsyncClient() as http:
        headers = await _bearer(auth)
        url: str | None = f"{sim.url}{PRODUCTS}?pagination_type=search_after&limit=100"
        while url:
            page = (await http.get(url, headers=headers)).json()
            seen += [item["uuid"] for item in page["_embedded"]["items"]]
            url = page["_links"].get("next", {}).get("href")
    assert seen == sim.catalog.products.keys


async def test_filters_on_uuid_updated_and_product_model_codes(sim: PimSimulator) -> None:
    keys = sim.catalog.products.keys[5:8]
    by_uuid = await _get(sim, PRODUCTS, search={"uuid": [{"operator": "IN", "value": keys}]})
    assert [i["uuid"] for i in by_uuid.json()["_embedded"]["items"]] == keys
    change = sim.edit_product(keys[0])
    since = change.updated.strftime("%Y-%m-%d %H:%M:%S")
    newer = await _get(sim, PRODUCTS, search={"updated": [{"operator": ">", "value": since}]})
    assert newer.json()["_embedded"]["items"] == []
    between = await _get(
        sim, PRODUCTS, search={"updated": [{"operator": "BETWEEN", "value": [since, since]}]}
    )
    assert [i["uuid"] for i in between.json()["_embedded"]["items"]] == [keys[0]]
    models = await _get(
        sim,
        "/api/rest/v1/product-models",
        search={"identifier": [{"operator": "IN", "value": ["model_00003", "model_00004"]}]},
    )
    assert [m["code"] for m in models.json()["_embedded"]["items"]] == [
        "model_00003",
        "model_00004",
    ]


async def test_attributes_param_keeps_pages_small(sim: PimSimulator) -> None:
    page = (await _get(sim, PRODUCTS, limit=5, attributes="sku")).json()
    for item in page["_embedded"]["items"]:
        assert set(item["values"]) == {"sku"}


async def test_single_items_and_structure(sim: PimSimulator) -> None:
    key = sim.catalog.products.keys[0]
    item = await _get(sim, f"{PRODUCTS}/{key}")
    assert item.json()["uuid"] == key
    assert (await _get(sim, f"{PRODUCTS}/missing")).status_code == 404
    identifier = item.json()["identifier"]
    assert (await _get(sim, f"/api/rest/v1/products/{identifier}")).json()["uuid"] == key
    assert (await _get(sim, "/api/rest/v1/product-models/model_00001")).status_code == 200
    identifiers = await _get(
        sim,
        "/api/rest/v1/attributes",
        search={"type": [{"operator": "IN", "value": ["pim_catalog_identifier"]}]},
    )
    assert [a["code"] for a in identifiers.json()["_embedded"]["items"]] == ["sku"]
    families = (await _get(sim, "/api/rest/v1/families")).json()["_embedded"]["items"]
    assert len(families) == 5


async def test_429_storm_answers_retry_after(sim: PimSimulator) -> None:
    sim.settings.rate_429 = 1.0
    sim.settings.retry_after = 2
    answer = await _get(sim, PRODUCTS)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "2"
    assert sim.stats.throttled_429 == 1
