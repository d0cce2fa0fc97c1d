"""Async client of the Akeneo PIM REST API, within Akeneo's documented limits.

- OAuth password grant, then refresh-token grant (each refresh brings a new refresh token);
  when a refresh is refused the client logs in again. A ``401`` on a call refreshes once.
- At most 4 calls in flight (Akeneo: 4 per connection), token calls included: by default a
  cap of this process (``LocalLimiter``); a ``CallLimiter`` shared by every process of the
  connection (the worker's ``KvBudget``) makes it 4 for all of them together. A slot is held
  for one HTTP exchange only, never while waiting out a 429 or a backoff.
- A ``_links`` href is followed only on the configured PIM URL's origin (it gets the token).
- Every connection is checked against the platform's address policy
  (``akeneo_connector.addresses``): the PIM's host is resolved at connect time and the
  connection goes to the address that was checked, so a name resolving to a private,
  loopback, link-local or metadata address is refused, also after DNS rebinding. Only
  ``allow_private=True`` (a platform setting, local mode, the test ground) lifts it.
- ``429`` waits for ``Retry-After``; ``408``, ``5xx``, timeouts and disconnects are retried with
  exponential backoff and full jitter; any other ``4xx`` raises ``AkeneoApiError`` carrying
  Akeneo's own message (printable, at most 200 characters). A body that is not Akeneo's JSON
  error (a proxy's HTML page, anything a hostile PIM answers) is never repeated: the error
  says its status, content type and length only. Credentials never reach a log line or an
  exception message.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import logging
import random
import re
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlencode

# aiohttp, not httpx: every component already runs aiohttp (its servers, and nats-py imports
# it), while httpx and httpcore cost an idle worker some 6 MB more (bench/footprint.py).
import aiohttp
from yarl import URL

from akeneo_connector.addresses import RefusedAddress, guarded_connector
from akeneo_connector.records import SecretStr
from akeneo_pim.structure import attribute_option_path

log = logging.getLogger(__name__)

TOKEN_PATH = "/api/oauth/v1/token"
PRODUCTS_UUID_PATH = "/api/rest/v1/products-uuid"
PRODUCTS_PATH = "/api/rest/v1/products"
PRODUCT_MODELS_PATH = "/api/rest/v1/product-models"
MAX_LIMIT = 100
BATCH_SIZE = 100
MAX_RETRY_AFTER = 120.0
MAX_THROTTLED = 50  # consecutive 429s on one call before giving up
MAX_CONCURRENCY = 4  # Akeneo: concurrent calls per connection
OFFSET_PAGES_AHEAD = 4  # ``page``-paginated listings: pages requested before they are read


def retriable(status: int) -> bool:
    """Akeneo's advice: retry 408 and every 5xx (429 is waited out apart, by Retry-After)."""
    return status == 408 or status >= 500


def akeneo_date(value: datetime) -> str:
    """Akeneo's filter date format (``YYYY-MM-DD hh:mm:ss``), in UTC."""
    if value.tzinfo is None:
        raise ValueError("akeneo_date needs an aware datetime")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def search_param(filters: Mapping[str, Any]) -> str:
    """The ``search`` query parameter value (JSON, compact)."""
    return json.dumps(filters, separators=(",", ":"))


