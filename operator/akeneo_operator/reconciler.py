"""What the kopf handlers delegate to: one connection's full reconcile, child repair,
periodic maintenance and deletion. Holds the per-connection in-memory observations.

Handlers stay thin; every decision is made by the pure modules (``children``, ``apply``,
``status``, ``secretcheck``, ``certs``); this module only sequences I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any, TypeVar, cast

from croniter import croniter
from pydantic import ValidationError

from akeneo_connector.durations import parse_duration
from akeneo_connector.gaps import GapRecord, GapSource
from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import API_VERSION, KIND, AkeneoConnectionSpec, TLSMode
from akeneo_operator import policy, secretcheck
from akeneo_operator.apply import ChildConflict, Outcome, ensure_child, prune_child, write_child
from akeneo_operator.certs import utcnow
from akeneo_operator.children import (
    SCALED_OBJECT_API,
    ChildRef,
    apply_waves,
    build_children,
    child_names,
    endpoint,
    endpoints,
    possible_children,
    ref_of,
    worker_scaled_object,
)
from akeneo_operator.childwatch import (
    ChildEvent,
    digest,
    owner_key,
    owner_uids,
    pack,
    resource_version,
    unpack,
)
from akeneo_operator.ep_manager import SubscriptionManager
from akeneo_operator.health import ConnectionSample
from akeneo_operator.kubeclient import ApiError, KubeClient
from akeneo_operator.meta import FINALIZER, L_COMPONENT, RECEIVER, WORKER, Manifest, owned_by
from akeneo_operator.natscreds import (
    CredsOutcome,
    IssuerFile,
    ensure_creds,
    isolation,
    without_issuer,
)
from akeneo_operator.pods import SIGNATURE_FILES, BuildInput
from akeneo_operator.repairs import (
    ANNOTATIONS,
    ROTATE_SECRETS_ANNOTATION,
    Repairs,
    RepairState,
)
from akeneo_operator.rotation import RotationState
from akeneo_operator.rotation_driver import turn as rotation_turn
from akeneo_operator.rotation_io import KubeRotationIO, RemoteNotUpdated
from akeneo_operator.settings import OperatorSettings
from akeneo_operator.status import (
    CATCH_UP,
    EVENT_SUBSCRIPTION,
    NATS_CREDENTIALS,
    NATS_ISOLATED,
    PUBLICLY_TRUSTED,
    RECEIVER_READY,
    RECONCILE_SCHEDULED,
    SECRET_ROTATION,
    STREAM_READY,
    TLS_READY,
    UNKNOWN,
    WORKER_AUTOSCALER,
    WORKER_READY,
    Cond,
    Observed,
    deployment_condition,
    render_status,
    subscription_condition,
    transitions,
)
from akeneo_operator.streams import NatsLink
from akeneo_operator.tls import TLSOutcome, ensure_tls, secret_data
from akeneo_operator.trust import publicly_trusted

Key = tuple[str, str]
T = TypeVar("T")
CHILD_CONFLICT = "ChildNameConflict"
# Full reconciles in flight at once. Each holds its built manifests and the live children it
# read (~150 KB); at 200 connections after a restart, unbounded, that alone was ~30 MB. The
# API client has 20 connections, so more in flight would only wait for one anyway.
MAX_CONCURRENT_RECONCILES = 16
# How long a connection's status-only child events (a Deployment's pods, a Job finishing)
# gather before the status is written: a rollout's two Deployments and its first sync Job
# are one status write, not three. A deleted or edited child is repaired at once.
CHILD_EVENTS_GATHER_SECONDS = 5.0
EventFn = Callable[[Manifest, str, str, str], None]
Adopt = Callable[[Manifest, Manifest], Manifest]


def conflict_condition(exc: ChildConflict) -> Cond:
    """``Ready=False`` naming the object that holds a child's name."""
    return Cond.fail(
        CHILD_CONFLICT,
        f"{exc}: this connection leaves it untouched and builds nothing until the name is "
        "free (remove that object, or recreate the connection under another name)",
    )


def spec_error(exc: ValidationError) -> Cond:
    """A precise, value-free message from a pydantic error (locations and messages only)."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "spec"
        parts.append(f"spec.{loc}: {err['msg']}")
    return Cond.fail("InvalidSpec", "; ".join(parts))


@dataclass
class TlsState:
    """The receiver's serving certificate as the last reconcile left it (``tls``)."""

    mode: TLSMode | None = None
    cert_not_after: datetime | None = None  # selfSigned: when the operator must renew
    not_after: datetime | None = None  # any mode, when known (metrics)


@dataclass
class CredsState:
    """The connection's own NATS users as last issued (``natscreds``)."""

    not_after: datetime | None = None  # earliest expiry of the issued users
    issuer: str | None = None  # signing key (public) they were issued with


@dataclass
class PlatformState:
    """The managed Event Platform subscription and its secret rotation, as in status; None
    until read from the connection's stored status."""

    status: dict[str, Any] | None = None  # status.eventPlatform (``ep_manager``)
    rotation: RotationState | None = None  # status.secretRotation (``rotation``)


