"""kopf handlers, registered on a registry built from the operator settings. Thin: each one
hands the body to the ``Reconciler`` and lets kopf do the watching, peering and retries."""

from __future__ import annotations

import asyncio
import copy
import getpass
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import kopf
import nats.errors
from aiohttp import web

from akeneo_connector.spec import GROUP, KIND, PLURAL, VERSION
from akeneo_operator.health import OperatorMetrics, start_server
from akeneo_operator.kopfstore import LeanDiffBaseStorage
from akeneo_operator.kubeclient import Credentials, KubeClient, credentials_from
from akeneo_operator.maintenance import (
    PEERING_API_VERSION,
    MaintenanceLoop,
    PeeringGate,
    Schedule,
)
from akeneo_operator.meta import FINALIZER, Manifest, adopt, managed_selector
from akeneo_operator.reconciler import Reconciler
from akeneo_operator.repairs import ANNOTATIONS
from akeneo_operator.settings import MANAGED_BY, OperatorSettings
from akeneo_operator.streams import NatsLink
from akeneo_pim.event_platform_api import EventPlatformError

# Unexpected errors: a few quick retries by kopf, then the maintenance loop retries at its
# own pace (the connection is marked for retry), so a broken object never spins.
RETRIES: dict[str, Any] = {"retries": 3, "backoff": 10}
# Children whose changes the operator watches: repaired when deleted or edited by hand.
WATCHED_CHILDREN: tuple[tuple[str, str], ...] = (
    ("v1", "serviceaccounts"),
    ("v1", "services"),
    ("v1", "secrets"),
    ("apps/v1", "deployments"),
    ("policy/v1", "poddisruptionbudgets"),
    ("networking.k8s.io/v1", "networkpolicies"),
    ("networking.k8s.io/v1", "ingresses"),
    ("autoscaling/v2", "horizontalpodautoscalers"),
    ("batch/v1", "cronjobs"),
    ("batch/v1", "jobs"),
)

# Tries to delete a managed Event Platform subscription before the deletion goes on without.
EP_DELETE_TRIES = 5
LIST_CHUNK_SIZE = 100
# How long an idle kopf worker holds its slot (kopf's default: 5). With ``WORKER_LIMIT``
# slots a watched kind's objects get at most WORKER_LIMIT / WORKER_IDLE_SECONDS workers a
# second: at 0.5 s that was 64, so the 2,000 listed Deployments of 1,000 connections after
# a restart waited half a minute in kopf's queues, each with its whole body.
WORKER_IDLE_SECONDS = 0.05
# kopf's per-object workers (per watched kind) and Event-posting workers running at once;
# kopf's default is no limit. Reconciles are capped lower (``MAX_CONCURRENT_RECONCILES``).
WORKER_LIMIT = 32
POSTING_WORKER_LIMIT = 16


def own_identity() -> str:
    """This replica's name among kopf's peers, as kopf makes it (``POD_ID``, else user, host,
    start time and a random tail); given to kopf so the maintenance loop knows itself."""
    pod = os.environ.get("POD_ID")
    if pod:
        return pod
    started = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    return f"{getpass.getuser()}@{socket.gethostname()}/{started}/{secrets.token_hex(2)}"


@dataclass
class Runtime:
    settings: OperatorSettings
    reconciler: Reconciler | None = None
    identity: str = field(default_factory=own_identity)  # this replica's, for peering
    maintenance: MaintenanceLoop | None = None
    maintenance_task: asyncio.Task[None] | None = None
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    server: web.AppRunner | None = None

    @property
    def r(self) -> Reconciler:
        if self.reconciler is None:
            raise kopf.TemporaryError("operator is starting", delay=1)
        return self.reconciler


def _emit(body: Manifest, event_type: str, reason: str, message: str) -> None:
    kopf.event(body, type=event_type, reason=reason, message=message)  # type: ignore[arg-type]


def _login(settings: kopf.OperatorSettings, **kwargs: Any) -> Any:
    return kopf.login_with_service_account(
        settings=settings, **kwargs
    ) or kopf.login_with_kubeconfig(settings=settings, **kwargs)


MEMO_KEY = "runtime"  # where the ``Runtime`` sits in kopf's memo (shared by every copy)
log = logging.getLogger("akeneo_operator")


def runtime_of(memo: kopf.Memo) -> Runtime:
    """The operator's ``Runtime``: kopf hands each handler a shallow copy of the memo given
    to ``kopf.operator`` (``memo_of``), so every copy holds the same one."""
    rt = memo.get(MEMO_KEY)
    if not isinstance(rt, Runtime):
        raise kopf.PermanentError("no operator runtime in kopf's memo (see handlers.memo_of)")
    return rt


