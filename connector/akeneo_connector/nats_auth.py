"""Per-tenant NATS users: the least permissions each role of a connection needs.

Every connection's streams live in one JetStream account; what keeps tenants apart is that
each user may only publish to (and subscribe on) its own connection's subjects, call the
JetStream API on its own stream, consumer and KV bucket, and receive replies on its own inbox
prefix. Replies on the shared ``_INBOX.>`` would let one tenant read another's API answers and
pulled messages, so clients of a connection use ``inbox_prefix(names)`` instead; pass
``inbox=DEFAULT_INBOX`` only for clients that cannot set one.

The functions are pure. A static set-up renders them into the nats-server config with
``render_authorization``; the operator puts them into per-connection user JWTs
(``akeneo_connector.nats_jwt``, decentralized auth), so the server is never reconfigured.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from akeneo_connector.names import ConnectionNames
from akeneo_connector.secret_report import REPORT_PREFIX

JS_API = "$JS.API"
DEFAULT_INBOX = "_INBOX"
OPERATOR_INBOX = "_INBOX_akeneo_operator"  # tenants' prefixes are _INBOX_AKENEO_...


class Role(enum.StrEnum):
    RECEIVER = "receiver"
    WORKER = "worker"
    RECONCILE = "reconcile"
    REPLAY = "replay"  # ``akeneo-connector replay``, run by hand or as a Job


@dataclass(frozen=True)
class Permissions:
    """Allow lists; everything else is denied by nats-server."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


@dataclass(frozen=True)
class NatsUser:
    user: str
    password: str  # plain text or a bcrypt hash (``$2a$...``); never logged
    permissions: Permissions

    def __repr__(self) -> str:  # keep the password out of tracebacks and logs
        return f"NatsUser(user={self.user!r}, permissions={self.permissions!r})"


def inbox_prefix(names: ConnectionNames) -> str:
    """The connection's own reply-subject prefix (a single subject token)."""
    return f"_INBOX_{names.stream}"


def user_name(names: ConnectionNames, role: Role) -> str:
    return f"{names.stream}-{role.value}"


def kv_stream(names: ConnectionNames) -> str:
    return f"KV_{names.guard_bucket}"


def _stream_info(*streams: str) -> list[str]:
    return [f"{JS_API}.STREAM.INFO.{s}" for s in streams]


def _stream_manage(*streams: str) -> list[str]:
    return [f"{JS_API}.STREAM.{op}.{s}" for s in streams for op in ("CREATE", "UPDATE")]


def _kv_access(names: ConnectionNames) -> list[str]:
    """Read and write keys of the connection's bucket (puts, CAS updates, direct/msg gets)."""
    kv = kv_stream(names)
    return [
        *_stream_info(kv),
        f"$KV.{names.guard_bucket}.>",
        f"{JS_API}.DIRECT.GET.{kv}",
        f"{JS_API}.DIRECT.GET.{kv}.>",
        f"{JS_API}.STREAM.MSG.GET.{kv}",
    ]


def _kv_snapshot(names: ConnectionNames) -> list[str]:
    """Ephemeral pull consumers reading the bucket once (``stream_reader.kv_latest``)."""
    kv = kv_stream(names)
    return [
        f"{JS_API}.CONSUMER.CREATE.{kv}",
        f"{JS_API}.CONSUMER.CREATE.{kv}.>",
        f"{JS_API}.CONSUMER.DELETE.{kv}.*",
        f"{JS_API}.CONSUMER.INFO.{kv}.*",
        f"{JS_API}.CONSUMER.MSG.NEXT.{kv}.*",
    ]


def _durable_consumer(names: ConnectionNames) -> list[str]:
    stream, consumer = names.stream, names.consumer
    return [
        f"{JS_API}.CONSUMER.CREATE.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}.>",
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
        f"{JS_API}.CONSUMER.INFO.{stream}.{consumer}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
    ]


