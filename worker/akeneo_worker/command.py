"""``akeneo-connector worker``: consume the stream, guard ordering, apply to the sink."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import socket
import sys
import uuid
from pathlib import Path

from nats.aio.client import Client

from akeneo_connector import eventloop
from akeneo_connector.signing_secrets import SigningSecretError, WebhookSignature
from akeneo_connector.stopping import bounded, close_nats
from akeneo_pim.rest import AkeneoRestClient, PimCredentials
from akeneo_worker.budget import KvBudget
from akeneo_worker.health import health_app, serve
from akeneo_worker.hydration import Hydrator, RestHydrator
from akeneo_worker.metrics import WorkerMetrics
from akeneo_worker.options import (
    add_common,
    add_rest_budget,
    connect,
    env,
    env_bool,
    read_secret,
    seconds,
    setup_logging,
)
from akeneo_worker.sinks.base import Sink, SinkError
from akeneo_worker.worker import Worker, WorkerConfig

HELP = "run the worker: consume the stream, guard ordering, apply to the sink"
STOP_BUDGET = 1.5  # from SIGTERM to the end of main: within the 2 s a stop may take
CLEANUP_BUDGET = 0.4  # what the cleanup after the worker may take (health, PIM, NATS)
CLEANUP_STEP = 0.1
CANCEL_WAIT = 0.2
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
    add("--webhook-signature", choices=[s.value for s in WebhookSignature],
        default=env("AKENEO_WEBHOOK_SIGNATURE", WebhookSignature.STANDARD.value),
        help="standard (Standard Webhooks) or legacy (X-Connector-* headers) "
        "[AKENEO_WEBHOOK_SIGNATURE]")  # fmt: skip
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
    add_rest_budget(parser)


def build_sink(args: argparse.Namespace) -> Sink:
    # only the chosen sink's module is imported: psycopg alone is some 9 MB of an idle
    # worker's memory (bench/footprint.py), for the tenants that write to PostgreSQL
    if args.sink == "webhook":
        from akeneo_worker.sinks.webhook import Signer, WebhookSink

        if not args.webhook_url:
            raise SystemExit("--webhook-url is required with --sink webhook")
        scheme = WebhookSignature(args.webhook_signature)
        signer = Signer(scheme)
        if args.webhook_signing_secret_file:
            path = Path(args.webhook_signing_secret_file)
            try:
                signer = Signer.from_file(path, scheme)
            except (OSError, UnicodeDecodeError, SigningSecretError) as exc:
                why = exc if isinstance(exc, SigningSecretError) else type(exc).__name__
                raise SystemExit(f"akeneo-connector worker: signing secret {path}: {why}") from None
        private = args.webhook_allow_private
        return WebhookSink(args.webhook_url, signer=signer, allow_private=private)
    if args.sink == "postgres":
        from akeneo_worker.sinks.postgres import PostgresSink

        if not args.postgres_dsn_file:
            raise SystemExit("--postgres-dsn-file is required with --sink postgres")
        dsn = read_secret(Path(args.postgres_dsn_file))
        return PostgresSink(
            dsn, table=args.postgres_table, allow_private=args.postgres_allow_private
        )
    from akeneo_worker.sinks.sqlite import SqliteSink

    return SqliteSink(args.sqlite_path)


def build_rest_client(
    args: argparse.Namespace, nc: Client
) -> tuple[AkeneoRestClient | None, KvBudget | None]:
    """The hydrating client, within the connection's shared call budget unless told not to."""
    if not args.pim_url or not args.pim_credentials_dir:
        return None, None
    credentials = PimCredentials.from_dir(Path(args.pim_credentials_dir))
    budget = None
    if args.rest_budget == "connection":
        holder = f"worker/{args.replica}/{uuid.uuid4().hex[:8]}"
        budget = KvBudget(nc, args.connection.guard_bucket, holder=holder)
    client = AkeneoRestClient(
        args.pim_url, credentials, limiter=budget, allow_private=args.pim_allow_private
    )
    return client, budget


async def main(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; then stop within ``STOP_BUDGET`` whatever NATS does."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sink = build_sink(args)
    if args.pim_url and args.pim_credentials_dir:  # fail on bad files before connecting
        PimCredentials.from_dir(Path(args.pim_credentials_dir))
    metrics = WorkerMetrics()
    stopped = asyncio.create_task(stop.wait())
    nc = None
    runner = None
    client: AkeneoRestClient | None = None
    budget: KvBudget | None = None
    try:
        connecting = asyncio.create_task(connect(args, "worker"))
        await asyncio.wait({connecting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():  # stopped before NATS was ever reached
            connecting.cancel()
            return 0
        nc = connecting.result()
        client, budget = build_rest_client(args, nc)
        hydrator: Hydrator | None = RestHydrator(client) if client is not None else None
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
        running = asyncio.create_task(worker.run(stop))
        await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            # the worker finishes or hands back what it holds within its own grace; this
            # bound is for a start-up step (or anything else) stuck on a silent server
            await asyncio.wait({running}, timeout=STOP_BUDGET - CLEANUP_BUDGET)
        if not running.done():
            log.warning("worker not stopped in time: cancelled")
            running.cancel()
            await asyncio.wait({running}, timeout=CANCEL_WAIT)
        if running.done() and not running.cancelled():
            running.result()
    except SinkError as exc:
        log.error("sink unusable: %s", exc)
        return 1
    finally:
        stopped.cancel()
        if runner is not None:
            await bounded(runner.cleanup(), CLEANUP_STEP, "health server stop")
        if client is not None:
            await bounded(client.aclose(), CLEANUP_STEP, "PIM client close")
        if budget is not None:
            await bounded(budget.close(), CLEANUP_STEP, "call budget close")
        await close_nats(nc)  # acks sent are flushed if the server answers
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
    finally:
        # the interpreter's exit would otherwise collect every object the worker ever
        # kept (0.2 to 0.4 s on a busy machine, out of the 2 s a stop may take)
        gc.freeze()
