"""`akeneo-connector reconcile [--full]`: re-synchronise from the PIM REST API into the stream.

Exit codes (a CronJob shows anything but 0 as a failed Job):
0 the run finished and the watermark moved; 1 the run failed (message on stderr, nothing
committed); 75 another run holds the reconcile lock (the run did nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import timedelta
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError, NotFoundError

from akeneo_pim.rest import AkeneoApiError, AkeneoAuthError, AkeneoRestClient, PimCredentials
from akeneo_pim.structure import ATTRIBUTE_OPTIONS, STRUCTURE
from akeneo_worker.budget import KvBudget
from akeneo_worker.options import add_common, add_rest_budget, connect, env, seconds, setup_logging
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


def configure(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
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
    add("--full", action="store_true",
        help="also scan all identifiers and listings and publish removals for deleted "
             "resources")  # fmt: skip
    add_rest_budget(parser)


async def _connect(args: argparse.Namespace) -> Client:
    """Fail fast: a job that cannot reach NATS exits non-zero instead of waiting forever."""
    job_options = {"connect_timeout": 5, "max_reconnect_attempts": 3, "allow_reconnect": True}
    return await asyncio.wait_for(connect(args, "reconcile", **job_options), timeout=30)


async def reconcile(args: argparse.Namespace) -> int:
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
                args.pim_url, credentials, verify=verify, limiter=budget
            ) as client:
                summary = await Reconciler(settings, client, js, kv).run()
        finally:
            if budget is not None:
                await budget.close()
    finally:
        await nc.close()
    print(summary.line(), flush=True)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    try:
        return asyncio.run(reconcile(args))
    except LockBusy as exc:
        print(f"reconcile {args.connection.ref}: skipped: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except AkeneoAuthError as exc:
        print(
            f"reconcile {args.connection.ref} failed: the PIM refused the credentials from "
            f"{args.pim_credentials_dir} ({exc.status}: {exc.message})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except (AkeneoApiError, ConfigError, LockLost) as exc:
        print(f"reconcile {args.connection.ref} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (TimeoutError, nats.errors.Error) as exc:
        print(
            f"reconcile {args.connection.ref} failed: NATS error ({type(exc).__name__}: {exc})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except Exception as exc:  # still one line for the Job's status; the stack at debug level
        log.debug("reconcile failed", exc_info=True)
        print(
            f"reconcile {args.connection.ref} failed: {type(exc).__name__}: {str(exc)[:300]}",
            file=sys.stderr,
        )
        return EXIT_FAILED
