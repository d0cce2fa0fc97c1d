"""Receiver benchmark: a bare aiohttp handler vs ``akeneo-connector receiver``, same run, same load.

Both servers get the same signed 10-event legacy payloads (about 12 KB of realistic products,
fresh event ids per request so every event the receiver gets is really stored, never a
duplicate) over plain HTTP on loopback, from a lean keep-alive HTTP/1.1 client in this
process. Prints: max requests/s of each and their ratio (measured in alternating rounds, so
that both meet the same machine load), p50/p99 latency at a fixed open-loop 200 requests/s
(measured from the scheduled send time), receiver CPU per accepted event, and idle RSS; and,
as a reference, the receiver's publish path alone (its own JetStream client and ack pipeline
into the same stream, no HTTP): the bound that nats-server's acks put on the receiver.

    .venv/bin/python -m bench.receiver [--seconds 5] [--rounds 3] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import nats as nats_py

from akeneo_connector import eventloop
from akeneo_connector.jetstream import ensure_all
from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import GiB, StreamSpec
from akeneo_pim.normalize import encode_events_api
from akeneo_pim.signatures import events_api_headers
from akeneo_receiver.natsclient import AckClient
from akeneo_receiver.publisher import AckPipeline
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import ServerProcess, free_port, wait_until
from akeneo_testing.payloads import legacy_batch
from bench import report as docs

SECRET = "bench-secret"
CONNECTION = "bench/acme"
CONCURRENCY = 16
RATE = 200.0
WARM_UP = 0.3  # seconds before each max-throughput measure
TICKS = os.sysconf("SC_CLK_TCK")
# Every round stores what it receives: the platform's default quota (512 MiB) would refuse
# the later rounds (quota_exceeded), so the benchmark's stream is made larger beforehand.
STREAM = StreamSpec(max_bytes=4 * GiB, max_msgs=10_000_000)

BARE_SERVER = """
import sys
from aiohttp import web
from akeneo_connector import eventloop

async def events(request):
    await request.read()
    return web.Response(text="ok")

app = web.Application(client_max_size=1048576)
app.router.add_post("/events", events)
app.router.add_get("/healthz", lambda r: web.Response(text="ok"))
factory = eventloop.loop_factory()  # the receiver's loop, so both are measured alike
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
            loop=factory() if factory is not None else None)
"""


class Payloads:
    """Signed requests, each with 10 fresh event ids, built before the runs.

    Sending a pre-built request costs the client nothing. Every server reads the pool in the
    same order from the start (``sequence``). The bare server takes the pool again once it is
    used up (it ignores the body); the receiver never sees an event id twice: past the pool,
    its requests are built as they are sent, which can only slow the client, never help the
    receiver (the count is printed).
    """

    def __init__(self, count: int) -> None:
        template = legacy_batch(10).decode()
        self._template = template
        self._ids = re.findall(r'"event_id":"([0-9a-f-]{36})"', template)
        self.body_bytes = len(template)
        self._now = int(time.time())
        self.requests = [self.build() for _ in range(count)]

    def build(self) -> bytes:
        body = self._template
        for old in self._ids:
            body = body.replace(old, str(uuid.uuid4()))
        raw = body.encode()
        headers = events_api_headers(SECRET, raw, self._now)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return (
            f"POST /events HTTP/1.1\r\nHost: bench\r\n{head}Content-Length: {len(raw)}\r\n\r\n"
        ).encode() + raw

    def sequence(self, *, reuse: bool) -> Requests:
        return Requests(self, reuse)


class Requests:
    """One server's way through the pool; ``reuse``: may repeat requests once it is used up."""

    def __init__(self, payloads: Payloads, reuse: bool) -> None:
        self._payloads, self._reuse = payloads, reuse
        self._next = 0
        self.built_while_sending = 0

    def next(self) -> bytes:
        index = self._next
        self._next += 1
        pool = self._payloads.requests
        if index < len(pool):
            return pool[index]
        if self._reuse:
            return pool[index % len(pool)]
        self.built_while_sending += 1
        return self._payloads.build()


