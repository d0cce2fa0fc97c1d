"""Helpers of the worker's integration tests: events, a running worker, a webhook receiver."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats as nats_client
from aiohttp import web
from nats.js import JetStreamContext
from standardwebhooks import Webhook, WebhookVerificationError

from akeneo_connector.names import ConnectionNames
from akeneo_connector.normalized import Action, NormalizedEvent, ResourceKind, SourceFormat
from akeneo_connector.stream_reader import read_messages
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_worker.sinks.base import Sink
from akeneo_worker.worker import Worker, WorkerConfig

T0 = datetime(2026, 1, 1, tzinfo=UTC)

FAST = WorkerConfig(
    max_deliver=3,
    ack_wait=2.0,
    batch_size=100,
    fetch_timeout=0.2,
    retry_delays=(0.05, 0.1, 0.2),
    stats_interval=0.3,
    replica="test",
)


def version(n: int) -> datetime:
    return T0 + timedelta(seconds=n)


def event(
    names: ConnectionNames,
    key: str,
    n: int,
    *,
    delete: bool = False,
    kind: ResourceKind = ResourceKind.PRODUCT,
    resource: dict[str, Any] | None = None,
    hydrate: bool = False,
    author: str | None = None,
    source: SourceFormat = SourceFormat.EVENTS_API,
) -> NormalizedEvent:
    """Version ``n`` of resource ``key``; its content says which version it is."""
    body: dict[str, Any] | None = None
    if not delete and not hydrate:
        body = resource or {"uuid": key, "n": n, "updated": version(n).isoformat()}
    return NormalizedEvent(
        connection=names.ref,
        source=source,
        event_id=str(uuid.uuid4()),
        action=Action.DELETE if delete else Action.UPSERT,
        kind=kind,
        key=key,
        version=version(n),
        author=author,
        resource=body,
    )


async def publish(js: JetStreamContext, names: ConnectionNames, ev: NormalizedEvent) -> None:
    await js.publish(
        names.event_subject(ev.kind.value), ev.to_message(), headers={"Nats-Msg-Id": ev.event_id}
    )


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout: float = 30.0,
    what: str = "condition",
) -> None:
    """Poll ``check`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f}s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(
    js: JetStreamContext,
    names: ConnectionNames,
    sink: Sink,
    config: WorkerConfig = FAST,
    **kwargs: Any,
) -> AsyncIterator[Worker]:
    """A worker consuming in the background; stopped gracefully on exit."""
    worker = Worker(js, names, sink, config, **kwargs)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await eventually(lambda: worker.ready or task.done(), timeout=15, what="worker ready")
        if task.done():
            task.result()
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def two_replicas_drain(
    nats: str,
    js: JetStreamContext,
    names: ConnectionNames,
    sinks: tuple[Sink, Sink],
    batch_sizes: tuple[int, int],
    deliveries: Sequence[NormalizedEvent],
) -> None:
    """Replicas ``a`` and ``b`` (each on its own NATS connection) consume ``deliveries``
    until every one is acked as applied or skipped; both must have applied some."""
    second = await nats_client.connect(nats)
    try:
        async with (
            running(
                js, names, sinks[0], replace(FAST, batch_size=batch_sizes[0], replica="a")
            ) as a,
            running(
                second.jetstream(),
                names,
                sinks[1],
                replace(FAST, batch_size=batch_sizes[1], replica="b"),
            ) as b,
        ):
            for ev in deliveries:
                await publish(js, names, ev)

            def settled() -> bool:
                done = sum(
                    w.metrics.counts[k]
                    for w in (a, b)
                    for k in ("applied", "outdated", "duplicate")
                )
                return done == len(deliveries)

            await eventually(settled, timeout=60, what="every delivery acked")
            assert a.metrics.counts["applied"] > 0 and b.metrics.counts["applied"] > 0
    finally:
        await second.drain()


async def dead_letters(js: JetStreamContext, names: ConnectionNames) -> list[Any]:
    """Every dead letter currently in the stream (raw messages, headers included)."""
    return [m async for m in read_messages(js, names.stream, names.dead_letter_subject)]


def sqlite_state(path: Path) -> dict[str, Any]:
    import sqlite3

    from akeneo_worker.sinks.sqlite import SqliteSink

    if not path.exists():
        return {}
    try:
        rows = SqliteSink(path).read_all()
    except sqlite3.OperationalError as exc:  # the worker has not created its table yet
        if "no such table" in str(exc):
            return {}
        raise
    return {key: resource for (_, key), (_, resource) in rows.items()}


# Standard Webhooks secrets (whsec_ + base64 of 32 bytes), two for rotation
STANDARD_SECRETS = (
    "whsec_" + base64.b64encode(bytes(range(32))).decode(),
    "whsec_" + base64.b64encode(bytes(range(100, 132))).decode(),
)
LEGACY_SECRET = "merchant-secret"


@dataclass(frozen=True)
class Post:
    """One POST as the merchant's endpoint received it."""

    headers: dict[str, str]
    body: bytes

    @property
    def change_ids(self) -> list[str]:
        return [c["change_id"] for c in json.loads(self.body)["changes"]]


def standard_verifies(secret: str, post: Post) -> bool:
    """The ``standardwebhooks`` library's verdict, with this one secret."""
    try:
        Webhook(secret).verify(post.body, post.headers)
    except WebhookVerificationError:
        return False
    return True


@dataclass
class WebhookReceiver:
    """A merchant's endpoint over real TLS: verifies signatures, keeps the newest per key.

    ``signature="standard"``: every POST must verify with the independent ``standardwebhooks``
    library under each of ``secrets`` alone (rotation: the merchant may hold either one);
    ``"legacy"``: the X-Connector headers, keyed with the first secret.
    """

    ca: CertificateAuthority
    secrets: tuple[str, ...] = STANDARD_SECRETS[:1]
    signature: str = "standard"
    status: int = 200  # answer with this while not 2xx
    requests: int = 0
    bad_signatures: int = 0
    state: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    @property
    def signing_secret(self) -> str:
        """The ``signingSecret`` value that signs for this endpoint: one secret per line."""
        return "\n".join(self.secrets) + "\n"

    def _verified(self, post: Post) -> bool:
        if self.signature == "standard":
            return all(standard_verifies(secret, post) for secret in self.secrets)
        ts = post.headers.get("X-Connector-Timestamp", "")
        key = self.secrets[0].encode()
        want = hmac.new(key, f"{ts}.".encode() + post.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, post.headers.get("X-Connector-Signature", ""))

    async def _handle(self, request: web.Request) -> web.Response:
        post = Post(dict(request.headers), await request.read())
        self.requests += 1
        self.posts.append(post)
        if not self._verified(post):
            self.bad_signatures += 1
            return web.Response(status=401)
        if not 200 <= self.status < 300:
            return web.Response(status=self.status)
        for change in json.loads(post.body)["changes"]:
            self.received.append(change)
            key = change["key"]
            if self.versions.get(key, "") <= change["version"]:  # idempotent, newest wins
                self.versions[key] = change["version"]
                upsert = change["operation"] == "upsert"
                self.state[key] = change["resource"] if upsert else None
        return web.Response(status=204)

    async def start(self, tmp: Path) -> WebhookReceiver:
        import ssl

        pair = self.ca.issue("127.0.0.1")
        pair.write(tmp / "hook.crt", tmp / "hook.key")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tmp / "hook.crt", tmp / "hook.key")
        app = web.Application()
        app.router.add_post("/akeneo", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"https://127.0.0.1:{port}/akeneo"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def live(self) -> dict[str, Any]:
        return {k: v for k, v in self.state.items() if v is not None}
