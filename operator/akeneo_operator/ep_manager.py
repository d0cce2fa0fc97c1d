"""Thin async glue of the managed Event Platform subscription: performs what
``subscription`` decides, with the management API client (``akeneo_pim.event_platform_api``)
and the Kubernetes client. Never logs, emits or stores a secret: API errors carry the
client's scrubbed message, and only digests of secrets reach the status.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import AkeneoConnectionSpec
from akeneo_operator import subscription as plan
from akeneo_operator.kubeclient import KubeClient
from akeneo_operator.meta import Manifest, labels, managed_selector
from akeneo_operator.settings import OperatorSettings
from akeneo_operator.status import Cond
from akeneo_pim import notifications
from akeneo_pim.event_platform_api import (
    UNAUTHORIZED,
    Contact,
    EventPlatformApi,
    EventPlatformError,
    Subscriber,
    Subscription,
    SubscriptionRequest,
)
from akeneo_pim.formats import PayloadError
from akeneo_pim.rest import AkeneoRestClient, PimCredentials

SECRET_COMPONENT = "event-platform"  # label of a signature Secret the operator created
EventFn = Callable[[str, str, str], None]  # (type, reason, message) on the connection
PIM_KEYS = {"client_id": "clientId", "client_secret": "clientSecret",
            "username": "username", "password": "password"}  # fmt: skip


def decoded(secret: dict[str, Any] | None) -> dict[str, str]:
    """A Secret's data as text (keys that are not UTF-8 text are left out)."""
    out: dict[str, str] = {}
    for key, value in ((secret or {}).get("data") or {}).items():
        try:
            out[key] = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
    return out


def last_notification(raw: bytes | None) -> plan.LastNotification | None:
    if raw is None:
        return None
    try:
        note = notifications.parse_notification(raw)
    except (PayloadError, ValueError):
        return None
    return plan.LastNotification(
        note.notification_type, note.subscription_id, note.timestamp, note.reason
    )


def remote_subscriber(s: Subscriber) -> plan.RemoteSubscriber:
    c = s.contact
    return plan.RemoteSubscriber(
        s.id, s.name, c.technical_email, c.notification_webhook_url,
        tuple(c.notification_channels), s.status,
    )  # fmt: skip


def remote_subscription(s: Subscription) -> plan.RemoteSubscription:
    return plan.RemoteSubscription(
        s.id, s.subscriber_id, s.status, s.destination, tuple(s.events), s.filters,
        bool(s.send_product_identifier),
    )  # fmt: skip


@dataclass
class Outcome:
    """One pass: the new ``status.eventPlatform``, the condition, a closed gap window."""

    status: dict[str, Any]
    cond: Cond | None  # None: unchanged (waiting out a backoff)
    closed: tuple[datetime, datetime] | None = None


@dataclass
class _Session:
    key: tuple[str, ...]
    rest: AkeneoRestClient
    api: EventPlatformApi

    async def close(self) -> None:
        await self.api.aclose()
        await self.rest.aclose()