@dataclass
class ConnState:
    key: Key
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    obs: Observed = field(default_factory=Observed)
    body: Manifest = field(default_factory=dict)  # last seen AkeneoConnection (metadata, status)
    desired: dict[ChildRef, bytes] = field(default_factory=dict)  # packed (``childwatch``)
    spec: AkeneoConnectionSpec | None = None
    names: ConnectionNames | None = None
    tls: TlsState = field(default_factory=TlsState)
    # a KEDA ScaledObject may exist (unknown after a restart): prune it once, not each time
    scaled_object_maybe: bool = True
    creds: CredsState = field(default_factory=CredsState)
    needs_retry: bool = False
    deleting: bool = False
    last_status: dict[str, Any] = field(default_factory=dict)
    last_job_time: str = ""
    seen_versions: dict[ChildRef, int] = field(default_factory=dict)
    pending: dict[ChildRef, ChildEvent] = field(default_factory=dict)  # child events to act on
    drain: asyncio.Task[None] | None = None  # acts on ``pending``
    urgent: asyncio.Event = field(default_factory=asyncio.Event)  # a pending child to repair
    inp: BuildInput | None = None  # what the last full reconcile built from
    annotations: dict[str, str] = field(default_factory=dict)  # ours (``repairs.ANNOTATIONS``)
    repair: RepairState = field(default_factory=RepairState)  # one-off Jobs, gap windows
    platform: PlatformState = field(default_factory=PlatformState)

    def fresh(self, ref: ChildRef, child: Manifest | None) -> bool:
        return self.fresh_version(ref, resource_version(child))

    def fresh_version(self, ref: ChildRef, version: int | None) -> bool:
        """False for an event older than what the operator already wrote or saw."""
        if version is None:
            return True
        if version < self.seen_versions.get(ref, 0):
            return False
        self.seen_versions[ref] = version
        return True

    @property
    def uid(self) -> str | None:
        uid = self.body.get("metadata", {}).get("uid")
        return uid if isinstance(uid, str) else None


