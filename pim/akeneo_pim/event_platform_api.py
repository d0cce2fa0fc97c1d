"""Async client of Akeneo's Event Platform management API (subscribers and subscriptions).

The API, as Akeneo publishes it (https://api.akeneo.com/event-platform/getting-started.html,
concepts.html, notification-webhooks.html, logs.html, limitations.html, and the OpenAPI
document content/swagger/aep/public-oas.yml of akeneo/pim-api-docs at 039db85b4b79, its
last version in that repository; the paths have been plural since, as getting-started.html and
logs.html show):

- base ``https://event.prd.sdk.akeneo.cloud/api/v1``; every call carries ``X-PIM-URL`` (the
  PIM that issued the token), ``X-PIM-TOKEN`` (a PIM API access token) and
  ``X-PIM-CLIENT-ID`` (the connection or App it was issued to);
- ``/subscribers`` (POST 201, GET), ``/subscribers/{id}`` (GET, PATCH, DELETE answering the
  deleted subscriber), ``/subscribers/{id}/subscriptions`` (POST 201, GET: active and
  suspended ones), ``.../subscriptions/{id}`` (GET, PATCH, DELETE answering the deleted
  subscription), ``.../{id}/suspend`` and ``.../{id}/resume`` (POST, 202 with the
  subscription);
- errors ``{"errors": [{"message": ...}]}`` with 400, 401 ("tenant context not found or
  invalid credentials"), 403 ("Not allowed"), 404, 409 ("Subscription is deleted"; on
  creation: a maximum reached, 20 subscribers per PIM and 20 subscriptions per subscriber);
- secrets (``config.secret``, header values) come back ``***redacted***``,
  ``notification_webhook_secret`` never.

What this client adds: TLS verified (a context or CA file for the test ground; a cleartext
base URL only on loopback), redirects not followed, each exchange bounded in time
(``timeout``) and size (``MAX_ANSWER`` bytes), answers parsed defensively (an odd or hostile
one is ``EventPlatformRejected``, never a crash), ids checked before they reach a URL, secrets
and filters checked before sending (the OAS's 16 to 256 characters, the grammar of
available-filters.html), a ``401`` retried once with a renewed token, a DELETE answered 404
taken as done. Every failure is an ``EventPlatformError`` whose ``reason`` is a Kubernetes
condition reason: 401/403 Unauthorized, 404 NotFound, 409 on creation LimitReached, other 4xx
(a 409 elsewhere too) Rejected, 408/425/429/5xx, timeouts and connection or TLS failures
Unavailable (``retryable``). Its message is the API's own (printable, at most 200 characters)
with the token and every secret this client sent blanked.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import httpx

from akeneo_connector.event_filters import MAX_LENGTH as FILTER_MAX
from akeneo_connector.event_filters import FilterError, parse_filter
from akeneo_pim.rest import AkeneoApiError, AkeneoAuthError, printable

DEFAULT_BASE_URL: Final = "https://event.prd.sdk.akeneo.cloud/api/v1"
MAX_ANSWER: Final = 1024 * 1024  # bytes read from one answer at most
SECRET_MIN, SECRET_MAX = 16, 256  # config.secret.primary/secondary, notification secret

UNAUTHORIZED: Final = "EventPlatformUnauthorized"
NOT_FOUND: Final = "EventPlatformNotFound"
LIMIT_REACHED: Final = "EventPlatformLimitReached"
REJECTED: Final = "EventPlatformRejected"
UNAVAILABLE: Final = "EventPlatformUnavailable"

SUBSCRIPTION_STATUSES: Final = frozenset({"active", "suspended", "revoked", "deleted"})
SUBSCRIBER_STATUSES: Final = frozenset({"active", "revoked", "deleted"})
CHANNELS: Final = frozenset({"email", "webhook"})
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_MASK = "***"

Token = Callable[[], Awaitable[str]]
RenewToken = Callable[[str], Awaitable[str]]


class EventPlatformError(Exception):
    """A management API call failed. ``reason``: a condition reason (the module constants);
    ``status``: the HTTP status, None when there was no answer; ``retryable``: worth trying
    again later as is. The message never holds a secret."""

    def __init__(self, reason: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.retryable = reason == UNAVAILABLE


@dataclass(frozen=True)
class Contact:
    """A subscriber's contact; the webhook secret is sent, never read back (it is not
    returned: notification-webhooks.html)."""

    technical_email: str
    notification_channels: tuple[str, ...] = ("email",)
    notification_webhook_url: str | None = None
    notification_webhook_secret: str | None = None

    def __repr__(self) -> str:
        hidden = None if self.notification_webhook_secret is None else _MASK
        return (
            f"Contact(technical_email={self.technical_email!r}, "
            f"notification_channels={self.notification_channels!r}, "
            f"notification_webhook_url={self.notification_webhook_url!r}, "
            f"notification_webhook_secret={hidden!r})"
        )


@dataclass(frozen=True)
class Subscriber:
    id: str
    name: str
    status: str  # active | revoked | deleted
    contact: Contact
    subject: str | None = None  # the PIM URL (X-PIM-URL at creation)
    created_at: str | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class Subscription:
    id: str
    subscriber_id: str
    status: str  # active | suspended | revoked | deleted
    events: tuple[str, ...]
    destination: str  # config.url of an https subscription
    filters: str | None  # the API's ``filter``: one expression (available-filters.html)
    send_product_identifier: bool | None
    type: str = "https"
    source: str = "pim"
    subject: str | None = None
    secondary_secret_set: bool = False  # the answer shows a (redacted) secondary secret
    header_names: tuple[str, ...] = ()  # custom delivery headers (values are redacted)
    created_at: str | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class SubscriptionRequest:
    """What the caller wants an https subscription to be; secrets 16 to 256 characters."""

    events: tuple[str, ...]
    destination: str
    primary_secret: str
    secondary_secret: str | None = None
    filters: str | None = None
    send_product_identifier: bool | None = None

    def __repr__(self) -> str:
        return (
            f"SubscriptionRequest(events={self.events!r}, destination={self.destination!r}, "
            f"primary_secret='***', secondary_secret="
            f"{None if self.secondary_secret is None else _MASK!r}, filters={self.filters!r}, "
            f"send_product_identifier={self.send_product_identifier!r})"
        )

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.primary_secret, self.secondary_secret) if s)


# -- parsing (pure) -------------------------------------------------------------------------


def _rejected(message: str, status: int | None = None) -> EventPlatformError:
    return EventPlatformError(REJECTED, message, status=status)


def _str(value: Any, what: str, *, limit: int = 2048) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise _rejected(f"unexpected answer: {what} is not a string of at most {limit} characters")
    return value


def _opt_str(value: Any, what: str, *, limit: int = 2048) -> str | None:
    return None if value is None else _str(value, what, limit=limit)


def _id(value: Any, what: str) -> str:
    text = _str(value, what, limit=128)
    if not _ID.fullmatch(text):
        raise _rejected(f"unexpected answer: {what} is not an identifier")
    return text


def _strings(value: Any, what: str, *, most: int = 200) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > most:
        raise _rejected(f"unexpected answer: {what} is not a list of at most {most} strings")
    return tuple(_str(v, what, limit=256) for v in value)


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _rejected(f"unexpected answer: {what} is not an object")
    return value


def _stamp(body: Mapping[str, Any], snake: str, camel: str) -> str | None:
    """getting-started.html and logs.html answer ``created_at``; the OAS says ``createdAt``."""
    return _opt_str(body.get(snake, body.get(camel)), snake, limit=64)


def parse_subscriber(value: Any) -> Subscriber:
    body = _object(value, "the subscriber")
    status = _str(body.get("status"), "status", limit=32)
    if status not in SUBSCRIBER_STATUSES:
        raise _rejected(f"unexpected answer: subscriber status {printable(status, 32)!r}")
    contact = _object(body.get("contact", {}), "contact")
    channels = contact.get("notification_channels")
    return Subscriber(
        id=_id(body.get("id"), "id"),
        name=_str(body.get("name", ""), "name", limit=1024),
        status=status,
        contact=Contact(
            technical_email=_str(contact.get("technical_email", ""), "technical_email", limit=320),
            notification_channels=(
                ("email",) if channels is None else _strings(channels, "notification_channels")
            ),
            notification_webhook_url=_opt_str(
                contact.get("notification_webhook_url"), "notification_webhook_url"
            ),
        ),
        subject=_opt_str(body.get("subject"), "subject"),
        created_at=_stamp(body, "created_at", "createdAt"),
        updated_at=_stamp(body, "updated_at", "updatedAt"),
    )


def parse_subscription(value: Any) -> Subscription:
    body = _object(value, "the subscription")
    status = _str(body.get("status"), "status", limit=32)
    if status not in SUBSCRIPTION_STATUSES:
        raise _rejected(f"unexpected answer: subscription status {printable(status, 32)!r}")
    config = _object(body.get("config", {}), "config")
    secret = config.get("secret")
    secret = _object(secret, "config.secret") if secret is not None else {}
    headers = config.get("headers")
    headers = _object(headers, "config.headers") if headers is not None else {}
    if len(headers) > 64:
        raise _rejected("unexpected answer: too many config.headers")
    spi = body.get("send_product_identifier")
    if spi is not None and not isinstance(spi, bool):
        raise _rejected("unexpected answer: send_product_identifier is not a boolean")
    return Subscription(
        id=_id(body.get("id"), "id"),
        subscriber_id=_id(body.get("subscriber_id"), "subscriber_id"),
        status=status,
        events=_strings(body.get("events", []), "events"),
        destination=_str(config.get("url", ""), "config.url"),
        filters=_opt_str(body.get("filter"), "filter", limit=FILTER_MAX * 4),
        send_product_identifier=spi,
        type=_str(body.get("type", "https"), "type", limit=32),
        source=_str(body.get("source", "pim"), "source", limit=64),
        subject=_opt_str(body.get("subject"), "subject"),
        secondary_secret_set=bool(secret.get("secondary")),
        header_names=tuple(_str(k, "config.headers", limit=128) for k in headers),
        created_at=_stamp(body, "created_at", "createdAt"),
        updated_at=_stamp(body, "updated_at", "updatedAt"),
    )


def _list(value: Any, parse: Callable[[Any], Any], what: str) -> list[Any]:
    if not isinstance(value, list) or len(value) > 1000:
        raise _rejected(f"unexpected answer: {what} is not a list")
    return [parse(v) for v in value]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (and every run of 16+ characters of one) blanked, then made
    printable and at most 200 characters."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, _MASK)
        if len(secret) > 16:  # a message may quote a part of it (truncated, say)
            for start in range(0, len(secret) - 15):
                text = text.replace(secret[start : start + 16], _MASK)
    return printable(text)


def error_message(status: int, raw: bytes, content_type: str) -> str:
    """The API's own message: ``errors[].message`` (the OAS's HTTPError), else ``message`` or
    ``error``; for any other body only its status, type and size."""
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            body = None
    messages: list[str] = []
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            for item in errors[:5]:
                text = item.get("message") if isinstance(item, dict) else None
                if isinstance(text, str) and text.strip():
                    messages.append(text[:400])
        for key in ("message", "error", "detail"):
            text = body.get(key)
            if not messages and isinstance(text, str) and text.strip():
                messages.append(text[:400])
    if messages:
        return "; ".join(messages)
    media = content_type.split(";", 1)[0].strip().lower()
    kind = media if re.fullmatch(r"[\w.+-]{1,40}/[\w.+-]{1,60}", media) else "no type"
    return f"{status} answer ({kind}, {len(raw)} bytes)"


def classify(status: int, *, creating: bool) -> str:
    """A condition reason for an HTTP error status."""
    if status in (401, 403):
        return UNAUTHORIZED
    if status == 404:
        return NOT_FOUND
    if status == 409 and creating:
        return LIMIT_REACHED  # the OAS's 409 on creation: the maximum was reached
    if status in (408, 425, 429) or status >= 500:
        return UNAVAILABLE
    return REJECTED


def _check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise _rejected(f"{what} is not an identifier")
    return value


def _check_secret(value: str | None, what: str) -> None:
    if value is not None and not SECRET_MIN <= len(value) <= SECRET_MAX:
        raise _rejected(f"{what} must be {SECRET_MIN} to {SECRET_MAX} characters")


def subscriber_body(name: str | None, contact: Contact | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if contact is not None:
        unknown = set(contact.notification_channels) - CHANNELS
        if unknown:
            raise _rejected("notification_channels accepts email and webhook")
        _check_secret(contact.notification_webhook_secret, "notification_webhook_secret")
        out: dict[str, Any] = {
            "technical_email": contact.technical_email,
            "notification_channels": list(contact.notification_channels),
        }
        if contact.notification_webhook_url is not None:
            out["notification_webhook_url"] = contact.notification_webhook_url
        if contact.notification_webhook_secret is not None:
            out["notification_webhook_secret"] = contact.notification_webhook_secret
        body["contact"] = out
    return body


def subscription_body(pim_url: str, request: SubscriptionRequest) -> dict[str, Any]:
    """The https subscription payload of concepts.html; ``filter`` always sent (null clears
    it) so an update says everything the caller wants. A filter outside the grammar of
    available-filters.html is refused here, before any call."""
    _check_secret(request.primary_secret, "the primary secret")
    _check_secret(request.secondary_secret, "the secondary secret")
    if request.filters is not None:
        try:
            parse_filter(request.filters)
        except FilterError as exc:
            raise _rejected(f"filter: {exc}") from None
    secret = {"primary": request.primary_secret}
    if request.secondary_secret:
        secret["secondary"] = request.secondary_secret
    body: dict[str, Any] = {
        "source": "pim",
        "subject": pim_url,
        "events": list(request.events),
        "type": "https",
        "config": {"url": request.destination, "secret": secret},
        "filter": request.filters,
    }
    if request.send_product_identifier is not None:
        body["send_product_identifier"] = request.send_product_identifier
    return body


# -- the client -------------------------------------------------------------------------------


class EventPlatformApi:
    """The management API as one PIM connection (``pim_url``, ``client_id``) sees it.

    ``token`` gives a PIM access token; after a ``401`` the client asks for a new one once
    (``renew_token(refused)`` when given, else ``token()`` again) and retries once. With an
    ``AkeneoRestClient``: ``token=rest.access_token, renew_token=rest.access_token``; or
    ``token=lambda: fetch_pim_token(...)`` (a fresh login each time).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        pim_url: str,
        client_id: str,
        token: Token,
        renew_token: RenewToken | None = None,
        verify: ssl.SSLContext | str | bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        target = httpx.URL(self.base_url)
        if target.scheme != "https" and not (
            target.scheme == "http" and target.host in ("127.0.0.1", "localhost", "::1")
        ):
            # the PIM token is a credential: never in clear off this host
            raise ValueError("the Event Platform base URL must be https://")
        self.pim_url = pim_url
        self.client_id = client_id
        self._token = token
        self._renew = renew_token
        self._timeout = timeout
        # every secret this client sent, blanked in any later message too (a broken API may
        # quote one in an answer to another call); bounded
        self._sent: collections.deque[str] = collections.deque(maxlen=64)
        if isinstance(verify, str):  # a CA bundle path
            verify = ssl.create_default_context(cafile=verify)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            verify=verify,
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"Accept": "application/json"},
        )

    async def __aenter__(self) -> EventPlatformApi:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- subscribers ----------------------------------------------------------------------

    async def list_subscribers(self) -> list[Subscriber]:
        body = await self._call("GET", "/subscribers")
        return _list(body, parse_subscriber, "the subscribers")

    async def get_subscriber(self, subscriber_id: str) -> Subscriber:
        path = self._subscriber_path(subscriber_id)
        return parse_subscriber(await self._call("GET", path))

    async def create_subscriber(self, name: str, contact: Contact) -> Subscriber:
        body = subscriber_body(name, contact)
        secrets = _contact_secrets(contact)
        answer = await self._call("POST", "/subscribers", body, secrets=secrets, creating=True)
        return parse_subscriber(answer)

    async def update_subscriber(
        self, subscriber_id: str, *, name: str | None = None, contact: Contact | None = None
    ) -> Subscriber:
        path = self._subscriber_path(subscriber_id)
        body = subscriber_body(name, contact)
        answer = await self._call("PATCH", path, body, secrets=_contact_secrets(contact))
        return parse_subscriber(answer)

    async def delete_subscriber(self, subscriber_id: str) -> None:
        """Delete it (its subscriptions go with it); already gone (404) is not an error."""
        try:
            await self._call("DELETE", self._subscriber_path(subscriber_id), expect_body=False)
        except EventPlatformError as exc:
            if exc.reason != NOT_FOUND:
                raise

    # -- subscriptions ----------------------------------------------------------------------

    async def list_subscriptions(self, subscriber_id: str) -> list[Subscription]:
        path = self._subscriber_path(subscriber_id) + "/subscriptions"
        return _list(await self._call("GET", path), parse_subscription, "the subscriptions")

    async def get_subscription(self, subscriber_id: str, subscription_id: str) -> Subscription:
        path = self._subscription_path(subscriber_id, subscription_id)
        return parse_subscription(await self._call("GET", path))

    async def create_subscription(
        self, subscriber_id: str, request: SubscriptionRequest
    ) -> Subscription:
        path = self._subscriber_path(subscriber_id) + "/subscriptions"
        body = subscription_body(self.pim_url, request)
        answer = await self._call("POST", path, body, secrets=request.secrets(), creating=True)
        return parse_subscription(answer)

    async def update_subscription(
        self, subscriber_id: str, subscription_id: str, request: SubscriptionRequest
    ) -> Subscription:
        path = self._subscription_path(subscriber_id, subscription_id)
        body = subscription_body(self.pim_url, request)
        answer = await self._call("PATCH", path, body, secrets=request.secrets())
        return parse_subscription(answer)

    async def delete_subscription(self, subscriber_id: str, subscription_id: str) -> None:
        """Delete it; already gone (404) is not an error."""
        path = self._subscription_path(subscriber_id, subscription_id)
        try:
            await self._call("DELETE", path, expect_body=False)
        except EventPlatformError as exc:
            if exc.reason != NOT_FOUND:
                raise

    async def suspend_subscription(self, subscriber_id: str, subscription_id: str) -> Subscription:
        """Suspend it (the OAS: 202 with the subscription; 409 when it cannot be)."""
        return await self._transition(subscriber_id, subscription_id, "suspend")

    async def resume_subscription(self, subscriber_id: str, subscription_id: str) -> Subscription:
        """Resume a suspended subscription (the OAS: 202 with the subscription)."""
        return await self._transition(subscriber_id, subscription_id, "resume")

    async def _transition(
        self, subscriber_id: str, subscription_id: str, verb: str
    ) -> Subscription:
        path = self._subscription_path(subscriber_id, subscription_id)
        answer = await self._call("POST", f"{path}/{verb}", expect_body=False)
        if answer is None:  # no body: read it back
            return await self.get_subscription(subscriber_id, subscription_id)
        return parse_subscription(answer)

    # -- transport ----------------------------------------------------------------------------

    @staticmethod
    def _subscriber_path(subscriber_id: str) -> str:
        return f"/subscribers/{_check_id(subscriber_id, 'the subscriber id')}"

    def _subscription_path(self, subscriber_id: str, subscription_id: str) -> str:
        sid = _check_id(subscription_id, "the subscription id")
        return f"{self._subscriber_path(subscriber_id)}/subscriptions/{sid}"

    async def _fresh_token(self, refused: str | None) -> str:
        try:
            if refused is not None and self._renew is not None:
                return await self._renew(refused)
            return await self._token()
        except AkeneoAuthError as exc:
            raise EventPlatformError(
                UNAUTHORIZED, f"the PIM refused the connection's credentials ({exc.status})",
                status=exc.status,
            ) from exc  # fmt: skip
        except AkeneoApiError as exc:
            reason = UNAUTHORIZED if exc.status in (400, 401, 403) else UNAVAILABLE
            raise EventPlatformError(
                reason, f"no PIM access token: {printable(exc.message)}", status=exc.status or None
            ) from exc

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        secrets: Iterable[str] = (),
        creating: bool = False,
        expect_body: bool = True,
    ) -> Any:
        """One call (a second one after a 401, with a renewed token); the decoded answer,
        None for an empty one when ``expect_body`` is False."""
        for secret in secrets:
            if secret not in self._sent:
                self._sent.append(secret)
        content = None if body is None else json.dumps(body).encode()
        token = await self._fresh_token(None)
        for attempt in range(2):
            status, raw, content_type = await self._exchange(method, path, content, token)
            if status == 401 and attempt == 0:
                token = await self._fresh_token(token)
                continue
            if 200 <= status < 300:
                return _decode(status, raw, expect_body)
            hidden = (*self._sent, token)
            if 300 <= status < 400:
                raise _rejected(f"{method} {path}: answered a redirect ({status}), not followed",
                                status)  # fmt: skip
            message = scrub(error_message(status, raw, content_type), hidden)
            raise EventPlatformError(
                classify(status, creating=creating), f"{method} {path}: {message}", status=status
            )
        raise AssertionError("unreachable")

    async def _exchange(
        self, method: str, path: str, content: bytes | None, token: str
    ) -> tuple[int, bytes, str]:
        headers = {
            "X-PIM-URL": self.pim_url,
            "X-PIM-TOKEN": token,
            "X-PIM-CLIENT-ID": self.client_id,
        }
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with asyncio.timeout(self._timeout):
                request = self._http.build_request(method, path, content=content, headers=headers)
                response = await self._http.send(request, stream=True)
                try:
                    raw = await _bounded(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise EventPlatformError(
                UNAVAILABLE, f"{method} {path}: no answer within {self._timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise EventPlatformError(
                UNAVAILABLE, f"{method} {path}: {type(exc).__name__} (no answer)"
            ) from None
        except ssl.SSLError as exc:
            raise EventPlatformError(
                UNAVAILABLE, f"{method} {path}: TLS failed ({printable(exc.reason or '', 80)})"
            ) from None
        except OSError as exc:
            raise EventPlatformError(
                UNAVAILABLE, f"{method} {path}: {type(exc).__name__} (no answer)"
            ) from None
        return response.status_code, raw, response.headers.get("Content-Type", "")


async def _bounded(response: httpx.Response) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_ANSWER:
        raise _rejected(f"answer of {declared} bytes, more than {MAX_ANSWER}", response.status_code)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER:
            raise _rejected(f"answer larger than {MAX_ANSWER} bytes", response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(status: int, raw: bytes, expect_body: bool) -> Any:
    if not raw.strip():
        if expect_body:
            raise _rejected(f"unexpected answer: an empty {status}", status)
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise _rejected(f"unexpected answer: a {status} that is not JSON", status) from None


def _contact_secrets(contact: Contact | None) -> tuple[str, ...]:
    if contact is None or not contact.notification_webhook_secret:
        return ()
    return (contact.notification_webhook_secret,)
