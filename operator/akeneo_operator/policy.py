"""What the platform's settings forbid a tenant's spec to ask for.

The CRD lets a tenant write anything its schema allows; some of it only the platform may
grant. A refused spec gets a precise ``Ready=False`` reason and nothing is built from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from akeneo_connector.spec import AkeneoConnectionSpec, TLSMode
from akeneo_operator.settings import OperatorSettings
from akeneo_operator.status import Cond

PRIVATE_WEBHOOKS_REFUSED = "PrivateAddressesNotAllowed"
Manifest = dict[str, Any]


def refusal(spec: AkeneoConnectionSpec, settings: OperatorSettings) -> Cond | None:
    """Why the platform refuses this spec, or None."""
    webhook = spec.worker.sink.webhook
    asks_private = webhook is not None and webhook.allow_private_addresses
    if asks_private and not settings.allow_private_webhooks:
        return Cond.fail(
            PRIVATE_WEBHOOKS_REFUSED,
            "spec.worker.sink.webhook.allowPrivateAddresses: this operator does not let "
            "connections reach private, loopback or metadata addresses "
            "(operator setting allowPrivateWebhooks)",
        )
    return None


ISSUER_REFUSED = "IssuerNotAllowed"
HOST_REFUSED = "HostNotAllowed"
HOST_CONFLICT = "HostConflict"


def issuer_allowed(kind: str, name: str, allowed: tuple[str, ...]) -> bool:
    return any(entry == "*" or entry in (f"{kind}/{name}", f"{kind}/*") for entry in allowed)


def issuer_refusal(spec: AkeneoConnectionSpec, settings: OperatorSettings) -> Cond | None:
    """A cert-manager issuer the platform did not list (``allowed_issuers``): a ClusterIssuer
    could sign internal names with the platform's CA, or solve ACME in platform zones."""
    ref = spec.tls.issuer_ref
    if spec.tls.mode is not TLSMode.CERT_MANAGER or ref is None:
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
