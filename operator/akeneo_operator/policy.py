"""What the platform's settings forbid a tenant's spec to ask for.

The CRD lets a tenant write anything its schema allows; some of it only the platform may
grant. A refused spec gets a precise ``Ready=False`` reason and nothing is built from it.

Destinations (the PIM, a webhook, a database) on private, loopback, link-local or metadata
addresses are refused unless the spec asks for it and the platform allows it. Here only what
the spec itself says is judged (an IP literal, ``localhost``); the clients check the
resolved address at every connection (``akeneo_connector.addresses``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from akeneo_connector import pgdsn
from akeneo_connector.addresses import literal_refused
from akeneo_connector.quotas import QUOTA_EXCEEDS_PLATFORM_LIMIT
from akeneo_connector.spec import AkeneoConnectionSpec, TLSMode
from akeneo_operator.settings import OperatorSettings
from akeneo_operator.status import Cond

PRIVATE_WEBHOOKS_REFUSED = "PrivateAddressesNotAllowed"
PRIVATE_ADDRESSES_REFUSED = PRIVATE_WEBHOOKS_REFUSED
DSN_REFUSED = "DsnNotAllowed"

_PRIVATE = "private, loopback, link-local or metadata addresses"


def _asked(field: str, setting: str) -> Cond:
    return Cond.fail(
        PRIVATE_ADDRESSES_REFUSED,
        f"{field}.allowPrivateAddresses: this operator does not let connections reach "
        f"{_PRIVATE} (operator setting {setting})",
    )


def _literal(field: str, setting: str) -> Cond:
    return Cond.fail(
        PRIVATE_ADDRESSES_REFUSED,
        f"{field}: the host is one of the {_PRIVATE} connections may not reach (the platform "
        f"may allow it: operator setting {setting} and {field.rsplit('.', 1)[0]}."
        "allowPrivateAddresses)",
    )


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


Manifest = dict[str, Any]


def refusal(spec: AkeneoConnectionSpec, settings: OperatorSettings) -> Cond | None:
    """Why the platform refuses this spec, or None."""
    pim = spec.pim
    pim_private = pim.allow_private_addresses
    if pim_private and not settings.allow_private_pim:
        return _asked("spec.pim", "allowPrivatePim")
    if not pim_private and literal_refused(_host(pim.url)):
        return _literal("spec.pim.url", "allowPrivatePim")
    webhook = spec.worker.sink.webhook
    if webhook is not None:
        if webhook.allow_private_addresses and not settings.allow_private_webhooks:
            return _asked("spec.worker.sink.webhook", "allowPrivateWebhooks")
        if not webhook.allow_private_addresses and literal_refused(_host(webhook.url)):
            return _literal("spec.worker.sink.webhook.url", "allowPrivateWebhooks")
    postgres = spec.worker.sink.postgres
    asks = postgres is not None and postgres.allow_private_addresses
    if asks and not settings.allow_private_postgres:
        return _asked("spec.worker.sink.postgres", "allowPrivatePostgres")
    over = settings.stream_quotas.violations(spec.stream)
    if over:
        return Cond.fail(QUOTA_EXCEEDS_PLATFORM_LIMIT, "; ".join(over))
    return None


def dsn_refusal(dsn: str, secret: str, *, allow_private: bool) -> Cond | None:
    """Why the DSN in Secret ``secret`` (key ``dsn``) is refused, or None. What can be judged
    without DNS: its parameters and the form of its hosts, and IP-literal hosts. The message
    never quotes the DSN."""
    try:
        pgdsn.check(dsn, allow_private=allow_private)
    except pgdsn.DsnRefused as exc:
        reason = PRIVATE_ADDRESSES_REFUSED if exc.address else DSN_REFUSED
        return Cond.fail(reason, f"Secret {secret} key dsn (sink.postgres.dsnSecret): {exc}")
    return None


ISSUER_REFUSED = "IssuerNotAllowed"
HOST_REFUSED = "HostNotAllowed"
HOST_CONFLICT = "HostConflict"


def issuer_allowed(kind: str, name: str, allowed: tuple[str, ...]) -> bool:
    return any(entry == "*" or entry in (f"{kind}/{name}", f"{kind}/*") for entry in allowed)


def issuer_refusal(spec: AkeneoConnectionSpec, settings: OperatorSettings) -> Cond | None:
    """A cert-manager issuer the platform did not list (``allowed_issuers``): a ClusterIssuer
    could sign internal names with the platform's CA, or solve ACME in platform zones. The
    platform's own ``defaultTLS`` (a spec that leaves ``tls`` out) is not the tenant's choice."""
    tls = spec.tls
    ref = None if tls is None else tls.issuer_ref
    if tls is None or tls.mode is not TLSMode.CERT_MANAGER or ref is None:
        return None
    if issuer_allowed(ref.kind, ref.name, settings.allowed_issuers):
        return None
    allowed = ", ".join(settings.allowed_issuers) or "none"
    return Cond.fail(
        ISSUER_REFUSED,
        f"spec.tls.issuerRef {ref.kind}/{ref.name}: this operator lets connections use "
        f"only {allowed} (operator setting allowedIssuers)",
    )


def host_regex(pattern: str, namespace: str, name: str) -> re.Pattern[str]:
    """``*`` is exactly one DNS label; ``{namespace}`` and ``{name}`` the connection's."""
    parts = []
    for label in pattern.split("."):
        if label == "*":
            parts.append(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
        else:
            parts.append(re.escape(label.replace("{namespace}", namespace).replace("{name}", name)))
    return re.compile(r"\.".join(parts) + r"\Z")


def host_refusal(
    spec: AkeneoConnectionSpec, settings: OperatorSettings, namespace: str, name: str
) -> Cond | None:
    """A ``receiver.host`` outside the platform's ``host_pattern``."""
    host = spec.receiver.host
    pattern = settings.host_pattern
    if host is None or pattern is None or host_regex(pattern, namespace, name).match(host):
        return None
    return Cond.fail(
        HOST_REFUSED,
        f"spec.receiver.host {host}: this operator allows only hosts matching {pattern} "
        f"(operator setting hostPattern; here {pattern.format(namespace=namespace, name=name)})",
    )


@dataclass(frozen=True, order=True)
class HostClaim:
    """A connection's claim on a host; the oldest claim wins (then namespace, name)."""

    created: str  # creationTimestamp, RFC 3339 (sorts as time)
    namespace: str
    name: str


def host_claims(
    connections: list[Manifest], host: str, settings: OperatorSettings
) -> list[HostClaim]:
    """Connections (not being deleted) whose ``spec.receiver.host`` is ``host`` and which
    ``host_pattern`` allows it: a host outside a tenant's zone claims nothing for it."""
    out = []
    pattern = settings.host_pattern
    for conn in connections:
        meta = conn.get("metadata") or {}
        receiver = ((conn.get("spec") or {}).get("receiver")) or {}
        claimed = receiver.get("host")
        if not isinstance(claimed, str) or claimed.lower().rstrip(".") != host:
            continue
        if meta.get("deletionTimestamp"):
            continue
        if pattern is not None and not host_regex(pattern, meta["namespace"], meta["name"]).match(
            host
        ):
            continue
        out.append(
            HostClaim(str(meta.get("creationTimestamp") or ""), meta["namespace"], meta["name"])
        )
    return out


def host_conflict(host: str, me: HostClaim, claims: list[HostClaim]) -> Cond | None:
    """Refuse ``me`` when an older connection claims the same host. The message does not
    name the other connection: its namespace is another tenant's business."""
    winner = min([me, *claims])
    if winner == me or (winner.namespace, winner.name) == (me.namespace, me.name):
        return None
    return Cond.fail(
        HOST_CONFLICT,
        f"spec.receiver.host {host} is already used by another connection created earlier, "
        "which keeps it: choose another host",
    )
