"""Receiver benchmark: a bare aiohttp handler vs ``akeneo-connector receiver``, same run, same load.

Both servers get the same signed 10-event legacy payloads (about 12 KB of realistic products,
fresh event ids per request so every event is really stored, never a duplicate) over plain
HTTP on loopback, from a lean keep-alive HTTP/1.1 client in this process. Prints:
max requests/s of each and their ratio, p50/p99 latency at a fixed open-loop 200 requests/s
(measured from the scheduled send time), receiver CPU per accepted event, and idle RSS.

    .venv/bin/python bench/receiver.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ground.nats import NatsServer  # noqa: E402
from tests.ground.processes import ServerProcess, free_port, wait_until  # noqa: E402
from tests.unit.pim_formats.payloads import legacy_batch  # noqa: E402

from akeneo_pim.signatures import events_api_headers  # noqa: E402

SECRET = "bench-secret"
CONCURRENCY = 16
RATE = 200.0
TICKS = os.sysconf("SC_CLK_TCK")

BARE_SERVER = """
import sys
from aiohttp import web

async def events(request):
    await request.read()
    return web.Response(text="ok")

app = web.Application(client_max_size=1048576)
app.router.add_post("/events", events)
app.router.add_get("/healthz", lambda r: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


class Payloads:
    """Pre-built signed requests, each with 10 fresh event ids, shared by both servers."""

    def __init__(self, count: int) -> None:
        template = legacy_batch(10).decode()
        ids = re.findall(r'"event_id":"([0-9a-f-]{36})"', template)
        self.body_bytes = len(template)
        self.requests: list[bytes] = []
        now = int(time.time())
        for _ in range(count):
            body = template
            for old in ids:
                body = body.replace(old, str(uuid.uuid4()))
            raw = body.encode()
            headers = events_api_headers(SECRET, raw, now)
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            self.requests.append(
                (
                    f"POST /events HTTP/1.1\r\nHost: bench\r\n{head}"
                    f"Content-Length: {len(raw)}\r\n\r\n"
                ).encode()
                + raw
            )
        self._next = 0

    def next(self) -> bytes:
        request = self.requests[self._next % len(self.requests)]
        self._next += 1
        return request


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
    rps: float
    ok: int
    other: int
    cpu_seconds: float
    nats_cpu_seconds: float


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def max_throughput(
    port: int, pid: int, payloads: Payloads, seconds: float, nats_pid: int
) -> Throughput:
    conns = [await Connection.open(port) for _ in range(CONCURRENCY)]
    counts = {"ok": 0, "other": 0}
    stop = time.monotonic() + 0.5  # warm-up

    async def loop(conn: Connection, until: float, count: bool) -> None:
        while time.monotonic() < until:
            status = await conn.send(payloads.next())
            if count:
                counts["ok" if status == 200 else "other"] += 1

    await asyncio.gather(*(loop(c, stop, False) for c in conns))
    cpu0, nats0, t0 = cpu_seconds(pid), cpu_seconds(nats_pid), time.monotonic()
    await asyncio.gather(*(loop(c, t0 + seconds, True) for c in conns))
    elapsed, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
    nats_cpu = cpu_seconds(nats_pid) - nats0
    for c in conns:
        c.close()
    rps = (counts["ok"] + counts["other"]) / elapsed
    return Throughput(rps, counts["ok"], counts["other"], cpu, nats_cpu)


async def fixed_rate(port: int, payloads: Payloads, seconds: float) -> tuple[list[float], int]:
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
            status = await conn.send(payloads.next())
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


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] * 1000


def wait_http(url: str, proc: ServerProcess) -> None:
    def ok() -> bool:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)

    wait_until(ok, timeout=30, what=url, proc=proc)


