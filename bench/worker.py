"""Worker benchmark: throughput, CPU, memory and latency, against a same-run baseline.

    .venv/bin/python -m bench.worker [--products 5000] [--events 50000] [--write-docs]

One nats-server (started here), one stream holding ``--events`` events over ``--products``
products, 20 % of them duplicates (re-sent with a new event id) and 20 % out of order.
Drained by, in turn:

- baseline: a pull consumer of the same stream, in this process, that acks without work
  (same batch size);
- ``akeneo-connector worker`` with the sqlite sink (the local-mode default), a process of
  its own;
- ``akeneo-connector worker`` with the webhook sink, POSTing to a local aiohttp server in
  this process that verifies the signature (the guard is reset in between, so it applies
  everything again).

Printed for each worker process: events/s drained (from its first processed event to its
last, read from its ``/metrics``), ratio to the baseline, CPU per event (user + system time of
the worker process, from ``/proc/<pid>/stat``, over the same span), its RSS at the end and
its peak RSS (``VmHWM``), applied count, final state exact or not. Then p50/p99
stream-to-sink latency in a paced phase (events published at a steady rate while the worker
runs, so the latency is not the backlog's queueing time): that phase runs the same
``Worker`` class in this process, as its exact latencies are not exported (the process's
histogram has coarse buckets).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import hmac
import json
import os
import random
import re
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import nats
from aiohttp import web
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from akeneo_connector import eventloop
from akeneo_connector.guard_state import GUARD_PREFIX
from akeneo_connector.jetstream import ensure_all
from akeneo_connector.names import ConnectionNames
from akeneo_connector.normalized import Action, NormalizedEvent, ResourceKind, SourceFormat
from akeneo_connector.spec import StreamSpec, WebhookSignature
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import ServerProcess, free_port
from akeneo_worker.metrics import WorkerMetrics
from akeneo_worker.sinks.base import Sink
from akeneo_worker.sinks.sqlite import SqliteSink
from akeneo_worker.sinks.webhook import Signer, WebhookSink
from akeneo_worker.worker import Worker, WorkerConfig
from bench import report

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECRET = "bench-secret"
TARGET_EVENTS_PER_S = 5_000  # the sqlite sink, the local-mode default
TARGET_RATIO = 0.40  # of the ack-only baseline
CONFIG = WorkerConfig(batch_size=500, fetch_timeout=0.5, stats_interval=5.0, replica="bench")


TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE = re.compile(r"^akeneo_worker_(\w+?)_total(?:\{(.*)\})? (\S+)$", re.MULTILINE)


def counts(metrics: str) -> dict[str, int]:
    """applied / outdated / duplicate / dead_lettered, from the worker's ``/metrics`` text."""
    found = dict.fromkeys(("applied", "outdated", "duplicate", "dead_lettered"), 0)
    for name, labels, value in SAMPLE.findall(metrics):
        key = name
        if name == "skipped":
            key = (re.search(r'reason="(\w+)"', labels or "") or [None, ""])[1]
        if key in found:
            found[key] += int(float(value))
    return found


def memory_mb(pid: int | str, field: str = "VmRSS") -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Drained:
    """What one ``akeneo-connector worker`` process did with the stream."""

    events_per_s: float
    cpu_ms_per_event: float
    rss_mb: float
    peak_rss_mb: float
    counts: dict[str, int]
    measured: int  # events processed within the measured span