class PimCredentials:
    """OAuth credentials of one Akeneo connection; reprs never show the values."""

    __slots__ = FIELDS = ("client_id", "client_secret", "username", "password")
    client_id: SecretStr
    client_secret: SecretStr
    username: SecretStr
    password: SecretStr

    def __init__(
        self,
        *,
        client_id: str | SecretStr,
        client_secret: str | SecretStr,
        username: str | SecretStr,
        password: str | SecretStr,
    ) -> None:
        given = {
            "client_id": client_id,
            "client_secret": client_secret,
            "username": username,
            "password": password,
        }
        for name, value in given.items():
            if not isinstance(value, str | SecretStr):
                raise ValueError(f"{name}: expected a string")
            secret = value if isinstance(value, SecretStr) else SecretStr(value)
            object.__setattr__(self, name, secret)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("PimCredentials is frozen")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PimCredentials) and all(
            getattr(self, f) == getattr(other, f) for f in self.FIELDS
        )

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f) for f in self.FIELDS))

    def __repr__(self) -> str:
        return "PimCredentials(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FIELDS) + ")"

    def __iter__(self) -> Iterator[tuple[str, SecretStr]]:
        """``(name, secret)`` pairs, as a pydantic model iterates."""
        return iter([(f, getattr(self, f)) for f in self.FIELDS])

    @classmethod
    def model_validate(cls, data: Mapping[str, Any]) -> PimCredentials:
        """From a mapping of the four fields (strings), as read from a Secret."""
        missing = [f for f in cls.FIELDS if f not in data]
        if missing:
            raise ValueError(f"PIM credentials lack {', '.join(missing)}")
        return cls(**{f: data[f] for f in cls.FIELDS})

    @classmethod
    def from_dir(cls, path: Path) -> PimCredentials:
        """Read the mounted Secret keys clientId, clientSecret, username, password."""
        files = {
            "client_id": "clientId",
            "client_secret": "clientSecret",
            "username": "username",
            "password": "password",
        }
        values: dict[str, str] = {}
        missing: list[str] = []
        for field, name in files.items():
            file = path / name
            if not file.is_file():
                missing.append(name)
                continue
            values[field] = file.read_text().strip()
        if missing:
            raise ValueError(f"PIM credentials directory {path} lacks {', '.join(missing)}")
        return cls(**values)


class AkeneoApiError(Exception):
    """An Akeneo call failed for good. ``message`` is Akeneo's own text (or ours for transport)."""

    def __init__(self, status: int, message: str, *, path: str = "") -> None:
        self.status = status
        self.message = message
        self.path = path
        where = f" on {path}" if path else ""
        super().__init__(f"Akeneo API error {status}{where}: {message}")


class AkeneoAuthError(AkeneoApiError):
    """The token endpoint refused the credentials (wrong client id/secret/username/password)."""