class Connection:
    """Keep-alive HTTP/1.1 connection with just enough parsing to read one answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        self.writer.close()


@dataclass
class Throughput:
    """Requests (or batches) answered in ``seconds``, and the CPU the server and nats used."""

    ok: int = 0
    other: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    nats_cpu_seconds: float = 0.0

    @property
    def rps(self) -> float:
        return (self.ok + self.other) / self.seconds if self.seconds else 0.0

    def __add__(self, more: Throughput) -> Throughput:
        return Throughput(
            self.ok + more.ok,
            self.other + more.other,
            self.seconds + more.seconds,
            self.cpu_seconds + more.cpu_seconds,
            self.nats_cpu_seconds + more.nats_cpu_seconds,
        )

    def ms_per_event(self, cpu_seconds: float) -> float:
        return cpu_seconds * 1000 / max(self.ok * 10, 1)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def max_throughput(
    port: int, pid: int, requests: Requests, seconds: float, nats_pid: int
) -> Throughput:
    conns = [await Connection.open(port) for _ in range(CONCURRENCY)]
    counts = {"ok": 0, "other": 0}

    async def loop(conn: Connection, until: float, count: bool) -> None:
        while time.monotonic() < until:
            status = await conn.send(requests.next())
            if count:
                counts["ok" if status == 200 else "other"] += 1

    await asyncio.gather(*(loop(c, time.monotonic() + WARM_UP, False) for c in conns))
    cpu0, nats0, t0 = cpu_seconds(pid), cpu_seconds(nats_pid), time.monotonic()
    await asyncio.gather(*(loop(c, t0 + seconds, True) for c in conns))
    elapsed, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
    nats_cpu = cpu_seconds(nats_pid) - nats0
    for c in conns:
        c.close()
    return Throughput(counts["ok"], counts["other"], elapsed, cpu, nats_cpu)


async def fixed_rate(port: int, requests: Requests, seconds: float) -> tuple[list[float], int]:
    """Open loop: a request every 1/RATE s; latency from the scheduled time (no omission)."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(await Connection.open(port))
    latencies: list[float] = []
    errors = 0

    async def one(scheduled: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            status = await conn.send(requests.next())
        finally:
            pool.put_nowait(conn)
        latencies.append(time.monotonic() - scheduled)
        errors += status != 200

    start = time.monotonic() + 0.1
    tasks = []
    for i in range(int(seconds * RATE)):
        scheduled = start + i / RATE
        await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    return latencies, errors


class PublishPath:
    """The receiver's publish path alone: no HTTP, no signature, no parsing.

    16 concurrent batches (as the 16 connections), each the 10 messages a request makes, with
    fresh message ids, sent by the receiver's own ``AckPipeline`` and client, every ack
    awaited, into the same file-store stream: what the receiver could reach if all else were
    free. A batch counts as a request; the CPU is this (client) process's.
    """

    def __init__(self, nc: AckClient, pipeline: AckPipeline, names: ConnectionNames) -> None:
        self.nc, self.pipeline = nc, pipeline
        self.subject = names.event_subject("product")
        body = legacy_batch(10)
        self.messages = encode_events_api(body, names.ref, datetime.now(UTC)).messages
        self._ids = itertools.count()

    @classmethod
    async def connect(cls, nats_url: str, connection: str) -> PublishPath:
        names = ConnectionNames.parse(connection)
        nc = AckClient()
        await nc.connect(nats_url)
        return cls(nc, await AckPipeline.start(nc, names.stream), names)

    async def run(self, seconds: float, nats_pid: int) -> Throughput:
        counts = {"ok": 0}

        async def loop(until: float, count: bool) -> None:
            while time.monotonic() < until:
                batch = await self.pipeline.publish(
                    [(self.subject, f"ref-{next(self._ids)}", m.data) for m in self.messages]
                )
                await self.pipeline.wait(batch, 5.0)
                if count:
                    counts["ok"] += 1

        warm = time.monotonic() + WARM_UP
        await asyncio.gather(*(loop(warm, False) for _ in range(CONCURRENCY)))
        own0, nats0, t0 = os.times(), cpu_seconds(nats_pid), time.monotonic()
        await asyncio.gather(*(loop(t0 + seconds, True) for _ in range(CONCURRENCY)))
        elapsed, own1 = time.monotonic() - t0, os.times()
        own = own1.user + own1.system - own0.user - own0.system
        return Throughput(counts["ok"], 0, elapsed, own, cpu_seconds(nats_pid) - nats0)

    async def close(self) -> None:
        await self.nc.close()


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] * 1000