async def drain_process(argv: list[str], work: Path, name: str, total: int) -> Drained:
    """Run the worker command until it processed ``total`` events; measure it, stop it.

    The span starts at the first poll that sees an event processed (start-up, imports and
    the consumer's creation are left out, as they are in the baseline) and ends at the poll
    that sees the last; polls every 50 ms of the worker's ``/metrics``.
    """
    port = free_port()
    proc = ServerProcess(name, [*argv, "--port", str(port), "--log-level", "warning"], work)
    proc.start()
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with aiohttp.ClientSession() as http:

            async def metrics() -> str:
                while True:
                    if not proc.alive:
                        raise RuntimeError(f"{name} exited\n{proc.log_tail()}")
                    try:
                        async with http.get(url) as resp:
                            return await resp.text()
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.05)

            start: tuple[float, float, int] | None = None
            while True:
                seen = counts(await metrics())
                done = sum(seen.values())
                now, cpu = time.perf_counter(), cpu_seconds(proc.pid)
                if start is None and done > 0:
                    start = (now, cpu, done)
                if done >= total:
                    break
                await asyncio.sleep(0.05)
            assert start is not None
            t0, cpu0, done0 = start
            measured = total - done0
            return Drained(
                events_per_s=measured / (now - t0) if now > t0 else float("nan"),
                cpu_ms_per_event=(cpu - cpu0) * 1000 / max(measured, 1),
                rss_mb=memory_mb(proc.pid),
                peak_rss_mb=memory_mb(proc.pid, "VmHWM"),
                counts=seen,
                measured=measured,
            )
    finally:
        proc.stop()


def product(key: str, n: int) -> dict[str, Any]:
    updated = (T0 + timedelta(seconds=n)).isoformat()
    return {
        "uuid": key,
        "identifier": f"sku-{key[:8]}",
        "family": "clothing",
        "enabled": True,
        "categories": ["summer", "tshirts"],
        "values": {
            "name": [{"locale": "en_US", "scope": None, "data": f"T-shirt {key[:8]} v{n}"}],
            "description": [{"locale": "en_US", "scope": "ecommerce", "data": "x" * 300}],
            "price": [{"locale": None, "scope": None, "data": [{"amount": n, "currency": "EUR"}]}],
        },
        "created": T0.isoformat(),
        "updated": updated,
    }


def upsert(names: ConnectionNames, key: str, n: int) -> NormalizedEvent:
    """The n-th version of product ``key``, as the receiver would publish it."""
    return NormalizedEvent(
        connection=names.ref,
        source=SourceFormat.EVENTS_API,
        event_id=str(uuid.uuid4()),
        action=Action.UPSERT,
        kind=ResourceKind.PRODUCT,
        key=key,
        version=T0 + timedelta(seconds=n),
        resource=product(key, n),
    )


