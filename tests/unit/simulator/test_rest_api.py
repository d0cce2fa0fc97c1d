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


# -- the catalog structure: categories, families, attributes ------------------------------

STRUCTURE = ("categories", "families", "attributes")


@pytest.fixture
async def big() -> AsyncIterator[PimSimulator]:
    async with PimSimulator(
        products=5, product_models=1, categories=10_050, families=200, attributes=120
    ) as simulator:
        yield simulator


async def test_structure_is_paged_by_page_only_as_in_akeneo(big: PimSimulator) -> None:
    for name in STRUCTURE:
        refused = await _get(big, f"/api/rest/v1/{name}", pagination_type="search_after")
        assert refused.status_code == 422
        assert refused.json() == {"code": 422, "message": "Pagination type is not supported."}
    first = (await _get(big, "/api/rest/v1/families", limit=100, with_count="true")).json()
    assert first["items_count"] == 200 and first["current_page"] == 1
    assert "page=2" in first["_links"]["next"]["href"]
    second = (await _get(big, "/api/rest/v1/families", limit=100, page=2)).json()
    assert len(second["_embedded"]["items"]) == 100
    assert "page=3" in second["_links"]["next"]["href"]  # after every full page, as Akeneo
    third = (await _get(big, "/api/rest/v1/families", limit=100, page=3)).json()
    assert third["_embedded"]["items"] == [] and "next" not in third["_links"]
    # not served from the search index: no 10,000-item cap
    deep = await _get(big, "/api/rest/v1/categories", limit=100, page=101)
    assert deep.status_code == 200 and len(deep.json()["_embedded"]["items"]) == 50
    assert (await _get(big, "/api/rest/v1/attributes", limit=101)).status_code == 422


async def test_structure_items_look_like_akeneo_ones(sim: PimSimulator) -> None:
    categories = (await _get(sim, "/api/rest/v1/categories", limit=100)).json()
    items = categories["_embedded"]["items"]
    assert items[0]["code"] == "master" and items[0]["parent"] is None
    for item in items:
        assert set(item) == {"_links", "code", "parent", "updated", "labels"}
        assert item["_links"]["self"]["href"].endswith(f"/api/rest/v1/categories/{item['code']}")
        assert item["updated"].endswith("+00:00") and "en_US" in item["labels"]
    family = (await _get(sim, "/api/rest/v1/families/shoes")).json()
    assert set(family) >= {
        "code", "attributes", "attribute_as_label", "attribute_requirements", "labels",
    }  # fmt: skip
    assert "updated" not in family and family["attribute_as_label"] in family["attributes"]
    weight = (await _get(sim, "/api/rest/v1/attributes/weight")).json()
    assert weight["type"] == "pim_catalog_metric" and weight["metric_family"] == "Weight"
    assert set(weight) >= {"code", "type", "group", "unique", "localizable", "scopable", "labels"}
    assert "updated" not in weight
    missing = await _get(sim, "/api/rest/v1/families/nope")
    assert missing.status_code == 404
    assert missing.json()["message"] == 'Family "nope" does not exist.'


async def test_categories_are_listed_as_a_tree(big: PimSimulator) -> None:
    seen: list[dict[str, Any]] = []
    for page in range(1, 4):
        answer = await _get(big, "/api/rest/v1/categories", limit=100, page=page)
        seen += answer.json()["_embedded"]["items"]
    position = {item["code"]: i for i, item in enumerate(seen)}
    for item in seen:
        if item["parent"] is not None and item["parent"] in position:
            assert position[item["parent"]] < position[item["code"]]


async def test_structure_filters(sim: PimSimulator) -> None:
    async def codes(name: str, **search: Any) -> list[str]:
        answer = await _get(sim, f"/api/rest/v1/{name}", limit=100, search=search)
        assert answer.status_code == 200, answer.text
        return [item["code"] for item in answer.json()["_embedded"]["items"]]

    assert await codes("families", code=[{"operator": "IN", "value": ["shoes", "nope"]}]) == [
        "shoes"
    ]
    assert await codes("categories", is_root=[{"operator": "=", "value": True}]) == ["master"]
    assert "men" in await codes("categories", parent=[{"operator": "=", "value": "master"}])
    after = "2100-01-01T00:00:00Z"
    assert await codes("categories", updated=[{"operator": ">", "value": after}]) == []
    unsupported = await _get(
        sim, "/api/rest/v1/families", search={"type": [{"operator": "IN", "value": ["x"]}]}
    )
    assert unsupported.status_code == 422


async def test_structure_edits_are_served_and_announce_nothing(sim: PimSimulator) -> None:
    before = (await _get(sim, "/api/rest/v1/categories/kids")).json()
    events = len(sim.catalog.changes)
    family = sim.edit_structure("families", "shoes", label="Sneakers")
    assert family["labels"]["en_US"] == "Sneakers"
    served = (await _get(sim, "/api/rest/v1/families/shoes")).json()
    assert served["labels"]["en_US"] == "Sneakers" and "updated" not in served
    sim.edit_structure("categories", "kids", label="Children")
    after = (await _get(sim, "/api/rest/v1/categories/kids")).json()
    assert after["updated"] > before["updated"]
    child = sim.create_structure("categories", parent="kids")
    assert sim.delete_structure("categories", "kids") == ["kids", child]
    assert (await _get(sim, f"/api/rest/v1/categories/{child}")).status_code == 404
    assert len(sim.catalog.changes) == events  # the PIM sends no event for its structure
