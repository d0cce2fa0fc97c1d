"""Rotation of the Event Platform secrets without a single 401: a pure planner.

Two secrets rotate, each on its own track: the subscription's (``eventPlatformSecrets`` in
the signature Secret, one per line, primary first: what the subscription signs with) and the
subscriber's notification secret (``eventPlatformNotificationSecret``; the subscriber holds
one, https://api.akeneo.com/event-platform/notification-webhooks.html#signature-verification).
The receiver accepts a request when any signature header matches any line of its file, and
Kubernetes updates a mounted Secret late (the kubelet's sync), so each receiver reports the
fingerprints of what it loaded (``akeneo_connector.secret_report``) and nothing is promoted
before every ready receiver reported the new one.

One track, step by step (each step idempotent; the phase is persisted after it succeeded):

1. ``ADD``: the new secret becomes the Secret's second line ``[old, new]``.
2. ``SIGN_WITH_BOTH`` (subscription only): the subscription signs with primary ``old``,
   secondary ``new`` ("new secret as secondary"); receivers accept ``old`` meanwhile.
3. Wait until every ready receiver reports ``new`` (``WaitingForReceivers``: forever if one
   never reloads; it is named in the condition).
4. ``PROMOTE``: the Secret ``[new, old]``, then remote primary ``new`` (secondary ``old``
   for the subscription).
5. ``RETIRE``, once no delivery signed with ``old`` alone can still arrive (``HORIZON``) and
   every ready receiver still reports ``new``: the Secret ``[new]``, then remote ``new`` only.
   Receivers reload it and refuse ``old`` from then on.

The Secret's lines, primary first, are what the remote side signs with or is about to: the
subscription's glue (``ep_manager``) pushes them, so each step writes the Secret first, then
has the remote side follow. Every write keeps what each ready receiver accepts covering what
the remote side signs with. The remote side's secrets cannot be read back (the management API
shows them redacted), so the phase and fingerprints live in ``status.secretRotation``; an
operator stopped between two writes finds the Secret ahead of its status and does the step
again. An idle track whose Secret holds two lines while a rotation is due is a start whose
status was not written: it is carried on (``ADOPT``), not started again.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from akeneo_operator.status import Cond

ROTATE_ANNOTATION = "akeneo.connectors.dev/rotate-secrets"  # = repairs.ROTATE_SECRETS_ANNOTATION
CONDITION = "SecretRotation"
HANDLED_MAX = 128  # longer annotation values are remembered as their digest


class Track(enum.StrEnum):
    """Which secret; the value is its key in ``status.secretRotation``."""

    SUBSCRIPTION = "eventPlatform"
    NOTIFICATION = "notification"


SECRET_KEYS = {
    Track.SUBSCRIPTION: "eventPlatformSecrets",
    Track.NOTIFICATION: "eventPlatformNotificationSecret",
}

# How long a delivery signed with the old secret alone may still arrive once the remote side
# signs with the new one. Whether the Event Platform signs a retry again or re-sends what it
# signed first is not documented: retries come 5, 10 and 20 minutes apart and a throttled
# event is re-sent for up to an hour (key-platform-behaviors.html), so the old secret stays
# accepted that long. Notifications are retried within 3 s (1 s and 2 s apart, 5 s each).
HORIZON = {
    Track.SUBSCRIPTION: timedelta(minutes=65),
    Track.NOTIFICATION: timedelta(minutes=1),
}
RECHECK_WAITING = timedelta(seconds=10)  # while waiting for receivers to report
NAMED_PODS = 5  # pods named in a condition message


class Phase(enum.StrEnum):
    IDLE = "Idle"
    ADDED = "SecretAdded"  # Secret [old, new]; the remote side not told yet
    VERIFYING = "WaitingForReceivers"  # until every ready receiver reports new
    RETIRING = "Retiring"  # remote primary new; old kept in the Secret until the horizon


class Action(enum.StrEnum):
    ADOPT = "Adopt"  # status only: a start whose Secret write landed, its status did not
    ADD = "Add"  # Secret: [old, new] with ``Observation.candidates[track]``
    SIGN_WITH_BOTH = "SignWithBoth"  # remote: primary old, secondary new
    PROMOTE = "Promote"  # remote: primary new (secondary old); then Secret [new, old]
    RETIRE = "Retire"  # remote: primary new only; then Secret [new]
    ABANDON = "Abandon"  # the Secret changed under the rotation: remote := Secret's lines


@dataclass(frozen=True)
class TrackState:
    phase: Phase = Phase.IDLE
    old: str | None = None  # fingerprints
    new: str | None = None
    signing_since: datetime | None = None  # the remote side signs with ``new`` since then

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"phase": self.phase.value}
        if self.old:
            out["old"] = self.old
        if self.new:
            out["new"] = self.new
        if self.signing_since is not None:
            out["signingSince"] = _stamp(self.signing_since)
        return out

    @classmethod
    def from_status(cls, raw: Any) -> TrackState:
        if not isinstance(raw, dict):
            return cls()
        try:
            phase = Phase(raw.get("phase", Phase.IDLE.value))
        except ValueError:
            phase = Phase.IDLE
        return cls(phase, _fp(raw.get("old")), _fp(raw.get("new")), _time(raw.get("signingSince")))


IDLE = TrackState()


@dataclass(frozen=True)
class RotationState:
    """``status.secretRotation``: survives operator restarts."""

    tracks: Mapping[Track, TrackState] = field(default_factory=dict)
    request: str | None = None  # the last rotate-secrets value handled
    rotated: datetime | None = None  # last rotation completed (or first seen): the period's start

    def track(self, track: Track) -> TrackState:
        return self.tracks.get(track, IDLE)

    @property
    def idle(self) -> bool:
        return all(self.track(t).phase is Phase.IDLE for t in Track)

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {t.value: self.track(t).to_status() for t in Track}
        if self.request is not None:
            out["request"] = self.request
        if self.rotated is not None:
            out["rotated"] = _stamp(self.rotated)
        return out

    @classmethod
    def from_status(cls, raw: Any) -> RotationState:
        if not isinstance(raw, dict):
            return cls()
        request = raw.get("request")
        return cls(
            {t: TrackState.from_status(raw.get(t.value)) for t in Track},
            request if isinstance(request, str) else None,
            _time(raw.get("rotated")),
        )


@dataclass(frozen=True)
class ReceiverView:
    """One receiver pod: whether it is ready, what it reported (None: nothing yet)."""

    pod: str
    ready: bool
    subscription: tuple[str, ...] | None = None  # fingerprints of eventPlatformSecrets
    notification: tuple[str, ...] | None = None

    def accepts(self, track: Track, fingerprint: str) -> bool:
        loaded = self.subscription if track is Track.SUBSCRIPTION else self.notification
        return loaded is not None and fingerprint in loaded


REPORT_FRESH = timedelta(seconds=90)  # receivers report every 30 s (``secret_report``)
UNREPORTED = "ready pod without a report"


def receiver_views(
    reports: Sequence[tuple[str, datetime, tuple[str, ...], tuple[str, ...]]],
    ready_replicas: int,
    now: datetime,
) -> list[ReceiverView]:
    """The receivers to wait for, without reading Pods (the operator may not list them):
    every pod with a fresh report (a live pod reports every 30 s; a dead one stops), taken as
    ready; and, when fewer reported than the Deployment has ready replicas, as many unnamed
    ones that accept nothing. A ready receiver has NATS (its ``/readyz`` says so), so it
    reports; a live pod that is not ready yet but reports only makes the wait stricter.
    ``reports``: (pod, at, subscription fingerprints, notification fingerprints)."""
    fresh = [r for r in reports if now - r[1] <= REPORT_FRESH]
    views = [ReceiverView(pod, True, sub, note) for pod, _at, sub, note in fresh]
    missing = max(ready_replicas - len(views), 0)
    views += [ReceiverView(f"{UNREPORTED} #{i + 1}", True) for i in range(missing)]
    return views


@dataclass(frozen=True)
class Observation:
    now: datetime
    # the signature Secret was generated by the operator (a user's Secret is never written)
    managed: bool
    # fingerprints of the Secret's lines per track, in order (no key: empty)
    secret: Mapping[Track, tuple[str, ...]]
    receivers: Sequence[ReceiverView]
    # fingerprints of freshly generated secrets, one per track, used if the plan says ADD
    candidates: Mapping[Track, str]
    annotation: str | None = None  # akeneo.connectors.dev/rotate-secrets
    period: timedelta | None = None  # spec.eventPlatform.secretRotationPeriod
    secret_created: datetime | None = None  # the Secret's creationTimestamp


@dataclass(frozen=True)
class Step:
    """What to change for one track, in this order: the Secret's lines, then the remote side.
    Secrets are named by fingerprint; the glue holds the values."""

    track: Track
    action: Action
    remote: tuple[str, str | None] | None = None  # (primary, secondary)
    secret: tuple[str, ...] | None = None  # the Secret's lines


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    state: RotationState  # to persist once every step succeeded
    condition: Cond | None  # SecretRotation; None: not shown
    events: tuple[tuple[str, str, str], ...] = ()  # (type, reason, message) once done
    recheck: timedelta | None = None  # look again this soon (None: at the usual pace)


def handled_value(value: str) -> str:
    """How an annotation value is remembered in status (bounded)."""
    if len(value) <= HANDLED_MAX:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def plan(
    state: RotationState, obs: Observation, horizon: Mapping[Track, timedelta] = HORIZON
) -> Plan:
    """The next step of the rotation, and the state to keep once it is done (``horizon``:
    shorter in tests only)."""
    wanted = obs.annotation is not None or obs.period is not None
    if not obs.managed:
        if not wanted or not state.idle:
            return Plan((), state, None)
        return Plan(
            (),
            state,
            Cond.fail(
                "SecretNotManaged",
                "the signature Secret was provided, not generated by the operator: rotate it "
                "by hand (new secret as second line, update the subscription, drop the old)",
            ),
        )
    if state.rotated is None:
        state = replace(state, rotated=obs.secret_created or obs.now)
    steps: list[Step] = []
    events: list[tuple[str, str, str]] = []
    tracks = dict(state.tracks)
    has_secrets = any(obs.secret.get(t) for t in Track)
    starting = state.idle and has_secrets and _due(state, obs)
    if starting:
        state = replace(state, request=_request(obs, state))
        events.append(("Normal", "SecretRotationStarted", _why(obs, state)))
    for track in Track:
        step, tracks[track], event = _plan_track(
            track, state.track(track), obs, starting, horizon[track]
        )
        if step is not None:
            steps.append(step)
        if event is not None:
            events.append(event)
    was_idle = state.idle
    state = replace(state, tracks=tracks)
    if not was_idle and state.idle:
        state = replace(state, rotated=obs.now)
        if not any(e[1] == "SecretRotationAbandoned" for e in events):
            events.append(("Normal", "SecretsRotated", "the Event Platform secrets were rotated"))
    cond, recheck = _condition(state, obs, horizon)
    return Plan(tuple(steps), state, cond, tuple(events), recheck)


def _plan_track(
    track: Track, ts: TrackState, obs: Observation, starting: bool, horizon: timedelta
) -> tuple[Step | None, TrackState, tuple[str, str, str] | None]:
    lines = tuple(obs.secret.get(track, ()))
    label = SECRET_KEYS[track]
    if ts.phase is Phase.IDLE:
        if not starting or not lines:
            return None, ts, None
        if len(lines) >= 2:  # a start whose status write was lost: carry on with it
            adopted = TrackState(Phase.ADDED, lines[0], lines[1])
            return Step(track, Action.ADOPT), adopted, None
        fresh = obs.candidates[track]
        added = TrackState(Phase.ADDED, lines[0], fresh)
        return Step(track, Action.ADD, secret=(lines[0], fresh)), added, None
    old, new = ts.old, ts.new
    if old is None or new is None or not _consistent(ts, lines):
        remote = None
        if lines:
            both = len(lines) > 1 and track is Track.SUBSCRIPTION
            remote = (lines[0], lines[1] if both else None)
        event = (
            "Warning",
            "SecretRotationAbandoned",
            f"{label} changed during its rotation; the remote side is set from it as it is",
        )
        return Step(track, Action.ABANDON, remote=remote), IDLE, event
    if ts.phase is Phase.ADDED:
        if track is Track.SUBSCRIPTION:
            step = Step(track, Action.SIGN_WITH_BOTH, remote=(old, new))
            return step, replace(ts, phase=Phase.VERIFYING, signing_since=obs.now), None
        return None, replace(ts, phase=Phase.VERIFYING), None
    if ts.phase is Phase.VERIFYING:
        if _missing(track, new, obs) is not None:
            return None, ts, None
        secondary = old if track is Track.SUBSCRIPTION else None
        step = Step(track, Action.PROMOTE, remote=(new, secondary), secret=(new, old))
        signing = ts.signing_since or obs.now
        event = ("Normal", "SecretPromoted", f"every ready receiver accepts the new {label}")
        return step, replace(ts, phase=Phase.RETIRING, signing_since=signing), event
    # RETIRING
    signing = ts.signing_since or obs.now
    if obs.now < signing + horizon or _missing(track, new, obs) is not None:
        return None, replace(ts, signing_since=signing), None
    return Step(track, Action.RETIRE, remote=(new, None), secret=(new,)), IDLE, None


def _consistent(ts: TrackState, lines: tuple[str, ...]) -> bool:
    """The Secret holds what the phase says (either order while both are in)."""
    both = {ts.old, ts.new}
    if ts.phase is Phase.RETIRING:
        return lines in ((ts.new, ts.old), (ts.new,))
    return len(lines) == 2 and set(lines) == both


def _missing(track: Track, fingerprint: str, obs: Observation) -> list[str] | None:
    """Ready receivers that do not report ``fingerprint`` ([] : none is ready); None: all do."""
    ready = [r for r in obs.receivers if r.ready]
    if not ready:
        return []
    missing = [r.pod for r in ready if not r.accepts(track, fingerprint)]
    return missing or None


def _due(state: RotationState, obs: Observation) -> bool:
    if obs.annotation and handled_value(obs.annotation) != state.request:
        return True
    return (
        obs.period is not None
        and state.rotated is not None
        and obs.now >= state.rotated + obs.period
    )


def _request(obs: Observation, state: RotationState) -> str | None:
    return handled_value(obs.annotation) if obs.annotation else state.request


def _why(obs: Observation, state: RotationState) -> str:
    if obs.annotation and state.request == handled_value(obs.annotation):
        return f"{ROTATE_ANNOTATION} asked for it"
    return "secretRotationPeriod elapsed"


def _condition(
    state: RotationState, obs: Observation, horizon: Mapping[Track, timedelta]
) -> tuple[Cond | None, timedelta | None]:
    if state.idle:
        if obs.annotation is None and obs.period is None:
            return None, None
        assert state.rotated is not None
        when = _stamp(state.rotated)
        if obs.period is None:
            return Cond.ok("Idle", f"last rotated (or created) {when}"), None
        due = state.rotated + obs.period
        text = f"last rotated (or created) {when}; next rotation at {_stamp(due)}"
        return Cond.ok("Idle", text), max(due - obs.now, timedelta(0))
    for track in Track:  # the one that waits on receivers says most
        ts = state.track(track)
        if ts.phase in (Phase.VERIFYING, Phase.RETIRING) and ts.new is not None:
            missing = _missing(track, ts.new, obs)
            if missing is not None:
                label = SECRET_KEYS[track]
                if not missing:
                    text = f"no receiver pod is ready to load the new {label}"
                else:
                    named = ", ".join(sorted(missing)[:NAMED_PODS])
                    more = len(missing) - NAMED_PODS
                    extra = f" and {more} more" if more > 0 else ""
                    text = (
                        f"waiting for {named}{extra} to load the new {label} (the old one "
                        "stays in use meanwhile)"
                    )
                return Cond.fail("WaitingForReceivers", text), RECHECK_WAITING
    waits = []
    for track in Track:
        ts = state.track(track)
        if ts.phase is Phase.RETIRING and ts.signing_since is not None:
            waits.append((ts.signing_since + horizon[track], SECRET_KEYS[track]))
    if waits:
        until, label = max(waits)
        text = (
            f"the new {label} is in use; the old one is accepted until {_stamp(until)}, "
            "when no delivery signed with it alone can still arrive"
        )
        return Cond.fail("RetiringOldSecret", text), max(until - obs.now, timedelta(0))
    return Cond.fail("InProgress", "the new secrets are being added"), timedelta(0)


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _fp(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
