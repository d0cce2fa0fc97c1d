"""``akeneo-connector worker``: consume the stream, guard ordering, apply to the sink."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import uuid
from pathlib import Path

from nats.aio.client import Client

from akeneo_connector import eventloop
from akeneo_connector.health import health_app, serve, sync_check
from akeneo_connector.nats_connect import connect, read_secret, settings_of, setup_logging
from akeneo_connector.settings_contract import SettingsError, WorkerSettings, add_arguments
from akeneo_connector.signing_secrets import SigningSecretError, WebhookSignature
from akeneo_connector.stopping import bounded, close_nats, stop_on_signals
from akeneo_pim.rest import AkeneoRestClient, PimCredentials
from akeneo_pim.rest_budget import KvBudget
from akeneo_worker.hydration import Hydrator, RestHydrator
from akeneo_worker.metrics import WorkerMetrics
from akeneo_worker.sinks.base import Sink, SinkError
from akeneo_worker.worker import Worker, WorkerConfig

HELP = "run the worker: consume the stream, guard ordering, apply to the sink"
STOP_BUDGET = 1.5  # from SIGTERM to the end of main: within the 2 s a stop may take
CLEANUP_BUDGET = 0.4  # what the cleanup after the worker may take (health, PIM, NATS)
CLEANUP_STEP = 0.1
CANCEL_WAIT = 0.2
log = logging.getLogger("akeneo_worker")


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, WorkerSettings)


def build_sink(settings: WorkerSettings) -> Sink:
    """The sink ``settings.sink`` names (checked once, on reading the settings)."""
    # only the chosen sink's module is imported: psycopg alone is some 9 MB of an idle
    # worker's memory (bench/footprint.py), for the tenants that write to PostgreSQL
    if settings.sink == "webhook":
        from akeneo_worker.sinks.webhook import Signer, WebhookSink

        assert settings.webhook_url is not None  # WorkerSettings.check
        scheme = WebhookSignature(settings.webhook_signature)
        signer = Signer(scheme)
        if settings.webhook_signing_secret_file:
            path = settings.webhook_signing_secret_file
            try:
                signer = Signer.from_file(path, scheme)
            except (OSError, UnicodeDecodeError, SigningSecretError) as exc:
                why = exc if isinstance(exc, SigningSecretError) else type(exc).__name__
                raise SystemExit(f"akeneo-connector worker: signing secret {path}: {why}") from None
        private = settings.webhook_allow_private
        return WebhookSink(settings.webhook_url, signer=signer, allow_private=private)
    if settings.sink == "postgres":
        from akeneo_worker.sinks.postgres import PostgresSink

        assert settings.postgres_dsn_file is not None  # WorkerSettings.check
        dsn = read_secret(settings.postgres_dsn_file)
        return PostgresSink(
            dsn, table=settings.postgres_table, allow_private=settings.postgres_allow_private
        )
    from akeneo_worker.sinks.sqlite import SqliteSink

    return SqliteSink(settings.sqlite_path)


def build_rest_client(
    settings: WorkerSettings, nc: Client
) -> tuple[AkeneoRestClient | None, KvBudget | None]:
    """The hydrating client, within the connection's shared call budget unless told not to."""
    if not settings.pim_url or not settings.pim_credentials_dir:
        return None, None
    credentials = PimCredentials.from_dir(Path(settings.pim_credentials_dir))
    budget = None
    if settings.rest_budget == "connection":
        holder = f"worker/{settings.replica}/{uuid.uuid4().hex[:8]}"
        budget = KvBudget(nc, settings.names.guard_bucket, holder=holder)
    client = AkeneoRestClient(
        settings.pim_url, credentials, limiter=budget, allow_private=settings.pim_allow_private
    )
    return client, budget


async def main(settings: WorkerSettings) -> int:
    """Run until SIGTERM/SIGINT; then stop within ``STOP_BUDGET`` whatever NATS does."""
    stop = stop_on_signals()
    sink = build_sink(settings)
    if settings.pim_url and settings.pim_credentials_dir:  # bad files fail before connecting
        PimCredentials.from_dir(Path(settings.pim_credentials_dir))
    metrics = WorkerMetrics()
    stopped = asyncio.create_task(stop.wait())
    nc = None
    runner = None
    client: AkeneoRestClient | None = None
    budget: KvBudget | None = None
    try:
        connecting = asyncio.create_task(connect(settings, "worker"))
        await asyncio.wait({connecting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():  # stopped before NATS was ever reached
            connecting.cancel()
            return 0
        nc = connecting.result()
        client, budget = build_rest_client(settings, nc)
        hydrator: Hydrator | None = RestHydrator(client) if client is not None else None
        config = WorkerConfig(
            max_deliver=settings.max_deliver,
            ack_wait=settings.ack_wait,
            own_client_id=settings.own_client_id,
            replica=settings.replica,
        )
        worker = Worker(
            nc.jetstream(), settings.names, sink, config, hydrator=hydrator, metrics=metrics
        )
        ready = sync_check(lambda: None if worker.ready and nc.is_connected else "not ready")
        runner = await serve(
            health_app(ready=ready, registry=metrics.registry), "0.0.0.0", settings.port
        )
        log.info("worker of %s started (sink %s)", settings.names.ref, sink.name)
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
    settings = settings_of(WorkerSettings, args)
    setup_logging(settings.log_level)
    try:
        settings.check()
    except SettingsError as exc:  # a sink without its own settings
        print(f"akeneo-connector worker: {exc}", file=sys.stderr)
        return 1
    try:
        return eventloop.run(main(settings))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"akeneo-connector worker: {exc}", file=sys.stderr)
        return 1
    finally:
        # the interpreter's exit would otherwise collect every object the worker ever
        # kept (0.2 to 0.4 s on a busy machine, out of the 2 s a stop may take)
        gc.freeze()
