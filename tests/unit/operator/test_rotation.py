"""The secret rotation planner (``akeneo_operator.rotation``): every transition, an operator
restarted between any two writes, a receiver that never reloads, and a simulated world in
which, at every write, each ready receiver accepts what the remote side signs with."""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from akeneo_operator.rotation import (
    CONDITION,
    HORIZON,
    ROTATE_ANNOTATION,
    Action,
    Observation,
    Phase,
    Plan,
    ReceiverView,
    RotationState,
    Step,
    Track,
    TrackState,
    plan,
    receiver_views,
)

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SUB, NOTE = Track.SUBSCRIPTION, Track.NOTIFICATION
_fresh = itertools.count()


def obs(
    secret: Mapping[Track, tuple[str, ...]] | None = None,
    receivers: list[ReceiverView] | None = None,
    now: datetime = T0,
    **extra: object,
) -> Observation:
    base = Observation(
        now=now,
        managed=True,
        secret=secret if secret is not None else {SUB: ("s-old",), NOTE: ("n-old",)},
        receivers=receivers if receivers is not None else [],
        candidates={SUB: f"s-{next(_fresh)}", NOTE: f"n-{next(_fresh)}"},
    )
    return replace(base, **extra)  # type: ignore[arg-type]


def pod(
    name: str, sub: tuple[str, ...], note: tuple[str, ...] = (), ready: bool = True
) -> ReceiverView:
    """A receiver's view; fingerprints are stand-in names (the planner only compares them)."""
    return ReceiverView(name, ready, sub, note)


def steps(p: Plan) -> dict[Track, Step]:
    return {s.track: s for s in p.steps}


# -- idle and triggers ---------------------------------------------------------------------


def test_nothing_asked_nothing_shown() -> None:
    p = plan(RotationState(), obs())
    assert p.steps == () and p.condition is None and p.events == ()


def test_a_period_counts_from_the_secrets_creation_and_says_when_next() -> None:
    p = plan(RotationState(), obs(period=timedelta(days=30), secret_created=T0))
    assert p.steps == ()
    assert p.condition is not None and p.condition.status == "True"
    assert "next rotation at 2027-01-03T12:00:00Z" in p.condition.message
    assert p.recheck == timedelta(days=30)
    assert p.state.rotated == T0


def test_the_annotation_starts_both_tracks_once_per_value() -> None:
    p = plan(RotationState(), obs(annotation="2026-12-04"))
    got = steps(p)
    assert got[SUB].action is Action.ADD and got[NOTE].action is Action.ADD
    new_sub = p.state.track(SUB).new
    assert got[SUB].secret == ("s-old", new_sub)
    assert p.state.track(SUB) == TrackState(Phase.ADDED, "s-old", new_sub)
    assert p.state.request == "2026-12-04"
    assert [e[1] for e in p.events] == ["SecretRotationStarted"]
    assert ROTATE_ANNOTATION in p.events[0][2]
    assert p.condition is not None and p.condition.status == "False"
    # the same value, once the rotation is over, starts nothing
    done = RotationState(request="2026-12-04", rotated=T0)
    assert plan(done, obs(annotation="2026-12-04")).steps == ()
    assert steps(plan(done, obs(annotation="again")))[SUB].action is Action.ADD


def test_a_long_annotation_value_is_remembered_by_digest() -> None:
    p = plan(RotationState(), obs(annotation="x" * 500))
    assert p.state.request is not None and p.state.request.startswith("sha256:")
    assert len(p.state.request) < 100


def test_the_period_elapsed_starts_a_rotation() -> None:
    state = RotationState(rotated=T0)
    assert plan(state, obs(period=timedelta(days=1), now=T0 + timedelta(hours=23))).steps == ()
    p = plan(state, obs(period=timedelta(days=1), now=T0 + timedelta(days=1)))
    assert {s.action for s in p.steps} == {Action.ADD}
    assert "secretRotationPeriod" in p.events[0][2]


