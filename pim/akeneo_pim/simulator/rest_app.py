"""The simulated PIM's REST API (aiohttp): OAuth tokens, products, product models, structure.

Behaves as Akeneo documents it: password and refresh-token grants with expiring tokens,
``search`` filters (``updated``, ``uuid``, ``identifier``...), ``page`` and ``search_after``
paging with Akeneo's limits and error bodies (categories, families, attributes and attribute
options: ``page`` only, see ``akeneo_pim.structure``), plus knobs for latency and ``429`` storms.

Concurrency, as https://api.akeneo.com/rest-api/good-practices.html states it: "Per PIM
Connection: Up to 4 concurrent API calls are allowed for each individual PIM connection." and
"Per PIM Instance: Up to 10 concurrent API calls are allowed across the entire PIM instance."
A connection is an OAuth client id: a call counts for the client its bearer token was issued
to (token calls: the client of their Basic header). Past either limit the call is answered
``429`` with ``Retry-After`` at once. On by default (``ApiSettings.limit_concurrency``): the
simulator is never more lenient than the platform.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import json
import random
import re
import secrets
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from akeneo_pim.simulator.catalog import Catalog, akeneo_datetime
from akeneo_pim.simulator.structure import SELECT_TYPES, StructureName

MAX_LIMIT = 100
DEFAULT_LIMIT = 10
MAX_PAGE_ITEMS = 10_000
CONCURRENT_PER_CLIENT = 4  # Akeneo: "Up to 4 concurrent API calls ... per PIM connection"
CONCURRENT_PER_INSTANCE = 10  # "Up to 10 concurrent API calls ... across the entire PIM"
# https://api.akeneo.com/api-reference.html (responses: 429Error), verbatim
THROTTLED_MESSAGE = "You have exceeded the limit of API requests per second."
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
# the two forms https://api.akeneo.com/rest-api/filter.html gives for families, attributes and
# categories: "2021-05-17T15:19:32Z, or 2021-05-17T15:19:32+00:00"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


ThrottleCause = str  # "client_concurrency" | "instance_concurrency" | "rate" (the rate_429 knob)


@dataclass
class ServerStats:
    requests: int = 0
    in_flight: int = 0  # calls admitted and not answered yet, all clients
    max_in_flight: int = 0
    throttled_429: int = 0  # every 429, whatever the cause
    throttled_by: Counter[ThrottleCause] = field(default_factory=Counter)
    client_in_flight: Counter[str] = field(default_factory=Counter)  # by client id
    client_max_in_flight: dict[str, int] = field(default_factory=dict)
    client_requests: Counter[str] = field(default_factory=Counter)
    tokens_issued: int = 0
    refreshes: int = 0
    rejected_401: int = 0
    log: list[tuple[float, str, int]] = field(default_factory=list)  # (monotonic, path, status)


@dataclass(frozen=True)
class ApiClient:
    """An API connection of the PIM: OAuth client id and secret, and its user."""

    client_id: str
    client_secret: str
    username: str
    password: str


@dataclass
class ApiSettings:
    client_id: str
    client_secret: str
    username: str
    password: str
    latency: float = 0.0
    rate_429: float = 0.0
    retry_after: float = 1.0
    token_ttl: float = 3600.0
    seed: int = 0
    limit_concurrency: bool = True
    per_client_limit: int = CONCURRENT_PER_CLIENT
    per_instance_limit: int = CONCURRENT_PER_INSTANCE


@dataclass
class _TokenState:
    access: dict[str, tuple[float, str]] = field(default_factory=dict)  # -> (expiry, client id)
    refresh: dict[str, str] = field(default_factory=dict)  # refresh token -> client id


class RestApi:
    """State and handlers of the REST side; ``app`` is the aiohttp application."""

    def __init__(self, catalog: Catalog, settings: ApiSettings) -> None:
        self.catalog = catalog
        self.settings = settings
        self.stats = ServerStats()
        self._tokens = _TokenState()
        self.clients: dict[str, ApiClient] = {}
        self.add_client(
            settings.client_id, settings.client_secret, settings.username, settings.password
        )
        self._rng = random.Random(settings.seed + 1)
        self._failures: list[int] = []
        self._json_cache: dict[str, tuple[Any, bytes]] = {}
        self.app = web.Application(middlewares=[self._middleware])
        r = self.app.router
        r.add_post("/api/oauth/v1/token", self.token)
        r.add_get("/api/rest/v1/products-uuid", self.list_products)
        r.add_get("/api/rest/v1/products-uuid/{uuid}", self.get_product)
        r.add_get("/api/rest/v1/products", self.list_products)
        r.add_get("/api/rest/v1/products/{identifier}", self.get_product_by_identifier)
        r.add_get("/api/rest/v1/product-models", self.list_product_models)
        r.add_get("/api/rest/v1/product-models/{code}", self.get_product_model)
        r.add_get("/api/rest/v1/attributes/{attribute}/options", self.list_options)
        r.add_get("/api/rest/v1/attributes/{attribute}/options/{code}", self.get_option)
        for name in _STRUCTURE_NOUNS:
            r.add_get(f"/api/rest/v1/{name}", self.list_structure)
            r.add_get(f"/api/rest/v1/{name}/{{code}}", self.get_structure_item)

    # -- knobs ----------------------------------------------------------------------------

    def add_client(
        self, client_id: str, client_secret: str, username: str, password: str
    ) -> ApiClient:
        """Register another API connection (its own client id, secret and user)."""
        if not client_id or not client_secret:
            raise ValueError("a client needs an id and a secret")
        client = ApiClient(client_id, client_secret, username, password)
        self.clients[client_id] = client
        return client

    def token_client(self, token: str) -> str | None:
        """The client id an access token was issued to, if it is valid now."""
        entry = self._tokens.access.get(token)
        if entry is None or time.monotonic() >= entry[0]:
            return None
        return entry[1]

    def expire_tokens(self) -> None:
        """Invalidate every access token now (refresh tokens stay valid)."""
        self._tokens.access.clear()

    def revoke_refresh_tokens(self) -> None:
        self._tokens.refresh.clear()

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` REST calls with ``status`` (e.g. 500, 503, 408)."""
        self._failures.extend([status] * count)

    def warm_cache(self) -> None:
        """Encode every item once now (benchmarks: keep the encoding out of the timed calls)."""
        for table in (self.catalog.products, self.catalog.product_models):
            for item in table.items.values():
                self._cached(item, "")

    def clear_failures(self) -> None:
        self._failures.clear()

    # -- middleware -----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        client = self._caller(request)
        refused = self._over_limit(client)
        if refused is not None:
            stats.throttled_429 += 1
            stats.throttled_by[refused] += 1
            stats.log.append((time.monotonic(), request.path, 429))
            return self._throttled()
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        if client is not None:
            stats.client_requests[client] += 1
            stats.client_in_flight[client] += 1
            now = stats.client_in_flight[client]
            stats.client_max_in_flight[client] = max(stats.client_max_in_flight.get(client, 0), now)
        try:
            if self.settings.latency > 0:
                await asyncio.sleep(self.settings.latency)
            response = await self._answer(request, handler)
        finally:
            stats.in_flight -= 1
            if client is not None:
                stats.client_in_flight[client] -= 1
        stats.log.append((time.monotonic(), request.path, response.status))
        return response

    def _caller(self, request: web.Request) -> str | None:
        """The client id a call counts for: its bearer token's, or its Basic header's."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            entry = self._tokens.access.get(header[7:].strip())
            return entry[1] if entry is not None else None
        if header.startswith("Basic "):
            client_id = _basic(header)[0]
            return client_id if client_id in self.clients else None
        return None

    def _over_limit(self, client: str | None) -> ThrottleCause | None:
        s = self.settings
        if not s.limit_concurrency:
            return None
        if client is not None and self.stats.client_in_flight[client] >= s.per_client_limit:
            return "client_concurrency"
        if self.stats.in_flight >= s.per_instance_limit:
            return "instance_concurrency"
        return None

    def _throttled(self) -> web.Response:
        response = _error(429, THROTTLED_MESSAGE)
        response.headers["Retry-After"] = format(self.settings.retry_after, "g")
        return response

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        is_rest = request.path.startswith("/api/rest/")
        if is_rest and self._failures:
            status = self._failures.pop(0)
            return _error(status, "Simulated failure")
        if is_rest and self.settings.rate_429 > 0 and self._rng.random() < self.settings.rate_429:
            self.stats.throttled_429 += 1
            self.stats.throttled_by["rate"] += 1
            return self._throttled()
        if is_rest:
            problem = self._check_bearer(request)
            if problem is not None:
                self.stats.rejected_401 += 1
                return _error(401, problem)
        try:
            return await handler(request)
        except ApiError as exc:
            return _error(exc.status, exc.message)

    # -- OAuth ----------------------------------------------------------------------------

    def _check_bearer(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return "Authentication is required"
        token = header[7:].strip()
        entry = self._tokens.access.get(token)
        if entry is None:
            return "The access token provided is invalid."
        if time.monotonic() >= entry[0]:
            del self._tokens.access[token]
            return "The access token provided has expired."
        return None

    def _client_of(self, request: web.Request) -> ApiClient | None:
        """The client authenticated by the Basic header, or None."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        client_id, secret = _basic(header)
        client = self.clients.get(client_id)
        if client is None:
            return None
        return client if secrets.compare_digest(secret, client.client_secret) else None

    def _issue(self, client: ApiClient) -> web.Response:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        ttl = self.settings.token_ttl
        self._tokens.access[access] = (time.monotonic() + ttl, client.client_id)
        self._tokens.refresh[refresh] = client.client_id
        self.stats.tokens_issued += 1
        return web.json_response(
            {
                "access_token": access,
                "expires_in": int(ttl) if ttl >= 1 else ttl,
                "token_type": "bearer",
                "scope": None,
                "refresh_token": refresh,
            }
        )

    async def token(self, request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "Invalid json message received")
        else:
            body = dict(await request.post())
        if not isinstance(body, dict):
            return _error(400, "Invalid json message received")
        client = self._client_of(request)
        if client is None:
            return _error(401, "Invalid client id or secret")
        grant = body.get("grant_type")
        if grant == "password":
            if not (
                secrets.compare_digest(str(body.get("username", "")), client.username)
                and secrets.compare_digest(str(body.get("password", "")), client.password)
            ):
                return _error(401, "Invalid username or password")
            return self._issue(client)
        if grant == "refresh_token":
            refresh = str(body.get("refresh_token", ""))
            if self._tokens.refresh.get(refresh) != client.client_id:
                return _error(422, "Refresh token is invalid or has expired")
            del self._tokens.refresh[refresh]
            self.stats.refreshes += 1
            return self._issue(client)
        return _error(422, 'Parameter "grant_type" should be "password" or "refresh_token"')

    # -- listings -------------------------------------------------------------------------

    async def list_products(self, request: web.Request) -> web.Response:
        table = self.catalog.products
        by_identifier = request.path.endswith("/products")
        path = "/api/rest/v1/products" if by_identifier else "/api/rest/v1/products-uuid"

        def href(item: dict[str, Any]) -> str:
            return f"{path}/{item['identifier'] if by_identifier else item['uuid']}"

        return self._listing(request, table.keys, table.items, _product_filters, href, path)

    async def list_product_models(self, request: web.Request) -> web.Response:
        table = self.catalog.product_models
        path = "/api/rest/v1/product-models"
        return self._listing(
            request,
            table.keys,
            table.items,
            _model_filters,
            lambda item: f"{path}/{item['code']}",
            path,
        )

    async def list_structure(self, request: web.Request) -> web.Response:
        name = _structure_name(request.path.rsplit("/", 1)[-1])
        structure = self.catalog.structure
        path = f"/api/rest/v1/{name}"
        return self._listing(
            request,
            structure.codes(name),
            structure.items[name],
            lambda search: _structure_filters(name, search, structure.updated_at),
            lambda item: f"{path}/{item['code']}",
            path,
            structure=True,
        )

    def _listing(
        self,
        request: web.Request,
        keys: list[str],
        items: dict[str, dict[str, Any]],
        filters: Callable[[dict[str, Any]], Callable[[dict[str, Any]], bool]],
        href: Callable[[dict[str, Any]], str],
        path: str,
        *,
        structure: bool = False,
    ) -> web.Response:
        """One page of a listing; ``structure``: page pagination only, no 10,000-item cap."""
        q = request.query
        limit = _limit(q.get("limit"))
        pagination = q.get("pagination_type", "page")
        if pagination not in ("page", "search_after"):
            raise ApiError(422, "Pagination type does not exist.")
        if structure and pagination == "search_after":
            raise ApiError(422, "Pagination type is not supported.")
        search = _parse_search(q.get("search"))
        accept = filters(search)
        attributes = set(q["attributes"].split(",")) if q.get("attributes") else None
        origin = f"{request.scheme}://{request.host}"
        base_query = {k: v for k, v in q.items() if k not in ("search_after", "page")}
        base_query["limit"] = str(limit)

        def link(extra: dict[str, str]) -> dict[str, str]:
            return {"href": f"{origin}{path}?{urlencode({**base_query, **extra})}"}

        page_items: list[dict[str, Any]] = []
        body: dict[str, Any]
        if pagination == "search_after":
            cursor = q.get("search_after")
            start = bisect.bisect_right(keys, cursor) if cursor else 0
            last_key = None
            for key in _walk(keys, start):
                item = items[key]
                if accept(item):
                    page_items.append(item)
                    last_key = key
                    if len(page_items) == limit:
                        break
            links = {"self": link({"search_after": cursor} if cursor else {}), "first": link({})}
            if len(page_items) == limit and last_key is not None:
                links["next"] = link({"search_after": last_key})
            body = {"_links": links}
        else:
            page = _positive_int(q.get("page", "1"), "page")
            if not structure and (page - 1) * limit >= MAX_PAGE_ITEMS:
                raise ApiError(
                    422,
                    'You have reached the maximum number of pages you can retrieve with the "page"'
                    " pagination type. Please use the search after pagination type instead",
                )
            matching = [k for k in keys if accept(items[k])]
            chunk = matching[(page - 1) * limit : page * limit]
            page_items = [items[k] for k in chunk]
            links = {"self": link({"page": str(page)}), "first": link({"page": "1"})}
            if page > 1:
                links["previous"] = link({"page": str(page - 1)})
            if len(chunk) == limit:  # Akeneo links a next page after every full one
                links["next"] = link({"page": str(page + 1)})
            body = {"_links": links, "current_page": page}
            if q.get("with_count") == "true":
                body["items_count"] = len(matching)
        if structure:  # small, and edited in place: encoded on every call
            rendered = [json.dumps(_render(item, origin + href(item), None)).encode()
                        for item in page_items]  # fmt: skip
        elif attributes is not None:
            rendered = [
                json.dumps(_render(item, origin + href(item), attributes)).encode()
                for item in page_items
            ]
        else:
            rendered = [self._cached(item, origin + href(item)) for item in page_items]
        head = json.dumps(body).encode()[:-1]  # the page's JSON, left open for the items
        payload = head + b',"_embedded":{"items":[' + b",".join(rendered) + b"]}}"
        return _json_bytes(request, payload)

    def _cached(self, item: dict[str, Any], href: str) -> bytes:
        """An item's JSON with its ``_links``; the item part is encoded once per version."""
        key = str(item.get("uuid") or item.get("code"))
        hit = self._json_cache.get(key)
        if hit is None or hit[0] != item.get("updated"):
            hit = (item.get("updated"), json.dumps(item).encode())
            self._json_cache[key] = hit
        link = b'{"_links":{"self":{"href":' + json.dumps(href).encode() + b"}},"
        return link + hit[1][1:]

    # -- single items ---------------------------------------------------------------------

    async def get_product(self, request: web.Request) -> web.Response:
        key = request.match_info["uuid"]
        item = self.catalog.products.items.get(key)
        if item is None:
            raise ApiError(
                404,
                f'Product "{key}" does not exist or you do not have permission to access it.',
            )
        origin = f"{request.scheme}://{request.host}"
        return web.json_response(_render(item, f"{origin}{request.path}", None))

    async def get_product_by_identifier(self, request: web.Request) -> web.Response:
        identifier = request.match_info["identifier"]
        for item in self.catalog.products.items.values():
            if item["identifier"] == identifier:
                origin = f"{request.scheme}://{request.host}"
                return web.json_response(_render(item, f"{origin}{request.path}", None))
        raise ApiError(
            404,
            f'Product "{identifier}" does not exist or you do not have permission to access it.',
        )

    async def get_structure_item(self, request: web.Request) -> web.Response:
        name = _structure_name(request.path.split("/")[-2])
        code = request.match_info["code"]
        item = self.catalog.structure.items[name].get(code)
        if item is None:
            raise ApiError(404, f'{_STRUCTURE_NOUNS[name]} "{code}" does not exist.')
        origin = f"{request.scheme}://{request.host}"
        return web.json_response(_render(item, f"{origin}{request.path}", None))

    def _select_attribute(self, code: str) -> dict[str, dict[str, Any]]:
        """The options of a select attribute; Akeneo's 404s otherwise (its controller's text)."""
        attribute = self.catalog.structure.items["attributes"].get(code)
        if attribute is None:
            raise ApiError(404, f'Attribute "{code}" does not exist.')
        if attribute["type"] not in SELECT_TYPES:
            raise ApiError(
                404,
                f'Attribute "{code}" does not support options. Only attributes of type '
                f'"{SELECT_TYPES[0]}", "{SELECT_TYPES[1]}" support options.',
            )
        return self.catalog.structure.options.setdefault(code, {})

    async def list_options(self, request: web.Request) -> web.Response:
        """``GET /attributes/{attribute}/options``: page pagination, sorted by code."""
        attribute = request.match_info["attribute"]
        options = self._select_attribute(attribute)
        path = f"/api/rest/v1/attributes/{attribute}/options"
        return self._listing(
            request,
            self.catalog.structure.option_codes(attribute),
            options,
            lambda search: _combine([]),  # the options listing takes no ``search``
            lambda item: f"{path}/{item['code']}",
            path,
            structure=True,
        )

    async def get_option(self, request: web.Request) -> web.Response:
        attribute, code = request.match_info["attribute"], request.match_info["code"]
        option = self._select_attribute(attribute).get(code)
        if option is None:
            raise ApiError(
                404,
                f'Attribute option "{code}" does not exist or is not an option of the attribute '
                f'"{attribute}".',
            )
        origin = f"{request.scheme}://{request.host}"
        return web.json_response(_render(option, f"{origin}{request.path}", None))

    async def get_product_model(self, request: web.Request) -> web.Response:
        key = request.match_info["code"]
        item = self.catalog.product_models.items.get(key)
        if item is None:
            raise ApiError(
                404,
                f'Product model "{key}" does not exist or you do not have permission to access it.',
            )
        origin = f"{request.scheme}://{request.host}"
        return web.json_response(_render(item, f"{origin}{request.path}", None))


