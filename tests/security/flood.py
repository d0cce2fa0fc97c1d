"""A tenant flooding its own receiver with signed ~1 MiB legacy posts, run as its own process
(so the flood's client CPU is not the measuring process's).

``python -m tests.security.flood --port P --ca ca.pem --secret-file F`` reads commands on
stdin, one per line, and answers each on stdout:

- ``fill``: post one at a time until one is refused; prints ``full <status> <error>``;
- ``flood``: start posting, ``--concurrency`` at a time, ``--rate`` per second (0: without
  pause); prints ``flooding``;
- ``quiet``: stop posting; prints ``quiet``;
- ``exit``: prints a JSON summary (answers per status and error) and ends.

Every post is a new event (a fresh ``event_id``), so nothing is de-duplicated away: each one
stored takes about 900 KiB of the tenant's stream. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import sys
import uuid
from collections import Counter
from pathlib import Path

import httpx

from akeneo_pim.signatures import events_api_headers

RESOURCE_BYTES = 900 * 1024


def _template() -> tuple[bytes, bytes]:
    """The body around its event id, built once: the flooding process's own CPU is not what
    the test measures."""
    resource = {
        "identifier": "flood-product",
        "values": {"description": [{"locale": None, "scope": None, "data": "x" * RESOURCE_BYTES}]},
        "updated": "2026-11-27T10:00:00+00:00",
    }
    event = {
        "action": "product.updated",
        "event_id": "@ID@",
        "event_datetime": "2026-11-27T10:00:01+00:00",
        "author": "flood",
        "author_type": "api",
        "pim_source": "https://flood.example.com",
        "data": {"resource": resource},
    }
    head, tail = json.dumps({"events": [event]}).encode().split(b"@ID@")
    return head, tail


_HEAD, _TAIL = _template()


def body(event_id: str) -> bytes:
    """A legacy delivery of one product update of about 900 KiB, with this event id."""
    return _HEAD + event_id.encode() + _TAIL


class Flood:
    def __init__(self, http: httpx.AsyncClient, secret: str, concurrency: int, rate: float) -> None:
        self.http = http
        self.secret = secret
        self.concurrency = concurrency
        self.every = concurrency / rate if rate > 0 else 0.0  # per posting task
        self.stats: Counter[str] = Counter()
        self.tasks: list[asyncio.Task[None]] = []

    async def post(self) -> tuple[int, str]:
        data = body(str(uuid.uuid4()))
        response = await self.http.post(
            "/events", content=data, headers=events_api_headers(self.secret, data)
        )
        error = response.json().get("error", "") if response.status_code != 200 else ""
        self.stats[f"{response.status_code} {error}".strip()] += 1
        return response.status_code, error

    async def fill(self) -> str:
        for _ in range(10_000):
            status, error = await self.post()
            if status != 200:
                return f"full {status} {error}"
        return "never full"

    async def _loop(self, every: float) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                await self.post()
            except httpx.HTTPError as exc:
                self.stats[type(exc).__name__] += 1
            next_at += every
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    def start(self) -> None:
        if not self.tasks:
            self.tasks = [
                asyncio.create_task(self._loop(self.every)) for _ in range(self.concurrency)
            ]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks = []


async def main(args: argparse.Namespace, secret: str) -> None:
    ctx = ssl.create_default_context(cafile=args.ca)
    limits = httpx.Limits(max_connections=args.concurrency + 1)
    async with httpx.AsyncClient(
        base_url=f"https://localhost:{args.port}", verify=ctx, timeout=30, limits=limits
    ) as http:
        flood = Flood(http, secret, args.concurrency, args.rate)
        loop = asyncio.get_running_loop()
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if line == "fill":
                answer = await flood.fill()
            elif line == "flood":
                flood.start()
                answer = "flooding"
            elif line == "quiet":
                await flood.stop()
                answer = "quiet"
            else:
                await flood.stop()
                print(json.dumps(dict(flood.stats)), flush=True)
                return
            print(answer, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rate", type=float, default=0.0, help="posts per second (0: no pause)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments, Path(arguments.secret_file).read_text().strip()))