def test_a_track_without_a_secret_is_left_out() -> None:
    p = plan(RotationState(), obs(secret={SUB: ("s-old",)}, annotation="1"))
    assert list(steps(p)) == [SUB]
    assert p.state.track(NOTE).phase is Phase.IDLE


def test_a_users_secret_is_never_rotated_and_the_condition_says_so() -> None:
    p = plan(RotationState(), obs(managed=False, period=timedelta(days=7), annotation="1"))
    assert p.steps == ()
    assert p.condition is not None and p.condition.reason == "SecretNotManaged"
    assert plan(RotationState(), obs(managed=False)).condition is None


# -- one track, step by step ---------------------------------------------------------------

ADDED_SUB = TrackState(Phase.ADDED, "s-old", "s-new")
ADDED_NOTE = TrackState(Phase.ADDED, "n-old", "n-new")
BOTH = {SUB: ("s-old", "s-new"), NOTE: ("n-old", "n-new")}


def state_of(sub: TrackState, note: TrackState | None = None) -> RotationState:
    return RotationState({SUB: sub, NOTE: note or TrackState()}, "1", T0)


def test_added_subscription_signs_with_both_the_notification_goes_to_verifying() -> None:
    p = plan(state_of(ADDED_SUB, ADDED_NOTE), obs(BOTH, now=T0 + timedelta(seconds=5)))
    got = steps(p)
    assert got[SUB] == Step(SUB, Action.SIGN_WITH_BOTH, remote=("s-old", "s-new"))
    assert NOTE not in got  # the subscriber has a single secret: nothing to tell it yet
    assert p.state.track(SUB).phase is Phase.VERIFYING
    assert p.state.track(SUB).signing_since == T0 + timedelta(seconds=5)
    assert p.state.track(NOTE).phase is Phase.VERIFYING
    assert p.state.track(NOTE).signing_since is None


VERIFYING_SUB = TrackState(Phase.VERIFYING, "s-old", "s-new", T0)
VERIFYING_NOTE = TrackState(Phase.VERIFYING, "n-old", "n-new")


def test_waits_while_a_ready_receiver_has_not_loaded_the_new_secret() -> None:
    receivers = [
        pod("rcv-a", ("s-old", "s-new"), ("n-old", "n-new")),
        pod("rcv-b", ("s-old",), ("n-old", "n-new")),
        pod("rcv-starting", (), (), ready=False),  # not ready: takes no traffic, blocks nothing
    ]
    p = plan(state_of(VERIFYING_SUB, VERIFYING_NOTE), obs(BOTH, receivers))
    assert steps(p).keys() == {NOTE}  # the notification track moves on alone
    assert p.state.track(SUB).phase is Phase.VERIFYING
    assert p.condition is not None and p.condition.reason == "WaitingForReceivers"
    assert "rcv-b" in p.condition.message and "rcv-a" not in p.condition.message
    assert "rcv-starting" not in p.condition.message
    assert p.recheck is not None and p.recheck <= timedelta(seconds=10)


def test_a_receiver_that_never_reported_blocks_too() -> None:
    receivers = [pod("rcv-a", ("s-old", "s-new")), ReceiverView("rcv-silent", True)]
    p = plan(state_of(VERIFYING_SUB), obs(BOTH, receivers))
    assert p.steps == () and p.condition is not None
    assert "rcv-silent" in p.condition.message


def test_no_ready_receiver_is_no_proof() -> None:
    p = plan(state_of(VERIFYING_SUB), obs(BOTH, [pod("r", (), ready=False)]))
    assert p.steps == ()
    assert p.condition is not None and p.condition.reason == "WaitingForReceivers"
    assert "no receiver pod is ready" in p.condition.message


def test_promoted_once_every_ready_receiver_reports_it() -> None:
    receivers = [pod(f"rcv-{i}", ("s-old", "s-new"), ("n-new", "n-old")) for i in range(3)]
    now = T0 + timedelta(minutes=2)
    p = plan(state_of(VERIFYING_SUB, VERIFYING_NOTE), obs(BOTH, receivers, now))
    got = steps(p)
    assert got[SUB] == Step(SUB, Action.PROMOTE, ("s-new", "s-old"), ("s-new", "s-old"))
    assert got[NOTE] == Step(NOTE, Action.PROMOTE, ("n-new", None), ("n-new", "n-old"))
    assert p.state.track(SUB) == TrackState(Phase.RETIRING, "s-old", "s-new", T0)
    # the subscriber signs with the new notification secret from now on
    assert p.state.track(NOTE).signing_since == now
    assert [e[1] for e in p.events] == ["SecretPromoted", "SecretPromoted"]