def memo_of(rt: Runtime) -> kopf.Memo:
    """The memo to start ``kopf.operator`` with."""
    return kopf.Memo({MEMO_KEY: rt})


def login(settings: kopf.OperatorSettings, **kwargs: Any) -> Any:
    return _login(settings, **kwargs)


async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    rt = runtime_of(memo)
    ops = rt.settings
    configure_kopf(settings, ops)
    info = _login(settings, **kwargs)
    if info is None:
        raise kopf.PermanentError("no Kubernetes credentials (service account or kubeconfig)")

    def relogin() -> Credentials:
        fresh = _login(settings, **kwargs)
        if fresh is None:
            raise kopf.PermanentError("Kubernetes credentials disappeared")
        return credentials_from(fresh)

    client = KubeClient(
        credentials_from(info), MANAGED_BY, timeout=ops.request_timeout, refresh=relogin
    )
    rt.reconciler = Reconciler(ops, client, NatsLink(ops), adopt=adopt, emit=_emit, logger=log)
    rt.metrics.per_connection.source = rt.reconciler.samples
    rt.maintenance = maintenance_loop(rt, client)
    rt.maintenance_task = asyncio.create_task(rt.maintenance.run(), name="maintenance")
    if ops.port:
        rt.server = await start_server(
            ops.port, rt.metrics, lambda: rt.reconciler is not None, lambda: _refresh(rt)
        )


def _refresh(rt: Runtime) -> None:
    if rt.reconciler is not None:
        rt.metrics.connections.set(len(rt.reconciler.states))
        rt.metrics.api_calls.set(rt.reconciler.client.calls)


def maintenance_loop(rt: Runtime, client: KubeClient) -> MaintenanceLoop:
    """The one loop ticking every connection (``Reconciler.maintain``), paused with kopf."""
    ops = rt.settings

    async def read_peering(name: str, namespace: str | None) -> Manifest | None:
        kind = "KopfPeering" if namespace else "ClusterKopfPeering"
        return await client.get(PEERING_API_VERSION, kind, namespace or "", name)

    gate = PeeringGate(
        read_peering,
        ops.peering_name,
        rt.identity,
        ops.priority,
        namespaces=tuple(ops.namespaces),
        standalone=ops.standalone,
    )
    return MaintenanceLoop(
        Schedule(ops.maintenance_seconds),
        tick=lambda namespace, name: rt.r.maintain(namespace, name),
        active=gate.active,
    )


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    rt = runtime_of(memo)
    if rt.maintenance_task is not None:
        rt.maintenance_task.cancel()
        await asyncio.gather(rt.maintenance_task, return_exceptions=True)
    if rt.server is not None:
        await rt.server.cleanup()
    if rt.reconciler is not None:
        await rt.reconciler.nats.close()
        await rt.reconciler.client.close()


async def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    rt = runtime_of(memo)
    try:
        await rt.r.reconcile(_plain(body))
    except Exception:
        rt.metrics.reconciles.labels("error").inc()
        raise
    rt.metrics.reconciles.labels("ok").inc()


async def delete(body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any) -> None:
    rt = runtime_of(memo)
    plain = _plain(body)
    try:
        try:
            await rt.r.finalize(plain, event_platform=retry < EP_DELETE_TRIES)
        except EventPlatformError as exc:
            # a refusal will not change, an outage may end: retried with backoff; then
            # the deletion goes on and leaves the subscription in place (the Event says)
            give_up = not exc.retryable or retry + 1 >= EP_DELETE_TRIES
            then = "; the subscription is left in place" if give_up else "; retrying"
            kopf.event(body, type="Warning", reason="SubscriptionNotDeleted",
                       message=f"{exc.reason}: {exc.message}{then}"[:1000])  # fmt: skip
            if not give_up:
                raise kopf.TemporaryError(exc.reason, delay=min(10 * 2**retry, 120)) from None
            await rt.r.finalize(plain, event_platform=False)
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        raise kopf.TemporaryError(f"NATS not reachable: {type(exc).__name__}", delay=10) from exc


