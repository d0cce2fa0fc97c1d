"""The operator's NATS link: provisions, repairs and removes each connection's stream and
bucket through ``akeneo_connector.jetstream``, and sums the worker counters from the bucket.

Credentials: the configured user/password/creds file; else, with an account signing key,
a user the operator issues itself (``natscreds.operator_connect_options``); else none."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from akeneo_connector import jetstream
from akeneo_connector.guard_state import MAX_VALUE_BYTES, STATS_PREFIX, WorkerStats, never_synced
from akeneo_connector.names import ConnectionNames
from akeneo_connector.nats_auth import OPERATOR_INBOX
from akeneo_connector.nats_servers import failover_options
from akeneo_connector.secret_report import REPORT_PREFIX, SecretReport
from akeneo_connector.spec import StreamSpec
from akeneo_connector.stream_reader import kv_latest
from akeneo_operator.certs import utcnow
from akeneo_operator.natscreds import IssuerFile, operator_connect_options
from akeneo_operator.settings import OperatorSettings
from akeneo_operator.status import Cond

# The bucket is written by the connection's pods, which a tenant may control: the operator
# (one process for every tenant) reads a bounded part of it, in bounded time.
MAX_STATS_KEYS = 1024  # one per worker pod that ever ran; far more than replicas (<= 50)
STATS_READ_SECONDS = 10.0
MAX_COUNTER = 2**53  # what a status integer can hold exactly
REPORT_KEPT = timedelta(hours=1)  # a receiver report older than this is a dead pod's

# The first connect: nats-py retries it for ever with the failover options (reconnects are
# unbounded, which is right once connected). Bounded here so a reconcile says NatsUnavailable
# instead of holding its slot until NATS is back; after a failure, callers fail fast for a
# while rather than each waiting the full bound in turn behind the lock.
FIRST_CONNECT_SECONDS = 10.0
CONNECT_RETRY_AFTER = 5.0
NO_STORAGE_TO_RESERVE = 10047  # JetStream: "insufficient storage resources available"
COUNTER_FIELDS = {
    "applied": "applied",
    "skipped_outdated": "skippedOutdated",
    "dead_lettered": "deadLettered",
}


log = logging.getLogger("akeneo_operator.nats")


async def _nats_error(exc: Exception) -> None:
    """One line per error (nats-py's default logs a traceback per reconnect attempt while
    NATS is down); the conditions say what it means for each connection."""
    log.warning("NATS: %s: %s", type(exc).__name__, str(exc)[:200])


class NatsLink:
    def __init__(self, settings: OperatorSettings):
        self.settings = settings
        self._nc: Client | None = None
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()
        self._issuers = IssuerFile(settings)

    async def js(self) -> JetStreamContext:
        async with self._lock:
            if self._nc is None or self._nc.is_closed:
                self._nc = await self._connect()
            return self._nc.jetstream(timeout=5)

    async def _connect(self) -> Client:
        loop = asyncio.get_running_loop()
        if self._failed_at is not None and loop.time() - self._failed_at < CONNECT_RETRY_AFTER:
            raise TimeoutError("NATS unreachable at the last attempt")
        nc = Client()
        try:
            await asyncio.wait_for(
                nc.connect(
                    **failover_options(self.settings.nats_url),
                    **self._auth(),
                    connect_timeout=5,
                    name="akeneo-connector-operator",
                    error_cb=_nats_error,
                ),
                FIRST_CONNECT_SECONDS,
            )
        except BaseException:
            self._failed_at = loop.time()
            with contextlib.suppress(Exception):
                await nc.close()
            raise
        self._failed_at = None
        return nc

    def _auth(self) -> dict[str, Any]:
        s = self.settings
        if s.nats_user or s.nats_password_file or s.nats_creds_file:
            path = s.nats_password_file
            return {
                "user": s.nats_user,
                "password": Path(path).read_text().strip() if path else None,
                "user_credentials": s.nats_creds_file,
            }
        try:
            issuer = self._issuers.current()
        except ValueError:  # reported on each connection (SigningKeyInvalid); keep working
            issuer = self._issuers.last_good
        if issuer is None:
            return {}
        return {**operator_connect_options(issuer, utcnow), "inbox_prefix": OPERATOR_INBOX}

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()

    async def ensure(self, names: ConnectionNames, spec: StreamSpec) -> tuple[Cond, bool]:
        """(StreamReady condition, whether something was created or repaired)."""
        try:
            js = await self.js()
            stream, bucket = await jetstream.ensure_all(
                js, names, spec, self.settings.stream_quotas
            )
        except jetstream.ImmutableFieldChanged as exc:
            return Cond.fail("ImmutableFieldChanged", str(exc)), False
        except APIError as exc:
            if exc.err_code == NO_STORAGE_TO_RESERVE:
                return Cond.fail(
                    "InsufficientStorage",
                    f"JetStream cannot reserve the stream's or bucket's maxBytes for "
                    f"{names.ref}: the server's (or account's) store is committed to other "
                    "streams; lower spec.stream.maxBytes or add storage",
                ), False
            return Cond.fail("NatsUnavailable", f"NATS: {type(exc).__name__}"), False
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            return Cond.fail("NatsUnavailable", f"NATS: {type(exc).__name__}"), False
        changed = (stream.outcome, bucket.outcome) != (jetstream.Outcome.UNCHANGED,) * 2
        message = f"stream {names.stream}, bucket {names.guard_bucket}"
        return Cond.ok("StreamProvisioned", message), changed

    async def delete(self, names: ConnectionNames) -> None:
        await jetstream.delete_all(await self.js(), names)

    async def last_notification(self, names: ConnectionNames) -> bytes | None:
        """The body of the newest subscription notification the receiver stored; None when
        there is none or the stream cannot be read (the caller keeps what it knew)."""
        try:
            js = await self.js()
            msg = await js.get_last_msg(names.stream, names.notifications_subject, direct=True)
        except (NotFoundError, TimeoutError, OSError, nats.errors.Error):
            return None
        return msg.data

    async def never_synced(self, names: ConnectionNames, kinds: list[str]) -> bool | None:
        """Whether no reconcile ever finished for the connection; None when unknown."""
        try:
            kv = await (await self.js()).key_value(names.guard_bucket)
            return await never_synced(kv, kinds)
        except (NotFoundError, TimeoutError, OSError, nats.errors.Error):
            return None

    async def counters(self, names: ConnectionNames) -> dict[str, int] | None:
        """Sum of ``stats.worker.*`` entries (at most ``MAX_STATS_KEYS`` of them, each at most
        the bucket's value size, read within ``STATS_READ_SECONDS``); None when the bucket
        cannot be read."""
        try:
            values = await kv_latest(
                await self.js(),
                names.guard_bucket,
                f"{STATS_PREFIX}.>",
                max_keys=MAX_STATS_KEYS,
                max_value_bytes=MAX_VALUE_BYTES,
                timeout=STATS_READ_SECONDS,
            )
        except (NotFoundError, TimeoutError, OSError, nats.errors.Error):
            return None
        totals = dict.fromkeys(COUNTER_FIELDS.values(), 0)
        for value in values.values():
            with contextlib.suppress(ValueError):
                stats = WorkerStats.model_validate_json(value)
                for attr, key in COUNTER_FIELDS.items():
                    totals[key] += min(max(int(getattr(stats, attr)), 0), MAX_COUNTER)
        return {key: min(total, MAX_COUNTER) for key, total in totals.items()}

    async def secret_reports(self, names: ConnectionNames) -> list[SecretReport]:
        """The receivers' reports of their loaded secrets (``secret_report``), bounded like
        the counters; unreadable entries are left out, an unreadable bucket gives []. Each
        pod that ever ran left one: those older than ``REPORT_KEPT`` are purged, so the
        bounded read always reaches the live pods' reports."""
        try:
            js = await self.js()
            values = await kv_latest(
                js,
                names.guard_bucket,
                f"{REPORT_PREFIX}.>",
                max_keys=MAX_STATS_KEYS,
                max_value_bytes=MAX_VALUE_BYTES,
                timeout=STATS_READ_SECONDS,
            )
        except (NotFoundError, TimeoutError, OSError, nats.errors.Error):
            return []
        out: list[SecretReport] = []
        stale: list[str] = []
        now = utcnow()
        for key, value in values.items():
            try:
                got = SecretReport.model_validate_json(value)
            except ValueError:
                stale.append(key)  # not a report: nothing a receiver writes
                continue
            if now - got.at > REPORT_KEPT:
                stale.append(key)
            else:
                out.append(got)
        if stale:
            with contextlib.suppress(NotFoundError, TimeoutError, OSError, nats.errors.Error):
                kv = await js.key_value(names.guard_bucket)
                for key in stale:
                    await kv.purge(key)
        return out