RETIRING_SUB = TrackState(Phase.RETIRING, "s-old", "s-new", T0)
PROMOTED = {SUB: ("s-new", "s-old")}
ALL_NEW = [pod("rcv-a", ("s-new", "s-old"))]


def test_the_old_secret_stays_until_nothing_signed_with_it_alone_can_arrive() -> None:
    early = T0 + HORIZON[SUB] - timedelta(seconds=1)
    p = plan(state_of(RETIRING_SUB), obs(PROMOTED, ALL_NEW, early, secret_created=T0))
    assert p.steps == ()
    assert p.condition is not None and p.condition.reason == "RetiringOldSecret"
    assert p.recheck == timedelta(seconds=1)
    p = plan(state_of(RETIRING_SUB), obs(PROMOTED, ALL_NEW, T0 + HORIZON[SUB]))
    assert p.steps == (Step(SUB, Action.RETIRE, ("s-new", None), ("s-new",)),)
    assert p.state.idle and p.state.rotated == T0 + HORIZON[SUB]
    assert [e[1] for e in p.events] == ["SecretsRotated"]


def test_retiring_waits_for_a_receiver_that_lost_the_new_secret() -> None:
    late = T0 + HORIZON[SUB] * 2
    receivers = [*ALL_NEW, pod("rcv-new-but-stale", ("s-old",))]
    p = plan(state_of(RETIRING_SUB), obs(PROMOTED, receivers, late))
    assert p.steps == ()
    assert p.condition is not None and p.condition.reason == "WaitingForReceivers"


# -- the operator restarted between two writes ---------------------------------------------


def roundtrip(state: RotationState) -> RotationState:
    """Through status, as JSON, as the API server keeps it."""
    return RotationState.from_status(json.loads(json.dumps(state.to_status())))


@pytest.mark.parametrize(
    "state",
    [
        RotationState(),
        state_of(ADDED_SUB, ADDED_NOTE),
        state_of(VERIFYING_SUB, VERIFYING_NOTE),
        state_of(RETIRING_SUB, TrackState(Phase.RETIRING, "n-old", "n-new", T0)),
    ],
)
def test_the_state_survives_status(state: RotationState) -> None:
    assert roundtrip(state).to_status() == state.to_status()


def test_garbage_in_status_is_an_idle_rotation() -> None:
    state = RotationState.from_status({"eventPlatform": {"phase": "Bogus"}, "rotated": 3})
    assert state.idle and state.rotated is None
    assert RotationState.from_status("nonsense").idle


def test_a_start_whose_status_was_lost_is_adopted_not_started_again() -> None:
    # the Secret got [old, new], the operator stopped before writing status
    p = plan(RotationState(rotated=T0), obs(BOTH, annotation="1"))
    got = steps(p)
    assert got[SUB].action is Action.ADOPT and got[SUB].secret is None
    assert p.state.track(SUB) == TrackState(Phase.ADDED, "s-old", "s-new")
    assert p.state.track(NOTE) == TrackState(Phase.ADDED, "n-old", "n-new")


def test_a_second_line_without_a_request_is_left_alone() -> None:
    assert plan(RotationState(rotated=T0), obs(BOTH)).steps == ()


def test_a_promotion_cut_after_the_remote_write_is_done_again() -> None:
    # remote (new, old) written, the Secret still [old, new], status still VERIFYING
    receivers = [pod("rcv-a", ("s-old", "s-new"))]
    p = plan(roundtrip(state_of(VERIFYING_SUB)), obs(BOTH, receivers))
    assert steps(p)[SUB].action is Action.PROMOTE
    # ... or the Secret written too, [new, old]
    p = plan(roundtrip(state_of(VERIFYING_SUB)), obs(PROMOTED, receivers))
    assert steps(p)[SUB].action is Action.PROMOTE