def workload(
    names: ConnectionNames, products: int, events: int, rng: random.Random
) -> tuple[list[NormalizedEvent], dict[str, int]]:
    """``events`` events: 80 % distinct changes, 20 % duplicates; 20 % displaced."""
    keys = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(products)]
    distinct = int(events * 0.8)
    per_product = max(1, distinct // products)
    changes: list[NormalizedEvent] = []
    for n in range(1, per_product + 1):
        for key in rng.sample(keys, len(keys)):
            changes.append(upsert(names, key, n))
    # 20 % out of order: swapped with an event up to 2,000 positions later.
    for i in rng.sample(range(len(changes)), len(changes) // 5):
        j = min(len(changes) - 1, i + rng.randint(1, 2000))
        changes[i], changes[j] = changes[j], changes[i]
    stream = list(changes)
    for _ in range(events - len(changes)):  # duplicates: the same change sent again, later
        original = changes[rng.randrange(len(changes))]
        copy = original.model_copy(update={"event_id": str(uuid.uuid4())})
        stream.insert(rng.randint(0, len(stream)), copy)
    newest = dict.fromkeys(keys, per_product)
    return stream, newest


async def publish_all(js: JetStreamContext, names: ConnectionNames, events: list[Any]) -> None:
    for i in range(0, len(events), 1000):
        await asyncio.gather(
            *(
                js.publish(
                    names.event_subject(e.kind.value),
                    e.to_message(),
                    headers={"Nats-Msg-Id": e.event_id},
                )
                for e in events[i : i + 1000]
            )
        )


async def baseline(js: JetStreamContext, names: ConnectionNames, total: int) -> float:
    await js.add_consumer(
        names.stream,
        config=ConsumerConfig(
            durable_name="baseline",
            filter_subject=f"{names.events_subject}.>",
            ack_policy=AckPolicy.EXPLICIT,
            max_ack_pending=2000,
        ),
    )
    sub = await js.pull_subscribe_bind(durable="baseline", stream=names.stream)
    started, done = time.perf_counter(), 0
    while done < total:
        msgs = await sub.fetch(CONFIG.batch_size, timeout=5)
        for msg in msgs:
            await msg.ack()
        done += len(msgs)
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    return total / elapsed


async def paced_latency(
    js: JetStreamContext,
    names: ConnectionNames,
    sink: Sink,
    keys: list[str],
    *,
    rate: int,
    seconds: float,
    first_version: int,
) -> tuple[float, float]:
    """Publish fresh versions at ``rate``/s while the worker runs: p50/p99 stream-to-sink (ms)."""
    metrics = WorkerMetrics(keep_latencies=1_000_000)
    worker = Worker(js, names, sink, replace(CONFIG, fetch_timeout=0.05), metrics=metrics)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    while not worker.ready:  # noqa: ASYNC110 - polling a plain flag
        await asyncio.sleep(0.01)
    total = int(rate * seconds)
    tick = 0.05
    per_tick = max(1, int(rate * tick))
    started = time.perf_counter()
    n = first_version
    for i in range(0, total, per_tick):
        batch = []
        for j in range(i, min(total, i + per_tick)):
            n += 1
            key = keys[j % len(keys)]
            batch.append(upsert(names, key, n))
        await publish_all(js, names, batch)
        delay = started + (i // per_tick + 1) * tick - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    while metrics.counts["applied"] < total:  # noqa: ASYNC110 - polling a counter
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert metrics.latencies is not None
    samples = sorted(metrics.latencies)
    return samples[len(samples) // 2] * 1000, samples[int(len(samples) * 0.99)] * 1000


class Merchant:
    """The webhook's receiving end: verifies the signature, keeps the newest per key."""

    def __init__(self) -> None:
        self.versions: dict[str, str] = {}
        self.state: dict[str, int] = {}
        self.bad = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        ts = request.headers.get("X-Connector-Timestamp", "")
        want = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, request.headers.get("X-Connector-Signature", "")):
            self.bad += 1
            return web.Response(status=401)
        for change in json.loads(body)["changes"]:
            if self.versions.get(change["key"], "") <= change["version"]:
                self.versions[change["key"]] = change["version"]
                self.state[change["key"]] = change["resource"]["values"]["price"][0]["data"][0][
                    "amount"
                ]
        return web.Response(status=204)

    async def start(self) -> Merchant:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"
        return self


async def reset_worker(js: JetStreamContext, names: ConnectionNames) -> None:
    """Forget the previous run: delete the durable consumer and empty the guard."""
    await js.delete_consumer(names.stream, names.consumer)
    await js.purge_stream(
        f"KV_{names.guard_bucket}", subject=f"$KV.{names.guard_bucket}.{GUARD_PREFIX}.>"
    )


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    server = NatsServer(work).start()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    try:
        names = ConnectionNames("bench", "worker")
        await ensure_all(js, names, StreamSpec())
        events, newest = workload(names, args.products, args.events, rng)
        t = time.perf_counter()
        await publish_all(js, names, events)
        print(f"published {len(events)} events over {len(newest)} products "
              f"in {time.perf_counter() - t:.1f}s")  # fmt: skip
        total = len(events)
        # A worker does not share its heap with the publisher: 50,000 events kept alive here
        # made each full garbage collection in the worker walk them (a third of its CPU).
        del events
        gc.collect()

        base = await baseline(js, names, total)
        print(f"baseline (ack only)   {base:9,.0f} events/s (in this process)")

        command = [str(Path(sys.executable).parent / "akeneo-connector"), "worker",
                   "--connection", names.ref, "--nats-url", server.url]  # fmt: skip
        db = work / "catalog.db"
        sqlite_argv = [*command, "--sink", "sqlite", "--sqlite-path", str(db)]
        sqlite = done = await drain_process(sqlite_argv, work, "worker-sqlite", total)
        state = {key: r["values"]["price"][0]["data"][0]["amount"] for (_, key), (_, r) in
                 SqliteSink(db).read_all().items()}  # fmt: skip
        print(f"sqlite sink           {done.events_per_s:9,.0f} events/s  "
              f"ratio {done.events_per_s / base:.2f}  {_process(done)}  "
              f"final state exact: {state == newest}")  # fmt: skip

        merchant = await Merchant().start()
        await reset_worker(js, names)
        secret_file = work / "signing-secret"
        secret_file.write_text(SECRET)
        hook_argv = [*command, "--sink", "webhook", "--webhook-url", merchant.url,
                     "--webhook-allow-private", "--webhook-signature", "legacy",
                     "--webhook-signing-secret-file", str(secret_file)]  # fmt: skip
        done = await drain_process(hook_argv, work, "worker-webhook", total)
        exact = merchant.state == newest and merchant.bad == 0
        print(f"webhook sink          {done.events_per_s:9,.0f} events/s  "
              f"ratio {done.events_per_s / base:.2f}  {_process(done)}  "
              f"final state exact: {exact}")  # fmt: skip
        signer = Signer.from_text(SECRET, WebhookSignature.LEGACY)  # what Merchant verifies
        hook = WebhookSink(merchant.url, signer=signer, allow_private=True)

        keys = list(newest)
        p50, p99 = await paced_latency(
            js,
            names,
            SqliteSink(db),
            keys,
            rate=args.rate,
            seconds=args.seconds,
            first_version=10**6,
        )
        print(f"sqlite  stream-to-sink at {args.rate}/s: p50 {p50:.1f} ms  p99 {p99:.1f} ms "
              f"(Worker in this process)")  # fmt: skip
        p50, p99 = await paced_latency(
            js, names, hook, keys, rate=args.rate, seconds=args.seconds, first_version=2 * 10**6
        )
        print(f"webhook stream-to-sink at {args.rate}/s: p50 {p50:.1f} ms  p99 {p99:.1f} ms "
              f"(Worker in this process)")  # fmt: skip
        if merchant.runner is not None:
            await merchant.runner.cleanup()
        met = sqlite.events_per_s >= TARGET_EVENTS_PER_S
        ratio_met = sqlite.events_per_s / base >= TARGET_RATIO
        print(f"targets (sqlite): >= {TARGET_EVENTS_PER_S:,} events/s: "
              f"{'ok' if met else 'MISSED'}; ratio >= {TARGET_RATIO}: "
              f"{'ok' if ratio_met else 'MISSED'}")  # fmt: skip
    finally:
        await nc.drain()
        server.stop()


def _process(done: Drained) -> str:
    c = done.counts
    return (f"CPU {done.cpu_ms_per_event:.3f} ms/event  RSS {done.rss_mb:.0f} MB "
            f"(peak {done.peak_rss_mb:.0f})  applied {c['applied']:,}  skipped outdated "
            f"{c['outdated']:,} duplicate {c['duplicate']:,}")  # fmt: skip


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=1000, help="paced phase: events/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="paced phase: duration")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--write-docs", action="store_true",
                        help="put this run's output in docs/benchmarks.md")  # fmt: skip
    args = parser.parse_args()
    command = report.command(".venv/bin/python -m bench.worker")
    with report.published("worker", "Worker", command, write=args.write_docs):
        # the worker's own loop (``akeneo-connector worker`` runs on it); baseline and
        # merchant share this process, so they run on it too
        print(f"event loop: {eventloop.name()}; {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
        eventloop.run(main(args))


if __name__ == "__main__":
    cli()