# -- pure helpers -------------------------------------------------------------------------


def _json_bytes(request: web.Request, payload: bytes) -> web.Response:
    """A JSON answer, gzipped (fast level) when the client accepts it, as Akeneo's servers do."""
    if len(payload) > 1024 and "gzip" in request.headers.get("Accept-Encoding", ""):
        packer = zlib.compressobj(1, zlib.DEFLATED, 31)
        body = packer.compress(payload) + packer.flush()
        response = web.Response(body=body, content_type="application/json")
        response.headers["Content-Encoding"] = "gzip"
        return response
    return web.Response(body=payload, content_type="application/json")


def _walk(keys: list[str], start: int) -> Iterator[str]:
    for i in range(start, len(keys)):
        yield keys[i]


def _positive_int(raw: str | None, name: str) -> int:
    try:
        value = int(raw or "")
    except ValueError:
        raise ApiError(422, f'"{name}" must be a positive integer.') from None
    if value < 1:
        raise ApiError(422, f'"{name}" must be a positive integer.')
    return value


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    value = _positive_int(raw, "limit")
    if value > MAX_LIMIT:
        raise ApiError(422, f"You cannot request more than {MAX_LIMIT} items.")
    return value


def _parse_search(raw: str | None) -> dict[str, list[dict[str, Any]]]:
    if not raw:
        return {}
    try:
        search = json.loads(raw)
    except ValueError:
        raise ApiError(400, "Search query parameter should be valid JSON.") from None
    if not isinstance(search, dict) or not all(
        isinstance(v, list) and all(isinstance(c, dict) for c in v) for v in search.values()
    ):
        raise ApiError(422, "Structure of filter should be an array of conditions.")
    return search