def test_a_retirement_cut_after_the_secret_write_is_done_again() -> None:
    done = {SUB: ("s-new",)}
    p = plan(roundtrip(state_of(RETIRING_SUB)), obs(done, ALL_NEW, T0 + HORIZON[SUB]))
    assert steps(p)[SUB].action is Action.RETIRE and p.state.idle


def test_a_secret_changed_under_the_rotation_abandons_it() -> None:
    p = plan(state_of(VERIFYING_SUB), obs({SUB: ("user-edit",)}, ALL_NEW))
    assert steps(p)[SUB] == Step(SUB, Action.ABANDON, ("user-edit", None))
    assert p.state.idle
    assert [e[1] for e in p.events] == ["SecretRotationAbandoned"]
    p = plan(state_of(TrackState(), VERIFYING_NOTE), obs({NOTE: ("a", "b")}, ALL_NEW))
    assert steps(p)[NOTE].remote == ("a", None)  # a subscriber has one secret


# -- a simulated world: no 401 at any write ------------------------------------------------


@dataclass
class Pod:
    name: str
    lag: int | None  # ticks before it sees a Secret change; None: never reloads
    ready: bool = True
    loaded: dict[Track, tuple[str, ...]] = field(default_factory=dict)
    seen: deque[dict[Track, tuple[str, ...]]] = field(default_factory=deque)


@dataclass
class World:
    secret: dict[Track, tuple[str, ...]]
    remote: dict[Track, tuple[str, str | None]]
    pods: list[Pod]
    now: datetime = T0
    writes: int = 0

    def tick(self) -> None:
        """Every pod sees the Secret ``lag`` ticks late (the kubelet's sync)."""
        self.now += timedelta(minutes=1)
        for p in self.pods:
            p.seen.append(dict(self.secret))
            if p.lag is not None and len(p.seen) > p.lag:
                p.loaded = p.seen.popleft()
        self.check()

    def check(self) -> None:
        """What each ready receiver accepts covers what the remote side signs with."""
        for p in self.pods:
            if not p.ready:
                continue
            for track, (primary, secondary) in self.remote.items():
                signed = {primary, secondary} - {None}
                assert signed & set(p.loaded.get(track, ())), (p.name, track, self.now)

    def observe(self, **extra: object) -> Observation:
        views = [
            ReceiverView(p.name, p.ready, p.loaded.get(SUB), p.loaded.get(NOTE)) for p in self.pods
        ]
        return obs(dict(self.secret), views, self.now, **extra)

    def apply(self, p: Plan) -> None:
        for s in p.steps:  # the order the glue writes in
            if s.secret is not None:
                self.secret[s.track] = s.secret
                self.writes += 1
                self.check()
            if s.remote is not None:
                self.remote[s.track] = s.remote
                self.writes += 1
                self.check()


def world(*lags: int | None) -> World:
    pods = [
        Pod(f"rcv-{i}", lag, loaded={SUB: ("s-old",), NOTE: ("n-old",)})
        for i, lag in enumerate(lags)
    ]
    return World(
        {SUB: ("s-old",), NOTE: ("n-old",)}, {SUB: ("s-old", None), NOTE: ("n-old", None)}, pods
    )


def run(
    w: World, state: RotationState, ticks: int, *, restart_every: int = 0, **extra: object
) -> tuple[RotationState, Plan]:
    for i in range(ticks):
        p = plan(state, w.observe(**extra))
        w.apply(p)
        state = p.state
        if restart_every and i % restart_every == 0:
            state = roundtrip(state)  # a new operator reads status
        w.tick()
    return state, p


