"""`akeneo-connector simulate`: act as a PIM towards a deployment before a real PIM is used.

Sends signed deliveries of random catalog edits to ``--target`` (legacy Events API batches of
up to 10 with the Test request first, or Event Platform CloudEvents with Akeneo's envelope) at
``--rate`` events per second for ``--duration`` seconds, with the PIM's deadline (0.5 s legacy,
5 s Event Platform), and prints what was accepted / rejected / timed out. ``--mix`` widens the
Event Platform traffic: ``structure`` adds category, family, attribute and attribute option
edits; ``all`` also every other type of Akeneo's reference (deltas, completeness, assets,
jobs...). ``--serve-rest`` also serves the simulated REST API (OAuth, products, product
models, the structure) so the deployment's worker and reconcile job can read it.

Exit code: 0 when every delivery sent was accepted, 1 otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid as uuidlib
from datetime import UTC, datetime
from pathlib import Path

from akeneo_connector.event_types import IGNORED, REFERENCE
from akeneo_pim.simulator import EventSender, PimEvent, PimSimulator, SendReport
from akeneo_pim.simulator.catalog import Catalog
from akeneo_pim.simulator.events import completeness_event, pim_events, reference_event

HELP = "simulate a PIM: send signed events to a receiver, serve the REST API"


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--target", help="receiver URL to POST deliveries to")
    add("--format", choices=["events_api", "event_platform"], default="events_api",
        help="legacy Events API (default) or Event Platform CloudEvents")  # fmt: skip
    add("--secret-file", type=Path,
        help="events_api: the event-subscription secret; event_platform: primary secret on "
             "the first line, optional secondary on the second")  # fmt: skip
    add("--secret", help="the secret itself (visible in the process list: prefer --secret-file)")
    add(
        "--mix",
        choices=["products", "structure", "all"],
        default="products",
        help="event_platform: products (default), + structure edits, or every reference type",
    )
    add(
        "--send-product-identifier",
        action="store_true",
        help="event_platform: add data.product.identifier, as that subscription option does",
    )
    add("--rate", type=float, default=10.0, help="events per second (default 10)")
    add("--duration", type=float, default=5.0, help="seconds of traffic (default 5)")
    add("--products", type=int, default=100, help="products in the simulated catalog")
    add("--product-models", type=int, default=10, help="product models in the catalog")
    add("--seed", type=int, default=0)
    add("--reorder", type=float, default=0.0, help="probability to swap a delivery forward")
    add("--duplicate", type=float, default=0.0, help="probability to send a delivery twice")
    add("--drop", type=float, default=0.0, help="probability to lose a delivery (never sent)")
    add(
        "--timeout",
        type=float,
        default=None,
        help="deadline per delivery (default: 0.5 s legacy, 5 s Event Platform, as the PIM)",
    )
    add("--ca-file", help="CA bundle to verify the receiver's certificate")
    add("--insecure", action="store_true", help="do not verify the receiver's certificate")
    add("--no-test-request", action="store_true", help="skip the legacy Test request")
    add("--serve-rest", action="store_true", help="serve the simulated REST API too")
    add("--host", default="127.0.0.1", help="REST listen address (with --serve-rest)")
    add("--port", type=int, default=0, help="REST port (with --serve-rest; 0: a free one)")
    add("--latency", type=float, default=0.0, help="REST latency per call in seconds")
    add("--rate-429", type=float, default=0.0, help="share of REST calls answered 429")
    add("--write-credentials", type=Path,
        help="write the REST credentials as files clientId, clientSecret, username, password "
             "into this directory (what --pim-credentials-dir expects)")  # fmt: skip


def _secrets(args: argparse.Namespace) -> tuple[str, str | None]:
    if args.secret_file is not None:
        lines = [ln.strip() for ln in args.secret_file.read_text().splitlines() if ln.strip()]
    elif args.secret:
        lines = [args.secret]
    else:
        raise ValueError("--target needs --secret-file (or --secret)")
    if not lines:
        raise ValueError(f"{args.secret_file} is empty")
    return lines[0], (lines[1] if len(lines) > 1 else None)


def _write_credentials(sim: PimSimulator, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    creds = sim.credentials
    for name, value in (
        ("clientId", creds.client_id),
        ("clientSecret", creds.client_secret),
        ("username", creds.username),
        ("password", creds.password),
    ):
        path = directory / name
        path.write_text(value.get_secret_value())
        os.chmod(path, 0o600)


async def _traffic(args: argparse.Namespace, sim: PimSimulator) -> tuple[SendReport, int | None]:
    primary, secondary = _secrets(args)
    verify: bool | str = False if args.insecure else (args.ca_file or True)
    sender = EventSender(
        args.target,
        format=args.format,
        events_api_secret=primary if args.format == "events_api" else None,
        event_platform_secrets=(primary, secondary) if args.format == "event_platform" else None,
        timeout=args.timeout,
        reorder=args.reorder,
        duplicate=args.duplicate,
        drop=args.drop,
        seed=args.seed,
        verify=verify,
        event_types=REFERENCE if args.mix == "all" else None,
        send_product_identifier=args.send_product_identifier,
    )
    rng = random.Random(args.seed)
    total = SendReport()
    test_status: int | None = None
    async with sender:
        if args.format == "events_api" and not args.no_test_request:
            test_status = await sender.send_test_request()
            print(f"test request: {test_status if test_status is not None else 'no answer'}")
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = 0.0
        while (elapsed := loop.time() - started) < args.duration:
            due = int(min(elapsed + 1.0, args.duration) * args.rate) - int(sent)
            count = max(due, 0)
            sent += count
            tick = loop.time()
            if args.format == "event_platform" and args.mix != "products":
                events = _mixed(sim.catalog, count, rng, everything=args.mix == "all")
                if events:
                    total.merge(await sender.send_events(events))
            else:
                changes = [sim.catalog.random_change() for _ in range(count)]
                if changes:
                    total.merge(await sender.send(changes))
            sim.catalog.drain_changes()
            await asyncio.sleep(max(0.0, 1.0 - (loop.time() - tick)))
    return total, test_status


def _mixed(catalog: Catalog, count: int, rng: random.Random, *, everything: bool) -> list[PimEvent]:
    """``count`` events of catalog edits, one in three on the structure; with ``everything``
    also the delta events, completeness changes and the types the catalog does not model."""
    events: list[PimEvent] = []
    now = datetime.now(UTC).replace(microsecond=0)
    while len(events) < count:
        roll = rng.random()
        if everything and roll < 0.1:
            uuid = catalog.random_product_uuid()
            combos = [("en_US", "ecommerce")] if roll < 0.05 else [("fr_FR", "mobile")]
            identifier = catalog.products.items[uuid]["identifier"]
            events.append(completeness_event(uuid, combos, complete=roll < 0.07,
                                             event_id=str(uuidlib.uuid4()), time=now,
                                             identifier=identifier))  # fmt: skip
        elif everything and roll < 0.2:
            events.append(reference_event(IGNORED[rng.randrange(len(IGNORED))], rng, time=now))
        else:
            made = pim_events(catalog.random_change(structure=0.33))
            events += made if everything else made[:1]
    return events[:count]


def _print_report(report: SendReport, seconds: float) -> None:
    lat = sorted(report.latencies)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0
    print(
        f"deliveries={report.deliveries} events={report.events} accepted={report.accepted} "
        f"rejected={report.rejected} timed_out={report.timed_out} failed={report.failed} "
        f"dropped={report.dropped} duplicated={report.duplicated} p99_ms={p99:.1f} "
        f"seconds={seconds:.1f}"
    )
    print(json.dumps(report.as_dict()))


async def simulate(args: argparse.Namespace) -> int:
    sim = PimSimulator(
        products=args.products,
        product_models=args.product_models,
        seed=args.seed,
        latency=args.latency,
        rate_429=args.rate_429,
        host=args.host,
        port=args.port,
    )
    if args.serve_rest:
        await sim.start()
        print(f"PIM REST API: {sim.url} (client id {sim.credentials.client_id.get_secret_value()})")
        if args.write_credentials is not None:
            _write_credentials(sim, args.write_credentials)
            print(f"credentials written to {args.write_credentials}")
        sys.stdout.flush()
    try:
        code = 0
        if args.target:
            started = time.monotonic()
            report, test_status = await _traffic(args, sim)
            _print_report(report, time.monotonic() - started)
            ok = report.accepted == report.deliveries and test_status in (None, 200)
            code = 0 if ok else 1
        if args.serve_rest:
            print("serving the REST API; Ctrl-C to stop", flush=True)
            await asyncio.Event().wait()
        return code
    finally:
        await sim.stop()


def run(args: argparse.Namespace) -> int:
    if not args.target and not args.serve_rest:
        print("akeneo-connector simulate: give --target URL and/or --serve-rest", file=sys.stderr)
        return 2
    try:
        return asyncio.run(simulate(args))
    except (ValueError, OSError) as exc:
        print(f"akeneo-connector simulate: {exc}", file=sys.stderr)
        return 2
