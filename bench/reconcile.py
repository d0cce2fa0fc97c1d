"""Reconcile throughput against Akeneo's rate limits.

The PIM simulator runs in its own process (20,000 products + 2,000 product models, 40 ms per
call); a real nats-server is started with its own store. Prints:

- the bound: one ``search_after`` cursor of 100 items per 40 ms call = 2,500 items/s;
- baseline (same run): one cursor paging the products alone, nothing published;
- the reconcile job with one cursor per kind (products and product models concurrently);
- the reconcile job as it runs by default: the products' ``updated`` range cut into 3 slices
  read side by side, plus the product models (4 cursors, the per-connection cap);
  each publishing every item and waiting for the stream's acks: items/s published, ratio to
  the bound and to the baseline, and the most calls in flight seen by client and server;
- the full scan of the catalog structure (categories, families, attributes: ``page``
  pagination only): REST calls against the ceil(n / 100) bound, seconds, items/s.

    .venv/bin/python -m bench.reconcile [--products 20000 --product-models 2000 --latency 0.04]
                                        [--categories 3000 --families 500 --attributes 1500]
                                        [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import nats

from akeneo_connector.jetstream import ensure_all
from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import StreamSpec
from akeneo_pim.rest import PRODUCTS_UUID_PATH, AkeneoRestClient, PimCredentials
from akeneo_pim.structure import STRUCTURE
from akeneo_resync.reconcile import Resync, ResyncSettings
from akeneo_testing.ground.nats import NatsServer
from bench import report

MAX_CALLS = 4
STRUCTURE_RESOURCES = ("categories", "families", "attributes")


def _serve(pipe: Connection, args: argparse.Namespace) -> None:
    """Child process: run the simulator until told to stop, then report server stats."""
    from akeneo_pim.simulator import PimSimulator

    async def main() -> None:
        started = time.perf_counter()
        sim = PimSimulator(
            products=args.products,
            product_models=args.product_models,
            categories=args.categories,
            families=args.families,
            attributes=args.attributes,
            latency=args.latency,
        )
        seeded = time.perf_counter() - started
        sim.api.warm_cache()  # the JSON of each item is encoded once, outside the timed runs
        async with sim:
            pipe.send((sim.url, seeded))
            loop = asyncio.get_running_loop()
            while True:
                command = await loop.run_in_executor(None, pipe.recv)  # "stats" | "stop"
                pipe.send((sim.stats.max_in_flight, sim.stats.requests))
                sim.stats.max_in_flight = 0  # per phase
                if command == "stop":
                    break

    asyncio.run(main())


def _credentials() -> PimCredentials:
    from akeneo_pim.simulator import PimSimulator

    return PimSimulator(products=0, product_models=0).credentials


async def _baseline(url: str, credentials: PimCredentials) -> tuple[int, float]:
    async with AkeneoRestClient(url, credentials, allow_private=True) as client:
        await client.get_json(f"{PRODUCTS_UUID_PATH}?limit=1")  # log in outside the clock
        started = time.perf_counter()
        items = 0
        async for page in client.iter_pages(PRODUCTS_UUID_PATH, {}):
            items += len(page)
        return items, time.perf_counter() - started


async def _structure_baseline(url: str, credentials: PimCredentials) -> tuple[int, float]:
    """The three structure listings paged side by side, nothing published."""
    async with AkeneoRestClient(url, credentials, allow_private=True) as client:
        await client.get_json(f"{PRODUCTS_UUID_PATH}?limit=1")  # log in outside the clock
        started = time.perf_counter()

        async def count(path: str) -> int:
            return sum([len(page) async for page in client.iter_offset_pages(path)])

        paths = [STRUCTURE[name].path for name in STRUCTURE_RESOURCES]
        items = sum(await asyncio.gather(*(count(path) for path in paths)))
        return items, time.perf_counter() - started


async def _reconcile(
    url: str,
    credentials: PimCredentials,
    nats_url: str,
    partitions: int,
    resources: tuple[str, ...] = ("products", "product_models"),
):
    full = resources == STRUCTURE_RESOURCES
    names = ConnectionNames("bench", f"reconcile-{partitions}{'-structure' * full}")
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_all(js, names, StreamSpec())
        kv = await js.key_value(names.guard_bucket)
        settings = ResyncSettings(
            names=names, partitions=partitions, resources=resources, full=full
        )
        async with AkeneoRestClient(url, credentials, allow_private=True) as client:
            await client.get_json(f"{PRODUCTS_UUID_PATH}?limit=1")
            client.stats.pages = client.stats.calls = client.stats.max_in_flight = 0
            return await Resync(settings, client, js, kv).run()
    finally:
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--product-models", type=int, default=2_000)
    parser.add_argument("--latency", type=float, default=0.04)
    parser.add_argument("--categories", type=int, default=3_000)
    parser.add_argument("--families", type=int, default=500)
    parser.add_argument("--attributes", type=int, default=1_500)
    parser.add_argument("--write-docs", action="store_true",
                        help="put this run's output in docs/benchmarks.md")  # fmt: skip
    args = parser.parse_args()
    command = report.command(".venv/bin/python -m bench.reconcile")
    with report.published("reconcile", "Reconcile", command, write=args.write_docs):
        run(args)


def run(args: argparse.Namespace) -> None:
    bound = 100 / args.latency

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child, args))
    proc.start()
    url, seeded = parent.recv()
    credentials = _credentials()
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp)).start()
        try:
            base_items, base_s = asyncio.run(_baseline(url, credentials))
            parent.send("stats")
            base_server_in_flight, _ = parent.recv()
            single = asyncio.run(_reconcile(url, credentials, server.url, 1))
            parent.send("stats")
            single_in_flight, _ = parent.recv()
            summary = asyncio.run(_reconcile(url, credentials, server.url, 3))
            parent.send("stats")
            server_in_flight, _ = parent.recv()
            listed, listed_s = asyncio.run(_structure_baseline(url, credentials))
            parent.send("stats")
            _, before = parent.recv()
            structure = asyncio.run(
                _reconcile(url, credentials, server.url, 1, STRUCTURE_RESOURCES)
            )
            parent.send("stop")
            structure_in_flight, after = parent.recv()
        finally:
            server.stop()
            proc.join(timeout=10)

    base_rate = base_items / base_s
    rate = summary.published / summary.seconds
    print(f"simulator: {args.products} products + {args.product_models} product models, "
          f"{args.latency * 1000:.0f} ms per call, seeded in {seeded:.2f} s")  # fmt: skip
    print(f"bound (one search_after cursor, 100 items/call): {bound:,.0f} items/s")
    print(f"baseline, same run (products, one cursor, nothing published): "
          f"{base_items} items in {base_s:.2f} s = {base_rate:,.0f} items/s "
          f"({base_rate / bound:.2f} of bound), "
          f"server max in flight {base_server_in_flight}")  # fmt: skip
    single_rate = single.published / single.seconds
    print(f"reconcile, one cursor per kind: {single.published} items published in "
          f"{single.seconds:.2f} s = {single_rate:,.0f} items/s = {single_rate / bound:.2f} of "
          f"bound, max in flight client {single.max_in_flight} / "
          f"server {single_in_flight}")  # fmt: skip
    slices = summary.kinds["products"].slices
    print(f"reconcile (default: products in {slices} updated-range slices + product models, "
          f"side by side):")  # fmt: skip
    print(f"  {summary.published} items published in {summary.seconds:.2f} s = "
          f"{rate:,.0f} items/s = {rate / bound:.2f} of bound "
          f"({rate / base_rate:.2f} of baseline)")  # fmt: skip
    print(f"calls: {summary.calls} ({summary.pages} pages), 429s: {summary.throttled_429}, "
          f"retries: {summary.retries}")  # fmt: skip
    peak = max(summary.max_in_flight, server_in_flight)
    print(f"max calls in flight: client {summary.max_in_flight}, server {server_in_flight} "
          f"(cap {MAX_CALLS}) -> {'OK' if peak <= MAX_CALLS else 'EXCEEDED'}")  # fmt: skip
    print(f"target >= 0.85 of bound: {'met' if rate / bound >= 0.85 else 'NOT met'}")
    sizes = {"categories": args.categories, "families": args.families,
             "attributes": args.attributes}  # fmt: skip
    pages = sum(max(1, math.ceil(n / 100)) for n in sizes.values())
    items = sum(part.seen for part in structure.structure.values())
    print(f"structure full scan ({', '.join(f'{n} {name}' for name, n in sizes.items())}, "
          f"page pagination): {items} items published in {structure.seconds:.2f} s = "
          f"{items / structure.seconds:,.0f} items/s; "
          f"{sum(part.calls for part in structure.structure.values())} listing calls "
          f"(server saw {after - before - 2} after the log-in; ceil(n/100) bound {pages}); "
          f"max in flight client "
          f"{structure.max_in_flight} / server {structure_in_flight}; sequential paging "
          f"would take >= {pages * args.latency:.2f} s")  # fmt: skip
    print(f"  baseline, same run (the three listings paged, nothing published): {listed} "
          f"items in {listed_s:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