@pytest.mark.parametrize("restart_every", [0, 1, 3])
def test_a_whole_rotation_never_leaves_a_receiver_refusing(restart_every: int) -> None:
    w = world(0, 2, 5)
    state, last = run(w, RotationState(), 120, restart_every=restart_every, annotation="now")
    assert state.idle and last.condition is not None and last.condition.reason == "Idle"
    sub_new = w.secret[SUB][0]
    assert w.secret[SUB] == (sub_new,) and sub_new != "s-old"
    assert w.remote[SUB] == (sub_new, None)
    assert w.secret[NOTE] != ("n-old",) and w.remote[NOTE] == (w.secret[NOTE][0], None)
    for p in w.pods:  # every receiver now refuses the old secrets
        assert p.loaded[SUB] == (sub_new,) and p.loaded[NOTE] == w.secret[NOTE]


def test_a_receiver_that_never_reloads_keeps_the_rotation_waiting_forever() -> None:
    w = world(0, None)
    state, last = run(w, RotationState(), 300, annotation="now")
    assert state.track(SUB).phase is Phase.VERIFYING
    assert w.remote[SUB] == ("s-old", state.track(SUB).new)  # still signed with the old one
    assert last.condition is not None and last.condition.reason == "WaitingForReceivers"
    assert "rcv-1" in last.condition.message and "rcv-0" not in last.condition.message
    assert last.condition.status == "False"
    # the pod is replaced (it reads the Secret as it is now): the rotation carries on
    w.pods[1] = Pod("rcv-1b", 0, loaded=dict(w.secret))
    state, last = run(w, state, 120, annotation="now")
    assert state.idle and w.remote[SUB][1] is None and w.remote[SUB][0] != "s-old"


def test_the_condition_is_on_the_connection_under_its_own_name() -> None:
    assert CONDITION == "SecretRotation"


def test_receivers_are_counted_from_fresh_reports_and_ready_replicas() -> None:
    now = T0 + timedelta(minutes=10)
    reports: list[tuple[str, datetime, tuple[str, ...], tuple[str, ...]]] = [
        ("rcv-a", now - timedelta(seconds=20), ("s-new",), ()),
        ("rcv-gone", now - timedelta(minutes=5), ("s-old",), ()),  # a dead pod's last word
    ]
    views = receiver_views(reports, 2, now)
    assert [v.pod for v in views] == ["rcv-a", "ready pod without a report #1"]
    p = plan(state_of(VERIFYING_SUB), obs(BOTH, views, now))
    assert p.steps == () and p.condition is not None
    assert "ready pod without a report" in p.condition.message
    assert "rcv-gone" not in p.condition.message
    # once the second ready pod reported it, the promotion goes on
    reports.append(("rcv-b", now, ("s-old", "s-new"), ()))
    p = plan(state_of(VERIFYING_SUB), obs(BOTH, receiver_views(reports, 2, now), now))
    assert steps(p)[SUB].action is Action.PROMOTE


def test_a_finished_rotation_leaves_no_stale_fingerprint_in_status() -> None:
    """Status is written as a merge patch: a track back to Idle nulls what it dropped."""
    from akeneo_operator.reconciler import _removals

    during = {"secretRotation": state_of(RETIRING_SUB).to_status(), "conditions": []}
    done = RotationState(request="1", rotated=T0)
    after = {"secretRotation": done.to_status(), "conditions": []}
    patch = _removals(during, after)["secretRotation"]
    assert patch["eventPlatform"] == {
        "phase": "Idle", "old": None, "new": None, "signingSince": None,
    }  # fmt: skip
    assert patch["notification"] == {"phase": "Idle"}  # nothing to drop there
    assert _removals(after, after) == after


@pytest.mark.parametrize(
    "state",
    [
        RotationState(),
        state_of(ADDED_SUB, ADDED_NOTE),
        state_of(RETIRING_SUB, TrackState(Phase.VERIFYING, "n-old", "n-new")),
    ],
)
def test_status_secret_rotation_fits_the_crd_model(state: RotationState) -> None:
    from akeneo_operator.status import Observed, render_status
    from akeneo_operator.status_model import ConnectionStatus

    obs = Observed(secret_rotation=state.to_status())
    rendered = render_status(obs, {}, T0)
    model = ConnectionStatus.model_validate(rendered)
    assert model.secret_rotation is not None
    assert model.secret_rotation.event_platform is not None