async def track(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Every connection kopf sees is ticked by the maintenance loop until it is deleted."""
    rt = runtime_of(memo)
    obj = event.get("object") or {}
    meta = obj.get("metadata") or {}
    key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
    if rt.maintenance is None or not key[1]:
        return
    if event.get("type") == "DELETED" or meta.get("deletionTimestamp"):
        rt.maintenance.gone(key)
    else:
        rt.maintenance.seen(key)


async def child_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    rt = runtime_of(memo)
    obj = event.get("object")
    if obj is not None and rt.reconciler is not None:
        rt.reconciler.on_child_event(event.get("type") or "MODIFIED", dict(obj))


def build_registry(ops: OperatorSettings) -> tuple[kopf.OperatorRegistry, Runtime]:
    """The handlers above on a registry of their own; kopf must be started with
    ``memo=memo_of(runtime)``."""
    registry = kopf.OperatorRegistry()
    rt = Runtime(ops)
    kopf.on.login(registry=registry)(login)
    kopf.on.startup(registry=registry)(startup)
    kopf.on.cleanup(registry=registry)(cleanup)
    for on in (kopf.on.update, kopf.on.create, kopf.on.resume):  # as the decorators stacked
        on(GROUP, VERSION, PLURAL, registry=registry, id="reconcile", **RETRIES)(reconcile)
    kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, id="finalize")(delete)
    kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, id="maintenance")(track)
    for api_version, plural in WATCHED_CHILDREN:
        group, _, version = api_version.rpartition("/")
        kopf.on.event(
            group,
            version,
            plural,
            labels=managed_selector(),
            registry=registry,
            id=f"child-{plural}",
        )(child_event)
    return registry, rt


# What the reconciler reads of an AkeneoConnection. The copy leaves out managedFields and
# kopf's annotations (one holds a JSON copy of the last handled spec): a third of the size.
_META_KEYS = (
    "name",
    "namespace",
    "uid",
    "generation",
    "resourceVersion",
    "labels",
    "finalizers",
    "deletionTimestamp",
)


def _plain(body: kopf.Body) -> Manifest:
    meta = body.get("metadata") or {}
    plain_meta = {k: copy.deepcopy(meta[k]) for k in _META_KEYS if k in meta}
    annotations = meta.get("annotations") or {}
    ours = {k: str(annotations[k]) for k in ANNOTATIONS if k in annotations}  # sync-now, ...
    if ours:
        plain_meta["annotations"] = ours
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": plain_meta,
        "spec": copy.deepcopy(dict(body.get("spec") or {})),
        "status": copy.deepcopy(dict(body.get("status") or {})),
    }


def configure_kopf(settings: kopf.OperatorSettings, ops: OperatorSettings) -> None:
    """kopf's settings from ours. Watch timeouts: the API server ends each watch after
    ``server_timeout``, and a watch that stalls silently (a dead proxy or connection) is
    dropped and reconnected after ``client_timeout``, so no change goes unseen for long."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.diffbase_storage = LeanDiffBaseStorage({KIND})
    settings.watching.server_timeout = ops.watch_server_timeout
    settings.watching.client_timeout = ops.watch_client_timeout
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = ops.request_timeout
    settings.posting.level = logging.WARNING  # our own Events carry the transitions
    settings.peering.name = ops.peering_name
    settings.peering.priority = ops.priority
    lean_watches(settings)


def lean_watches(settings: kopf.OperatorSettings) -> None:
    """Keep what kopf holds per watched object small, the bulk of the operator's memory:

    - a server-side label selector on the child watches: without it kopf streams (and keeps
      a record of) every Secret, Deployment, Job, ... of the watched namespaces and filters
      on labels afterwards;
    - kopf's per-object worker keeps the object's last event (the whole body, managedFields
      included) while it idles before exiting, and holds one of the bounded slots: the
      objects waiting for a slot are queued with their bodies, every child at once after a
      restart; a short idle time drains that queue as fast as the events come;
    - the initial lists in chunks: one list of 400 Deployments is a spike of tens of MB;
    - a bounded number of kopf workers: kopf's HTTP pool has no connection limit, so a
      thousand objects created (or listed after a restart) at once became hundreds of
      workers, patches and Event posts in flight, each on its own TLS connection with a
      256 KB read buffer, the bulk of the peak at 1,000 connections.
    """
    settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
    settings.queueing.worker_limit = WORKER_LIMIT
    settings.posting.worker_limit = POSTING_WORKER_LIMIT
    settings.posting.idle_timeout = WORKER_IDLE_SECONDS  # a poster holds its slot this long
    settings.watching.chunk_size = LIST_CHUNK_SIZE
    selector = ",".join(f"{k}={v}" for k, v in sorted(managed_selector().items()))
    for api_version, plural in WATCHED_CHILDREN:
        group, _, version = api_version.rpartition("/")
        settings.watching.label_selectors[group, version, plural] = selector
