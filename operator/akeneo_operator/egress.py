"""Where a connection's pods may connect to: the egress rules of their NetworkPolicies.

A compromised worker or reconcile pod (it parses what a tenant's PIM answers) must not reach
the cluster or the cloud's metadata service: it gets DNS, the NATS servers and public
addresses, i.e. everything but the private, shared (CGNAT), loopback, link-local, metadata,
multicast and reserved ranges, plus the private CIDRs the platform lists
(``allowed_egress_cidrs``). A receiver only needs DNS and NATS.

The NATS peers come from the NATS URLs the pods get: ``<svc>.<namespace>[.svc[...]]`` names
give a namespace selector (unless ``egress_nats_namespace`` names it), IP literals an
``ipBlock``, each with its URL's port. A NATS server known by another name is reached as a
public address, or through ``allowed_egress_cidrs`` when private.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from akeneo_operator.settings import OperatorSettings

Manifest = dict[str, Any]

NATS_DEFAULT_PORT = 4222
NAMESPACE_LABEL = "kubernetes.io/metadata.name"

# Never reachable from a pod unless listed by the platform. IPv4:
PRIVATE_V4 = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",
    "100.64.0.0/10",  # shared / CGNAT: cluster-internal on some clouds, Alibaba metadata
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local: 169.254.169.254 and other metadata services
    "172.16.0.0/12",
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation
    "192.88.99.0/24",  # 6to4 relays
    "192.168.0.0/16",
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation
    "203.0.113.0/24",  # documentation
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, broadcast
)
# IPv6, including the forms that carry an IPv4 address (NAT64, 6to4, Teredo). IPv4-mapped
# ::ffff:a.b.c.d leaves the pod as IPv4 a.b.c.d, so the IPv4 list covers it (the API server
# refuses ::ffff:0:0/96 inside ::/0 anyway: it reads it as an IPv4 prefix).
PRIVATE_V6 = (
    "::/128",
    "::1/128",
    "64:ff9b::/96",  # NAT64 (well-known prefix)
    "64:ff9b:1::/48",  # NAT64 (local use)
    "100::/64",  # discard-only
    "2001::/23",  # IETF protocol assignments, Teredo included
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4
    "fc00::/7",  # unique local: fd00:ec2::254 (metadata) included
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local (deprecated)
    "ff00::/8",  # multicast
)
PUBLIC_PEERS: tuple[Manifest, ...] = (
    {"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_V4)}},
    {"ipBlock": {"cidr": "::/0", "except": list(PRIVATE_V6)}},
)
_IN_CLUSTER = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
    r"(\.svc(\.cluster\.local)?)?\.?$"
)


def normalize_cidr(text: str) -> str:
    """``text`` as a canonical CIDR (host bits cleared); ``ValueError`` when it is none."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ValueError(f"not a CIDR: {text!r}") from None


def _host_cidr(host: str) -> str | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return f"{address}/{address.max_prefixlen}"


def _namespace_peer(namespace: str) -> Manifest:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: namespace}}}


def nats_rules(settings: OperatorSettings) -> list[Manifest]:
    """One rule per NATS peer, opening the ports of the URLs that name it."""
    ports: dict[str, set[int]] = {}
    peers: dict[str, Manifest] = {}
    for url in settings.effective_pod_nats_url.split(","):
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port or NATS_DEFAULT_PORT
        cidr = _host_cidr(host)
        match = _IN_CLUSTER.match(host)
        if cidr is not None:
            key, peer = cidr, {"ipBlock": {"cidr": cidr}}
        elif settings.egress_nats_namespace or match:
            ns = settings.egress_nats_namespace or (match.group("ns") if match else "")
            key, peer = f"ns:{ns}", _namespace_peer(ns)
        else:
            continue  # an external name: a public address, or an allowed_egress_cidrs entry
        peers[key] = peer
        ports.setdefault(key, set()).add(port)
    return [
        {"to": [peer], "ports": [{"protocol": "TCP", "port": p} for p in sorted(ports[key])]}
        for key, peer in peers.items()
    ]


def nats_ports(settings: OperatorSettings) -> list[int]:
    return sorted(
        {
            urlsplit(url.strip()).port or NATS_DEFAULT_PORT
            for url in settings.effective_pod_nats_url.split(",")
        }
    )


def dns_rule(settings: OperatorSettings) -> Manifest:
    return {
        "to": [_namespace_peer(settings.egress_dns_namespace)],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def _listed(settings: OperatorSettings) -> list[Manifest]:
    return [{"ipBlock": {"cidr": cidr}} for cidr in settings.allowed_egress_cidrs]


def worker_egress(settings: OperatorSettings) -> list[Manifest]:
    """Worker and reconcile pods: DNS, NATS, public addresses, the platform's CIDRs."""
    rules = [dns_rule(settings), *nats_rules(settings), {"to": copy.deepcopy(list(PUBLIC_PEERS))}]
    listed = _listed(settings)
    if listed:
        rules.append({"to": listed})
    return rules


def receiver_egress(settings: OperatorSettings) -> list[Manifest]:
    """Receiver pods: DNS and NATS only (the platform's CIDRs on the NATS ports, for a NATS
    known by a name that resolves to one of them)."""
    rules = [dns_rule(settings), *nats_rules(settings)]
    listed = _listed(settings)
    if listed:
        ports = [{"protocol": "TCP", "port": p} for p in nats_ports(settings)]
        rules.append({"to": listed, "ports": ports})
    return rules
