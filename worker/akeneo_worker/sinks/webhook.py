"""Webhook sink: POST batches of changes to the merchant's URL, signed.

Body: ``{"changes": [Change.to_json(), ...]}``; each change's ``change_id`` is its
idempotency key (the same on every re-delivery: delivery is at-least-once). Headers:
``X-Connector-Timestamp`` (unix seconds) and ``X-Connector-Signature``: lowercase hex
HMAC-SHA256 over ``"<timestamp>." + raw body`` (the scheme of Akeneo's own Events API, so
the timestamp is covered too and a captured request cannot be replayed later). 2xx =
applied; 408, 429, 5xx, timeouts and connection errors are retried; any other status (and
a redirect) is permanent.

Unless private addresses are allowed, every connection goes through the platform's address
guard (``akeneo_connector.addresses``): names when they are resolved, and the address of each
socket (IP literals included) right before it connects.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp

from akeneo_connector.addresses import RefusedAddress, check_host, guarded_connector
from akeneo_worker.changes import Change
from akeneo_worker.sinks.base import SinkError

SIGNATURE_HEADER = "X-Connector-Signature"
TIMESTAMP_HEADER = "X-Connector-Timestamp"
RETRYABLE_STATUS = frozenset({408, 429})


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def encode_changes(changes: Sequence[Change]) -> bytes:
    return json.dumps({"changes": [c.to_json() for c in changes]}, separators=(",", ":")).encode()


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


class WebhookSink:
    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        signing_secret: str | None = None,
        allow_private: bool = False,
        timeout: float = 10.0,
        max_batch: int = 100,
        max_concurrency: int = 4,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("webhook URL must be http(s)://host/...")
        self.url = url
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._secret = signing_secret
        self._allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.max_batch = max_batch
        self.max_concurrency = max_concurrency
        self.self_guarding = False  # the merchant's system cannot compare versions for us
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._allow_private:
            connector = aiohttp.TCPConnector(limit=self.max_concurrency, ssl=self._ssl)
        else:
            try:  # fail fast; the connector checks every connection again
                await check_host("webhook", self._host, self._port)
            except RefusedAddress as exc:
                raise SinkError(str(exc), retryable=False) from exc
            connector = guarded_connector("webhook", limit=self.max_concurrency, ssl=self._ssl)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._secret is not None:
            ts = int(time.time()) if timestamp is None else timestamp
            headers[TIMESTAMP_HEADER] = str(ts)
            headers[SIGNATURE_HEADER] = sign(self._secret, ts, body)
        return headers

    async def apply(self, changes: Sequence[Change]) -> None:
        assert self._session is not None, "open() first"
        body = encode_changes(changes)
        try:
            async with self._session.post(
                self.url, data=body, headers=self.headers(body), allow_redirects=False
            ) as resp:
                await resp.read()
                status = resp.status
        except RefusedAddress as exc:  # retried like an unreachable host: it may be DNS
            raise SinkError(str(exc), retryable=True) from exc
        except TimeoutError as exc:
            raise SinkError("webhook timed out", retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise SinkError(f"webhook unreachable: {type(exc).__name__}", retryable=True) from exc
        if 200 <= status < 300:
            return
        raise SinkError(f"webhook answered {status}", retryable=is_retryable_status(status))

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
