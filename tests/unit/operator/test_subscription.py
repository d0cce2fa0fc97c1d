"""The managed Event Platform subscription's pure decisions (``akeneo_operator.subscription``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from akeneo_connector.event_types import HANDLED
from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import AkeneoConnectionSpec
from akeneo_operator import subscription as sub
from akeneo_operator.crd import build_crd
from akeneo_operator.status import Cond

NAMES = ConnectionNames("shop-ns", "shop")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def spec(ep: dict[str, Any] | None = None, host: str | None = "shop.hooks.example.com") -> Any:
    receiver: dict[str, Any] = {"signatureSecret": "shop-events"}
    if host:
        receiver["host"] = host
    body: dict[str, Any] = {"pim": {"url": "https://pim.example.com"}, "receiver": receiver}
    body["eventPlatform"] = {"manageSubscription": True, "technicalEmail": "ops@example.com",
                             **(ep or {})}  # fmt: skip
    return AkeneoConnectionSpec.model_validate(body)


SECRETS = {sub.EVENT_SECRETS_KEY: "primary-one\nsecondary-two\n",
           sub.NOTIFICATION_KEY: "notify-0123456789abcdef"}  # fmt: skip


def test_the_spec_defaults_to_every_handled_type_and_needs_an_email() -> None:
    ep = spec().event_platform
    assert ep.event_types == list(HANDLED)
    assert (ep.notifications, ep.auto_resume, ep.send_product_identifier) == (True, True, False)
    with pytest.raises(ValidationError, match="technicalEmail is required"):
        AkeneoConnectionSpec.model_validate(
            {
                "pim": {"url": "https://pim.example.com"},
                "receiver": {"signatureSecret": "s"},
                "eventPlatform": {"manageSubscription": True},
            }
        )
    with pytest.raises(ValidationError):
        spec({"events": ["com.akeneo.pim.v1.product.exploded"]})
    with pytest.raises(ValidationError):
        spec({"filters": "x" * 501})
    with pytest.raises(ValidationError, match=r"eventPlatform\.filters"):
        spec({"filters": "family = shoes"})  # not a field of Akeneo's filter grammar
    assert spec({"filters": 'not user_type="api"'}).event_platform.filters
    with pytest.raises(ValidationError):
        spec({"technicalEmail": "not-an-email"})
    # absent: today's behaviour
    plain = AkeneoConnectionSpec.model_validate(
        {"pim": {"url": "https://pim.example.com"}, "receiver": {"signatureSecret": "s"}}
    )
    assert plain.event_platform is None


def test_every_event_platform_field_is_described_in_the_crd() -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    ep = schema["properties"]["spec"]["properties"]["eventPlatform"]
    assert ep["description"]
    for name, prop in ep["properties"].items():
        assert prop.get("description"), name
    assert "technicalEmail" in ep["x-kubernetes-validations"][0]["message"]
    status = schema["properties"]["status"]["properties"]["eventPlatform"]["properties"]
    assert {"subscriberId", "subscriptionId", "status", "lastChecked", "suspendedBy"} <= set(status)


def test_desired_subscription_points_at_the_public_receiver() -> None:
    want = sub.desired(spec({"filters": 'user_type="user"'}), NAMES, SECRETS)
    assert isinstance(want, sub.Desired)
    assert want.destination == "https://shop.hooks.example.com/event-platform"
    assert want.notification_url == "https://shop.hooks.example.com/event-platform/notifications"
    assert (want.primary, want.secondary) == ("primary-one", "secondary-two")
    assert want.channels == ["email", "webhook"]
    assert want.subscriber_name == "akeneo-connector shop-ns/shop"
    assert want.filters == 'user_type="user"'
    quiet = sub.desired(spec({"notifications": False}), NAMES, SECRETS)
    assert isinstance(quiet, sub.Desired) and quiet.notification_url is None
    assert quiet.channels == ["email"]


def test_without_a_host_the_condition_says_so() -> None:
    got = sub.desired(spec(host=None), NAMES, SECRETS)
    assert isinstance(got, Cond) and got.reason == sub.NEEDS_HOST


def test_the_digest_changes_with_the_secret_but_never_shows_it() -> None:
    want = sub.desired(spec(), NAMES, SECRETS)
    other = sub.desired(spec(), NAMES, {**SECRETS, sub.EVENT_SECRETS_KEY: "primary-new"})
    assert isinstance(want, sub.Desired) and isinstance(other, sub.Desired)
    assert want.digest() != other.digest()
    assert "primary" not in want.digest()
    assert "primary-one" not in repr(want) and "notify-" not in repr(want)


def test_secrets_are_generated_only_when_absent() -> None:
    new = sub.missing_secrets({}, notifications=True)
    assert set(new) == {sub.EVENT_SECRETS_KEY, sub.NOTIFICATION_KEY}
    assert len(sub.secret_lines(new[sub.EVENT_SECRETS_KEY])) == 1
    assert 16 <= len(new[sub.NOTIFICATION_KEY]) <= 256
    assert sub.missing_secrets(SECRETS, notifications=True) == {}
    assert sub.missing_secrets({}, notifications=False).keys() == {sub.EVENT_SECRETS_KEY}
    assert sub.generate_secret() != sub.generate_secret()


def test_adoption_by_id_then_name_then_destination() -> None:
    mine = sub.RemoteSubscriber("s1", "akeneo-connector shop-ns/shop")
    other = sub.RemoteSubscriber("s2", "someone else")
    gone = sub.RemoteSubscriber("s3", "akeneo-connector shop-ns/shop", status="deleted")
    assert sub.find_subscriber([other, gone, mine], None, mine.name) == mine
    assert sub.find_subscriber([other, mine], "s2", mine.name) == other
    assert sub.find_subscriber([other, gone], None, mine.name) is None
    dest = "https://shop.hooks.example.com/event-platform"
    a = sub.RemoteSubscription("a", "s1", "active", "https://elsewhere/x")
    b = sub.RemoteSubscription("b", "s1", "suspended", dest + "/")
    dead = sub.RemoteSubscription("c", "s1", "deleted", dest)
    assert sub.find_subscription([a, dead, b], None, dest) == b
    assert sub.find_subscription([a, b], "a", dest) == a
    assert sub.find_subscription([dead], "c", dest) is None


def test_drift_of_visible_fields_and_of_what_was_written() -> None:
    want = sub.desired(spec(), NAMES, SECRETS)
    assert isinstance(want, sub.Desired)
    same = sub.RemoteSubscription("a", "s1", "active", want.destination, want.events)
    assert not sub.subscription_drifted(want, same, digest_changed=False)
    assert sub.subscription_drifted(want, same, digest_changed=True)
    fewer = sub.RemoteSubscription("a", "s1", "active", want.destination, want.events[:2])
    assert sub.subscription_drifted(want, fewer, digest_changed=False)
    subscriber = sub.RemoteSubscriber("s1", want.subscriber_name, "ops@example.com",
                                      want.notification_url, ("webhook", "email"))  # fmt: skip
    assert not sub.subscriber_drifted(want, subscriber, digest_changed=False)
    moved = sub.RemoteSubscriber("s1", want.subscriber_name, "new@example.com",
                                 want.notification_url, ("webhook", "email"))  # fmt: skip
    assert sub.subscriber_drifted(want, moved, digest_changed=False)


def note(kind: str, sid: str = "a") -> sub.LastNotification:
    return sub.LastNotification(kind, sid, NOW - MINUTE)


def test_who_suspended_comes_from_the_notification_about_this_subscription() -> None:
    assert sub.suspended_by(note(sub.SUSPENDED_SYSTEM), "a") == "system"
    assert sub.suspended_by(note(sub.SUSPENDED_USER), "a") == "user"
    assert sub.suspended_by(note(sub.SUSPENDED_SYSTEM, "other"), "a") == "unknown"
    assert sub.suspended_by(None, "a") == "unknown"


def test_only_a_system_suspension_is_resumed_once_ready_with_backoff() -> None:
    status = {"status": "suspended", "suspendedBy": "system"}
    kw: dict[str, Any] = {"auto_resume": True, "receiver_ready": True, "now": NOW,
                          "interval": MINUTE}  # fmt: skip
    assert sub.may_resume(status, **kw)
    assert not sub.may_resume({**status, "suspendedBy": "user"}, **kw)
    assert not sub.may_resume({**status, "suspendedBy": "unknown"}, **kw)
    assert not sub.may_resume(status, **{**kw, "auto_resume": False})
    assert not sub.may_resume(status, **{**kw, "receiver_ready": False})
    assert not sub.may_resume({**status, "status": "active"}, **kw)
    # at most once per interval, and further apart after each failed try
    tried = {**status, "lastResume": sub.stamp(NOW - 30 * timedelta(seconds=1)),
             "resumeAttempts": 1}  # fmt: skip
    assert not sub.may_resume(tried, **kw)
    assert sub.may_resume({**tried, "lastResume": sub.stamp(NOW - MINUTE)}, **kw)
    third = {**tried, "lastResume": sub.stamp(NOW - 3 * MINUTE), "resumeAttempts": 3}
    assert not sub.may_resume(third, **kw)  # 4 minutes after the third try
    assert sub.may_resume({**third, "lastResume": sub.stamp(NOW - 4 * MINUTE)}, **kw)
    assert sub.backoff(30) == timedelta(hours=1)


def test_condition_from_the_polled_status() -> None:
    assert sub.subscription_condition({"status": "active", "subscriptionId": "a"}).status == "True"
    system = sub.subscription_condition({"status": "suspended", "suspendedBy": "system"})
    assert (system.status, system.reason) == ("False", "SuspendedBySystem")
    user = sub.subscription_condition({"status": "suspended", "suspendedBy": "user"})
    assert user.reason == "SuspendedByUser"
    assert sub.subscription_condition({"status": "revoked"}).reason == "Revoked"
    err = sub.error_condition("EventPlatformUnavailable", "503", retryable=True)
    assert (err.status, err.reason) == ("Unknown", "EventPlatformUnavailable")


def test_a_suspension_is_tracked_from_its_notification_to_the_poll_that_sees_it_active() -> None:
    first = sub.track({"subscriberId": "s1"}, "active", "a", None, NOW - 10 * MINUTE)
    assert first.closed is None and first.status["status"] == "active"
    assert first.status["subscriberId"] == "s1"
    at = NOW - 5 * MINUTE
    noted = sub.LastNotification(sub.SUSPENDED_SYSTEM, "a", at, "Success rate dropped")
    down = sub.track(first.status, "suspended", "a", noted, NOW)
    assert down.status["suspendedBy"] == "system"
    assert down.status["suspendedSince"] == sub.stamp(at)
    # a later poll without the notification (lost, or another one since) remembers who
    later = sub.track(down.status, "suspended", "a", None, NOW + MINUTE)
    assert later.status["suspendedBy"] == "system"
    assert later.status["suspendedSince"] == sub.stamp(at)
    resumed = {**later.status, "lastResume": sub.stamp(NOW + MINUTE), "resumeAttempts": 1}
    up = sub.track(resumed, "active", "a", None, NOW + 2 * MINUTE)
    assert up.closed == (at, NOW + 2 * MINUTE)
    assert "suspendedBy" not in up.status and "suspendedSince" not in up.status
    # suspended again soon after: the next resume waits longer (backoff across suspensions)
    second = sub.LastNotification(sub.SUSPENDED_SYSTEM, "a", NOW + 2 * MINUTE)
    again = sub.track(up.status, "suspended", "a", second, NOW + 3 * MINUTE).status
    assert again["suspendedBy"] == "system"
    assert again["resumeAttempts"] == 1
    kw: dict[str, Any] = {"auto_resume": True, "receiver_ready": True, "interval": 2 * MINUTE}
    assert not sub.may_resume(again, now=NOW + 2 * MINUTE, **kw)
    assert sub.may_resume(again, now=NOW + 3 * MINUTE, **kw)
    # an hour of being active forgets the resumes
    calm = sub.track(up.status, "active", "a", None, NOW + 2 * timedelta(hours=1))
    assert "resumeAttempts" not in calm.status


def test_a_suspension_without_notification_starts_when_the_poll_saw_it() -> None:
    down = sub.track({}, "suspended", "a", None, NOW)
    assert (down.status["suspendedBy"], down.status["suspendedSince"]) == (
        "unknown",
        sub.stamp(NOW),
    )
    assert not sub.may_resume(down.status, auto_resume=True, receiver_ready=True, now=NOW,
                              interval=MINUTE)  # fmt: skip


def test_a_dropped_status_key_is_removed_by_the_merge_patch() -> None:
    from akeneo_operator.reconciler import _removals

    before = {"eventPlatform": {"status": "suspended", "suspendedBy": "system"}}
    after = {"conditions": [], "eventPlatform": {"status": "active"}}
    assert _removals(before, after)["eventPlatform"] == {"status": "active", "suspendedBy": None}
    assert _removals({}, after) == after
    cleared = _removals(before, {"conditions": []})
    assert cleared["eventPlatform"] == {"status": None, "suspendedBy": None}


def test_a_notification_older_than_the_last_active_poll_says_nothing_of_a_new_suspension() -> None:
    old = sub.LastNotification(sub.SUSPENDED_SYSTEM, "a", NOW - timedelta(hours=2))
    seen = {"status": "active", "lastChecked": sub.stamp(NOW - MINUTE)}
    down = sub.track(seen, "suspended", "a", old, NOW)
    assert down.status["suspendedBy"] == "unknown"  # maybe a user: never resumed blindly
    assert down.status["suspendedSince"] == sub.stamp(NOW)
    fresh = sub.LastNotification(sub.SUSPENDED_SYSTEM, "a", NOW - 30 * timedelta(seconds=1))
    assert sub.track(seen, "suspended", "a", fresh, NOW).status["suspendedBy"] == "system"


def test_last_checked_alone_is_written_every_five_minutes_not_every_poll() -> None:
    from akeneo_operator.reconciler import _check_due, _comparable

    def status(checked: datetime) -> dict[str, Any]:
        return {"conditions": [], "eventPlatform": {"status": "active",
                                                    "lastChecked": sub.stamp(checked)}}  # fmt: skip

    assert _comparable(status(NOW)) == _comparable(status(NOW + MINUTE))
    assert not _check_due(status(NOW), status(NOW + MINUTE))
    assert _check_due(status(NOW), status(NOW + 5 * MINUTE))
    assert _check_due({}, status(NOW))


def test_the_status_written_fits_the_status_model() -> None:
    from akeneo_operator.status import Observed, render_status
    from akeneo_operator.status_model import ConnectionStatus

    down = sub.track({"subscriberId": "s1", "specHash": "0" * 24, "createdSubscriber": True},
                     "suspended", "a", note(sub.SUSPENDED_SYSTEM), NOW)  # fmt: skip
    failing = {**down.status, "error": "EventPlatformUnavailable", "failures": 2}
    failing.update(nextTry=sub.stamp(NOW), lastResume=sub.stamp(NOW), resumeAttempts=1)
    rendered = render_status(Observed(event_platform=failing), {}, NOW)
    model = ConnectionStatus.model_validate(rendered)
    assert model.event_platform is not None and model.event_platform.suspended_by == "system"