class Reconciler:
    def __init__(
        self,
        settings: OperatorSettings,
        client: KubeClient,
        nats: NatsLink,
        *,
        adopt: Adopt,
        emit: EventFn,
        logger: logging.Logger | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.settings = settings
        self.client = client
        self.nats = nats
        self.adopt = adopt
        self.emit = emit
        self.log = logger or logging.getLogger("akeneo_operator")
        self.clock = clock
        self.states: dict[Key, ConnState] = {}
        self.handler_errors = 0
        self.issuers = IssuerFile(settings)
        self._reconciles = asyncio.Semaphore(MAX_CONCURRENT_RECONCILES)
        self.repairs = Repairs(settings, client, nats, adopt, clock, self.log)
        self.subscriptions = SubscriptionManager(settings, client, clock, self.log)

    def state(self, namespace: str, name: str) -> ConnState:
        key = (namespace, name)
        if key not in self.states:
            self.states[key] = ConnState(key)
        return self.states[key]

    # -- full reconcile ------------------------------------------------------------------------
    async def reconcile(self, body: Manifest) -> None:
        meta = body["metadata"]
        st = self.state(meta["namespace"], meta["name"])
        async with self._reconciles, st.lock:
            st.body = _owner_view(body, st.body)
            st.deleting = False
            annotations = meta.get("annotations") or {}
            st.annotations = {k: str(annotations[k]) for k in ANNOTATIONS if k in annotations}
            st.repair.load(st.body.get("status") or {})
            if st.platform.status is None:
                st.platform.status = dict((st.body.get("status") or {}).get("eventPlatform") or {})
            if st.platform.rotation is None:
                st.platform.rotation = RotationState.from_status(
                    (st.body.get("status") or {}).get("secretRotation")
                )
            try:
                await self._reconcile(st, body.get("spec") or {})
            except ChildConflict as exc:
                st.needs_retry = True  # the maintenance loop retries: the name may be freed
                st.obs.blocker = conflict_condition(exc)
            except ApiError as exc:
                st.needs_retry = True
                st.obs.blocker = Cond.fail("KubernetesApiError", str(exc)[:300])
                raise
            except Exception as exc:
                st.needs_retry = True
                st.obs.blocker = Cond.fail("ReconcileFailed", type(exc).__name__)
                raise
            finally:
                await self._write_status(st)

    async def _reconcile(self, st: ConnState, raw_spec: Manifest) -> None:
        namespace, name = st.key
        st.obs.generation = st.body["metadata"].get("generation")
        try:
            spec = AkeneoConnectionSpec.model_validate(raw_spec)
        except ValidationError as exc:
            st.obs.blocker = spec_error(exc)
            st.needs_retry = False  # only a spec change can fix it (update handler)
            return
        # the tenant's issuer is judged, not the platform's own defaultTLS
        tenant_issuer = policy.issuer_refusal(spec, self.settings)
        spec = spec.with_default_tls(self.settings.default_tls)
        refused = (
            policy.refusal(spec, self.settings)
            or tenant_issuer
            or policy.host_refusal(spec, self.settings, namespace, name)
        )
        if refused is not None:
            st.obs.blocker = refused
            st.needs_retry = False  # a spec change or an operator restart can fix it
            return
        taken = await self._host_conflict(st, spec)
        if taken is not None:
            st.obs.blocker = taken
            st.needs_retry = True  # the maintenance loop retries: the host may be freed
            return
        names = ConnectionNames(namespace, name)
        tls_mode = spec.effective_tls.mode
        if st.tls.mode is TLSMode.CERT_MANAGER and tls_mode is not TLSMode.CERT_MANAGER:
            await self._drop_certificate(namespace, name)
        st.spec, st.names, st.tls.mode = spec, names, tls_mode
        generated = await self.subscriptions.ensure_secrets(names, spec, self._adopter(st))
        if generated:
            self._event(st, "Normal", "SecretsGenerated", generated)
        signature_keys, blocker = await self._check_secrets(namespace, spec)
        st.obs.blocker = blocker
        if blocker is not None:
            st.needs_retry = True  # the maintenance loop retries: the Secret may appear
            return
        base = BuildInput(names, spec, self.settings, child_names(name).tls_secret)
        live = await self._read_children(st, base)  # a name clash stops before any write
        tls = await ensure_tls(self.client, base, self._adopter(st), self.clock())
        st.obs.conditions[TLS_READY] = tls.cond
        st.tls.cert_not_after = tls.not_after if not tls.renews_itself else None
        st.tls.not_after = tls.not_after
        if tls.issued:
            self._event(st, "Normal", "CertificateIssued", "serving certificate replaced")
        await self._observe_trust(st, base, tls)
        creds = await self._nats_creds(st, names)
        st.obs.conditions[NATS_CREDENTIALS] = creds.cond
        st.obs.conditions[NATS_ISOLATED] = isolation(self.settings)
        st.creds.not_after, st.creds.issuer = creds.not_after, creds.issuer
        inp = BuildInput(
            names, spec, self.settings, tls.secret_name, tls.revision, frozenset(signature_keys)
        )
        await self._apply_children(st, inp, live)
        st.inp = inp
        await self._worker_autoscaler(st, inp)
        stream_cond, _changed = await self.nats.ensure(names, spec.stream)
        st.obs.conditions[STREAM_READY] = stream_cond
        if stream_cond.status == "True":
            if st.obs.counters is None:
                st.obs.counters = await self.nats.counters(names)
            await self._observe_subscription(st, names)
            await self._event_platform(st, force=True)
            await self._rotate(st)
            await self._sync(st, inp)
            await self._catch_up(st)
        st.obs.endpoint, st.obs.endpoints = endpoint(inp), endpoints(inp)
        # a missing KEDA is retried too: installing it later must not need a spec change
        autoscaler = st.obs.conditions.get(WORKER_AUTOSCALER, Cond.ok("NotRequested"))
        st.needs_retry = any(
            c.status != "True" for c in (tls.cond, stream_cond, creds.cond, autoscaler)
        )

    async def _observe_trust(self, st: ConnState, inp: BuildInput, tls: TLSOutcome) -> None:
        """``PubliclyTrusted`` for a connection with a public host (``trust``)."""
        host, mode = inp.spec.receiver.host, inp.spec.effective_tls.mode
        chain = None
        if host and mode is not TLSMode.SELF_SIGNED:
            secret = await self.client.get("v1", "Secret", inp.names.namespace, tls.secret_name)
            chain = secret_data(secret, "tls.crt")
        cond = publicly_trusted(host, mode, chain, self.clock())
        if cond is None:
            st.obs.conditions.pop(PUBLICLY_TRUSTED, None)
        else:
            st.obs.conditions[PUBLICLY_TRUSTED] = cond

    def _events_of(self, st: ConnState) -> Callable[[str, str, str], None]:
        return lambda event_type, reason, message: self._event(st, event_type, reason, message)

    async def _sync(self, st: ConnState, inp: BuildInput) -> None:
        """The first sync and syncs on demand (``repairs``); a refused Job is an Event, never
        what keeps the connection from being Ready."""
        try:
            await self.repairs.sync(st.repair, inp, st.body, st.annotations, self._events_of(st))
        except ApiError as exc:
            self.log.warning("sync Job of %s/%s not created: %s", *st.key, exc)
            self._event(st, "Warning", "SyncJobNotCreated", str(exc)[:300])
        finally:
            st.repair.render(st.obs)

    async def _catch_up(self, st: ConnState) -> None:
        """Store new gap windows and drive their catch-up Job (``repairs``)."""
        if st.inp is None:
            return
        try:
            await self.repairs.catch_up(st.repair, st.obs, st.inp, st.body, self._events_of(st))
        except ApiError as exc:
            self.log.warning("catch-up of %s/%s: %s", *st.key, exc)
            st.obs.conditions[CATCH_UP] = Cond.fail("KubernetesApiError", str(exc)[:300])
        finally:
            st.repair.render(st.obs)

    async def _host_conflict(self, st: ConnState, spec: AkeneoConnectionSpec) -> Cond | None:
        """``HostConflict`` when an older connection (any watched namespace) has the host.
        The winner makes the newer claimants reconcile again; a loser drops its Ingress."""
        host = spec.receiver.host
        if host is None:
            return None
        connections: list[Manifest] = []
        for ns in self.settings.namespaces or (None,):
            connections += await self.client.list(API_VERSION, KIND, ns)
        claims = policy.host_claims(connections, host, self.settings)
        mine = [c for c in claims if (c.namespace, c.name) == st.key]
        me = mine[0] if mine else policy.HostClaim("~", *st.key)  # not listed: the newest
        cond = policy.host_conflict(host, me, claims)
        if cond is None:
            for claim in claims:
                other = self.states.get((claim.namespace, claim.name))
                if claim != me and other is not None:
                    other.needs_retry = True
            return None
        winner = min(claims)
        self.log.info("%s/%s: host %s is kept by the older %s/%s",
                      *st.key, host, winner.namespace, winner.name)  # fmt: skip
        namespace, name = st.key
        ingress = await self.client.get(
            "networking.k8s.io/v1", "Ingress", namespace, child_names(name).ingress
        )
        if ingress is not None and await prune_child(
            self.client, "networking.k8s.io/v1", "Ingress", ingress, st.uid
        ):
            self.log.info("Pruned Ingress/%s/%s (host kept by an older connection)", *st.key)
        return cond

    async def _nats_creds(self, st: ConnState, names: ConnectionNames) -> CredsOutcome:
        """The connection's own NATS users when a signing key is configured (``natscreds``)."""
        try:
            issuer = self.issuers.current()
        except ValueError as exc:  # names the file, never its content
            return CredsOutcome(Cond.fail("SigningKeyInvalid", str(exc)[:300]))
        if issuer is None:
            return CredsOutcome(without_issuer(self.settings))
        outcome = await ensure_creds(
            self.client, names, issuer, self._adopter(st), self.clock(), self.settings
        )
        if outcome.reissued:
            self.log.info("Issued NATS users of %s: %s", names.ref, ", ".join(outcome.reissued))
            self._event(
                st, "Normal", "NatsCredentialsIssued", f"issued {', '.join(outcome.reissued)}"
            )
        return outcome

    def _creds_due(self, st: ConnState) -> str | None:
        """Why the maintenance tick must reissue NATS users (near expiry, key rotated)."""
        if st.creds.not_after is None:
            return None
        if needs_renewal_at(
            st.creds.not_after, self.settings.nats_creds_renew_before_delta, self.clock()
        ):
            return "NATS credentials near expiry"
        try:
            issuer = self.issuers.current()
        except ValueError:
            return None  # the next reconcile reports it; keep the working credentials
        if issuer is not None and issuer.signer.public != st.creds.issuer:
            return "NATS account signing key changed"
        return None

    async def _check_secrets(
        self, namespace: str, spec: AkeneoConnectionSpec
    ) -> tuple[set[str], Cond | None]:
        signature_keys: set[str] = set()
        for need in secretcheck.needs(
            spec, self.settings.pod_nats_secret, self.settings.pod_nats_secret_key
        ):
            secret = await self.client.get("v1", "Secret", namespace, need.secret)
            keys = None if secret is None else set((secret.get("data") or {}).keys())
            problem = secretcheck.check(need, keys)
            if problem is None and secret is not None:
                problem = secretcheck.check_content(need, secret.get("data") or {})
            if problem is None and secret is not None and need.keys == secretcheck.DSN_KEYS:
                problem = secretcheck.dsn_problem(
                    secret, need.secret, allow_private=self._postgres_private(spec)
                )
            if problem is not None:
                return signature_keys, problem
            if need.secret == spec.receiver.signature_secret and keys is not None:
                signature_keys = keys & set(SIGNATURE_FILES)
        return signature_keys, None

    def _postgres_private(self, spec: AkeneoConnectionSpec) -> bool:
        postgres = spec.worker.sink.postgres
        asked = postgres is not None and postgres.allow_private_addresses
        return asked and self.settings.allow_private_postgres

    async def _drop_certificate(self, namespace: str, name: str) -> None:
        try:
            await self.client.delete(
                "cert-manager.io/v1", "Certificate", namespace, child_names(name).certificate
            )
        except ApiError as exc:
            if not exc.kind_missing:
                raise

    def _adopter(self, st: ConnState) -> Callable[[Manifest], Manifest]:
        return lambda manifest: self.adopt(manifest, st.body)

    async def _read_children(
        self, st: ConnState, inp: BuildInput
    ) -> dict[ChildRef, Manifest | None]:
        """Every possible child as it is now; ``ChildConflict`` when one the spec needs is
        held by an object without this connection's owner uid."""
        namespace = inp.names.namespace
        refs = possible_children(inp.names.name)
        found = await gather_in_order(
            [self.client.get(ref.api_version, ref.kind, namespace, ref.name) for ref in refs]
        )
        live = dict(zip(refs, found, strict=True))
        for manifest in build_children(inp):
            ref = ref_of(manifest)
            obj = live.get(ref)
            if obj is not None and not owned_by(obj, st.uid):
                raise ChildConflict(ref.kind, ref.name)
        return live

    async def _apply_children(
        self, st: ConnState, inp: BuildInput, live: dict[ChildRef, Manifest | None]
    ) -> None:
        desired = {ref_of(m): self.adopt(m, st.body) for m in build_children(inp)}
        st.desired = {ref: pack(m) for ref, m in desired.items()}
        namespace = inp.names.namespace
        for wave in apply_waves(list(desired.values())):
            refs = [ref_of(m) for m in wave]
            results = await gather_in_order(
                [ensure_child(self.client, m, live.get(ref_of(m))) for m in wave]
            )
            for ref, (outcome, written) in zip(refs, results, strict=True):
                st.fresh(ref, written)
                if outcome is not Outcome.UNCHANGED:
                    self.log.info("%s %s/%s %s", outcome.value, ref.kind, namespace, ref.name)
                if ref.kind == "Deployment":
                    self._observe_deployment(st, written)
        for ref, obj in live.items():  # only what carries our owner uid
            if ref in desired or obj is None:
                continue
            if await prune_child(self.client, ref.api_version, ref.kind, obj, st.uid):
                self.log.info("Pruned %s/%s/%s", ref.kind, namespace, ref.name)
        st.obs.conditions[RECONCILE_SCHEDULED] = self._reconcile_condition(inp, desired)

    async def _worker_autoscaler(self, st: ConnState, inp: BuildInput) -> None:
        """The KEDA ScaledObject when autoscaling is asked for; pruned when it is not.

        KEDA's CRDs may be absent: that is a condition (``KedaNotInstalled``) that keeps
        ``Ready`` False, since the user asked for a scaler that cannot exist."""
        wanted = worker_scaled_object(inp)
        namespace, name = inp.names.namespace, child_names(inp.names.name).worker
        if wanted is None:
            st.obs.conditions.pop(WORKER_AUTOSCALER, None)
            if not st.scaled_object_maybe:
                return
            try:
                if await self.client.delete(SCALED_OBJECT_API, "ScaledObject", namespace, name):
                    self.log.info("Pruned ScaledObject/%s/%s", namespace, name)
            except ApiError as exc:
                if not exc.kind_missing:
                    raise
            st.scaled_object_maybe = False
            return
        st.scaled_object_maybe = True
        try:
            outcome, _live = await ensure_child(self.client, self.adopt(wanted, st.body))
        except ApiError as exc:
            if not exc.kind_missing:
                raise
            st.obs.conditions[WORKER_AUTOSCALER] = Cond.fail(
                "KedaNotInstalled",
                "keda.sh/v1alpha1 ScaledObject is not served: install KEDA or remove "
                "worker.autoscaling",
            )
            return
        if outcome is not Outcome.UNCHANGED:
            self.log.info("%s ScaledObject/%s/%s", outcome.value, namespace, name)
        auto = inp.spec.worker.autoscaling
        assert auto is not None
        st.obs.conditions[WORKER_AUTOSCALER] = Cond.ok(
            "ScaledObjectApplied",
            f"KEDA scales {name} from {auto.min_replicas} to {auto.max_replicas} "
            f"replicas at {auto.lag_per_replica} pending messages each",
        )

    @staticmethod
    def _reconcile_condition(inp: BuildInput, desired: dict[ChildRef, Manifest]) -> Cond:
        rec = inp.spec.reconciliation
        if inp.spec.pim.credentials_secret is None:
            return Cond.fail(
                "NoPimCredentials", "no pim.credentialsSecret: nothing to reconcile from"
            )
        if rec.suspend:
            return Cond.fail("Suspended", "reconciliation.suspend is true")
        jobs = [r.name for r in desired if r.kind == "CronJob"]
        return Cond.ok("Scheduled", f"{', '.join(jobs)} on {rec.schedule}")

    def _observe_deployment(self, st: ConnState, live: Manifest | None) -> None:
        if live is None:
            return
        component = str((live["metadata"].get("labels") or {}).get(L_COMPONENT, ""))
        self._observe_condition(st, component, deployment_condition(live, component))

    def _observe_condition(self, st: ConnState, component: str, cond: Cond) -> None:
        ready = {RECEIVER: RECEIVER_READY, WORKER: WORKER_READY}.get(component)
        if ready is not None:
            st.obs.conditions[ready] = cond
        if ready == RECEIVER_READY:
            self.repairs.observe_receiver(st.repair, cond)  # no receiver ready: a gap window
            st.repair.render(st.obs)

    async def _observe_subscription(self, st: ConnState, names: ConnectionNames) -> None:
        """``EventSubscriptionActive`` from the newest notification the receiver stored (a
        managed subscription's comes from ``_event_platform``, which reads it too)."""
        ep = st.spec.event_platform if st.spec is not None else None
        if ep is not None and ep.manage_subscription:
            return
        raw = await self.nats.last_notification(names)
        cond = None if raw is None else subscription_condition(raw)
        if cond is not None:
            st.obs.conditions[EVENT_SUBSCRIPTION] = cond

    async def _event_platform(self, st: ConnState, *, force: bool = False) -> None:
        """The managed subscription (``ep_manager``): created, kept, read, resumed; its
        status drives ``EventSubscriptionActive``, a suspension it saw end is a gap window."""
        spec, names = st.spec, st.names
        ep = spec.event_platform if spec is not None else None
        if spec is None or names is None or ep is None or not ep.manage_subscription:
            st.obs.event_platform = None
            return
        ready = st.obs.conditions.get(RECEIVER_READY, UNKNOWN).status == "True"
        try:
            out = await self.subscriptions.sync(
                names, spec, st.platform.status or {}, receiver_ready=ready,
                note_raw=await self.nats.last_notification(names),
                event=self._events_of(st), force=force,
            )  # fmt: skip
        except ApiError as exc:
            self.log.warning("Event Platform subscription of %s/%s: %s", *st.key, exc)
            st.obs.conditions[EVENT_SUBSCRIPTION] = Cond(
                "Unknown", "KubernetesApiError", str(exc)[:300]
            )
            return
        st.platform.status = out.status
        st.obs.event_platform = dict(out.status) or None
        if out.cond is not None:
            st.obs.conditions[EVENT_SUBSCRIPTION] = out.cond
        if out.closed is not None:
            start, end = out.closed
            st.repair.recorded.append(
                GapRecord(
                    source=GapSource.SUBSCRIPTION, start=start, end=end,
                    detail="Event Platform subscription suspended (seen by the operator)",
                )
            )  # fmt: skip

    async def _rotate(self, st: ConnState) -> None:
        """One turn of the secret rotation (``rotation``, ``rotation_io``): a step at most,
        its state kept in ``status.secretRotation`` once every write of it succeeded."""
        spec, names = st.spec, st.names
        ep = spec.event_platform if spec is not None else None
        state = st.platform.rotation or RotationState()
        annotation = st.annotations.get(ROTATE_SECRETS_ANNOTATION)
        period = None
        if ep is not None and ep.secret_rotation_period:
            period = parse_duration(ep.secret_rotation_period)
        wanted = annotation is not None or period is not None or not state.idle
        if spec is None or names is None or ep is None or not ep.manage_subscription or not wanted:
            st.obs.conditions.pop(SECRET_ROTATION, None)
            return
        current = st.platform.status or {}
        if not current.get("subscriptionId") or current.get("error"):
            return  # no subscription to rotate yet (its own condition says why)

        async def push() -> bool:
            await self._event_platform(st, force=True)
            return bool(st.platform.status) and not (st.platform.status or {}).get("error")

        now = self.clock()
        io = KubeRotationIO(
            self.client, self.nats, names, spec.receiver.signature_secret,
            child_names(names.name).receiver, push, now,
        )  # fmt: skip
        try:
            planned = await rotation_turn(io, state, now=now, annotation=annotation, period=period)
        except (ApiError, RemoteNotUpdated) as exc:
            self.log.warning("secret rotation of %s: %s", names.ref, str(exc)[:300])
            return  # the same step again on the next turn
        st.platform.rotation = planned.state
        st.obs.secret_rotation = planned.state.to_status()
        if planned.condition is None:
            st.obs.conditions.pop(SECRET_ROTATION, None)
        else:
            st.obs.conditions[SECRET_ROTATION] = planned.condition
        for event_type, reason, message in planned.events:
            self._event(st, event_type, reason, message)
        for step in planned.steps:
            self.log.info("secret rotation of %s: %s %s", names.ref, step.track.value,
                          step.action.value)  # fmt: skip

    # -- child events --------------------------------------------------------------------------
    def _owner_state(self, child: Manifest) -> ConnState | None:
        key = owner_key(child)
        st = None if key is None else self.states.get(key)
        if st is None or st.deleting or not st.desired:
            return None
        owners = owner_uids(child)
        if owners and st.uid not in owners:
            return None
        return st

    def on_child_event(self, event_type: str, child: Manifest) -> None:
        """Note a child's event for its connection's drain task; keeps nothing of ``child``.

        Synchronous on purpose: kopf drops the event's body as soon as this returns, while
        the repair waits for the connection's lock. A newer event of the same child replaces
        a pending one."""
        st = self._owner_state(child)
        if st is None:
            return
        ref = ref_of(child)
        packed = st.desired.get(ref)
        event = digest(event_type, child, None if packed is None else unpack(packed))
        st.pending[ref] = event
        if event.gone or event.drifted:
            st.urgent.set()
        if st.drain is None:
            st.drain = asyncio.create_task(self._drain(st), name=f"child events {st.key}")

    async def _drain(self, st: ConnState) -> None:
        """Act on the pending child events of one connection, then write its status once."""
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(st.urgent.wait(), CHILD_EVENTS_GATHER_SECONDS)
            await self._drain_pending(st)
        finally:
            st.drain = None
            st.urgent.clear()

    async def _drain_pending(self, st: ConnState) -> None:
        while st.pending and not st.deleting:
            retry = False
            try:
                async with st.lock:
                    while st.pending and not st.deleting:
                        ref = next(iter(st.pending))
                        retry |= await self._on_child(st, st.pending.pop(ref))
                    await self._write_status(st)
            except Exception:
                st.needs_retry = True  # the maintenance loop reconciles it
                self.log.exception("acting on child events of %s/%s failed", *st.key)
                return
            if retry:
                await self.retry(st)

    async def _on_child(self, st: ConnState, ev: ChildEvent) -> bool:
        """Repair a deleted or edited child; refresh readiness from Deployments and Jobs.
        True when the connection needs a full reconcile (its TLS or NATS Secret is gone)."""
        ref = ev.ref
        if st.deleting or (not ev.gone and not st.fresh_version(ref, ev.version)):
            return False  # a stale event from before our last write
        if ev.job is not None:
            self._observe_job(st, ev.job)
            if ref.name == st.repair.catch_up.get("job"):
                await self._catch_up(st)  # the catch-up finished: say so at once
        if ev.deployment is not None:
            self._observe_condition(st, ev.component, ev.deployment)
        packed = st.desired.get(ref)
        secret_gone = ref.kind == "Secret" and ev.gone and st.spec is not None
        if secret_gone:
            st.needs_retry = True  # TLS or NATS material removed: reissued on reconcile
        ours = ev.gone or st.uid in ev.owners  # never repair into an object of someone else
        if packed is not None and ev.drifted and not ev.terminating and ours:
            try:
                outcome, live = await write_child(self.client, unpack(packed), ev.uid)
            except ChildConflict:
                st.needs_retry = True  # the full reconcile reports the clash
                return True
            st.fresh(ref, live)
            namespace = st.key[0]
            self.log.info("Repaired %s/%s/%s (%s)", ref.kind, namespace, ref.name, outcome.value)
            self._event(
                st, "Warning", "ChildRepaired", f"{ref.kind} {ref.name} {outcome.value.lower()}"
            )
            if ref.kind == "Deployment":
                self._observe_deployment(st, live)
        return secret_gone and st.needs_retry

    @staticmethod
    def _observe_job(st: ConnState, finished: tuple[str, str]) -> None:
        when, result = finished
        if when >= st.last_job_time:
            st.last_job_time = when
            st.obs.last_reconcile_time = when
            st.obs.last_reconcile_result = result

    # -- periodic maintenance ------------------------------------------------------------------
    async def maintain(self, namespace: str, name: str) -> None:
        """One tick of the maintenance loop for a connection: retry, stream drift, TLS and NATS
        credential renewal, counters."""
        st = self.states.get((namespace, name))
        if st is None:
            await self._first_reconcile(namespace, name)
            return
        if st.deleting:
            return
        due = st.tls.cert_not_after is not None and needs_renewal_at(
            st.tls.cert_not_after, self.settings.cert_renew_before_delta, self.clock()
        )
        creds_due = self._creds_due(st)
        if st.needs_retry or due or creds_due:
            if due:
                self._event(st, "Normal", "CertificateRenewal", "serving certificate near expiry")
            if creds_due:
                self._event(st, "Normal", "NatsCredentialsRenewal", creds_due)
            await self.retry(st)
            return
        if st.spec is None or st.names is None:
            return
        async with st.lock:
            cond, changed = await self.nats.ensure(st.names, st.spec.stream)
            st.obs.conditions[STREAM_READY] = cond
            if changed:
                self._event(
                    st,
                    "Warning",
                    "StreamRepaired",
                    f"stream/bucket of {st.names.ref} drifted and were repaired",
                )
            counters = await self.nats.counters(st.names)
            self.log.debug(
                "maintenance of %s: stream %s, counters %s", st.names.ref, cond.reason, counters
            )
            if counters is not None:
                st.obs.counters = counters
            await self._observe_subscription(st, st.names)
            await self._event_platform(st)
            await self._rotate(st)
            if cond.status == "True":
                await self._catch_up(st)
            await self._write_status(st)

    async def _first_reconcile(self, namespace: str, name: str) -> None:
        """A connection this replica runs a loop for but never reconciled: reconcile it now.

        kopf runs the create/resume handler on a watch event. When its finalizer patch loses a
        race (another replica patched first, e.g. one that was pausing at that moment) it waits
        for the next event, and if the watch does not deliver one the connection would wait
        until the watch reconnects. Converging from a fresh read is idempotent, so the loop does
        it instead, once kopf's finalizer is on (without it a deletion could skip cleanup).
        """
        body = await self.client.get(API_VERSION, KIND, namespace, name)
        if body is None or (namespace, name) in self.states:
            return
        meta = body["metadata"]
        if meta.get("deletionTimestamp") or FINALIZER not in (meta.get("finalizers") or []):
            return
        self.log.info("Reconciling %s/%s from the maintenance loop (no handler ran yet)",
                      namespace, name)  # fmt: skip
        await self.reconcile(body)

    async def retry(self, st: ConnState) -> None:
        if st.body and not st.deleting:
            body = await self.client.get(API_VERSION, KIND, *st.key)
            if body is not None and not body["metadata"].get("deletionTimestamp"):
                await self.reconcile(body)

    # -- deletion ------------------------------------------------------------------------------
    async def finalize(self, body: Manifest, *, event_platform: bool = True) -> None:
        """Delete what outlives the pods: the stream and bucket, the managed subscription
        (``EventPlatformError`` when the management API failed; ``event_platform=False``
        gives up on it)."""
        meta = body["metadata"]
        st = self.state(meta["namespace"], meta["name"])
        st.deleting = True
        preserve = bool(((body.get("spec") or {}).get("stream") or {}).get("preserveOnDelete"))
        names = ConnectionNames(meta["namespace"], meta["name"])
        if event_platform:
            await self._delete_subscription(body, names, preserve)
        else:
            await self.subscriptions.close(names)
        if preserve:
            self.log.info(
                "Keeping stream %s and bucket %s (preserveOnDelete)",
                names.stream,
                names.guard_bucket,
            )
        else:
            await self.nats.delete(names)
            self.log.info("Deleted stream %s and bucket %s", names.stream, names.guard_bucket)
        self.states.pop(st.key, None)

    async def _delete_subscription(self, body: Manifest, names: ConnectionNames,
                                   preserve: bool) -> None:  # fmt: skip
        try:
            spec = AkeneoConnectionSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            return
        ep = spec.event_platform
        if ep is None or not ep.manage_subscription:
            return
        if preserve:
            self.log.info("Keeping the Event Platform subscription of %s (preserveOnDelete)",
                          names.ref)  # fmt: skip
            await self.subscriptions.close(names)
            return
        previous = dict((body.get("status") or {}).get("eventPlatform") or {})
        done = await self.subscriptions.delete(names, spec, previous)
        self.log.info("Event Platform of %s: %s", names.ref, done)

    # -- metrics -------------------------------------------------------------------------------
    def samples(self) -> Iterator[ConnectionSample]:
        """Per-connection facts for /metrics (conditions as last written, reconcile runs)."""
        for st in list(self.states.values()):
            if st.deleting or not st.body:
                continue
            status = st.last_status or st.body.get("status") or {}
            conditions = {
                str(c.get("type")): str(c.get("status")) for c in status.get("conditions") or []
            }
            when = _epoch(st.obs.last_reconcile_time or status.get("lastReconcileTime"))
            result = st.obs.last_reconcile_result or status.get("lastReconcileResult")
            period = None
            rec = st.spec.reconciliation if st.spec is not None else None
            if rec is not None and not rec.suspend and st.spec and st.spec.pim.credentials_secret:
                period = schedule_period(rec.schedule)
            yield ConnectionSample(
                st.key[0],
                st.key[1],
                conditions,
                when,
                None if not result else result == "Succeeded",
                period,
                st.tls.not_after.timestamp() if st.tls.not_after is not None else None,
            )

    # -- status and events ---------------------------------------------------------------------
    async def _write_status(self, st: ConnState) -> None:
        if not st.body or st.deleting:
            return
        previous = st.last_status or (st.body.get("status") or {})
        status = render_status(st.obs, previous, self.clock())
        if _comparable(status) == _comparable(previous) and not _check_due(previous, status):
            return
        namespace, name = st.key
        try:
            await self.client.merge_patch(
                API_VERSION, KIND, namespace, name, {"status": _removals(previous, status)},
                "status",
            )  # fmt: skip
        except ApiError as exc:
            if exc.status == 404:
                return
            raise
        for t in transitions(previous.get("conditions") or [], status["conditions"]):
            self._event(st, t.event_type, t.reason, f"{t.type} is {t.status}: {t.message}")
        st.last_status = status

    def _event(self, st: ConnState, event_type: str, reason: str, message: str) -> None:
        try:
            self.emit(st.body, event_type, reason, message[:1000])
        except Exception:  # events are best effort
            self.log.debug("event %s not posted", reason, exc_info=True)


async def gather_in_order(calls: list[Awaitable[T]]) -> list[T]:
    """Await independent API calls at once (a reconcile waits for one round trip, not one
    per child); every call runs to its end, then the first failure in ``calls`` order is
    raised as itself, as the calls one after another would have raised it."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)


@lru_cache(maxsize=256)
def schedule_period(schedule: str) -> float | None:
    """Longest gap between two runs of a cron schedule over its next few runs (seconds)."""
    try:
        it = croniter(schedule, datetime(2026, 1, 1, tzinfo=UTC))
        runs = [float(it.get_next(float)) for _ in range(8)]
    except (ValueError, KeyError):
        return None
    return max(b - a for a, b in pairwise(runs))


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def needs_renewal_at(not_after: datetime, before: timedelta, now: datetime) -> bool:
    return now >= not_after - before


def _owner_view(body: Manifest, previous: Manifest) -> Manifest:
    """What status writes, events and owner references need of the parent."""
    meta = body.get("metadata", {})
    return {
        "apiVersion": body.get("apiVersion", API_VERSION),
        "kind": body.get("kind", KIND),
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "generation") if k in meta},
        "status": body.get("status") or previous.get("status") or {},
    }


def _removals(previous: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """``status`` as a merge patch: keys of ``status.eventPlatform`` it dropped become null
    (a merge patch keeps what it leaves out: a suspension that ended would stay recorded),
    and so do those of each track of ``status.secretRotation`` (a finished rotation's
    fingerprints)."""
    out = _nulled(previous.get("eventPlatform"), status, "eventPlatform")
    before = previous.get("secretRotation")
    now = status.get("secretRotation")
    if isinstance(before, dict) and isinstance(now, dict):
        tracks = {
            t: _nulled(before.get(t), now, t).get(t) for t in ("eventPlatform", "notification")
        }
        out = {**out, "secretRotation": {**now, **{k: v for k, v in tracks.items() if v}}}
    return out


def _nulled(before: Any, status: dict[str, Any], key: str) -> dict[str, Any]:
    """``status`` with the keys of ``before`` (the previous ``status[key]``) it lacks set to
    null."""
    if not isinstance(before, dict):
        return status
    now = status.get(key) or {}
    gone = {k: None for k in before if k not in now}
    if not gone:
        return status
    return {**status, key: {**now, **gone}}


LAST_CHECKED_EVERY = timedelta(minutes=5)


def _check_due(previous: dict[str, Any], status: dict[str, Any]) -> bool:
    """Whether ``status.eventPlatform.lastChecked`` alone is worth a write: each poll moves
    it, so it is written with other changes, or when the stored one is 5 minutes old."""
    before = _epoch((previous.get("eventPlatform") or {}).get("lastChecked"))
    now = _epoch((status.get("eventPlatform") or {}).get("lastChecked"))
    if now is None:
        return False
    return before is None or now - before >= LAST_CHECKED_EVERY.total_seconds()


def _comparable(status: dict[str, Any]) -> Any:
    conditions = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in status.get("conditions") or []
    ]
    ep = {k: v for k, v in (status.get("eventPlatform") or {}).items() if k != "lastChecked"}
    return {
        **{k: v for k, v in status.items() if k not in ("conditions", "kopf", "eventPlatform")},
        "conditions": conditions,
        "eventPlatform": ep,
    }