def wait_http(url: str, proc: ServerProcess) -> None:
    def ok() -> bool:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)

    wait_until(ok, timeout=30, what=url, proc=proc)


@dataclass
class Server:
    name: str
    port: int
    proc: ServerProcess
    requests: Requests
    idle_rss_mb: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    total: Throughput = field(default_factory=Throughput)


def report(server: Server) -> None:
    tp, lat = server.total, server.latencies
    print(
        f"{server.name:<9} max {tp.rps:7.1f} req/s ({tp.rps * 10:7.0f} events/s) | "
        f"at {RATE:.0f} req/s p50 {pct(lat, 50):6.2f} ms p99 {pct(lat, 99):6.2f} ms | "
        f"CPU {tp.ms_per_event(tp.cpu_seconds):.3f} ms/event "
        f"(nats-server {tp.ms_per_event(tp.nats_cpu_seconds):.3f}) | "
        f"idle RSS {server.idle_rss_mb:5.1f} MB | non-200 {tp.other + server.errors}",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="per server and measure (default 5)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="max-throughput rounds, alternating (default 3)"
    )
    parser.add_argument("--write-docs", action="store_true",
                        help="put this run's output in docs/benchmarks.md")  # fmt: skip
    args = parser.parse_args()
    command = docs.command(".venv/bin/python -m bench.receiver")
    with docs.published("receiver", "Receiver", command, write=args.write_docs):
        await run(args)


