"""A minimal signed-delivery receiver for tests: verifies like the real one, records bodies."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from akeneo_pim.signatures import SignatureError, verify_event_platform, verify_events_api


@dataclass
class Recorder:
    events_api_secrets: list[str] = field(default_factory=list)
    event_platform_secrets: list[str] = field(default_factory=list)
    delay: float = 0.0
    bodies: list[Any] = field(default_factory=list)
    test_requests: int = 0
    rejected: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            if "X-Akeneo-Request-Signature" in request.headers:
                verify_events_api(
                    self.events_api_secrets, request.headers, raw, now=time.time(), tolerance=300
                )
            else:
                verify_event_platform(self.event_platform_secrets, request.headers, raw)
        except SignatureError as exc:
            self.rejected += 1
            return web.json_response({"error": exc.reason}, status=401)
        if self.delay:
            await asyncio.sleep(self.delay)
        if not raw:
            self.test_requests += 1
        else:
            self.bodies.append(json.loads(raw))
        return web.json_response({"status": "ok"})


async def start(recorder: Recorder, ssl_context: Any = None) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/hooks", recorder.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context is not None else "http"
    return runner, f"{scheme}://127.0.0.1:{port}/hooks"
