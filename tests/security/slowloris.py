"""A bounded slowloris + oversized-body attack on a receiver, run as its own process.

``python -m tests.security.slowloris --port P --ca ca.pem --seconds 4`` opens every
connection (TLS), prints ``ready``, trickles for ``--seconds`` and prints a JSON summary.
Loopback only; every loop stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import time
from collections import Counter

HEAD = b"POST /events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"


async def _open(
    port: int, ctx: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")


async def _trickle(
    writer: asyncio.StreamWriter,
    reader: asyncio.StreamReader,
    data: bytes,
    until: float,
    every: float,
) -> bool:
    """Send ``data`` a byte at a time; True if the server closed on us before ``until``."""
    i = 0
    while time.monotonic() < until:
        try:
            writer.write(data[i % len(data) : i % len(data) + 1])
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            return True
        if reader.at_eof():
            return True
        i += 1
        await asyncio.sleep(every)
    return False


class Run:
    """Shared by every attacking task: the stats, the start barrier, the end time."""

    def __init__(self, port: int, ctx: ssl.SSLContext, parties: int, seconds: float) -> None:
        self.port = port
        self.ctx = ctx
        self.stats: Counter[str] = Counter()
        self.parties = parties
        self.arrived = 0
        self.connected = asyncio.Event()
        self.go = asyncio.Event()
        self.seconds = seconds
        self.until = 0.0

    async def start(self) -> None:
        """Wait for everyone; the trickling lasts ``seconds`` from then on."""
        self.arrived += 1
        if self.arrived == self.parties:
            self.connected.set()
        await self.go.wait()


async def slow_headers(run: Run) -> None:
    reader, writer = await _open(run.port, run.ctx)
    run.stats["headers_open"] += 1
    writer.write(HEAD + b"X-Slow: ")
    await run.start()
    if await _trickle(writer, reader, b"abcdefgh", run.until, 0.05):
        run.stats["headers_closed_by_server"] += 1
    writer.close()


async def slow_body(run: Run) -> None:
    reader, writer = await _open(run.port, run.ctx)
    run.stats["body_open"] += 1
    writer.write(HEAD + b"X-AKENEO-SIGNATURE-PRIMARY: 00\r\nContent-Length: 60000\r\n\r\n{")
    await run.start()
    if await _trickle(writer, reader, b" ", run.until, 0.05):
        run.stats["body_closed_by_server"] += 1
    writer.close()


async def oversized(run: Run) -> None:
    await run.start()
    chunk = b" " * 65536
    while time.monotonic() < run.until:
        reader, writer = await _open(run.port, run.ctx)
        writer.write(HEAD + b"X-Akeneo-Request-Signature: 00\r\nContent-Length: 50000000\r\n\r\n")
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            for _ in range(200):  # at most ~13 MB per connection
                if reader.at_eof() or time.monotonic() >= run.until:
                    break
                writer.write(chunk)
                await writer.drain()
        with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
            line = await asyncio.wait_for(reader.readline(), 2)
            run.stats[f"oversized_{line[9:12].decode(errors='replace') or 'closed'}"] += 1
        writer.close()


async def attack(
    port: int, ca: str, seconds: float, headers: int, bodies: int, big: int
) -> dict[str, int]:
    ctx = ssl.create_default_context(cafile=ca)
    run = Run(port, ctx, headers + bodies + big, seconds)
    tasks = [
        *(asyncio.create_task(slow_headers(run)) for _ in range(headers)),
        *(asyncio.create_task(slow_body(run)) for _ in range(bodies)),
        *(asyncio.create_task(oversized(run)) for _ in range(big)),
    ]
    await asyncio.wait_for(run.connected.wait(), 60)  # connecting is bounded as well
    run.until = time.monotonic() + seconds
    run.go.set()
    print("ready", flush=True)
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), seconds + 30)
    return dict(run.stats)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--headers", type=int, default=200)
    parser.add_argument("--bodies", type=int, default=50)
    parser.add_argument("--oversized", type=int, default=4)
    args = parser.parse_args()
    stats = asyncio.run(
        attack(args.port, args.ca, args.seconds, args.headers, args.bodies, args.oversized)
    )
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
