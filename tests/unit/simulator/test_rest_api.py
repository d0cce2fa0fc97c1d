"""The simulator's REST API as Akeneo documents it: raw HTTP, error bodies, paging limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta, timezone
from typing import Any

import httpx
import pytest

from akeneo_connector.event_types import attribute_option_key
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


async def test_structure_edits_are_served_and_announced(sim: PimSimulator) -> None:
    before = (await _get(sim, "/api/rest/v1/categories/kids")).json()
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
    # the Event Platform announces the structure: one Change per edit, each removed category
    assert [(c.kind, c.action, c.key) for c in sim.catalog.drain_changes()] == [
        ("family", "updated", "shoes"),
        ("category", "updated", "kids"),
        ("category", "created", child),
        ("category", "removed", "kids"),
        ("category", "removed", child),
    ]


def _dated(sim: PimSimulator, name: str, code: str) -> str:
    return sim.catalog.structure.updated_at(name, code)  # type: ignore[arg-type]


async def test_updated_filter_on_families_and_attributes(sim: PimSimulator) -> None:
    """https://api.akeneo.com/rest-api/filter.html#filter-families: "`>` datetime Format: ISO
    8601 Only returns families that were updated after the given day and hour", written
    "either of these format _2021-05-17T15:19:32Z_, or _2021-05-17T15:19:32+00:00_"."""

    async def codes(name: str, value: Any, operator: str = ">") -> httpx.Response:
        search = {"updated": [{"operator": operator, "value": value}]}
        return await _get(sim, f"/api/rest/v1/{name}", limit=100, search=search)

    everything = await codes("families", "2000-01-01T00:00:00Z")
    assert len(everything.json()["_embedded"]["items"]) == 5
    edited = sim.edit_structure_item("families", "shoes", label="Sneakers")
    created = sim.create_structure_item("attributes", attribute_type="pim_catalog_multiselect")
    assert edited.updated < created.updated
    since = _dated(sim, "families", "shoes")
    assert since == edited.updated.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    before = (edited.updated - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    families = await codes("families", before)
    assert [f["code"] for f in families.json()["_embedded"]["items"]] == ["shoes"]
    assert "updated" not in families.json()["_embedded"]["items"][0]  # not in Akeneo's either
    assert (await codes("families", since)).json()["_embedded"]["items"] == []
    # an offset is honoured: 01:00 at +01:00 is midnight UTC
    shifted = (edited.updated - timedelta(seconds=1)).astimezone(timezone(timedelta(hours=1)))
    attributes = await codes("attributes", shifted.isoformat())
    assert [a["code"] for a in attributes.json()["_embedded"]["items"]] == [created.key]
    # an option edit is not an attribute update (the same page says so)
    sim.edit_attribute_option("color", "red", label="Crimson")
    assert (await codes("attributes", created.updated.isoformat())).json()["_embedded"][
        "items"
    ] == []
    for bad in ("2020-01-01 00:00:00", "2020-01-01", "2020-13-01T00:00:00Z", "yesterday", 5,
                "2020-01-01T00:00:00"):  # fmt: skip
        answer = await codes("attributes", bad)
        assert answer.status_code == 422, bad
        assert answer.json() == {
            "code": 422,
            "message": f'Property "updated" expects a string with the ISO 8601 format, "{bad}"'
            " given.",
        }
    for operator in ("<", "=", "SINCE LAST N DAYS"):
        refused = await codes("families", "2020-01-01T00:00:00Z", operator)
        assert refused.status_code == 422 and "does not support operator" in refused.text


async def test_attribute_options_as_akeneo_serves_them(sim: PimSimulator) -> None:
    """Shape per https://api.akeneo.com/api-reference.html#get_attributes__attribute_code__options
    (example item: {"code": "black", "attribute": "a_simple_select", "sort_order": 2,
    "labels": {"en_US": "Black", "fr_FR": "Noir"}}), "paginated and sorted by code"."""
    base = "/api/rest/v1/attributes/color/options"
    first = (await _get(sim, base, limit=3, with_count="true")).json()
    assert first["items_count"] == 7 and first["current_page"] == 1
    items = first["_embedded"]["items"]
    assert [i["code"] for i in items] == ["black", "blue", "green"]
    for item in items:
        assert set(item) == {"_links", "code", "attribute", "sort_order", "labels"}
        assert item["attribute"] == "color" and isinstance(item["sort_order"], int)
        assert item["_links"]["self"]["href"] == f"{sim.url}{base}/{item['code']}"
    assert "page=2" in first["_links"]["next"]["href"]
    third = (await _get(sim, base, limit=3, page=3)).json()
    assert [i["code"] for i in third["_embedded"]["items"]] == ["yellow"]
    assert "next" not in third["_links"]
    sizes = (await _get(sim, "/api/rest/v1/attributes/size/options", limit=100)).json()
    assert {i["code"] for i in sizes["_embedded"]["items"]} == {"xs", "s", "m", "l", "xl"}
    used = {p["values"]["color"][0]["data"] for p in sim.catalog.products.items.values()}
    assert used <= {
        i["code"] for i in (await _get(sim, base, limit=100)).json()["_embedded"]["items"]
    }

    red = await _get(sim, f"{base}/red")
    assert red.status_code == 200
    assert red.json() == {
        "_links": {"self": {"href": f"{sim.url}{base}/red"}},
        "code": "red",
        "attribute": "color",
        "sort_order": 3,
        "labels": {"en_US": "Red", "fr_FR": "Red (fr)", "de_DE": "Red (de)"},
    }
    missing = await _get(sim, f"{base}/purple")
    assert missing.status_code == 404
    assert missing.json() == {
        "code": 404,
        "message": 'Attribute option "purple" does not exist or is not an option of the attribute'
        ' "color".',
    }
    not_select = await _get(sim, "/api/rest/v1/attributes/name/options")
    assert not_select.status_code == 404
    assert "does not support options" in not_select.json()["message"]
    unknown = await _get(sim, "/api/rest/v1/attributes/nope/options/red")
    assert unknown.json() == {"code": 404, "message": 'Attribute "nope" does not exist.'}
    assert (await _get(sim, base, limit=101)).status_code == 422
    assert (await _get(sim, base, pagination_type="search_after")).status_code == 422


async def test_attribute_option_edits_are_served_and_announced(sim: PimSimulator) -> None:
    base = "/api/rest/v1/attributes/color/options"
    created = sim.create_attribute_option("color", "purple")
    assert (created.kind, created.action, created.key) == (
        "attribute_option",
        "created",
        attribute_option_key("color", "purple"),
    )
    assert created.resource["sort_order"] == 8
    assert (await _get(sim, f"{base}/purple")).json()["code"] == "purple"
    edited = sim.edit_attribute_option("color", "purple", label="Violet")
    assert edited.updated > created.updated
    assert (await _get(sim, f"{base}/purple")).json()["labels"]["en_US"] == "Violet"
    removed = sim.delete_attribute_option("color", "purple")
    assert removed.resource == {"code": "purple", "attribute": "color"}
    assert removed.updated > edited.updated
    assert (await _get(sim, f"{base}/purple")).status_code == 404
    select = sim.create_structure_item("attributes", attribute_type="pim_catalog_simpleselect")
    assert (await _get(sim, f"/api/rest/v1/attributes/{select.key}/options")).json()["_embedded"][
        "items"
    ] == []
    with pytest.raises(KeyError):
        sim.create_attribute_option("name")  # not a select attribute
