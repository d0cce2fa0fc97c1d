"""What the connection's shared PIM call budget (``KvBudget``) costs per call.

The PIM simulator runs in its own process, by default adding no latency so the budget's own
cost is not hidden behind the PIM's (``--latency``: the PIM's seconds per call); a real
nats-server holds the connection's bucket. One client reads one family by code
(``GET /api/rest/v1/families/{code}``) over and over:

- baseline, same run: the per-process cap (``LocalLimiter``);
- the shared budget (``KvBudget``): a compare-and-set to take a slot before the call, one to
  free it after (in the background);
- the shared budget's own cost alone: a slot taken and freed, no call in between;

each one call at a time (latency per call: mean, p50, p99) and four at a time (calls/s). The
difference of the means is the budget's overhead per call; the PIM's own answer takes tens of
milliseconds in production (the reconcile benchmark uses 40 ms).

    .venv/bin/python -m bench.rest_budget [--calls 2000] [--latency 0.04]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import nats

from akeneo_connector import eventloop
from akeneo_connector.jetstream import ensure_all
from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import StreamSpec
from akeneo_pim.rest import AkeneoRestClient, LocalLimiter, PimCredentials
from akeneo_pim.rest_budget import KvBudget
from akeneo_pim.structure import FAMILIES_PATH
from akeneo_testing.ground.nats import NatsServer

PATH = f"{FAMILIES_PATH}/shoes"
ROUNDS = 10


def _serve(pipe: Connection, latency: float) -> None:
    """Child process: the simulator, until told to stop."""
    from akeneo_pim.simulator import PimSimulator

    async def main() -> None:
        async with PimSimulator(products=0, product_models=0, latency=latency) as sim:
            secrets = {k: v.get_secret_value() for k, v in sim.credentials}
            pipe.send((sim.url, secrets))
            await asyncio.get_running_loop().run_in_executor(None, pipe.recv)

    asyncio.run(main())


def _figures(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.fmean(ordered) * 1e6, ordered[len(ordered) // 2] * 1e6, p99 * 1e6


async def _sequential(one: Callable[[], Awaitable[None]], calls: int) -> list[float]:
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        await one()
        latencies.append(time.perf_counter() - started)
    return latencies


async def _four_wide(one: Callable[[], Awaitable[None]], calls: int) -> float:
    """Seconds for ``calls`` calls made by four callers side by side."""

    async def caller() -> None:
        for _ in range(calls // 4):
            await one()

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(4)))
    return time.perf_counter() - started


async def _run(
    url: str, credentials: PimCredentials, nats_url: str, calls: int, latency: float
) -> None:
    names = ConnectionNames("bench", "rest-budget")
    nc = await nats.connect(nats_url)
    try:
        await ensure_all(nc.jetstream(), names, StreamSpec())
        budget = KvBudget(nc, names.guard_bucket, holder="bench")
        local = AkeneoRestClient(url, credentials, limiter=LocalLimiter(), allow_private=True)
        shared = AkeneoRestClient(url, credentials, limiter=budget, allow_private=True)

        async def slot_only() -> None:
            async with budget.slot():
                pass

        modes: dict[str, Callable[[], Awaitable[Any]]] = {
            "per-process cap": lambda: local.get_item(PATH),
            "shared": lambda: shared.get_item(PATH),
            "slot only": slot_only,
        }
        for one in modes.values():
            for _ in range(50):  # warm up: connections, token, caches
                await one()
        latencies: dict[str, list[float]] = {mode: [] for mode in modes}
        seconds = dict.fromkeys(modes, 0.0)
        # in rounds, the modes in turn: a machine whose load drifts weighs on all alike
        for _ in range(ROUNDS):
            for mode, one in modes.items():
                latencies[mode] += await _sequential(one, calls // ROUNDS)
            for mode, one in modes.items():
                seconds[mode] += await _four_wide(one, calls // ROUNDS)
        await local.aclose()
        await shared.aclose()
        stats = budget.stats
        await budget.close()
    finally:
        await nc.close()
    results = {mode: (latencies[mode], len(latencies[mode]) / seconds[mode]) for mode in modes}

    print(f"{calls} sequential GET {PATH} (simulator latency {latency * 1000:g} ms), then "
          f"{calls} by 4 callers side by side, in {ROUNDS} rounds taking the modes in turn; "
          f"event loop {eventloop.name()}")  # fmt: skip
    print(f"{'':<40} {'mean µs':>9} {'p50 µs':>9} {'p99 µs':>9} {'4-wide calls/s':>15}")
    for label, text in (
        ("per-process cap (baseline, same run)", "per-process cap"),
        ("shared budget (KvBudget)", "shared"),
        ("shared budget, slot taken+freed only", "slot only"),
    ):
        mode_latencies, rate = results[text]
        mean, p50, p99 = _figures(mode_latencies)
        print(f"{label:<40} {mean:>9.0f} {p50:>9.0f} {p99:>9.0f} {rate:>15,.0f}")
    base = _figures(results["per-process cap"][0])
    with_budget = _figures(results["shared"][0])
    print(f"overhead per call: {with_budget[0] - base[0]:.0f} µs mean, "
          f"{with_budget[1] - base[1]:.0f} µs "
          f"p50 = {(with_budget[1] - base[1]) / base[1]:.0%} of the call (one KV round trip on "
          f"the call's path, the free in the background); {stats.conflicts} compare-and-set "
          f"conflicts among {stats.acquired} slots taken")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.0, help="the PIM's seconds per call")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child, args.latency))
    proc.start()
    url, raw = parent.recv()
    credentials = PimCredentials.model_validate(raw)
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp)).start()
        try:
            asyncio.run(_run(url, credentials, server.url, args.calls, args.latency))
        finally:
            server.stop()
            parent.send("stop")
            proc.join(timeout=10)


if __name__ == "__main__":
    main()