async def measure(
    name: str, port: int, proc: ServerProcess, payloads: Payloads, seconds: float, nats_pid: int
) -> dict[str, float]:
    idle_rss = rss_mb(proc.pid)
    # the fixed load first, so the latencies are not those of the burst's aftermath
    lat, errors = await fixed_rate(port, payloads, seconds)
    tp = await max_throughput(port, proc.pid, payloads, seconds, nats_pid)
    out = {
        "idle_rss_mb": idle_rss,
        "max_rps": tp.rps,
        "non_200": tp.other + errors,
        "cpu_ms_per_event": tp.cpu_seconds * 1000 / max(tp.ok * 10, 1),
        "nats_cpu_ms_per_event": tp.nats_cpu_seconds * 1000 / max(tp.ok * 10, 1),
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
    }
    print(
        f"{name:<9} max {tp.rps:7.1f} req/s ({tp.rps * 10:7.0f} events/s) | "
        f"at {RATE:.0f} req/s p50 {out['p50_ms']:6.2f} ms p99 {out['p99_ms']:6.2f} ms | "
        f"CPU {out['cpu_ms_per_event']:.3f} ms/event "
        f"(nats-server {out['nats_cpu_ms_per_event']:.3f}) | idle RSS {idle_rss:5.1f} MB | "
        f"non-200 {out['non_200']:.0f}",
        flush=True,
    )
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per phase (default 5)")
    args = parser.parse_args()
    seconds: float = args.seconds
    # enough distinct requests that the receiver never sees a duplicate event id
    payloads = Payloads(int(seconds * 1200) + int(seconds * RATE) + 2000)
    print(
        f"payload: 10 legacy events, {payloads.body_bytes} bytes; {CONCURRENCY} keep-alive "
        f"connections for max throughput; {os.cpu_count()} CPUs",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-receiver-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "nats").mkdir()
        nats = NatsServer(tmp / "nats").start()
        secret_file = tmp / "secret"
        secret_file.write_text(SECRET)
        bare_port, our_port = free_port(), free_port()
        bare = ServerProcess("bare", [sys.executable, "-c", BARE_SERVER, str(bare_port)], tmp)
        ours = ServerProcess(
            "receiver",
            [
                str(Path(sys.executable).parent / "akeneo-connector"),
                "receiver",
                "--connection", "bench/acme",
                "--nats-url", nats.url,
                "--host", "127.0.0.1",
                "--port", str(our_port),
                "--events-api-secret-file", str(secret_file),
                "--ensure-stream",
                "--log-level", "error",
            ],
            tmp,
        )  # fmt: skip
        try:
            bare.start()
            ours.start()
            wait_http(f"http://127.0.0.1:{bare_port}/healthz", bare)
            wait_http(f"http://127.0.0.1:{our_port}/readyz", ours)
            await asyncio.sleep(1.0)  # let both settle before reading idle RSS
            a = await measure("bare", bare_port, bare, payloads, seconds, nats.process.pid)
            b = await measure("receiver", our_port, ours, payloads, seconds, nats.process.pid)
            stored = stream_messages(nats.monitor_port)
        finally:
            ours.stop()
            bare.stop()
            nats.stop()
    ratio = b["max_rps"] / a["max_rps"]
    print(
        json.dumps(
            {
                "ratio_max_rps": round(ratio, 3),
                "receiver_p99_ms_at_200rps": round(b["p99_ms"], 2),
                "receiver_idle_rss_mb": round(b["idle_rss_mb"], 1),
                "receiver_cpu_ms_per_event": round(b["cpu_ms_per_event"], 3),
                "events_stored": stored,
            }
        )
    )
    print(
        f"targets: ratio >= 0.30: {'ok' if ratio >= 0.30 else 'MISSED'}; "
        f"p99 <= 25 ms: {'ok' if b['p99_ms'] <= 25 else 'MISSED'}; "
        f"idle RSS <= 60 MB: {'ok' if b['idle_rss_mb'] <= 60 else 'MISSED'}"
    )


def stream_messages(monitor_port: int) -> int:
    url = f"http://127.0.0.1:{monitor_port}/jsz"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return int(json.load(resp)["messages"])


if __name__ == "__main__":
    asyncio.run(main())
