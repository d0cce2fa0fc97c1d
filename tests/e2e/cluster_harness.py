"""Pieces of the cluster e2e test that stand in for what a cluster would provide.

``WebhookRecorder`` is the merchant's endpoint the worker's webhook sink posts to: it checks
each request's Standard Webhooks signature with the independent ``standardwebhooks`` library
(not with the product's code) and keeps every change in
arrival order. ``pinned_name_context`` lets a client connect to 127.0.0.1 while verifying
the receiver's certificate for a name it covers (the Service's DNS name), as SNI would.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from akeneo_testing.ground.processes import free_port

Key = tuple[str, str]


class WebhookRecorder:
    """An aiohttp server on 127.0.0.1 that records signed webhook batches."""

    def __init__(self, signing_secret: str) -> None:
        self._verifier = Webhook(signing_secret)  # refuses timestamps 5 minutes off
        self.port = free_port()
        self.changes: list[dict[str, Any]] = []
        self.batches = 0
        self.refused = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/akeneo"

    async def start(self) -> WebhookRecorder:
        app = web.Application()
        app.router.add_post("/akeneo", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            self._verifier.verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.refused += 1
            return web.Response(status=401)
        self.batches += 1
        self.changes.extend(json.loads(body)["changes"])
        return web.Response(status=204)

    def state(self) -> dict[Key, dict[str, Any] | None]:
        """What the merchant now holds: the last resource per key, None once deleted."""
        out: dict[Key, dict[str, Any] | None] = {}
        for change in self.changes:
            key = (change["kind"], change["key"])
            out[key] = None if change["operation"] == "delete" else change["resource"]
        return out


class _PinnedNameContext(ssl.SSLContext):
    server_name: str

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name, session)


def pinned_name_context(ca_pem: str, server_name: str) -> ssl.SSLContext:
    """A client context trusting ``ca_pem`` that sends SNI ``server_name`` and checks the
    certificate against it, whatever address the connection actually goes to."""
    context = _PinnedNameContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = server_name
    context.load_verify_locations(cadata=ca_pem)
    return context
