"""``akeneo-connector worker``: consume the stream, guard ordering, apply to the sink."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from pathlib import Path

from akeneo_connector import eventloop
from akeneo_pim.rest import AkeneoRestClient, PimCredentials
from akeneo_worker.health import health_app, serve
from akeneo_worker.hydration import Hydrator, RestHydrator
from akeneo_worker.metrics import WorkerMetrics
from akeneo_worker.options import (
    add_common,
    connect,
    env,
    env_bool,
    read_secret,
    seconds,
    setup_logging,
)
from akeneo_worker.sinks.base import Sink, SinkError
from akeneo_worker.sinks.postgres import PostgresSink
from akeneo_worker.sinks.sqlite import SqliteSink
from akeneo_worker.sinks.webhook import WebhookSink
from akeneo_worker.worker import Worker, WorkerConfig

HELP = "run the worker: consume the stream, guard ordering, apply to the sink"
log = logging.getLogger("akeneo_worker")


def configure(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    add = parser.add_argument
    add("--port", type=int, default=int(env("AKENEO_PORT", "8080") or 8080),
        help="health/metrics port, plain HTTP [AKENEO_PORT]")  # fmt: skip
    add("--max-deliver", type=int, default=int(env("AKENEO_MAX_DELIVER", "10") or 10),
        help="tries before a message is dead-lettered [AKENEO_MAX_DELIVER]")  # fmt: skip
    add("--ack-wait", type=seconds, default=seconds(env("AKENEO_ACK_WAIT", "30s") or "30s"),
        help="redeliver an unacked message after this long [AKENEO_ACK_WAIT]")  # fmt: skip
    add("--sink", choices=["webhook", "postgres", "sqlite"], default=env("AKENEO_SINK", "sqlite"),
        help="[AKENEO_SINK]")  # fmt: skip
    add("--webhook-url", default=env("AKENEO_WEBHOOK_URL"), help="[AKENEO_WEBHOOK_URL]")
    add("--webhook-signing-secret-file", type=Path,
        default=env("AKENEO_WEBHOOK_SIGNING_SECRET_FILE"),
        help="[AKENEO_WEBHOOK_SIGNING_SECRET_FILE]")  # fmt: skip
    add("--webhook-allow-private", action="store_true",
        default=env_bool("AKENEO_WEBHOOK_ALLOW_PRIVATE"),
        help="allow private/loopback targets [AKENEO_WEBHOOK_ALLOW_PRIVATE]")  # fmt: skip
    add("--postgres-dsn-file", type=Path, default=env("AKENEO_POSTGRES_DSN_FILE"),
        help="[AKENEO_POSTGRES_DSN_FILE]")  # fmt: skip
    add("--postgres-table", default=env("AKENEO_POSTGRES_TABLE", "akeneo_resources"),
        help="[AKENEO_POSTGRES_TABLE]")  # fmt: skip
    add("--postgres-allow-private", action="store_true",
        default=env_bool("AKENEO_POSTGRES_ALLOW_PRIVATE"),
        help="allow database hosts on private/loopback addresses "
             "[AKENEO_POSTGRES_ALLOW_PRIVATE]")  # fmt: skip
    add("--sqlite-path", type=Path, default=env("AKENEO_SQLITE_PATH", "/data/catalog.db"),
        help="[AKENEO_SQLITE_PATH]")  # fmt: skip
    add(
        "--pim-url",
        default=env("AKENEO_PIM_URL"),
        help="PIM base URL for hydration [AKENEO_PIM_URL]",
    )
    add("--pim-credentials-dir", type=Path, default=env("AKENEO_PIM_CREDENTIALS_DIR"),
        help="clientId, clientSecret, username, password [AKENEO_PIM_CREDENTIALS_DIR]")  # fmt: skip
    add("--pim-allow-private", action="store_true", default=env_bool("AKENEO_PIM_ALLOW_PRIVATE"),
        help="allow a PIM on private/loopback addresses [AKENEO_PIM_ALLOW_PRIVATE]")  # fmt: skip
    add("--own-client-id", default=env("AKENEO_OWN_CLIENT_ID"),
        help="skip events authored by this client id (the connector's own writes) "
        "[AKENEO_OWN_CLIENT_ID]")  # fmt: skip
    add("--replica", default=env("AKENEO_REPLICA", socket.gethostname()),
        help="name of this replica in the stats it publishes [AKENEO_REPLICA]")  # fmt: skip


def build_sink(args: argparse.Namespace) -> Sink:
    if args.sink == "webhook":
        if not args.webhook_url:
            raise SystemExit("--webhook-url is required with --sink webhook")
        secret = None
        if args.webhook_signing_secret_file:
            secret = read_secret(Path(args.webhook_signing_secret_file))
        return WebhookSink(
            args.webhook_url, signing_secret=secret, allow_private=args.webhook_allow_private
        )
    if args.sink == "postgres":
        if not args.postgres_dsn_file:
            raise SystemExit("--postgres-dsn-file is required with --sink postgres")
        dsn = read_secret(Path(args.postgres_dsn_file))
        return PostgresSink(
            dsn, table=args.postgres_table, allow_private=args.postgres_allow_private
        )
    return SqliteSink(args.sqlite_path)


def build_rest_client(args: argparse.Namespace) -> AkeneoRestClient | None:
    if not args.pim_url or not args.pim_credentials_dir:
        return None
    credentials = PimCredentials.from_dir(Path(args.pim_credentials_dir))
    return AkeneoRestClient(args.pim_url, credentials, allow_private=args.pim_allow_private)


async def main(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sink = build_sink(args)
    client = build_rest_client(args)
    hydrator: Hydrator | None = RestHydrator(client) if client is not None else None
    metrics = WorkerMetrics()
    nc = await connect(args, "worker")
    config = WorkerConfig(
        max_deliver=args.max_deliver,
        ack_wait=args.ack_wait,
        own_client_id=args.own_client_id,
        replica=args.replica,
    )
    worker = Worker(
        nc.jetstream(), args.connection, sink, config, hydrator=hydrator, metrics=metrics
    )
    runner = await serve(
        health_app(metrics.registry, lambda: worker.ready and nc.is_connected), args.port
    )
    log.info("worker of %s started (sink %s)", args.connection.ref, sink.name)
    try:
        await worker.run(stop)
    except SinkError as exc:
        log.error("sink unusable: %s", exc)
        return 1
    finally:
        await runner.cleanup()
        if client is not None:
            await client.aclose()
        with contextlib.suppress(Exception):
            await nc.drain()
    return 0


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    try:
        return eventloop.run(main(args))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"akeneo-connector worker: {exc}", file=sys.stderr)
        return 1
