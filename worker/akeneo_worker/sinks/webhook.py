"""Webhook sink: POST batches of changes to the merchant's URL, signed.

Body: ``{"changes": [Change.to_json(), ...]}``; each change's ``change_id`` is its
idempotency key (the same on every re-delivery: delivery is at-least-once). ``kind`` is one
of ``product``, ``product_model``, ``category``, ``family``, ``attribute``,
``attribute_option`` (key ``<attribute>/<code>``); ``resource`` is the REST API
representation (None for a delete). 2xx = applied;
408, 429, 5xx, timeouts and connection errors are retried; any other status (and a redirect)
is permanent.

Signatures (``spec.worker.sink.webhook.signature``):

- ``standard``, Standard Webhooks
  (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
  ``webhook-id``, ``webhook-timestamp`` (unix seconds of this attempt) and
  ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` per
  secret, space-separated, so any library of the specification verifies it. The id is the
  change's ``change_id`` for a POST of one change; for several, ``batch_`` and the first 32
  hex of the sha256 of their sorted change_ids joined by newlines: a retry of the same
  changes carries the same id, whatever their order, so the merchant can de-duplicate whole
  POSTs. Without a secret, ``webhook-id`` and ``webhook-timestamp`` are still sent.
- ``legacy``: ``X-Connector-Timestamp`` (unix seconds) and ``X-Connector-Signature``:
  lowercase hex HMAC-SHA256 over ``"<timestamp>." + body`` with the first secret.

Unless private addresses are allowed, every connection goes through the platform's address
guard (``akeneo_connector.addresses``): names when they are resolved, and the address of each
socket (IP literals included) right before it connects.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from akeneo_connector.addresses import RefusedAddress, check_host, guarded_connector
from akeneo_connector.changes import Change
from akeneo_connector.signing_secrets import SigningSecretError, WebhookSignature, signing_keys
from akeneo_worker.sinks.base import SinkError

log = logging.getLogger("akeneo_worker.webhook")

SIGNATURE_HEADER = "X-Connector-Signature"
TIMESTAMP_HEADER = "X-Connector-Timestamp"
ID_HEADER_STD = "webhook-id"
TIMESTAMP_HEADER_STD = "webhook-timestamp"
SIGNATURE_HEADER_STD = "webhook-signature"
RETRYABLE_STATUS = frozenset({408, 429})
RELOAD_INTERVAL = 1.0  # seconds between checks of the signing Secret's file


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The legacy signature: hex HMAC-SHA256 of ``"<timestamp>." + body``."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign_standard(keys: Sequence[bytes], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per key, space-separated."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        for key in keys
    )


def webhook_id(changes: Sequence[Change]) -> str:
    """The change's ``change_id``, or for several the same id for the same set of changes."""
    ids = sorted({c.change_id for c in changes})
    if len(ids) == 1:
        return ids[0]
    return "batch_" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:32]


class Signer:
    """The signing headers of a POST, from the secrets of a ``signingSecret`` (or none).

    Given the Secret's mounted file, it follows the file: Kubernetes updates a mounted Secret
    in place, so a rotation reaches a running worker without a restart. A file that becomes
    unreadable or invalid keeps the previous secrets (logged, without them).
    """

    def __init__(
        self,
        scheme: WebhookSignature = WebhookSignature.STANDARD,
        keys: Sequence[bytes] = (),
        *,
        path: Path | None = None,
    ) -> None:
        self.scheme = scheme
        self.keys = tuple(keys)
        self._path = path
        self._stamp = _stamp(path) if path is not None else None
        self._checked = time.monotonic()

    @classmethod
    def from_text(cls, text: str, scheme: WebhookSignature) -> Signer:
        """Raises ``SigningSecretError`` when the scheme cannot use the secrets."""
        return cls(scheme, signing_keys(text, scheme))

    @classmethod
    def from_file(cls, path: Path, scheme: WebhookSignature) -> Signer:
        stamp = _stamp(path)
        signer = cls(scheme, signing_keys(path.read_text(encoding="utf-8"), scheme), path=path)
        signer._stamp = stamp
        return signer

    def refresh(self) -> None:
        """Re-read the file when it changed (checked at most every ``RELOAD_INTERVAL``)."""
        now = time.monotonic()
        if self._path is None or now - self._checked < RELOAD_INTERVAL:
            return
        self._checked = now
        try:
            stamp = _stamp(self._path)
            if stamp == self._stamp:
                return
            keys = signing_keys(self._path.read_text(encoding="utf-8"), self.scheme)
        except (UnicodeDecodeError, SigningSecretError) as exc:
            self._stamp = stamp  # said once; the next change of the file is read again
            why = exc if isinstance(exc, SigningSecretError) else type(exc).__name__
            log.warning("signing secret not reloaded, keeping the previous: %s", why)
            return
        except OSError as exc:  # e.g. between two steps of a Secret update: tried again
            log.debug("signing secret unreadable: %s", type(exc).__name__)
            return
        self._stamp, self.keys = stamp, keys
        log.info("signing secret reloaded: %d secret(s)", len(keys))

    def headers(self, changes: Sequence[Change], body: bytes, timestamp: int) -> dict[str, str]:
        if self.scheme is WebhookSignature.LEGACY:
            if not self.keys:
                return {}
            return {
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(self.keys[0].decode(), timestamp, body),
            }
        ident = webhook_id(changes)
        headers = {ID_HEADER_STD: ident, TIMESTAMP_HEADER_STD: str(timestamp)}
        if self.keys:
            headers[SIGNATURE_HEADER_STD] = sign_standard(self.keys, ident, timestamp, body)
        return headers


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)  # follows the ..data symlink of a Secret volume
    return st.st_ino, st.st_mtime_ns, st.st_size


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
        signer: Signer | None = None,
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
        self.signer = signer if signer is not None else Signer()
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

    def headers(
        self, changes: Sequence[Change], body: bytes, timestamp: int | None = None
    ) -> dict[str, str]:
        """Content type and signature; the timestamp is this attempt's (a retry's is newer)."""
        self.signer.refresh()
        ts = int(time.time()) if timestamp is None else timestamp
        return {"Content-Type": "application/json", **self.signer.headers(changes, body, ts)}

    async def apply(self, changes: Sequence[Change]) -> None:
        assert self._session is not None, "open() first"
        body = encode_changes(changes)
        try:
            async with self._session.post(
                self.url, data=body, headers=self.headers(changes, body), allow_redirects=False
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
