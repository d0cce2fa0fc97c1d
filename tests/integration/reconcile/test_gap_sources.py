"""Gap windows read from a real stream: stored notifications and dead letters become gap
records once, resume where they stopped after a restart, and plan one catch-up."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from akeneo_connector.dead_letters import CAUSE_EXHAUSTED, CAUSE_REJECTED, dead_letter_headers
from akeneo_connector.gaps import GapSource, newest_gap, plan_catch_up, read_gaps
from akeneo_connector.normalized import Action, NormalizedEvent, ResourceKind, SourceFormat
from akeneo_operator.gap_sources import GapScanner
from tests.integration.reconcile.streams import Connection, provisioned

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


async def notify(conn: Connection, kind: str, at: datetime) -> None:
    body = json.dumps(
        {
            "notification_type": kind,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "subscription_id": "sub-1",
            "subscriber_id": "subscriber-1",
        }
    ).encode()
    await conn.js.publish(
        conn.names.notifications_subject,
        body,
        stream=conn.names.stream,
        headers={"Nats-Msg-Id": hashlib.sha256(body).hexdigest()},
    )


async def dead_letter(conn: Connection, seq: int, version: datetime, cause: str) -> None:
    event = NormalizedEvent(
        connection=conn.names.ref,
        source=SourceFormat.EVENTS_API,
        event_id=f"e-{seq}",
        action=Action.UPSERT,
        kind=ResourceKind.PRODUCT,
        key=f"p-{seq}",
        version=version,
    )
    headers = dead_letter_headers(
        reason="sink down",
        cause=cause,
        subject=conn.names.event_subject("product"),
        sequence=seq,
        deliveries=10,
        resource=("product", f"p-{seq}"),
        now=version + timedelta(minutes=3),
    )
    await conn.js.publish(
        conn.names.dead_letter_subject, event.to_message(), stream=conn.names.stream,
        headers=headers,
    )  # fmt: skip


async def test_notifications_and_dead_letters_become_gap_records_once(nats: str) -> None:
    async with provisioned(nats, "gaps") as conn:
        scanner = GapScanner(conn.names)
        assert await scanner.scan(conn.js) == []  # an empty stream: nothing, cheaply
        await notify(conn, "subscription.suspended.system", T0)
        assert await scanner.scan(conn.js) == []  # still suspended: not yet a window
        await notify(conn, "subscription.resumed", T0 + timedelta(minutes=10))
        await dead_letter(conn, 1, T0 + timedelta(minutes=20), CAUSE_EXHAUSTED)
        await dead_letter(conn, 2, T0 + timedelta(minutes=5), CAUSE_REJECTED)  # not retried
        await dead_letter(conn, 3, T0 + timedelta(minutes=25), CAUSE_EXHAUSTED)
        records = await scanner.scan(conn.js)
        assert [(r.source, r.start, r.end) for r in records] == [
            (GapSource.SUBSCRIPTION, T0, T0 + timedelta(minutes=10)),
            (GapSource.DEAD_LETTERS, T0 + timedelta(minutes=20), T0 + timedelta(minutes=28)),
        ]
        assert await scanner.scan(conn.js) == []

        # a restarted operator resumes from the records' cursors: nothing twice
        again = GapScanner(conn.names)
        assert await again.scan(conn.js) == []
        await notify(conn, "subscription.suspended.user", T0 + timedelta(minutes=40))
        await notify(conn, "subscription.resumed", T0 + timedelta(minutes=41))
        (third,) = await again.scan(conn.js)
        assert third.start == T0 + timedelta(minutes=40)

        stored = await read_gaps(conn.js, conn.names)
        assert [r for _, r in stored] == [*records, third]
        assert await newest_gap(conn.js, conn.names) == stored[-1][0]
        plan = plan_catch_up(stored, after=stored[0][0], margin=timedelta(minutes=5))
        assert plan is not None
        assert plan.since == T0 + timedelta(minutes=15)  # the first window is repaired
        assert plan.through == stored[-1][0]
        assert await read_gaps(conn.js, conn.names, after=plan.through) == []