async def run(args: argparse.Namespace) -> None:
    seconds: float = args.seconds
    rounds: int = args.rounds
    # enough that the receiver gets fresh requests up to about 4,000 req/s without building any
    payloads = Payloads(int(seconds * (RATE + 4000)) + 2000)
    print(
        f"payload: 10 legacy events, {payloads.body_bytes} bytes; {CONCURRENCY} keep-alive "
        f"connections for max throughput, {rounds} alternating rounds; {os.cpu_count()} CPUs; "
        f"servers' event loop: {eventloop.name()}; "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-receiver-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "nats").mkdir()
        nats = NatsServer(tmp / "nats").start()
        secret_file = tmp / "secret"
        secret_file.write_text(SECRET)
        bare_port, our_port, admin_port = free_port(), free_port(), free_port()
        bare_proc = ServerProcess("bare", [sys.executable, "-c", BARE_SERVER, str(bare_port)], tmp)
        our_proc = ServerProcess(
            "receiver",
            [
                str(Path(sys.executable).parent / "akeneo-connector"),
                "receiver",
                "--connection", CONNECTION,
                "--nats-url", nats.url,
                "--host", "127.0.0.1",
                "--port", str(our_port),
                "--admin-port", str(admin_port),
                "--events-api-secret-file", str(secret_file),
                "--log-level", "error",
            ],
            tmp,
        )  # fmt: skip
        bare = Server("bare", bare_port, bare_proc, payloads.sequence(reuse=True))
        ours = Server("receiver", our_port, our_proc, payloads.sequence(reuse=False))
        path = Throughput()
        try:
            await create_stream(nats.url)
            bare_proc.start()
            our_proc.start()
            wait_http(f"http://127.0.0.1:{bare_port}/healthz", bare_proc)
            wait_http(f"http://127.0.0.1:{admin_port}/readyz", our_proc)
            await asyncio.sleep(1.0)  # let both settle before reading idle RSS
            for server in (bare, ours):
                server.idle_rss_mb = rss_mb(server.proc.pid)
            # the fixed load first, so the latencies are not those of a burst's aftermath
            stored = stream_messages(nats.monitor_port)
            for server in (bare, ours):
                server.latencies, server.errors = await fixed_rate(
                    server.port, server.requests, seconds
                )
            stored = stream_messages(nats.monitor_port) - stored
            # max throughput in alternating rounds, so both servers (and the publish path)
            # meet the same machine: the load of a shared machine drifts within seconds
            publish_path = await PublishPath.connect(nats.url, CONNECTION)
            ratios = []
            for _ in range(rounds):
                one = {}
                for server in (bare, ours):
                    before = stream_messages(nats.monitor_port)
                    one[server.name] = await max_throughput(
                        server.port, server.proc.pid, server.requests, seconds / rounds,
                        nats.process.pid,
                    )  # fmt: skip
                    stored += stream_messages(nats.monitor_port) - before
                    server.total += one[server.name]
                if rounds > 1:
                    ratios.append(one["receiver"].rps / one["bare"].rps)
                path += await publish_path.run(seconds / rounds, nats.process.pid)
            await publish_path.close()
        finally:
            our_proc.stop()
            bare_proc.stop()
            nats.stop()
    report(bare)
    report(ours)
    print(
        f"{'nats path':<9} max {path.rps:7.1f} req/s ({path.rps * 10:7.0f} events/s) | "
        f"the receiver's publish path alone (no HTTP, no parsing) | "
        f"CPU {path.ms_per_event(path.cpu_seconds):.3f} ms/event "
        f"(nats-server {path.ms_per_event(path.nats_cpu_seconds):.3f})",
        flush=True,
    )
    ratio = ours.total.rps / bare.total.rps
    p99 = pct(ours.latencies, 99)
    print(
        json.dumps(
            {
                "ratio_max_rps": round(ratio, 3),
                "ratio_per_round": [round(r, 3) for r in ratios],
                "receiver_p99_ms_at_200rps": round(p99, 2),
                "receiver_idle_rss_mb": round(ours.idle_rss_mb, 1),
                "receiver_cpu_ms_per_event": round(
                    ours.total.ms_per_event(ours.total.cpu_seconds), 3
                ),
                "receiver_events_stored": stored,
                "receiver_requests_built_while_sending": ours.requests.built_while_sending,
                "nats_path_max_rps": round(path.rps, 1),
                "ratio_bound_of_nats_path": round(path.rps / bare.total.rps, 3),
                "load_average_after": round(os.getloadavg()[0], 2),
            }
        )
    )
    print(
        f"targets: ratio >= 0.30: {'ok' if ratio >= 0.30 else 'MISSED'}; "
        f"p99 <= 25 ms: {'ok' if p99 <= 25 else 'MISSED'}; "
        f"idle RSS <= 60 MB: {'ok' if ours.idle_rss_mb <= 60 else 'MISSED'}"
    )


async def create_stream(url: str) -> None:
    """The connection's stream and bucket, as the operator makes them, with room for the run."""
    nc = await nats_py.connect(url)
    try:
        await ensure_all(nc.jetstream(timeout=10), ConnectionNames.parse(CONNECTION), STREAM)
    finally:
        await nc.close()


def stream_messages(monitor_port: int) -> int:
    url = f"http://127.0.0.1:{monitor_port}/jsz"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return int(json.load(resp)["messages"])


if __name__ == "__main__":
    asyncio.run(main())