def _basic(header: str) -> tuple[str, str]:
    """``(client id, secret)`` of a Basic header; empty strings when it does not decode."""
    try:
        pair = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return "", ""
    client_id, _, secret = pair.partition(":")
    return client_id, secret


def _render(item: dict[str, Any], href: str, attributes: set[str] | None) -> dict[str, Any]:
    out = {"_links": {"self": {"href": href}}, **item}
    if attributes is not None and "values" in item:
        out["values"] = {k: v for k, v in item["values"].items() if k in attributes}
    return out


def _unsupported(prop: str, operator: str) -> ApiError:
    return ApiError(
        422,
        f'Filter on property "{prop}" is not supported or does not support operator "{operator}"',
    )


def _date(prop: str, value: Any) -> str:
    """Akeneo's ``YYYY-MM-DD hh:mm:ss`` (UTC) turned into the items' ISO format."""
    if not isinstance(value, str) or not _DATE.match(value):
        raise ApiError(
            422,
            f'Property "{prop}" expects a string with the format "yyyy-mm-dd H:i:s" as data, '
            f'"{value}" given.',
        )
    return value.replace(" ", "T") + "+00:00"


Predicate = Callable[[dict[str, Any]], bool]


def _updated_predicate(condition: dict[str, Any]) -> Predicate:
    operator = condition.get("operator")
    value = condition.get("value")
    if operator == ">":
        bound = _date("updated", value)
        return lambda item: bool(item["updated"] > bound)
    if operator == "<":
        bound = _date("updated", value)
        return lambda item: bool(item["updated"] < bound)
    if operator in ("BETWEEN", "NOT BETWEEN"):
        if not isinstance(value, list) or len(value) != 2:
            raise ApiError(422, 'Property "updated" expects an array with 2 dates as data.')
        low, high = _date("updated", value[0]), _date("updated", value[1])
        inside: Predicate = lambda item: bool(low <= item["updated"] <= high)  # noqa: E731
        return inside if operator == "BETWEEN" else (lambda item: not inside(item))
    if operator == "SINCE LAST N DAYS":
        if not isinstance(value, int) or value < 0:
            raise ApiError(422, 'Property "updated" expects an integer as data.')
        since = (datetime.now(UTC) - timedelta(days=value)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        return lambda item: bool(item["updated"] > since)
    raise _unsupported("updated", str(operator))


def _in_predicate(prop: str, field_name: str, condition: dict[str, Any]) -> Predicate:
    operator = condition.get("operator")
    value = condition.get("value")
    if operator in ("IN", "NOT IN"):
        if not isinstance(value, list):
            raise ApiError(422, f'Property "{prop}" expects an array as data.')
        wanted = {str(v) for v in value}
        if operator == "IN":
            return lambda item: item.get(field_name) in wanted
        return lambda item: item.get(field_name) not in wanted
    if operator in ("=", "!="):
        if operator == "=":
            return lambda item: item.get(field_name) == value
        return lambda item: item.get(field_name) != value
    raise _unsupported(prop, str(operator))


def _list_predicate(prop: str, condition: dict[str, Any]) -> Predicate:
    operator = condition.get("operator")
    value = condition.get("value")
    if operator not in ("IN", "NOT IN") or not isinstance(value, list):
        raise _unsupported(prop, str(operator))
    wanted = set(value)
    if operator == "IN":
        return lambda item: bool(wanted & set(item.get(prop) or []))
    return lambda item: not wanted & set(item.get(prop) or [])


def _combine(predicates: list[Predicate]) -> Predicate:
    if not predicates:
        return lambda item: True
    if len(predicates) == 1:
        return predicates[0]
    return lambda item: all(p(item) for p in predicates)


def _product_filters(search: dict[str, list[dict[str, Any]]]) -> Predicate:
    predicates: list[Predicate] = []
    for prop, conditions in search.items():
        for condition in conditions:
            if prop == "updated":
                predicates.append(_updated_predicate(condition))
            elif prop in ("uuid", "identifier", "family", "parent"):
                predicates.append(_in_predicate(prop, prop, condition))
            elif prop == "categories":
                predicates.append(_list_predicate(prop, condition))
            elif prop == "enabled" and condition.get("operator") in ("=", "!="):
                predicates.append(_in_predicate(prop, prop, condition))
            else:
                raise _unsupported(prop, str(condition.get("operator")))
    return _combine(predicates)


def _model_filters(search: dict[str, list[dict[str, Any]]]) -> Predicate:
    predicates: list[Predicate] = []
    for prop, conditions in search.items():
        for condition in conditions:
            if prop == "updated":
                predicates.append(_updated_predicate(condition))
            elif prop in ("identifier", "code"):
                predicates.append(_in_predicate(prop, "code", condition))
            elif prop in ("family", "parent"):
                predicates.append(_in_predicate(prop, prop, condition))
            elif prop == "categories":
                predicates.append(_list_predicate(prop, condition))
            else:
                raise _unsupported(prop, str(condition.get("operator")))
    return _combine(predicates)


def _structure_name(text: str) -> StructureName:
    if text not in _STRUCTURE_NOUNS:
        raise ApiError(404, "Not found")
    return text


def _structure_filters(
    name: StructureName,
    search: dict[str, list[dict[str, Any]]],
    updated_at: Callable[[StructureName, str], str],
) -> Predicate:
    """Akeneo's filters of these listings: ``code IN`` on all, ``updated >`` (ISO 8601) on all
    three, ``type IN`` on attributes, ``parent =`` and ``is_root =`` on categories."""
    predicates: list[Predicate] = []
    for prop, conditions in search.items():
        for condition in conditions:
            operator, value = condition.get("operator"), condition.get("value")
            if (name, prop, operator) in _STRUCTURE_MATCHES:
                predicates.append(_in_predicate(prop, prop, condition))
            elif name == "categories" and (prop, operator) == ("is_root", "="):
                predicates.append(_is_root(bool(value)))
            elif (prop, operator) == ("updated", ">"):
                predicates.append(_updated_after(name, _iso_date(value), updated_at))
            else:
                raise _unsupported(prop, str(operator))
    return _combine(predicates)


def _is_root(root: bool) -> Predicate:
    return lambda item: (item["parent"] is None) is root


def _updated_after(
    name: StructureName, bound: str, updated_at: Callable[[StructureName, str], str]
) -> Predicate:
    return lambda item: updated_at(name, item["code"]) > bound


def _iso_date(value: Any) -> str:
    """One of the two ISO 8601 forms Akeneo documents, as a UTC date in the items' format."""
    problem = ApiError(
        422, f'Property "updated" expects a string with the ISO 8601 format, "{value}" given.'
    )
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise problem
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # 2021-02-30T...
        raise problem from None
    return akeneo_datetime(parsed)


_STRUCTURE_MATCHES = {
    *((name, "code", "IN") for name in ("categories", "families", "attributes")),
    ("attributes", "type", "IN"),
    ("categories", "parent", "="),
}
_STRUCTURE_NOUNS: dict[StructureName, str] = {
    "categories": "Category",
    "families": "Family",
    "attributes": "Attribute",
}
