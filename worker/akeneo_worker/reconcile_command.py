"""`akeneo-connector reconcile [--full] [--since TIME]`: re-synchronise from the PIM REST API
into the stream.

``--since`` is a catch-up for a recorded gap window (``akeneo_connector.gaps``): it reads
back at least to that time. ``--lock-wait`` makes a run that finds the reconcile lock held
wait for it instead of giving up (one-off Jobs: a catch-up must not be lost to a scheduled
run). ``-f MANIFEST`` runs against a running local mode of that manifest: the data dir, NATS
URL and Secret files are found the way local mode lays them out (``local_layout``).

Exit codes (a CronJob shows anything but 0 as a failed Job):
0 the run finished and the watermark moved; 1 the run failed (message on stderr, nothing
committed); 75 another run holds the reconcile lock (the run did nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from akeneo_connector import local_layout
from akeneo_connector.gaps import parse_since
from akeneo_connector.manifest import ManifestError, load_manifest
from akeneo_pim.rest import AkeneoApiError, AkeneoAuthError, AkeneoRestClient, PimCredentials
from akeneo_pim.structure import ATTRIBUTE_OPTIONS, STRUCTURE
from akeneo_worker.budget import KvBudget
from akeneo_worker.options import (
    add_common,
    add_rest_budget,
    connect,
    env,
    env_bool,
    seconds,
    setup_logging,
)
from akeneo_worker.reconcile import (
    KINDS,
    LockBusy,
    LockLost,
    Reconciler,
    ReconcileSettings,
)

HELP = "re-synchronise from the PIM REST API into the stream"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_LOCKED = 75  # EX_TEMPFAIL
LOCK_RETRY_SECONDS = 5.0  # how often a --lock-wait run tries the lock again

log = logging.getLogger("akeneo_worker.reconcile")


class ConfigError(Exception):
    """Bad flags or mounted files: said plainly, never with a secret in it."""


RESOURCES = (*KINDS, *STRUCTURE, ATTRIBUTE_OPTIONS)


def _resources(text: str) -> tuple[str, ...]:
    names = tuple(r.strip() for r in text.split(",") if r.strip())
    unknown = [r for r in names if r not in RESOURCES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown resources {', '.join(unknown) or '(none)'}: use a comma list of "
            f"{', '.join(RESOURCES)}"
        )
    return names


def _since(text: str) -> datetime:
    try:
        return parse_since(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since takes an RFC 3339 time such as 2026-01-31T12:00:00Z, not {text[:60]!r}"
        ) from None


def configure(parser: argparse.ArgumentParser) -> None:
    add_common(parser, connection_required=False)
    add = parser.add_argument
    add("--pim-url", default=env("AKENEO_PIM_URL"),
        help="base URL of the PIM [AKENEO_PIM_URL]")  # fmt: skip
    add("--pim-credentials-dir", type=Path, default=env("AKENEO_PIM_CREDENTIALS_DIR"),
        help="directory with files clientId, clientSecret, username, password "
             "[AKENEO_PIM_CREDENTIALS_DIR]")  # fmt: skip
    add("--resources", type=_resources,
        default=env("AKENEO_RECONCILE_RESOURCES", "products,product_models"),
        help="comma list of resources [AKENEO_RECONCILE_RESOURCES]")  # fmt: skip
    add("--safety-margin", type=seconds, default=env("AKENEO_SAFETY_MARGIN", "5m"),
        help="re-read this much before the watermark [AKENEO_SAFETY_MARGIN]")  # fmt: skip
    add("--lock-ttl", type=seconds, default=env("AKENEO_RECONCILE_LOCK_TTL", "10m"),
        help="reconcile lock lease, renewed while running [AKENEO_RECONCILE_LOCK_TTL]")  # fmt: skip
    add("--pim-ca-file", default=env("AKENEO_PIM_CA_FILE"),
        help="CA bundle to verify the PIM's certificate [AKENEO_PIM_CA_FILE]")  # fmt: skip
    add("--pim-allow-private", action="store_true", default=env_bool("AKENEO_PIM_ALLOW_PRIVATE"),
        help="allow a PIM on private/loopback addresses [AKENEO_PIM_ALLOW_PRIVATE]")  # fmt: skip
    add("--full", action="store_true",
        help="also scan all identifiers and publish removals for deleted resources, and "
             "sync the listed categories, families, attributes and attribute options")  # fmt: skip
    add("--since", type=_since, default=None,
        help="catch-up: read products and models updated after TIME (RFC 3339), or further "
             "back when the watermark minus the safety margin is older")  # fmt: skip
    add("--lock-wait", type=seconds, default=env("AKENEO_RECONCILE_LOCK_WAIT", "0s"),
        help="when another run holds the lock, wait this long for it instead of exiting 75 "
             "[AKENEO_RECONCILE_LOCK_WAIT]")  # fmt: skip
    add("-f", "--filename", type=Path, default=None,
        help="manifest of a connection running in local mode: reconcile it (data dir, NATS "
             "URL and PIM credentials found as local mode lays them out)")  # fmt: skip
    add("--data-dir", type=Path, default=None,
        help="with -f: local mode's --data-dir, if it was given one")  # fmt: skip
    add("--name", default=None, help="with -f: which AkeneoConnection of the file")
    add_rest_budget(parser)


async def _connect(args: argparse.Namespace) -> Client:
    """Fail fast: a job that cannot reach NATS exits non-zero instead of waiting forever."""
    job_options = {"connect_timeout": 5, "max_reconnect_attempts": 3, "allow_reconnect": True}
    return await asyncio.wait_for(connect(args, "reconcile", **job_options), timeout=30)


def from_local_mode(args: argparse.Namespace) -> None:
    """Fill the connection, NATS URL and PIM settings from ``-f`` and the running local mode."""
    try:
        connection = load_manifest(args.filename, name=args.name)
    except ManifestError as exc:
        raise ConfigError(str(exc)) from None
    names = connection.names
    data_dir = (args.data_dir or local_layout.default_data_dir(names)).resolve()
    runtime = local_layout.read_runtime(data_dir)
    if runtime is None or not local_layout.local_running(data_dir):
        raise ConfigError(
            f"no local mode of {names.ref} is running on {data_dir}: start "
            f"`akeneo-connector local -f {args.filename}` (give --data-dir if it has one)"
        )
    if not connection.spec.pim.credentials_secret:
        raise ConfigError(f"{names.ref} has no pim.credentialsSecret: nothing to reconcile from")
    env = local_layout.reconcile_env(connection, data_dir, runtime.nats_url)
    args.connection = names
    args.nats_url = env["AKENEO_NATS_URL"]
    args.pim_url = env["AKENEO_PIM_URL"]
    args.pim_credentials_dir = Path(env["AKENEO_PIM_CREDENTIALS_DIR"])
    args.pim_allow_private = env.get("AKENEO_PIM_ALLOW_PRIVATE") == "true"
    args.resources = _resources(env["AKENEO_RECONCILE_RESOURCES"])
    args.safety_margin = seconds(env["AKENEO_SAFETY_MARGIN"])


async def _run_waiting(
    args: argparse.Namespace,
    settings: ReconcileSettings,
    client: AkeneoRestClient,
    js: JetStreamContext,
    kv: KeyValue,
) -> str:
    """One run; with ``--lock-wait``, tried again while another run holds the lock."""
    deadline = time.monotonic() + args.lock_wait
    while True:
        try:
            summary = await Reconciler(settings, client, js, kv).run()
        except LockBusy as busy:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            log.info("reconcile lock held: waiting", extra={"holder": busy.holder})
            await asyncio.sleep(min(LOCK_RETRY_SECONDS, left))
            continue
        return summary.line()


async def reconcile(args: argparse.Namespace) -> int:
    if args.filename is not None:
        from_local_mode(args)
    elif args.connection is None:
        raise ConfigError("--connection (AKENEO_CONNECTION) or -f MANIFEST is required")
    if not args.pim_url:
        raise ConfigError("--pim-url (AKENEO_PIM_URL) is required")
    if not args.pim_credentials_dir:
        raise ConfigError("--pim-credentials-dir (AKENEO_PIM_CREDENTIALS_DIR) is required")
    try:
        credentials = PimCredentials.from_dir(Path(args.pim_credentials_dir))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    names = args.connection
    settings = ReconcileSettings(
        names=names,
        resources=args.resources,
        safety_margin=timedelta(seconds=args.safety_margin),
        full=args.full,
        lock_ttl=timedelta(seconds=args.lock_ttl),
        since=args.since,
    )
    try:
        nc = await _connect(args)
    except Exception as exc:
        raise ConfigError(f"cannot connect to NATS at {args.nats_url}: {exc}") from None
    try:
        js = nc.jetstream()
        try:
            await js.stream_info(names.stream)
        except NotFoundError:
            raise ConfigError(
                f"stream {names.stream} of {names.ref} does not exist: is the connection ready?"
            ) from None
        try:
            kv = await js.key_value(names.guard_bucket)
        except (BucketNotFoundError, NotFoundError):
            raise ConfigError(f"KV bucket {names.guard_bucket} does not exist") from None
        verify: bool | str = args.pim_ca_file or True
        budget = None
        if args.rest_budget == "connection":  # the 4 calls shared with the workers
            budget = KvBudget(nc, names.guard_bucket, holder=settings.holder, max_wait=60.0)
        try:
            async with AkeneoRestClient(
                args.pim_url,
                credentials,
                verify=verify,
                limiter=budget,
                allow_private=args.pim_allow_private,
            ) as client:
                line = await _run_waiting(args, settings, client, js, kv)
        finally:
            if budget is not None:
                await budget.close()
    finally:
        await nc.close()
    print(line, flush=True)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    try:
        return asyncio.run(reconcile(args))
    except LockBusy as exc:
        print(f"reconcile {_ref(args)}: skipped: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except AkeneoAuthError as exc:
        print(
            f"reconcile {_ref(args)} failed: the PIM refused the credentials from "
            f"{args.pim_credentials_dir} ({exc.status}: {exc.message})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except (AkeneoApiError, ConfigError, LockLost) as exc:
        print(f"reconcile {_ref(args)} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (TimeoutError, nats.errors.Error) as exc:
        print(
            f"reconcile {_ref(args)} failed: NATS error ({type(exc).__name__}: {exc})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except Exception as exc:  # still one line for the Job's status; the stack at debug level
        log.debug("reconcile failed", exc_info=True)
        print(
            f"reconcile {_ref(args)} failed: {type(exc).__name__}: {str(exc)[:300]}",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _ref(args: argparse.Namespace) -> str:
    connection = getattr(args, "connection", None)
    return str(connection.ref) if connection is not None else str(args.filename or "?")