class CallSlotUnavailable(AkeneoApiError):
    """No call slot could be had in time (the connection's shared budget stayed full, or its
    store did not answer): nothing was sent to the PIM."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


class CallLimiter(Protocol):
    """Grants the right to have one call in flight to the PIM.

    ``slot()`` is held around one HTTP exchange; entering it may wait, and raises
    ``CallSlotUnavailable`` when it cannot be had within the limiter's bound.
    """

    def slot(self) -> AbstractAsyncContextManager[object]: ...


class LocalLimiter:
    """The cap of one process: right when it is the only one calling the PIM."""

    def __init__(self, limit: int = MAX_CONCURRENCY) -> None:
        self._slots = asyncio.Semaphore(limit)

    def slot(self) -> AbstractAsyncContextManager[object]:
        return self._slots


@dataclass
class ClientStats:
    calls: int = 0  # HTTP requests sent, token requests included
    pages: int = 0  # list pages received by iter_pages
    retries: int = 0  # re-sent requests after 408/5xx/timeouts/disconnects
    throttled_429: int = 0
    token_requests: int = 0
    logins: int = 0
    refreshes: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


@dataclass(frozen=True)
class _Request:
    method: str
    url: str  # a path on the PIM URL, or an absolute (same-origin) href; query encoded
    headers: dict[str, str]
    json: dict[str, str] | None = None


@dataclass(frozen=True)
class _Answer:
    """An HTTP answer, its body read whole (an Akeneo page is at most 100 items)."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    path: str

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body decoded; ``ValueError`` when it is not JSON."""
        return json.loads(self.content)


@dataclass
class _Token:
    access: str
    refresh: str
    expires_at: float  # monotonic


def _retry_after(response: _Answer) -> float:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return 1.0
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return 1.0
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


_MAX_MESSAGE = 200
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\uffff]+|[\u2028\u2029\u200b-\u200f\u202a-\u202e]+")


def printable(text: str, limit: int = _MAX_MESSAGE) -> str:
    """``text`` on one line without control characters, at most ``limit`` characters: what a
    PIM says may reach a log line or a status, never as raw bytes."""
    flat = _UNPRINTABLE.sub(" ", text[: limit * 4]).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def _error_message(response: _Answer) -> str:
    """Akeneo's own message from a JSON error body; for any other body only its status,
    content type and length (an HTML error page or a hostile PIM's answer is not logged)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message") or body.get("error_description") or body.get("error")
        if isinstance(message, str) and printable(message):
            return printable(message)
    media = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    kind = printable(media, 60) if re.fullmatch(r"[\w.+-]+/[\w.+-]+", media) else "no type"
    return f"{response.status_code} answer ({kind}, {len(response.content)} bytes)"


_NEXT_HREF = re.compile(r'"next"\s*:\s*\{\s*"href"\s*:\s*"((?:[^"\\]|\\.)*)"')
_PEEK_CHARS = 4096


def _peek_next_href(text: str) -> str | None:
    """The page's ``_links.next.href`` read from the head of the body, before decoding it all.

    A guess (checked against the decoded page): ``_links`` comes first in Akeneo's pages.
    """
    head = text[:_PEEK_CHARS]
    embedded = head.find('"_embedded"')
    match = _NEXT_HREF.search(head, 0, embedded if embedded >= 0 else len(head))
    if match is None:
        return None
    try:
        href = json.loads(f'"{match.group(1)}"')
    except ValueError:
        return None
    return href if isinstance(href, str) else None


def _items(page: Any) -> list[dict[str, Any]]:
    embedded = page.get("_embedded", {}) if isinstance(page, dict) else {}
    return list(embedded.get("items", []))


def _next_href(page: Any) -> str | None:
    link = page.get("_links", {}).get("next") if isinstance(page, dict) else None
    href = link.get("href") if isinstance(link, dict) else None
    return href if isinstance(href, str) else None


def _decode(response: _Answer) -> Any:
    try:
        return response.json()
    except ValueError:
        raise AkeneoApiError(
            response.status_code, "answer is not JSON", path=response.path
        ) from None


def _ssl_context(verify: bool | str | ssl.SSLContext) -> ssl.SSLContext | bool:
    """``verify`` as aiohttp takes it: the given context or CA bundle, else the same trust
    roots as before (certifi's bundle, which httpx used), or no verification (``False``)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        return False
    if isinstance(verify, str):  # a CA bundle path
        return ssl.create_default_context(cafile=verify)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class AkeneoRestClient:
    """One connection's client: share it across tasks; use as an async context manager."""

    def __init__(
        self,
        base_url: str,
        credentials: PimCredentials,
        *,
        max_concurrency: int = MAX_CONCURRENCY,
        limiter: CallLimiter | None = None,
        timeout: float = 10.0,
        max_tries: int = 6,
        verify: bool | str | ssl.SSLContext = True,
        backoff_base: float = 0.25,
        backoff_max: float = 10.0,
        allow_private: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._max_tries = max(1, max_tries)
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._limiter: CallLimiter = limiter or LocalLimiter(max_concurrency)
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self._ssl = _ssl_context(verify)
        self._limit = max_concurrency + 1
        self._allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self.stats = ClientStats()

    @property
    def _http(self) -> aiohttp.ClientSession:
        """The connection pool, made at first use (aiohttp wants a running loop): every
        connection on the address guard's resolver and socket checks unless private
        addresses are allowed."""
        if self._session is None:
            if self._allow_private:
                connector = aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl)
            else:
                connector = guarded_connector("PIM", limit=self._limit, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                # No proxy (nor .netrc) from the environment: a proxy would connect in our
                # stead and hide what the PIM's name resolves to (tests/security).
                trust_env=self._allow_private,
                headers={"Accept": "application/json"},
            )
        return self._session

    async def __aenter__(self) -> AkeneoRestClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- transport ------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self._backoff_max, self._backoff_base * 2**attempt))

    def _url(self, url: str) -> URL:
        """Absolute, its query sent as encoded (``urlencode``'s ``+`` stays a space)."""
        target = URL(url, encoded=True)
        return target if target.is_absolute() else URL(self.base_url + url, encoded=True)

    async def _exchange(self, request: _Request) -> _Answer:
        async with self._http.request(
            request.method,
            self._url(request.url),
            headers=request.headers,
            json=request.json,
            allow_redirects=False,
        ) as resp:
            return _Answer(resp.status, resp.headers, await resp.read(), resp.url.path)

    async def _send(self, request: _Request) -> _Answer:
        """Send one request within the concurrency cap; retry what Akeneo says to retry."""
        attempt = 0
        throttled = 0
        failure = ""
        path = self._url(request.url).path
        while True:
            async with self._limiter.slot():
                self.stats.calls += 1
                self.stats.in_flight += 1
                self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
                try:
                    response: _Answer | None = await self._exchange(request)
                except RefusedAddress as exc:
                    raise AkeneoApiError(0, str(exc), path=path) from None
                except aiohttp.InvalidURL:  # a host aiohttp cannot parse (2130706433)
                    host = self._url(request.url).raw_host or ""
                    raise AkeneoApiError(0, str(RefusedAddress("PIM", host)), path=path) from None
                except (TimeoutError, aiohttp.ClientError) as exc:
                    response = None
                    failure = f"{type(exc).__name__}"
                finally:
                    self.stats.in_flight -= 1
            if response is not None and response.status_code == 429:
                self.stats.throttled_429 += 1
                throttled += 1
                if throttled > MAX_THROTTLED:
                    raise AkeneoApiError(429, _error_message(response), path=path)
                delay = _retry_after(response)
                log.info("akeneo throttled", extra={"path": path, "retry_after": delay})
                await asyncio.sleep(delay)
                continue
            if response is not None and not retriable(response.status_code):
                return response
            attempt += 1
            if attempt >= self._max_tries:
                if response is not None:
                    raise AkeneoApiError(response.status_code, _error_message(response), path=path)
                raise AkeneoApiError(0, f"no answer from the PIM ({failure})", path=path)
            self.stats.retries += 1
            reason = failure if response is None else f"status {response.status_code}"
            log.info("akeneo call retried", extra={"path": path, "reason": reason})
            await asyncio.sleep(self._backoff(attempt))

    # -- authentication ---------------------------------------------------------------------

    async def _token_call(self, body: dict[str, str]) -> _Answer:
        self.stats.token_requests += 1
        pair = (
            f"{self._credentials.client_id.get_secret_value()}:"
            f"{self._credentials.client_secret.get_secret_value()}"
        )
        basic = "Basic " + base64.b64encode(pair.encode()).decode()
        return await self._send(_Request("POST", TOKEN_PATH, {"Authorization": basic}, body))

    def _store_token(self, response: _Answer) -> _Token:
        body = response.json()
        try:
            expires_in = float(body.get("expires_in", 3600))
            token = _Token(
                access=str(body["access_token"]),
                refresh=str(body.get("refresh_token", "")),
                # renew a little before the PIM's expiry (10 % of the lifetime, at most 60 s)
                expires_at=time.monotonic() + expires_in - min(60.0, expires_in / 10),
            )
        except (KeyError, TypeError, ValueError):
            raise AkeneoApiError(response.status_code, "malformed token answer") from None
        self._token = token
        return token

    async def _login(self) -> _Token:
        self.stats.logins += 1
        response = await self._token_call(
            {
                "grant_type": "password",
                "username": self._credentials.username.get_secret_value(),
                "password": self._credentials.password.get_secret_value(),
            }
        )
        if response.status_code != 200:
            raise AkeneoAuthError(
                response.status_code,
                f"authentication failed: {_error_message(response)}",
                path=TOKEN_PATH,
            )
        return self._store_token(response)

    async def _refresh(self, token: _Token) -> _Token:
        if not token.refresh:
            return await self._login()
        self.stats.refreshes += 1
        response = await self._token_call(
            {"grant_type": "refresh_token", "refresh_token": token.refresh}
        )
        if response.status_code != 200:
            log.info("akeneo refresh refused, logging in again")
            return await self._login()
        return self._store_token(response)

    async def _access_token(self, stale: str | None = None) -> str:
        """A valid access token; ``stale`` is one the PIM just refused (refresh it once)."""
        async with self._token_lock:
            token = self._token
            if token is None:
                token = await self._login()
            elif token.access == stale or time.monotonic() >= token.expires_at:
                token = await self._refresh(token)
            return token.access

    async def access_token(self, stale: str | None = None) -> str:
        """A valid PIM access token, for other Akeneo services that take one (the Event
        Platform's ``X-PIM-TOKEN``); ``stale``: one such a service just refused (renewed
        once). Obtained like every call of this client: its credentials, its address guard."""
        return await self._access_token(stale)

    def _same_origin(self, url: str) -> None:
        """Refuse an absolute URL (a ``_links`` href) off the configured PIM's origin: it
        would be sent the access token. Akeneo's own samples link to demo.akeneo.com."""
        target = URL(url, encoded=True)
        if not target.is_absolute():
            return
        base = URL(self.base_url)
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            raise AkeneoApiError(
                0,
                f"link to {printable(target.scheme, 10)}://{printable(target.host or '', 100)} is "
                f"outside the configured PIM URL {base.scheme}://{base.host}; not followed",
                path=printable(target.path, 100),
            )

    async def _authorized(self, method: str, url: str) -> _Answer:
        self._same_origin(url)
        access = await self._access_token()
        for _ in range(2):
            request = _Request(method, url, {"Authorization": f"Bearer {access}"})
            response = await self._send(request)
            if response.status_code != 401:
                return response
            access = await self._access_token(stale=access)
        return response

    async def _get_ok(self, url: str) -> _Answer:
        response = await self._authorized("GET", url)
        if response.status_code >= 400:
            raise AkeneoApiError(response.status_code, _error_message(response), path=response.path)
        return response

    async def get_json(self, url: str) -> Any:
        """GET a path (or an absolute ``_links`` href) and decode it; raise on errors."""
        return _decode(await self._get_ok(url))

    async def get_item(self, path: str) -> dict[str, Any] | None:
        """One resource without its ``_links``, or None when the PIM answers 404."""
        response = await self._authorized("GET", path)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise AkeneoApiError(response.status_code, _error_message(response), path=response.path)
        item = _decode(response)
        if not isinstance(item, dict):
            raise AkeneoApiError(response.status_code, "answer is not an object", path=path)
        return {k: v for k, v in item.items() if k != "_links"}

    async def get_attribute_option(self, attribute: str, code: str) -> dict[str, Any] | None:
        """``/attributes/{attribute}/options/{code}``, or None when either does not exist.

        One call per option: the options listing takes no ``search`` (no ``code IN``), so
        reading a few options by listing would cost a page per 100 options of the attribute.
        """
        return await self.get_item(attribute_option_path(attribute, code))

    # -- reading ----------------------------------------------------------------------------

    async def iter_pages(
        self, path: str, params: Mapping[str, str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield each page's items, following ``_links.next.href`` (``search_after``)."""
        query = {"pagination_type": "search_after", "limit": str(MAX_LIMIT), **params}
        url: str | None = f"{path}?{urlencode(query)}"
        ahead: asyncio.Task[_Answer] | None = None
        try:
            while url is not None:
                response = await (ahead or self._get_ok(url))
                ahead = None
                # One cursor is sequential; request the next page as soon as its link is
                # known, so decoding this page overlaps the PIM's work on the next one.
                peeked = _peek_next_href(response.text)
                if peeked is not None:
                    ahead = asyncio.create_task(self._get_ok(peeked))
                    await asyncio.sleep(0)  # let it put the request on the wire first
                page = _decode(response)
                self.stats.pages += 1
                next_link = page.get("_links", {}).get("next") if isinstance(page, dict) else None
                url = next_link.get("href") if isinstance(next_link, dict) else None
                if ahead is not None and url != peeked:
                    ahead.cancel()  # the cheap peek was wrong: follow the real link
                    ahead = None
                embedded = page.get("_embedded", {}) if isinstance(page, dict) else {}
                yield list(embedded.get("items", []))
        finally:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(BaseException):
                    await ahead

    async def iter_offset_pages(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Yield each page of a ``page``-paginated listing (the catalog structure's), in order.

        The first page asks ``with_count=true``; with the total known, the next pages are
        requested ``OFFSET_PAGES_AHEAD`` at a time instead of one after the other: ceil(n /
        100) calls, where following ``next`` costs one more when n is a multiple of 100
        (Akeneo links a next page after every full one). The count is the PIM's word only:
        at most that many pages are asked ahead, and a short page ends the listing, so a
        PIM announcing ten million items costs a few calls past its real end, not a task per
        announced page. An answer without ``items_count`` is paged by following
        ``_links.next.href``.
        """
        query = {**(params or {}), "limit": str(MAX_LIMIT), "with_count": "true"}
        first = await self.get_json(f"{path}?{urlencode({**query, 'page': '1'})}")
        self.stats.pages += 1
        yield _items(first)
        count = first.get("items_count") if isinstance(first, dict) else None
        if not isinstance(count, int):
            url = _next_href(first)
            while url is not None:
                page = await self.get_json(url)
                self.stats.pages += 1
                yield _items(page)
                url = _next_href(page)
            return

        async def one(number: int) -> list[dict[str, Any]]:
            page = await self.get_json(f"{path}?{urlencode({**query, 'page': str(number)})}")
            self.stats.pages += 1
            return _items(page)

        last = -(-count // MAX_LIMIT)
        upcoming = iter(range(2, last + 1))
        window: collections.deque[asyncio.Task[list[dict[str, Any]]]] = collections.deque()

        def ask_ahead() -> None:
            while len(window) < OFFSET_PAGES_AHEAD:
                number = next(upcoming, None)
                if number is None:
                    return
                window.append(asyncio.create_task(one(number)))

        try:
            ask_ahead()
            while window:
                items = await window.popleft()
                yield items
                if len(items) < MAX_LIMIT:
                    break  # the real end, whatever the count announced
                ask_ahead()
        finally:
            for task in window:
                task.cancel()
            await asyncio.gather(*window, return_exceptions=True)

    async def get_by_codes(self, path: str, codes: Sequence[str]) -> list[dict[str, Any]]:
        """Items of a structure listing with these codes (missing ones absent), 100 per call."""
        return await self._batched(path, "code", codes)

    async def _batched(self, path: str, field: str, keys: Sequence[str]) -> list[dict[str, Any]]:
        unique = list(dict.fromkeys(keys))
        batches = [unique[i : i + BATCH_SIZE] for i in range(0, len(unique), BATCH_SIZE)]

        async def one(batch: list[str]) -> list[dict[str, Any]]:
            # A batch never holds more than one page (limit 100): no ``next`` to follow.
            search = search_param({field: [{"operator": "IN", "value": batch}]})
            query = {"search": search, "limit": str(MAX_LIMIT)}
            page = await self.get_json(f"{path}?{urlencode(query)}")
            self.stats.pages += 1
            embedded = page.get("_embedded", {}) if isinstance(page, dict) else {}
            return list(embedded.get("items", []))

        results = await asyncio.gather(*(one(b) for b in batches))
        return [item for batch in results for item in batch]

    async def get_products_by_uuid(self, uuids: Sequence[str]) -> list[dict[str, Any]]:
        """Products with these uuids (missing ones are simply absent), 100 per call."""
        return await self._batched(PRODUCTS_UUID_PATH, "uuid", uuids)

    async def get_product_models_by_code(self, codes: Sequence[str]) -> list[dict[str, Any]]:
        """Product models with these codes (missing ones are simply absent), 100 per call."""
        return await self._batched(PRODUCT_MODELS_PATH, "identifier", codes)


async def fetch_pim_token(
    base_url: str,
    credentials: PimCredentials,
    *,
    verify: bool | str | ssl.SSLContext = True,
    allow_private: bool = False,
    timeout: float = 10.0,
) -> str:
    """One fresh access token of the connection (a password grant through
    ``AkeneoRestClient``, so the PIM address guard holds unless ``allow_private``).

    Raises ``AkeneoAuthError`` when the PIM refuses the credentials, ``AkeneoApiError`` when
    it cannot be reached; neither message carries a credential.
    """
    async with AkeneoRestClient(
        base_url,
        credentials,
        verify=verify,
        allow_private=allow_private,
        timeout=timeout,
        max_tries=3,
    ) as client:
        return await client.access_token()
