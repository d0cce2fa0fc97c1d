"""The pure permission functions: each tenant's allow lists never reach another tenant."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from akeneo_connector.guard_state import BUDGET_SLOTS, budget_slot_key
from akeneo_connector.names import ConnectionNames
from akeneo_connector.nats_auth import (
    NatsUser,
    Permissions,
    Role,
    inbox_prefix,
    permissions,
    render_authorization,
    tenant_users,
)
from akeneo_connector.secret_report import REPORT_PREFIX


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` one token, ``>`` one or more trailing tokens."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def concrete(pattern: str) -> str:
    return pattern.replace(">", "x.y").replace("*", "x")


LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
NAMES = st.builds(ConnectionNames, LABEL, LABEL)


@given(a=NAMES, b=NAMES, ensure=st.booleans())
def test_no_pattern_of_one_tenant_matches_a_subject_of_another(
    a: ConnectionNames, b: ConnectionNames, ensure: bool
) -> None:
    if a == b:
        return
    for role_a in Role:
        mine = permissions(a, role_a, ensure_stream=ensure)
        for role_b in Role:
            theirs = permissions(b, role_b, ensure_stream=True)
            for subject in map(concrete, (*theirs.publish, *theirs.subscribe)):
                leaks = [p for p in (*mine.publish, *mine.subscribe) if matches(p, subject)]
                assert leaks == [], (a, b, role_a, role_b, subject)


def test_roles_get_only_what_they_use() -> None:
    names = ConnectionNames("shop-a", "main")
    receiver = permissions(names, Role.RECEIVER)
    worker = permissions(names, Role.WORKER)
    reconcile = permissions(names, Role.RECONCILE)
    assert receiver.subscribe == worker.subscribe == (f"{inbox_prefix(names)}.>",)
    assert f"{names.events_subject}.>" in receiver.publish
    assert names.notifications_subject in receiver.publish  # stores notification webhooks
    # only the receiver stores them: nobody else may forge a suspension or a resume
    for role in Role:
        if role is not Role.RECEIVER:
            perms = permissions(names, role, ensure_stream=True)
            assert not any(matches(p, names.notifications_subject) for p in perms.publish), role
    assert not any(".CREATE." in s for s in receiver.publish)
    # in the bucket, the receiver writes its report of loaded secrets (fingerprints) only
    report = f"$KV.{names.guard_bucket}.{REPORT_PREFIX}.>"
    assert [s for s in receiver.publish if s.startswith("$KV.")] == [report]
    assert f"{names.events_subject}.>" not in worker.publish  # the worker never emits events
    assert names.dead_letter_subject in worker.publish
    assert f"$KV.{names.guard_bucket}.>" in worker.publish
    kv_next = f"$JS.API.CONSUMER.MSG.NEXT.KV_{names.guard_bucket}.*"
    assert kv_next in reconcile.publish  # reads the guard once (stream_reader.kv_latest)
    assert kv_next not in worker.publish
    for perms in (receiver, worker, reconcile):
        assert not [s for s in perms.publish if s in (">", "$JS.API.>", "_INBOX.>")]
        assert not [s for s in perms.publish if "DELETE" in s and "CONSUMER.DELETE.KV_" not in s]
    ensured = permissions(names, Role.RECEIVER, ensure_stream=True)
    assert f"$JS.API.STREAM.CREATE.{names.stream}" in ensured.publish
    assert f"$JS.API.STREAM.UPDATE.KV_{names.guard_bucket}" in ensured.publish


def test_pim_callers_may_take_and_free_the_budget_slots_others_may_not() -> None:
    """Worker replicas and the reconcile job share the connection's 4 PIM calls through the
    bucket's ``budget.slot.<n>`` keys (compare-and-set writes, message-get reads, as
    ``akeneo_connector.kv_pipeline`` sends them); the receiver and replay call no PIM."""
    names = ConnectionNames("shop-a", "main")
    bucket = names.guard_bucket
    writes = [f"$KV.{bucket}.{budget_slot_key(n)}" for n in range(BUDGET_SLOTS)]
    read = f"$JS.API.STREAM.MSG.GET.KV_{bucket}"
    for role in (Role.WORKER, Role.RECONCILE):
        allowed = permissions(names, role).publish
        for subject in [*writes, read]:
            assert any(matches(p, subject) for p in allowed), (role, subject)
    for role in (Role.RECEIVER, Role.REPLAY):
        allowed = permissions(names, role).publish
        for subject in [*writes, read]:
            assert not any(matches(p, subject) for p in allowed), (role, subject)
    other = ConnectionNames("shop-b", "main")
    theirs = f"$KV.{other.guard_bucket}.{budget_slot_key(0)}"
    for role in Role:
        assert not any(matches(p, theirs) for p in permissions(names, role).publish)


def test_rendering_quotes_values_and_repr_hides_password() -> None:
    names = ConnectionNames("ns", "n")
    users = tenant_users(names, {Role.RECEIVER: 'pa"ss\\word'})
    text = render_authorization(users)
    assert text.startswith("authorization {") and '"pa\\"ss\\\\word"' in text
    assert f'"$JS.API.STREAM.INFO.{names.stream}"' in text
    assert 'pa"ss' not in repr(users[0])
    admin = NatsUser("admin", "x", Permissions((">",), (">",)))
    assert 'publish: {allow: [">"]}' in render_authorization([admin])