def _replay(names: ConnectionNames) -> list[str]:
    """Ephemeral readers of the stream, re-publishing, removing replayed dead letters and
    (``--reset-guard``) purging the bucket's guard keys."""
    stream = names.stream
    return [
        f"{names.events_subject}.>",
        *_stream_info(stream),
        f"{JS_API}.CONSUMER.CREATE.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.*",
        f"{JS_API}.CONSUMER.DELETE.{stream}.*",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
        f"{JS_API}.STREAM.MSG.DELETE.{stream}",
        *_stream_info(kv_stream(names)),
        f"{JS_API}.STREAM.PURGE.{kv_stream(names)}",
    ]


def permissions(
    names: ConnectionNames,
    role: Role,
    *,
    ensure_stream: bool = False,
    inbox: str | None = None,
) -> Permissions:
    """What ``role`` of connection ``names`` may publish and subscribe to.

    ``ensure_stream``: the receiver may also create/update its stream and bucket
    (``--ensure-stream``, local mode); in a cluster the operator provisions them.
    """
    prefix = inbox if inbox is not None else inbox_prefix(names)
    stream = names.stream
    publish: list[str]
    if role is Role.RECEIVER:
        publish = [
            f"{names.events_subject}.>",
            names.notifications_subject,  # Event Platform notification webhooks, as received
            names.gap_subject("receiver-503"),  # its own outages, recorded once NATS is back
            # the fingerprints of the secrets it loaded, for the operator's rotation
            f"$KV.{names.guard_bucket}.{REPORT_PREFIX}.>",
            *_stream_info(stream),
            f"{JS_API}.CONSUMER.INFO.{stream}.{names.consumer}",
        ]
        if ensure_stream:
            publish += [*_stream_info(kv_stream(names)), *_stream_manage(stream, kv_stream(names))]
    elif role is Role.WORKER:
        publish = [
            names.dead_letter_subject,
            *_stream_info(stream),
            *_durable_consumer(names),
            *_kv_access(names),
            f"{JS_API}.STREAM.PURGE.{stream}",  # applied events, near the quota (trim)
        ]
    elif role is Role.RECONCILE:
        publish = [
            f"{names.events_subject}.>",
            *_stream_info(stream),
            *_kv_access(names),
            *_kv_snapshot(names),
        ]
    else:
        publish = _replay(names)
    return Permissions(publish=_unique(publish), subscribe=(f"{prefix}.>",))


GAPS_OF_EVERY_CONNECTION = "akeneo.*.gaps.>"


def operator_permissions() -> Permissions:
    """The operator's own user: every stream and bucket of the account (it provisions them
    and reads the workers' counters), the gap windows it observes (``akeneo_connector.gaps``),
    replies on its own inbox prefix only."""
    return Permissions(
        publish=(f"{JS_API}.>", "$JS.FC.>", GAPS_OF_EVERY_CONNECTION),
        subscribe=(f"{OPERATOR_INBOX}.>",),
    )


def tenant_users(
    names: ConnectionNames,
    passwords: dict[Role, str],
    *,
    ensure_stream: bool = False,
    inbox: str | None = None,
) -> list[NatsUser]:
    """One user per role given a password, named ``<stream>-<role>``."""
    return [
        NatsUser(
            user_name(names, role),
            password,
            permissions(names, role, ensure_stream=ensure_stream, inbox=inbox),
        )
        for role, password in passwords.items()
    ]


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _list(items: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def render_user(user: NatsUser) -> str:
    """One entry of ``users = [...]``; strings are JSON-quoted (valid nats-server syntax)."""
    perms = user.permissions
    return (
        f"{{user: {json.dumps(user.user)}, password: {json.dumps(user.password)}, permissions: {{"
        f"publish: {{allow: {_list(perms.publish)}}}, "
        f"subscribe: {{allow: {_list(perms.subscribe)}}}}}}}"
    )


def render_authorization(users: Sequence[NatsUser]) -> str:
    """A nats-server ``authorization`` block holding ``users`` (it contains their passwords)."""
    entries = ",\n".join(f"    {render_user(u)}" for u in users)
    return f"authorization {{\n  users = [\n{entries}\n  ]\n}}\n"
