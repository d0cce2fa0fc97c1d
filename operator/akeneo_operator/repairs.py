"""One-off reconcile Jobs: the first sync, syncs on demand, and the repair of gap windows.

- Initial sync: a connection whose bucket says it never synced (``never_synced``) gets
  ``<name>-initial-sync`` at once instead of waiting for its first schedule.
- On demand: ``kubectl annotate akc NAME akeneo.connectors.dev/sync-now=<new value>`` (or
  ``full-scan-now``) starts one Job per distinct value; the last handled value is kept in
  ``status.sync`` so a value runs once, across operator restarts too.
- Gap repair (``akeneo_connector.gaps``): windows the operator sees (no receiver ready:
  ``ReceiverReady`` True -> False -> True; the subscription notifications and dead letters
  on the stream, ``gap_sources``) are stored as gap records next to the receiver's own 503
  windows; every record past ``status.catchUp.through`` is repaired by one catch-up Job
  (``reconcile --since <earliest start - safetyMargin>``), shown as condition ``CatchUp``
  and as Events. A failed Job is retried with backoff; ``through`` moves only when a Job
  succeeded, so no window is dropped.

Every Job runs with ``--lock-wait``: the reconcile lock keeps it from overlapping a scheduled
run, and it waits for that run instead of being lost to it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import nats.errors
from nats.js.errors import NotFoundError

from akeneo_connector.durations import parse_duration
from akeneo_connector.gaps import GapRecord, GapSource, plan_catch_up, publish_gap, read_gaps
from akeneo_connector.spec import AkeneoConnectionSpec
from akeneo_operator.children import (
    catch_up_job,
    initial_sync_job,
    rfc3339,
    sync_now_job,
)
from akeneo_operator.gap_sources import GapScanner
from akeneo_operator.kubeclient import ApiError, KubeClient
from akeneo_operator.meta import Manifest
from akeneo_operator.pods import BuildInput
from akeneo_operator.settings import OperatorSettings
from akeneo_operator.status import CATCH_UP, RECEIVER_READY, Cond, Observed, job_result
from akeneo_operator.streams import NatsLink

SYNC_NOW_ANNOTATION = "akeneo.connectors.dev/sync-now"
FULL_SCAN_NOW_ANNOTATION = "akeneo.connectors.dev/full-scan-now"
ROTATE_SECRETS_ANNOTATION = "akeneo.connectors.dev/rotate-secrets"  # ``rotation``
# the annotations the operator reads (handlers keep these of each body, nothing else)
ANNOTATIONS = (SYNC_NOW_ANNOTATION, FULL_SCAN_NOW_ANNOTATION, ROTATE_SECRETS_ANNOTATION)
HANDLED_MAX = 128  # longer annotation values are kept in status as their digest
RETRY_FIRST = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)
_NATS_ERRORS = (NotFoundError, TimeoutError, OSError, nats.errors.Error)

EventFn = Callable[[str, str, str], None]  # (type, reason, message) on the connection


def handled_value(value: str) -> str:
    """How an annotation value is remembered in status (bounded)."""
    if len(value) <= HANDLED_MAX:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def retry_after(attempt: int) -> timedelta:
    """Wait before the next try after ``attempt`` failed Jobs: 1 min, 2, 4, ... 1 h."""
    wait: timedelta = RETRY_FIRST * 2 ** max(attempt - 1, 0)
    return min(wait, RETRY_MAX)


@dataclass
class RepairState:
    """Per connection; ``sync`` and ``catch_up`` are ``status.sync`` / ``status.catchUp``."""

    loaded: bool = False
    sync: dict[str, Any] = field(default_factory=dict)
    catch_up: dict[str, Any] = field(default_factory=dict)
    receiver_ready: bool | None = None
    recorded: list[GapRecord] = field(default_factory=list)  # seen here, not yet stored
    scanner: GapScanner | None = None

    def load(self, status: dict[str, Any]) -> None:
        """Pick up where the last operator left off (status survives restarts)."""
        if self.loaded:
            return
        self.loaded = True
        self.sync = dict(status.get("sync") or {})
        self.catch_up = dict(status.get("catchUp") or {})
        for c in status.get("conditions") or []:
            if c.get("type") == RECEIVER_READY and c.get("status") in ("True", "False"):
                self.receiver_ready = c["status"] == "True"

    def render(self, obs: Observed) -> None:
        obs.sync = dict(self.sync) or None
        obs.catch_up = dict(self.catch_up) or None


class Repairs:
    def __init__(
        self,
        settings: OperatorSettings,
        client: KubeClient,
        nats: NatsLink,
        adopt: Callable[[Manifest, Manifest], Manifest],
        clock: Callable[[], datetime],
        log: logging.Logger,
    ) -> None:
        self.settings, self.client, self.nats = settings, client, nats
        self.adopt, self.clock, self.log = adopt, clock, log

    # -- Jobs ----------------------------------------------------------------------------------

    async def _create(self, job: Manifest, owner: Manifest) -> bool:
        """Create the Job; False when one of that name exists already (a run per name)."""
        try:
            await self.client.create(self.adopt(job, owner))
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        self.log.info("Created Job %s/%s", job["metadata"]["namespace"], job["metadata"]["name"])
        return True

    # -- initial sync and sync on demand --------------------------------------------------------

    async def sync(
        self,
        rs: RepairState,
        inp: BuildInput,
        owner: Manifest,
        annotations: dict[str, str],
        event: EventFn,
    ) -> None:
        spec = inp.spec
        if spec.pim.credentials_secret is None:
            self._ignore_annotations(rs, annotations, event, "no pim.credentialsSecret")
            return
        if spec.reconciliation.suspend:
            self._ignore_annotations(rs, annotations, event, "reconciliation.suspend is true")
            return
        kinds = [k for k in ("product", "product_model") if _listed(spec, k)]
        never = await self.nats.never_synced(inp.names, kinds)
        if never:
            job = initial_sync_job(inp)
            if await self._create(job, owner):
                name = job["metadata"]["name"]
                rs.sync["initialJob"] = name
                event("Normal", "InitialSync", f"never synced: Job {name} reads the catalog now")
        for annotation, key, full in (
            (SYNC_NOW_ANNOTATION, "syncNow", False),
            (FULL_SCAN_NOW_ANNOTATION, "fullScanNow", True),
        ):
            value = annotations.get(annotation)
            if not value or handled_value(value) == rs.sync.get(key):
                continue
            job = sync_now_job(inp, value, full=full)
            await self._create(job, owner)
            rs.sync[key] = handled_value(value)
            name = job["metadata"]["name"]
            event("Normal", "SyncRequested", f"{annotation}: Job {name} started")

    @staticmethod
    def _ignore_annotations(
        rs: RepairState, annotations: dict[str, str], event: EventFn, why: str
    ) -> None:
        for annotation, key in ((SYNC_NOW_ANNOTATION, "syncNow"),
                                (FULL_SCAN_NOW_ANNOTATION, "fullScanNow")):  # fmt: skip
            value = annotations.get(annotation)
            if value and handled_value(value) != rs.sync.get(key):
                rs.sync[key] = handled_value(value)
                event("Warning", "SyncNotPossible", f"{annotation} ignored: {why}")

    # -- gap windows -----------------------------------------------------------------------------

    def observe_receiver(self, rs: RepairState, cond: Cond) -> None:
        """ReceiverReady True -> False opens a window, False -> True closes it."""
        if cond.status not in ("True", "False"):
            return
        ready = cond.status == "True"
        now = self.clock()
        down_since = rs.catch_up.get("receiverDownSince")
        if ready and down_since:
            start = datetime.fromisoformat(str(down_since).replace("Z", "+00:00"))
            rs.recorded.append(
                GapRecord(
                    source=GapSource.RECEIVER_DOWN,
                    start=start,
                    end=max(start, now),
                    detail="no receiver pod was ready",
                )
            )
            del rs.catch_up["receiverDownSince"]
        elif not ready and rs.receiver_ready and not down_since:
            rs.catch_up["receiverDownSince"] = rfc3339(now)
        rs.receiver_ready = ready

    async def catch_up(
        self,
        rs: RepairState,
        obs: Observed,
        inp: BuildInput,
        owner: Manifest,
        event: EventFn,
    ) -> None:
        """Store new windows; start, follow and retry the catch-up Job; set ``CatchUp``."""
        try:
            js = await self.nats.js()
            while rs.recorded:
                record = rs.recorded[0]
                if await publish_gap(js, inp.names, record):
                    _gap_event(event, record)
                rs.recorded.pop(0)
            if rs.scanner is None:
                rs.scanner = GapScanner(inp.names)
            for record in await rs.scanner.scan(js):
                _gap_event(event, record)
            through = int(rs.catch_up.get("through") or 0)
            records = await read_gaps(js, inp.names, after=through)
        except _NATS_ERRORS as exc:
            self.log.debug("gap windows of %s not read: %s", inp.names.ref, type(exc).__name__)
            return
        cu = rs.catch_up
        attempt = int(cu.get("attempt") or 0)
        planned = int(cu.get("planned") or 0)
        job = cu.get("job")
        if job and planned > through:  # a Job is out: follow it
            live = await self.client.get("batch/v1", "Job", inp.names.namespace, str(job))
            result = job_result(live) if live is not None else ("", "Failed: JobGone")
            if result is None:
                obs.conditions[CATCH_UP] = self._running(cu)
                return
            if result[1] == "Succeeded":
                cu["through"] = through = planned
                cu["attempt"] = attempt = 0
                cu.pop("failedAt", None)
                event("Normal", "CatchUpSucceeded", f"Job {job} repaired {cu.get('windows')}")
            else:
                now = self.clock()
                if "failedAt" not in cu:
                    cu["failedAt"] = rfc3339(now)
                    event("Warning", "CatchUpFailed", f"Job {job} {result[1]}; retrying later")
                failed_at = datetime.fromisoformat(str(cu["failedAt"]).replace("Z", "+00:00"))
                due = failed_at + retry_after(attempt)
                if now < due:
                    obs.conditions[CATCH_UP] = Cond.fail(
                        "JobFailed",
                        f"Job {job} {result[1]}; next try after {rfc3339(due)} "
                        f"for {cu.get('windows')}",
                    )
                    return
        margin = parse_duration(inp.spec.reconciliation.safety_margin)
        plan = plan_catch_up(records, through, margin)
        if plan is None:
            if through or job:
                obs.conditions[CATCH_UP] = Cond.ok(
                    "CaughtUp",
                    f"every recorded window repaired; last: Job {job} read updated > "
                    f"{cu.get('since')} for {cu.get('windows')}",
                )
            return
        spec = inp.spec
        blocked = (
            "no pim.credentialsSecret" if spec.pim.credentials_secret is None
            else "reconciliation.suspend is true" if spec.reconciliation.suspend
            else None
        )  # fmt: skip
        if blocked is not None:
            obs.conditions[CATCH_UP] = Cond.fail(
                "CannotReconcile", f"{blocked}: {plan.text()} not repaired"
            )
            return
        retrying = "failedAt" in cu and plan.through == planned
        attempt = attempt + 1 if retrying else 1
        manifest = catch_up_job(inp, plan, attempt)
        name = manifest["metadata"]["name"]
        await self._create(manifest, owner)
        cu.update(
            job=name,
            planned=plan.through,
            since=rfc3339(plan.since),
            windows=plan.text()[:1000],
            attempt=attempt,
        )
        cu.pop("failedAt", None)
        cu.setdefault("through", through)
        event(
            "Normal",
            "CatchUpStarted",
            f"Job {name}: reconcile --since {rfc3339(plan.since)} for {plan.text()}",
        )
        obs.conditions[CATCH_UP] = self._running(cu)

    @staticmethod
    def _running(cu: dict[str, Any]) -> Cond:
        return Cond.fail(
            "Running",
            f"Job {cu.get('job')} reads updated > {cu.get('since')} for {cu.get('windows')}",
        )


def _listed(spec: AkeneoConnectionSpec, kind: str) -> bool:
    resource = {"product": "products", "product_model": "product_models"}[kind]
    return resource in spec.reconciliation.resources


def _gap_event(event: EventFn, record: GapRecord) -> None:
    window = record.window().text()
    detail = f": {record.detail}" if record.detail else ""
    event("Warning", "GapRecorded", f"events may have been lost in {window}{detail}")
