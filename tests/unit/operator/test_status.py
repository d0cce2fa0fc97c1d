"""Conditions, Ready derivation, transition times and Events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from akeneo_operator.status import (
    COMPONENTS,
    EVENT_SUBSCRIPTION,
    RECEIVER_READY,
    RECONCILE_SCHEDULED,
    WORKER_AUTOSCALER,
    WORKER_READY,
    Cond,
    Observed,
    deployment_condition,
    job_result,
    ready_condition,
    render_status,
    subscription_condition,
    transitions,
)
from akeneo_pim.paths import Endpoints
from tests.samples import sample

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)


def all_ready() -> Observed:
    obs = Observed(generation=3, endpoint="https://x/")
    for c in COMPONENTS:
        obs.conditions[c] = Cond.ok("Fine")
    return obs


def test_deployment_condition_from_available_replicas():
    def dep(want: int, have: int | None) -> dict[str, Any]:
        return {"spec": {"replicas": want}, "status": {"availableReplicas": have}}

    assert deployment_condition(None, "receiver").reason == "DeploymentMissing"
    assert deployment_condition(dep(2, 2), "receiver") == Cond.ok(
        "PodsAvailable", "2/2 receiver pods available"
    )
    assert deployment_condition(dep(2, 1), "receiver").reason == "PartiallyAvailable"
    assert deployment_condition(dep(2, None), "receiver").status == "False"
    assert deployment_condition(dep(0, None), "worker").reason == "ScaledToZero"
    stuck = dep(2, 0)
    stuck["status"]["conditions"] = [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]
    assert deployment_condition(stuck, "receiver").reason == "ProgressDeadlineExceeded"


def test_ready_is_derived_with_the_failing_reason():
    obs = all_ready()
    assert ready_condition(obs).status == "True"
    obs.conditions[RECEIVER_READY] = Cond.fail("NoPodsAvailable", "0/2")
    ready = ready_condition(obs)
    assert (ready.status, ready.reason) == ("False", "NoPodsAvailable")
    assert ready.message.startswith("ReceiverReady")
    obs = all_ready()
    obs.conditions[RECONCILE_SCHEDULED] = Cond.fail("Suspended")
    assert ready_condition(obs).status == "True"
    obs.blocker = Cond.fail("SecretMissing", "Secret x not found")
    assert ready_condition(obs).reason == "SecretMissing"


def test_transition_time_is_kept_while_status_is_unchanged():
    first = render_status(all_ready(), {}, T0)
    second = render_status(all_ready(), first, T1)
    times = [c["lastTransitionTime"] for c in second["conditions"]]
    assert times == ["2026-01-01T00:00:00Z"] * (len(COMPONENTS) + 1)
    obs = all_ready()
    obs.conditions[RECEIVER_READY] = Cond.fail("NoPodsAvailable")
    third = render_status(obs, second, T1)
    by_type = {c["type"]: c for c in third["conditions"]}
    assert by_type["ReceiverReady"]["lastTransitionTime"] == "2026-01-01T00:05:00Z"
    assert by_type["TLSReady"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert third["observedGeneration"] == 3
    assert by_type["Ready"]["observedGeneration"] == 3
    changed = transitions(second["conditions"], third["conditions"])
    assert {(t.type, t.event_type) for t in changed} == {
        ("Ready", "Warning"),
        ("ReceiverReady", "Warning"),
    }
    assert transitions(third["conditions"], third["conditions"]) == []


def test_status_fields():
    obs = all_ready()
    obs.counters = {"applied": 4, "skippedOutdated": 1, "deadLettered": 0}
    obs.last_reconcile_time, obs.last_reconcile_result = "2026-01-01T00:00:00Z", "Succeeded"
    status = render_status(obs, {}, T0)
    assert status["endpoint"] == "https://x/"
    assert status["counters"]["applied"] == 4
    assert status["lastReconcileResult"] == "Succeeded"


def test_job_result():
    assert job_result({"status": {}}) is None
    complete = {"type": "Complete", "status": "True"}
    done = {"status": {"completionTime": "2026-01-01T00:00:00Z", "conditions": [complete]}}
    assert job_result(done) == ("2026-01-01T00:00:00Z", "Succeeded")
    failure = {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "lastTransitionTime": "2026-01-02T00:00:00Z",
    }
    failed = {"status": {"conditions": [failure]}}
    assert job_result(failed) == ("2026-01-02T00:00:00Z", "Failed: BackoffLimitExceeded")


def test_a_new_connection_reports_only_ready():
    first = render_status(all_ready(), {}, T0)
    assert [(t.type, t.reason) for t in transitions([], first["conditions"])] == [
        ("Ready", "AllComponentsReady")
    ]


def test_a_rollout_reports_ready_not_each_component():
    """Creating a connection: Deployments without pods, then available. Ready's Event tells
    it; a component recovering while Ready stays False still has its own."""
    rolling = all_ready()
    rolling.conditions[RECEIVER_READY] = Cond.fail("NoPodsAvailable", "0/1")
    rolling.conditions[WORKER_READY] = Cond.fail("NoPodsAvailable", "0/1")
    first = render_status(rolling, {}, T0)
    second = render_status(all_ready(), first, T1)
    changed = transitions(first["conditions"], second["conditions"])
    assert [(t.type, t.status) for t in changed] == [("Ready", "True")]
    half = all_ready()
    half.conditions[WORKER_READY] = Cond.fail("NoPodsAvailable", "0/1")
    third = render_status(half, first, T1)
    assert [t.type for t in transitions(first["conditions"], third["conditions"])] == [
        RECEIVER_READY
    ]


# The notification payload as Akeneo documents it, verbatim:
# https://api.akeneo.com/event-platform/notification-webhooks.html ("Notification payload")
SUSPENDED = sample("event-platform/notification-suspended-system").body


def notification(kind: str, reason: str | None = None, at: str = "2026-04-29T12:34:56Z") -> bytes:
    doc = json.loads(SUSPENDED)
    doc["notification_type"], doc["timestamp"] = kind, at
    if reason is None:
        doc.pop("reason")
    else:
        doc["reason"] = reason
    return json.dumps(doc).encode()


def test_a_suspension_makes_the_connection_not_ready_and_says_why():
    cond = subscription_condition(SUSPENDED)
    assert cond is not None
    assert (cond.status, cond.reason) == ("False", "SuspendedBySystem")
    assert "Success rate dropped below 90%" in cond.message
    obs = all_ready()
    obs.conditions[EVENT_SUBSCRIPTION] = cond
    ready = ready_condition(obs)
    assert (ready.status, ready.reason) == ("False", "SuspendedBySystem")
    by_user = subscription_condition(notification("subscription.suspended.user"))
    assert by_user is not None and by_user.reason == "SuspendedByUser"
    revoked = subscription_condition(notification("subscription.revoked", "Connection deleted"))
    assert revoked is not None and (revoked.status, revoked.reason) == ("False", "Revoked")
    resumed = subscription_condition(notification("subscription.resumed"))
    assert resumed is not None and resumed.status == "True"
    obs.conditions[EVENT_SUBSCRIPTION] = resumed
    assert ready_condition(obs).status == "True"


def test_autoscaling_without_keda_keeps_the_connection_not_ready_and_says_why():
    obs = all_ready()
    assert WORKER_AUTOSCALER not in {c["type"] for c in render_status(obs, {}, T0)["conditions"]}
    obs.conditions[WORKER_AUTOSCALER] = Cond.fail("KedaNotInstalled", "ScaledObject not served")
    ready = ready_condition(obs)
    assert (ready.status, ready.reason) == ("False", "KedaNotInstalled")
    rendered = render_status(obs, {}, T0)["conditions"]
    assert {"type": WORKER_AUTOSCALER, "status": "False", "reason": "KedaNotInstalled"}.items() <= {
        k: v for c in rendered if c["type"] == WORKER_AUTOSCALER for k, v in c.items()
    }.items()
    obs.conditions[WORKER_AUTOSCALER] = Cond.ok("ScaledObjectApplied")
    assert ready_condition(obs).status == "True"


def test_unknown_or_unreadable_notifications_change_nothing():
    assert subscription_condition(notification("subscription.something-new")) is None
    assert subscription_condition(b"not json") is None
    assert subscription_condition(b"{}") is None


def test_the_subscription_condition_appears_only_once_notified_and_every_change_is_an_event():
    quiet = render_status(all_ready(), {}, T0)
    assert EVENT_SUBSCRIPTION not in {c["type"] for c in quiet["conditions"]}
    obs = all_ready()
    cond = subscription_condition(SUSPENDED)
    assert cond is not None
    obs.conditions[EVENT_SUBSCRIPTION] = cond
    suspended = render_status(obs, quiet, T1)
    changed = {
        (t.type, t.reason, t.event_type)
        for t in transitions(quiet["conditions"], suspended["conditions"])
    }
    assert changed == {
        ("EventSubscriptionActive", "SuspendedBySystem", "Warning"),
        ("Ready", "SuspendedBySystem", "Warning"),
    }
    # a second suspension for another cause is an Event of its own, though status and
    # reason are the same
    again = subscription_condition(
        notification("subscription.suspended.system", "404", "2026-04-29T13:00:00Z")
    )
    assert again is not None
    obs.conditions[EVENT_SUBSCRIPTION] = again
    second = render_status(obs, suspended, T1)
    assert [t.type for t in transitions(suspended["conditions"], second["conditions"])] == [
        "EventSubscriptionActive"
    ]
    assert transitions(second["conditions"], second["conditions"]) == []


def test_status_lists_the_three_endpoints():
    obs = all_ready()
    obs.endpoints = Endpoints.of("https://acme.hooks.example.com").as_status()
    status = render_status(obs, {}, T0)
    assert status["endpoints"] == {
        "events": "https://acme.hooks.example.com/events",
        "eventPlatform": "https://acme.hooks.example.com/event-platform",
        "notifications": "https://acme.hooks.example.com/event-platform/notifications",
    }
