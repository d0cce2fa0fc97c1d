"""Many KV reads and compare-and-set writes in flight at once, with one wait for all.

nats-py's ``KeyValue.get``/``update`` make one request each (a future, a timer, a parsed
reply object); the guard issues hundreds per batch, and that per-call cost was most of the
worker's time. Here a batch goes out as plain publishes (the stream's message-get API, or
the key's subject with the expected-revision header) whose replies arrive on one inbox
subscription, and are awaited together. The semantics are the KV bucket's own:
a write succeeds only if the key's last revision is the expected one (0: no entry yet).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nats.errors import NoRespondersError
from nats.js.errors import APIError

_EXPECTED_REVISION = "Nats-Expected-Last-Subject-Sequence"
_KV_OPERATION = "KV-Operation"
_DELETE_MARKER = {_KV_OPERATION: "DEL"}
_WRONG_REVISION_CODES = (10071, 10164)  # JSStreamWrongLastSequence(Constant)Err
_NO_MESSAGE = 10037  # JSNoMessageFoundErr


class WrongRevision(Exception):
    """The key's last revision was not the expected one: someone else wrote it."""


@dataclass(frozen=True)
class Read:
    """A key's last message: its value (None for no entry or a delete marker) and revision."""

    value: bytes | None
    revision: int


@dataclass(frozen=True)
class Write:
    key: str
    value: bytes | None  # None: a delete marker
    revision: int  # expected last revision of the key (0: none)


class PipelinedKV:
    """Batched reads and CAS writes on one KV bucket (no JetStream domain)."""

    def __init__(self, nc: Any, bucket: str, *, timeout: float = 5.0) -> None:
        self._nc = nc
        self._subject = f"$KV.{bucket}."
        self._msg_get = f"$JS.API.STREAM.MSG.GET.KV_{bucket}"
        self._timeout = timeout
        self._inbox = ""
        self._sub: Any = None
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[Any]] = {}

    async def _ensure_inbox(self) -> None:
        if self._sub is None:
            self._inbox = self._nc.new_inbox()  # under the connection's own inbox prefix
            self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._reply)

    async def _reply(self, msg: Any) -> None:
        waiter = self._waiting.pop(msg.subject, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)

    async def _round_trip(self, requests: Sequence[tuple[str, bytes, dict[str, str] | None]]
                          ) -> list[Any]:  # fmt: skip
        """Publish every request, then wait (once, bounded) for their replies."""
        await self._ensure_inbox()
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[Any]] = []
        for subject, payload, headers in requests:
            reply = f"{self._inbox}.{next(self._tokens)}"
            waiter: asyncio.Future[Any] = loop.create_future()
            self._waiting[reply] = waiter
            waiters.append(waiter)
            await self._nc.publish(subject, payload, reply=reply, headers=headers)
        done, pending = await asyncio.wait(waiters, timeout=self._timeout)
        for waiter in pending:
            waiter.cancel()
        self._waiting = {r: w for r, w in self._waiting.items() if not w.done()}
        return [w.result() if w in done else TimeoutError() for w in waiters]

    async def read_many(self, keys: Sequence[str]) -> list[Read | BaseException]:
        requests = [
            (self._msg_get, json.dumps({"last_by_subj": self._subject + k}).encode(), None)
            for k in keys
        ]
        return [_read_result(r) for r in await self._round_trip(requests)]

    async def write_many(self, writes: Sequence[Write]) -> list[int | BaseException]:
        """Each write's new revision, or ``WrongRevision`` / the error it met."""
        requests = []
        for w in writes:
            headers = {_EXPECTED_REVISION: str(w.revision)}
            if w.value is None:
                headers |= _DELETE_MARKER
            requests.append((self._subject + w.key, w.value or b"", headers))
        return [_ack_result(r) for r in await self._round_trip(requests)]

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.unsubscribe()
        for waiter in self._waiting.values():
            waiter.cancel()
        self._waiting.clear()


def _status(msg: Any) -> str | None:
    headers = msg.headers
    return headers.get("Status") if headers else None


def _api_reply(msg: Any) -> dict[str, Any] | BaseException:
    if isinstance(msg, BaseException):
        return msg
    if _status(msg) == "503":
        return NoRespondersError()
    try:
        reply: dict[str, Any] = json.loads(msg.data)
    except ValueError:
        return APIError(description="unreadable JetStream reply")
    return reply


def _read_result(msg: Any) -> Read | BaseException:
    reply = _api_reply(msg)
    if isinstance(reply, BaseException):
        return reply
    error = reply.get("error")
    if error is not None:
        if error.get("err_code") == _NO_MESSAGE:
            return Read(None, 0)
        return _api_error(error)
    message = reply["message"]
    revision = int(message["seq"])
    headers = base64.b64decode(message.get("hdrs") or "")
    if b"KV-Operation: DEL" in headers or b"KV-Operation: PURGE" in headers:
        return Read(None, revision)
    return Read(base64.b64decode(message.get("data") or ""), revision)


def _ack_result(msg: Any) -> int | BaseException:
    reply = _api_reply(msg)
    if isinstance(reply, BaseException):
        return reply
    error = reply.get("error")
    if error is None:
        return int(reply["seq"])
    if error.get("err_code") in _WRONG_REVISION_CODES:
        return WrongRevision(error.get("description"))
    return _api_error(error)


def _api_error(error: dict[str, Any]) -> APIError:
    return APIError(code=error.get("code"), err_code=error.get("err_code"),
                    description=error.get("description"))  # fmt: skip
