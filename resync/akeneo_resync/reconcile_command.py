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
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from akeneo_connector import local_layout
from akeneo_connector.gaps import parse_since
from akeneo_connector.manifest import ManifestError, load_manifest
from akeneo_connector.nats_connect import connect, setup_logging
from akeneo_connector.settings_contract import (
    MissingSetting,
    ReconcileJobSettings,
    SettingsError,
    add_arguments,
    resolve,
)
from akeneo_pim.rest import AkeneoApiError, AkeneoAuthError, AkeneoRestClient, PimCredentials
from akeneo_pim.rest_budget import KvBudget
from akeneo_resync.reconcile import (
    LockBusy,
    LockLost,
    Resync,
    ResyncSettings,
)

HELP = "re-synchronise from the PIM REST API into the stream"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_LOCKED = 75  # EX_TEMPFAIL
EXIT_USAGE = 2  # a flag or env variable unreadable
LOCK_RETRY_SECONDS = 5.0  # how often a --lock-wait run tries the lock again

log = logging.getLogger("akeneo_resync.reconcile")


class ConfigError(Exception):
    """Bad flags or mounted files: said plainly, never with a secret in it."""


# What ``-f`` takes from the running local mode (the rest: flags, env, defaults).
LOCAL_MODE_FIELDS = (
    "names", "nats_url", "pim_url", "pim_credentials_dir", "pim_allow_private", "resources",
    "safety_margin",
)  # fmt: skip


def _since(text: str) -> datetime:
    try:
        return parse_since(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since takes an RFC 3339 time such as 2026-01-31T12:00:00Z, not {text[:60]!r}"
        ) from None


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, ReconcileJobSettings)
    add = parser.add_argument
    add("--full", action="store_true",
        help="also scan all identifiers and publish removals for deleted resources, and "
             "sync the listed categories, families, attributes and attribute options")  # fmt: skip
    add("--since", type=_since, default=None,
        help="catch-up: read products and models updated after TIME (RFC 3339), or further "
             "back when the watermark minus the safety margin is older")  # fmt: skip
    add("-f", "--filename", type=Path, default=None,
        help="manifest of a connection running in local mode: reconcile it (data dir, NATS "
             "URL and PIM credentials found as local mode lays them out)")  # fmt: skip
    add("--data-dir", type=Path, default=None,
        help="with -f: local mode's --data-dir, if it was given one")  # fmt: skip
    add("--name", default=None, help="with -f: which AkeneoConnection of the file")


async def _connect(settings: ReconcileJobSettings) -> Client:
    """Fail fast: a job that cannot reach NATS exits non-zero instead of waiting forever."""
    job_options: dict[str, Any] = {
        "connect_timeout": 5,
        "max_reconnect_attempts": 3,
        "allow_reconnect": True,
    }
    return await asyncio.wait_for(connect(settings, "reconcile", **job_options), timeout=30)


def from_local_mode(args: argparse.Namespace) -> dict[str, str]:
    """The env local mode gives its own reconcile child (connection, NATS URL, PIM settings),
    from ``-f`` and the running local mode; it wins over flags and env."""
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
    return local_layout.reconcile_env(connection, data_dir, runtime.nats_url)


def read_settings(args: argparse.Namespace) -> ReconcileJobSettings:
    """Flags over env over defaults; with ``-f``, the local mode's env over all of them.
    ``SettingsError`` for an unreadable setting (exit 2, as argparse's usage errors)."""
    try:
        if args.filename is None:
            return resolve(ReconcileJobSettings, args)
        local = resolve(ReconcileJobSettings, None, from_local_mode(args))
        given = {name: getattr(local, name) for name in LOCAL_MODE_FIELDS}
        return resolve(ReconcileJobSettings, args, **given)
    except MissingSetting as exc:
        if exc.field == "names":
            missing = "--connection (AKENEO_CONNECTION) or -f MANIFEST is required"
            raise ConfigError(missing) from None
        raise


async def _run_waiting(
    lock_wait: float,
    settings: ResyncSettings,
    client: AkeneoRestClient,
    js: JetStreamContext,
    kv: KeyValue,
) -> str:
    """One run; with ``--lock-wait``, tried again while another run holds the lock."""
    deadline = time.monotonic() + lock_wait
    while True:
        try:
            summary = await Resync(settings, client, js, kv).run()
        except LockBusy as busy:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            log.info("reconcile lock held: waiting", extra={"holder": busy.holder})
            await asyncio.sleep(min(LOCK_RETRY_SECONDS, left))
            continue
        return summary.line()


async def reconcile(args: argparse.Namespace, job: ReconcileJobSettings) -> int:
    if not job.pim_url:
        raise ConfigError("--pim-url (AKENEO_PIM_URL) is required")
    if not job.pim_credentials_dir:
        raise ConfigError("--pim-credentials-dir (AKENEO_PIM_CREDENTIALS_DIR) is required")
    try:
        credentials = PimCredentials.from_dir(Path(job.pim_credentials_dir))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    names = job.names
    settings = ResyncSettings(
        names=names,
        resources=job.resources,
        safety_margin=timedelta(seconds=job.safety_margin),
        full=args.full,
        lock_ttl=timedelta(seconds=job.lock_ttl),
        since=args.since,
    )
    try:
        nc = await _connect(job)
    except Exception as exc:
        raise ConfigError(f"cannot connect to NATS at {job.nats_url}: {exc}") from None
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
        verify: bool | str = job.pim_ca_file or True
        budget = None
        if job.rest_budget == "connection":  # the 4 calls shared with the workers
            budget = KvBudget(nc, names.guard_bucket, holder=settings.holder, max_wait=60.0)
        try:
            async with AkeneoRestClient(
                job.pim_url,
                credentials,
                verify=verify,
                limiter=budget,
                allow_private=job.pim_allow_private,
            ) as client:
                line = await _run_waiting(job.lock_wait, settings, client, js, kv)
        finally:
            if budget is not None:
                await budget.close()
    finally:
        await nc.close()
    print(line, flush=True)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    job: ReconcileJobSettings | None = None
    try:
        job = read_settings(args)
        setup_logging(job.log_level)
        return asyncio.run(reconcile(args, job))
    except SettingsError as exc:
        print(f"akeneo-connector reconcile: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LockBusy as exc:
        print(f"reconcile {_ref(args, job)}: skipped: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except AkeneoAuthError as exc:
        print(
            f"reconcile {_ref(args, job)} failed: the PIM refused the credentials from "
            f"{job and job.pim_credentials_dir} ({exc.status}: {exc.message})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except (AkeneoApiError, ConfigError, LockLost) as exc:
        print(f"reconcile {_ref(args, job)} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (TimeoutError, nats.errors.Error) as exc:
        print(
            f"reconcile {_ref(args, job)} failed: NATS error ({type(exc).__name__}: {exc})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except Exception as exc:  # still one line for the Job's status; the stack at debug level
        log.debug("reconcile failed", exc_info=True)
        print(
            f"reconcile {_ref(args, job)} failed: {type(exc).__name__}: {str(exc)[:300]}",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _ref(args: argparse.Namespace, job: ReconcileJobSettings | None) -> str:
    if job is not None:
        return job.names.ref
    names = getattr(args, "names", None)
    if names is not None:
        return str(names.ref)
    return str(args.filename or "?")
