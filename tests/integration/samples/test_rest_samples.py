"""The project's REST client reads Akeneo's verbatim answers (token, pages, items, errors)
served over real TLS exactly as Akeneo's documentation prints them."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from akeneo_connector.changes import resource_updated
from akeneo_connector.normalized import ResourceKind
from akeneo_pim.rest import PRODUCT_MODELS_PATH, PRODUCTS_UUID_PATH, TOKEN_PATH, AkeneoApiError
from akeneo_pim.structure import ATTRIBUTES_PATH, CATEGORIES_PATH, FAMILIES_PATH
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_worker.hydration import RestHydrator
from tests.integration.samples.verbatim_pim import Answer, VerbatimPim
from tests.samples import sample

# https://api.akeneo.com/documentation/authentication.html: base64 of its example
# "client_id:secret" (4gm4rnoi...:5dyvo1z6...), as the page prints it.
DOC_BASIC = (
    "Basic NGdtNHJub2l6cDhnc2tna2swODBzc29vODAwNDBnNDRrc293d2d3ODQ0azQ0c2MwMHM6NWR5dm8xejZ5MzRz"
    "bzRvZ2tna3N3ODhvb2tvb3dzMDBjZ29jNDg4a2NzOHdrNGM0MHM="
)
CATEGORY = f"{CATEGORIES_PATH}/winter_collection"
MODELS_PAGE = "rest/product-models-search-after-page"
PRODUCT_UUID = "25566245-55c3-42ce-86d9-8610ac459fa8"
MODEL_CODE = "model-biker-jacket-leather"
TOKENS = (Answer.of(sample("rest/token")), Answer.of(sample("rest/token-refreshed")))


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("verbatim PIM CA")


@pytest.fixture
async def pim(tmp_path: Path, ca: CertificateAuthority):
    async with VerbatimPim(tmp_path, ca) as server:
        server.route("POST", TOKEN_PATH, Answer.of(sample("rest/token")))
        yield server


async def test_the_documented_token_answer_authorizes_the_next_call(pim: VerbatimPim) -> None:
    pim.route("GET", CATEGORY, Answer.of(sample("rest/category")))
    async with pim.client() as client:
        got = await client.get_json(CATEGORY)
    assert got == sample("rest/category").json()
    (login,) = pim.requests(TOKEN_PATH)
    assert login.authorization == DOC_BASIC
    assert json.loads(login.body) == {
        "grant_type": "password",
        "username": "myERPuser",
        "password": "64bngr78",
    }
    (call,) = pim.requests(CATEGORY)
    assert call.authorization == f"Bearer {sample('rest/token').json()['access_token']}"


async def test_a_401_refreshes_with_the_documented_refresh_token(pim: VerbatimPim) -> None:
    pim.route(
        "POST",
        TOKEN_PATH,
        Answer.of(sample("rest/token")),
        Answer.of(sample("rest/token-refreshed")),
    )
    pim.route(
        "GET", CATEGORY, Answer.of(sample("rest/error-401")), Answer.of(sample("rest/category"))
    )
    async with pim.client() as client:
        assert await client.get_json(CATEGORY) == sample("rest/category").json()
    _login, refresh = pim.requests(TOKEN_PATH)
    assert json.loads(refresh.body) == {
        "grant_type": "refresh_token",
        "refresh_token": sample("rest/token").json()["refresh_token"],
    }
    _refused, retried = pim.requests(CATEGORY)
    refreshed = sample("rest/token-refreshed").json()["access_token"]
    assert retried.authorization == f"Bearer {refreshed}"


async def test_a_lasting_401_surfaces_akeneos_message(pim: VerbatimPim) -> None:
    pim.route(
        "POST",
        TOKEN_PATH,
        Answer.of(sample("rest/token")),
        Answer.of(sample("rest/token-refreshed")),
    )
    pim.route("GET", CATEGORY, Answer.of(sample("rest/error-401")))
    async with pim.client() as client:
        with pytest.raises(AkeneoApiError) as caught:
            await client.get_json(CATEGORY)
    assert (caught.value.status, caught.value.message) == (401, "Authentication is required")
    assert len(pim.requests(CATEGORY)) == 2  # refreshed once, then gave up


@pytest.mark.parametrize(
    "name",
    [
        "rest/error-400",
        "rest/error-404",
        "rest/error-422-validation",
        "rest/error-422-property",
        "rest/error-422-unknown",
        "rest/error-422-limit",
    ],
)
async def test_documented_errors_raise_with_akeneos_own_message(
    pim: VerbatimPim, name: str
) -> None:
    s = sample(name)
    pim.route("GET", CATEGORY, Answer.of(s))
    async with pim.client() as client:
        with pytest.raises(AkeneoApiError) as caught:
            await client.get_json(CATEGORY)
    assert caught.value.status == s.expect["status"]
    assert caught.value.message == s.expect["message"]
    assert len(pim.requests(CATEGORY)) == 1  # a 4xx is not retried


async def test_the_documented_429_is_waited_out_for_its_retry_after(
    pim: VerbatimPim, caplog: pytest.LogCaptureFixture
) -> None:
    """``Retry-After: 15`` (https://api.akeneo.com/documentation/responses.html): no call
    before those 15 s (watched for 1.5 s), then the call is made again."""
    s = sample("rest/error-429")
    assert s.file is None and s.http["headers"] == {"Retry-After": "15"}
    pim.route("GET", CATEGORY, Answer.of(s), Answer.of(sample("rest/category")))
    caplog.set_level(logging.INFO, logger="akeneo_pim.rest")
    async with pim.client() as client:
        call = asyncio.create_task(client.get_json(CATEGORY))
        try:
            for _ in range(200):
                if any(r.getMessage() == "akeneo throttled" for r in caplog.records):
                    break
                await asyncio.sleep(0.05)
            (throttled,) = [r for r in caplog.records if r.getMessage() == "akeneo throttled"]
            assert throttled.retry_after == 15.0  # type: ignore[attr-defined]
            await asyncio.sleep(1.5)
            assert len(pim.requests(CATEGORY)) == 1 and not call.done()
        finally:
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
    assert client.stats.throttled_429 == 1


async def test_a_documented_page_is_read_and_its_foreign_next_link_never_followed(
    pim: VerbatimPim,
) -> None:
    """Akeneo's pages link to demo.akeneo.com: the client reads the items and refuses to
    send the token there."""
    for path, name in (
        (PRODUCTS_UUID_PATH, "rest/products-uuid-page"),
        (PRODUCT_MODELS_PATH, "rest/product-models-search-after-page"),
    ):
        pim.route("GET", path, Answer.of(sample(name)))
        pages = []
        async with pim.client() as client:
            with pytest.raises(AkeneoApiError, match="outside the configured PIM URL"):
                async for page in client.iter_pages(path, {}):
                    pages.append(page)
        assert pages == [sample(name).json()["_embedded"]["items"]]
        assert len(pim.requests(path)) == 1


async def test_the_documented_search_after_page_with_elided_items_is_refused(
    pim: VerbatimPim,
) -> None:
    """https://api.akeneo.com/documentation/pagination.html prints ``"items": [...]``."""
    s = sample("rest/products-uuid-search-after-page")
    assert s.expect["json"] is False
    pim.route("GET", PRODUCTS_UUID_PATH, Answer.of(s))
    async with pim.client() as client:
        with pytest.raises(AkeneoApiError, match="not JSON"):
            async for _ in client.iter_pages(PRODUCTS_UUID_PATH, {}):
                pass
    assert len(pim.requests(PRODUCTS_UUID_PATH)) == 1


async def test_a_documented_offset_page_is_read_then_the_foreign_link_refused(
    pim: VerbatimPim,
) -> None:
    pim.route("GET", CATEGORIES_PATH, Answer.of(sample("rest/categories-page")))
    pages = []
    async with pim.client() as client:
        with pytest.raises(AkeneoApiError, match="outside the configured PIM URL"):
            async for page in client.iter_offset_pages(CATEGORIES_PATH):
                pages.append(page)
    assert pages == [sample("rest/categories-page").json()["_embedded"]["items"]]


@pytest.mark.parametrize(
    ("kind", "path", "name", "field"),
    [
        (ResourceKind.PRODUCT, PRODUCTS_UUID_PATH, "rest/products-uuid-page", "uuid"),
        (ResourceKind.PRODUCT_MODEL, PRODUCT_MODELS_PATH, MODELS_PAGE, "code"),
        (ResourceKind.CATEGORY, CATEGORIES_PATH, "rest/categories-page", "code"),
        (ResourceKind.FAMILY, FAMILIES_PATH, "rest/families-page", "code"),
        (ResourceKind.ATTRIBUTE, ATTRIBUTES_PATH, "rest/attributes-page", "code"),
    ],
)  # fmt: skip
async def test_hydration_reads_documented_pages_by_id(
    pim: VerbatimPim, kind: ResourceKind, path: str, name: str, field: str
) -> None:
    """The worker's hydrator keys the documented items by their id, without ``_links``."""
    items = sample(name).json()["_embedded"]["items"]
    keys = [item[field] for item in items]
    pim.route("GET", path, Answer.of(sample(name)))
    async with pim.client() as client:
        found = await RestHydrator(client).fetch(kind, keys)
    assert found == {
        item[field]: {k: v for k, v in item.items() if k != "_links"} for item in items
    }
    (call,) = pim.requests(path)
    search = json.loads(parse_qs(urlsplit(call.path_qs).query)["search"][0])
    assert set(next(iter(search.values()))[0]["value"]) == set(keys)


@pytest.mark.parametrize(
    ("name", "path", "updated"),
    [
        ("rest/product", f"{PRODUCTS_UUID_PATH}/{PRODUCT_UUID}", "2016-06-25T17:56:12+02:00"),
        ("rest/product-model", f"{PRODUCT_MODELS_PATH}/{MODEL_CODE}", "2017-10-02T15:03:55+02:00"),
        ("rest/category", CATEGORY, "2021-05-22T12:48:00+02:00"),
        ("rest/family", f"{FAMILIES_PATH}/caps", None),
        ("rest/attribute", f"{ATTRIBUTES_PATH}/release_date", None),
        ("rest/attribute-option", f"{ATTRIBUTES_PATH}/a_simple_select/options/black", None),
    ],
)  # fmt: skip
async def test_documented_items_are_read_with_their_version(
    pim: VerbatimPim, name: str, path: str, updated: str | None
) -> None:
    """An item's ``updated`` is its version; families, attributes and options carry none in
    Akeneo's reference (the event's time is then the version)."""
    pim.route("GET", path, Answer.of(sample(name)))
    async with pim.client() as client:
        item = await client.get_json(path)
    assert item == sample(name).json()
    got = resource_updated(item)
    assert (got.isoformat() if got else None) == updated


async def test_hydration_reads_the_documented_attribute_option(pim: VerbatimPim) -> None:
    """Key ``<attribute>/<code>`` (issue 13): read at ``/attributes/{attribute}/options/{code}``;
    an option the PIM answers 404 for is simply absent."""
    option = sample("rest/attribute-option").json()
    path = f"{ATTRIBUTES_PATH}/{option['attribute']}/options/{option['code']}"
    pim.route("GET", path, Answer.of(sample("rest/attribute-option")))
    pim.route("GET", f"{ATTRIBUTES_PATH}/color/options/gone", Answer.of(sample("rest/error-404")))
    async with pim.client() as client:
        found = await RestHydrator(client).fetch(
            ResourceKind.ATTRIBUTE_OPTION, [f"{option['attribute']}/{option['code']}", "color/gone"]
        )
    assert found == {f"{option['attribute']}/{option['code']}": option}