@dataclass
class SubscriptionManager:
    settings: OperatorSettings
    client: KubeClient
    clock: Callable[[], datetime]
    log: logging.Logger
    sessions: dict[tuple[str, str], _Session] = field(default_factory=dict)

    # -- secrets ------------------------------------------------------------------------------

    async def ensure_secrets(
        self,
        names: ConnectionNames,
        spec: AkeneoConnectionSpec,
        adopt: Callable[[Manifest], Manifest],
    ) -> str:
        """Generate the subscription's and the notification secret into the signature Secret
        when absent; returns what was done, "" for nothing. A missing Secret is created as the
        connection's own (labelled and owned, so the admission policy lets the operator keep
        it); a user's Secret is never written to: its values are used as they are, and what
        it lacks is reported by ``subscription.desired``."""
        ep = spec.event_platform
        if ep is None or not ep.manage_subscription:
            return ""
        name = spec.receiver.signature_secret
        live = await self.client.get("v1", "Secret", names.namespace, name)
        ours = live is None or all(
            ((live.get("metadata") or {}).get("labels") or {}).get(k) == v
            for k, v in managed_selector().items()
        )
        new = plan.missing_secrets(decoded(live), notifications=ep.notifications)
        if not new or not ours:
            return ""
        data = {k: base64.b64encode(v.encode()).decode() for k, v in new.items()}
        if live is None:
            manifest = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": name,
                    "namespace": names.namespace,
                    "labels": labels(names.name, SECRET_COMPONENT),
                },
                "type": "Opaque",
                "data": data,
            }
            await self.client.create(adopt(manifest))
        else:
            await self.client.merge_patch("v1", "Secret", names.namespace, name, {"data": data})
        what = f"generated {', '.join(sorted(new))} into Secret {name}"
        self.log.info("%s: %s", names.ref, what)
        return what

    # -- the management API -------------------------------------------------------------------

    async def _session(self, names: ConnectionNames, spec: AkeneoConnectionSpec) -> _Session:
        secret_name = spec.pim.credentials_secret
        if secret_name is None:
            raise EventPlatformError(
                UNAUTHORIZED, "no pim.credentialsSecret: the management API needs a PIM token"
            )
        values = decoded(await self.client.get("v1", "Secret", names.namespace, secret_name))
        missing = [k for k in PIM_KEYS.values() if not values.get(k, "").strip()]
        if missing:
            raise EventPlatformError(
                UNAUTHORIZED, f"Secret {secret_name} lacks {', '.join(missing)}"
            )
        creds = {field_: values[key].strip() for field_, key in PIM_KEYS.items()}
        allow_private = spec.pim.allow_private_addresses and self.settings.allow_private_pim
        key = (spec.pim.url, *sorted(creds.values()), str(allow_private))
        ref = (names.namespace, names.name)
        found = self.sessions.get(ref)
        if found is not None and found.key == key:
            return found
        if found is not None:
            await found.close()
        rest = AkeneoRestClient(
            spec.pim.url, PimCredentials.model_validate(creds), allow_private=allow_private,
            max_tries=2,
        )  # fmt: skip
        api = EventPlatformApi(
            self.settings.event_platform_url,
            pim_url=spec.pim.url,
            client_id=creds["client_id"],
            token=rest.access_token,
            renew_token=rest.access_token,
            verify=self.settings.event_platform_ca_file or True,
            timeout=float(min(self.settings.request_timeout, 30)),
        )
        session = _Session(key, rest, api)
        self.sessions[ref] = session
        return session

    async def close(self, names: ConnectionNames) -> None:
        session = self.sessions.pop((names.namespace, names.name), None)
        if session is not None:
            await session.close()

    async def sync(
        self,
        names: ConnectionNames,
        spec: AkeneoConnectionSpec,
        previous: dict[str, Any],
        *,
        receiver_ready: bool,
        note_raw: bytes | None,
        event: EventFn,
        force: bool = False,
    ) -> Outcome:
        """Create, adopt or update the subscriber and subscription, read the subscription's
        status, resume a system suspension. Errors become the condition, with backoff."""
        ep = spec.event_platform
        assert ep is not None
        now = self.clock()
        next_try = plan.parse_time(previous.get("nextTry"))
        if not force and next_try is not None and now < next_try:
            return Outcome(dict(previous), None)
        signature = decoded(
            await self.client.get("v1", "Secret", names.namespace, spec.receiver.signature_secret)
        )
        want = plan.desired(spec, names, signature)
        if isinstance(want, Cond):
            return Outcome(_without_error(previous), want)
        try:
            session = await self._session(names, spec)
            status = await self._converge(session.api, want, previous, event)
            note = last_notification(note_raw)
            tracked = plan.track(status, status["status"], status["subscriptionId"], note, now)
            status = tracked.status
            closed = tracked.closed
            interval = timedelta(seconds=self.settings.maintenance_seconds)
            # resumed from the next pass on: the suspension is shown (and announced) first
            due = previous.get("status") == plan.SUSPENDED and plan.may_resume(
                status,
                auto_resume=ep.auto_resume,
                receiver_ready=receiver_ready,
                now=now,
                interval=interval,
            )
            if due:
                status["lastResume"] = plan.stamp(now)
                status["resumeAttempts"] = int(status.get("resumeAttempts") or 0) + 1
                got = await session.api.resume_subscription(
                    status["subscriberId"], status["subscriptionId"]
                )
                event("Normal", "SubscriptionResumed",
                      f"subscription {got.id} resumed (suspended by the system; the receiver "
                      "is ready)")  # fmt: skip
                self.log.info("%s: resumed subscription %s", names.ref, got.id)
                again = plan.track(status, got.status, got.id, note, now)
                status, closed = again.status, again.closed or closed
        except EventPlatformError as exc:
            failures = int(previous.get("failures") or 0) + 1
            wait = plan.backoff(failures)
            failed = {
                **previous,
                "error": exc.reason,
                "failures": failures,
                "nextTry": plan.stamp(now + wait),
            }
            message = f"{exc.message}; next try after {plan.stamp(now + wait)}"
            if previous.get("error") != exc.reason:
                self.log.warning("%s: Event Platform management API: %s: %s",
                                 names.ref, exc.reason, exc.message)  # fmt: skip
            return Outcome(
                failed, plan.error_condition(exc.reason, message, retryable=exc.retryable)
            )
        return Outcome(status, plan.subscription_condition(status), closed)

    async def _converge(
        self,
        api: EventPlatformApi,
        want: plan.Desired,
        previous: dict[str, Any],
        event: EventFn,
    ) -> dict[str, Any]:
        """The subscriber and subscription as ``want`` says; ``status.eventPlatform``."""
        digest = want.digest()
        changed = previous.get("specHash") != digest
        status = _without_error(previous)
        sub_id, subscription_id = previous.get("subscriberId"), previous.get("subscriptionId")
        if not changed and sub_id and subscription_id:  # the usual tick: one read
            try:
                got = await api.get_subscription(str(sub_id), str(subscription_id))
            except EventPlatformError as exc:
                if exc.reason != "EventPlatformNotFound":
                    raise
            else:
                # revoked: its connection was removed from the PIM; shown, never replaced
                if plan.live(got.status):
                    status.update(subscriberId=got.subscriber_id, subscriptionId=got.id,
                                  status=got.status)  # fmt: skip
                    return status
        contact = Contact(
            technical_email=want.technical_email,
            notification_channels=tuple(want.channels),
            notification_webhook_url=want.notification_url,
            notification_webhook_secret=want.notification_secret,
        )
        subscribers = [remote_subscriber(s) for s in await api.list_subscribers()]
        mine = plan.find_subscriber(subscribers, _text(sub_id), want.subscriber_name)
        if mine is None:
            made = await api.create_subscriber(want.subscriber_name, contact)
            status["createdSubscriber"] = True
            subscriber_id = made.id
            event("Normal", "SubscriberCreated", f"Event Platform subscriber {made.id} created")
        else:
            subscriber_id = mine.id
            if mine.id != sub_id:
                event("Normal", "SubscriberAdopted", f"Event Platform subscriber {mine.id} adopted")
            if plan.subscriber_drifted(want, mine, changed):
                await api.update_subscriber(mine.id, name=want.subscriber_name, contact=contact)
        request = SubscriptionRequest(
            events=want.events,
            destination=want.destination,
            primary_secret=want.primary,
            secondary_secret=want.secondary,
            filters=want.filters,
            send_product_identifier=want.send_product_identifier,
        )
        subscriptions = [
            remote_subscription(s) for s in await api.list_subscriptions(subscriber_id)
        ]
        found = plan.find_subscription(subscriptions, _text(subscription_id), want.destination)
        if found is None:
            got = await api.create_subscription(subscriber_id, request)
            text = f"Event Platform subscription {got.id} created for {want.destination}"
            event("Normal", "SubscriptionCreated", text)
        elif plan.subscription_drifted(want, found, changed):
            got = await api.update_subscription(subscriber_id, found.id, request)
            event("Normal", "SubscriptionUpdated", f"Event Platform subscription {got.id} updated")
        else:
            got = await api.get_subscription(subscriber_id, found.id)
        status.update(subscriberId=subscriber_id, subscriptionId=got.id, status=got.status,
                      specHash=digest)  # fmt: skip
        return status

    async def delete(
        self, names: ConnectionNames, spec: AkeneoConnectionSpec, previous: dict[str, Any]
    ) -> str:
        """Delete the subscription, and the subscriber when the operator created it and it
        holds no other; returns what was done. ``EventPlatformError`` when it could not."""
        signature = decoded(
            await self.client.get("v1", "Secret", names.namespace, spec.receiver.signature_secret)
        )
        want = plan.desired(spec, names, signature)
        destination = want.destination if isinstance(want, plan.Desired) else None
        session = await self._session(names, spec)
        api = session.api
        subscriber_id = _text(previous.get("subscriberId"))
        if subscriber_id is None:
            found = plan.find_subscriber(
                [remote_subscriber(s) for s in await api.list_subscribers()],
                None,
                plan.subscriber_name(names),
            )
            if found is None:
                return "no subscriber to delete"
            subscriber_id = found.id
        subs = [remote_subscription(s) for s in await api.list_subscriptions(subscriber_id)]
        mine = plan.find_subscription(
            subs, _text(previous.get("subscriptionId")), destination or "\0"
        )
        done = []
        if mine is not None:
            await api.delete_subscription(subscriber_id, mine.id)
            done.append(f"subscription {mine.id} deleted")
        others = [s for s in subs if plan.live(s.status) and (mine is None or s.id != mine.id)]
        if previous.get("createdSubscriber") and not others:
            await api.delete_subscriber(subscriber_id)
            done.append(f"subscriber {subscriber_id} deleted")
        await self.close(names)
        return "; ".join(done) or "nothing to delete"


def _text(value: Any) -> str | None:
    return str(value) if value else None


def _without_error(previous: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in previous.items() if k not in ("error", "failures", "nextTry")}
