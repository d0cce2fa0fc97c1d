"""Issue 15, row 2: worker, reconcile and receiver pods reach DNS, NATS and the public
internet only; private, link-local, loopback, CGNAT and metadata ranges only where the
platform lists them (``allowedEgressCIDRs``).

No CNI runs here (kwok plays the kubelet; nothing enforces a NetworkPolicy), so the test
reads the NetworkPolicies back from the real API server, which validated them against its
schema, and evaluates their egress rules the way the NetworkPolicy spec defines them (a
packet is allowed when one rule's peer and port match; ``except`` carves out of ``cidr``)
for addresses a compromised pod would want.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from akeneo_operator.kubeclient import KubeClient
from akeneo_testing.ground.kube import KubeCluster
from tests.integration.operator.running import (
    OperatorProcess,
    OperatorSetup,
    admin_client,
    basic_spec,
    connection,
    make_namespace,
    tenant_secrets,
)
from tests.security.kube_support import delete_connections, ready_with

pytestmark = pytest.mark.kube
NS = "tenant-egress"
PLATFORM_CIDRS = "10.20.0.0/16,fd12:3456::/48"
POD_NATS_URL = "nats://nats.nats-system.svc.cluster.local:4222,nats://10.96.0.50:4223"

# (address, port, protocol, allowed for a worker pod)
PUBLIC = [
    ("8.8.8.8", 443, "TCP", True),  # a PIM, a webhook
    ("2001:4860:4860::8888", 443, "TCP", True),
    ("52.1.2.3", 5432, "TCP", True),  # a public PostgreSQL
]
INTERNAL = [
    ("169.254.169.254", 80, "TCP", False),  # cloud metadata
    ("169.254.170.2", 80, "TCP", False),  # ECS task metadata
    ("100.100.100.200", 80, "TCP", False),  # Alibaba metadata (CGNAT range)
    ("fd00:ec2::254", 80, "TCP", False),  # AWS metadata over IPv6
    ("10.0.0.1", 443, "TCP", False),  # the kubernetes Service
    ("10.244.1.7", 8080, "TCP", False),  # another tenant's pod
    ("172.16.0.5", 6379, "TCP", False),
    ("192.168.1.1", 80, "TCP", False),
    ("127.0.0.1", 4222, "TCP", False),
    ("100.64.0.1", 443, "TCP", False),
    ("0.0.0.0", 80, "TCP", False),
    ("224.0.0.251", 5353, "UDP", False),
    ("::1", 80, "TCP", False),
    ("fe80::1", 80, "TCP", False),
    ("fc00::1", 80, "TCP", False),
    ("fec0::1", 80, "TCP", False),
    ("::ffff:10.0.0.1", 443, "TCP", False),  # IPv4-mapped
    ("64:ff9b::a00:1", 443, "TCP", False),  # NAT64 of 10.0.0.1
    ("2002:a00:1::1", 443, "TCP", False),  # 6to4 of 10.0.0.1
    ("2001:0:a00:1::1", 443, "TCP", False),  # Teredo
]
PLATFORM = [
    ("10.20.3.4", 5432, "TCP", True),  # listed by the platform
    ("fd12:3456::10", 443, "TCP", True),
    ("10.21.0.1", 5432, "TCP", False),  # next to it: not listed
]
NATS = [
    ("10.96.0.50", 4223, "TCP", True),  # a NATS URL with an IP
    ("10.96.0.50", 4222, "TCP", False),  # not that port
]


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    return any(
        p.get("protocol", "TCP") == protocol and p.get("port") in (None, port) for p in ports
    )


def _ip_peer_matches(peer: dict[str, Any], address: str) -> bool:
    block = peer.get("ipBlock")
    if block is None:
        return False
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:a.b.c.d leaves the pod as IPv4 a.b.c.d
    net = ipaddress.ip_network(block["cidr"])
    if ip.version != net.version or ip not in net:
        return False
    return not any(ip in ipaddress.ip_network(e) for e in block.get("except") or [])


def egress_allows(policy: dict[str, Any], address: str, port: int, protocol: str) -> bool:
    """NetworkPolicy semantics for a destination IP outside the cluster's pods."""
    spec = policy["spec"]
    if "Egress" not in spec.get("policyTypes", []):
        return True
    for rule in spec.get("egress") or []:
        if not _port_matches(rule.get("ports"), port, protocol):
            continue
        peers = rule.get("to")
        if not peers or any(_ip_peer_matches(p, address) for p in peers):
            return True
    return False


def namespace_rule(policy: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """Ports a rule opens to the pods of ``namespace``."""
    out: list[dict[str, Any]] = []
    for rule in policy["spec"].get("egress") or []:
        for peer in rule.get("to") or []:
            labels = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
            if labels == {"kubernetes.io/metadata.name": namespace} and "podSelector" not in peer:
                out.extend(rule.get("ports") or [{"all": True}])
    return out


@pytest.fixture(scope="module")
def operator_setup() -> OperatorSetup:
    return OperatorSetup(
        env=dict(
            AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
            AKENEO_OPERATOR_POD_NATS_URL=POD_NATS_URL,
            AKENEO_OPERATOR_ALLOWED_EGRESS_CIDRS=PLATFORM_CIDRS,
        ),
        namespaces=[NS],
    )


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster, operator: OperatorProcess) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    await make_namespace(c, NS, tenant_secrets(NS, "acme"))
    await c.create(connection(NS, "acme", basic_spec("acme")))
    await ready_with(c, operator, NS, "acme", "True")
    yield c
    await delete_connections(c, operator, NS)
    await c.close()


async def policies(client: KubeClient) -> dict[str, dict[str, Any]]:
    out = {}
    for name in ("acme-worker", "acme-receiver"):
        policy = await client.get("networking.k8s.io/v1", "NetworkPolicy", NS, name)
        assert policy is not None, name
        out[name] = policy
    return out


async def test_worker_and_reconcile_pods_reach_dns_nats_and_public_addresses_only(client):
    policy = (await policies(client))["acme-worker"]
    selector = policy["spec"]["podSelector"]
    assert selector["matchExpressions"] == [
        {"key": "app.kubernetes.io/component", "operator": "In", "values": ["worker", "reconcile"]}
    ]
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert sorted(namespace_rule(policy, "kube-system"), key=str) == [
        {"port": 53, "protocol": "TCP"},
        {"port": 53, "protocol": "UDP"},
    ]
    assert namespace_rule(policy, "nats-system") == [{"port": 4222, "protocol": "TCP"}]
    wrong = [
        (addr, port, allowed)
        for addr, port, proto, allowed in PUBLIC + INTERNAL + PLATFORM + NATS
        if egress_allows(policy, addr, port, proto) is not allowed
    ]
    assert wrong == [], wrong


async def test_receiver_pods_reach_dns_and_nats_only(client):
    policy = (await policies(client))["acme-receiver"]
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert namespace_rule(policy, "nats-system") == [{"port": 4222, "protocol": "TCP"}]
    assert len(namespace_rule(policy, "kube-system")) == 2
    allowed = [
        (addr, port)
        for addr, port, proto, _ in PUBLIC + INTERNAL + PLATFORM
        if egress_allows(policy, addr, port, proto)
    ]
    assert allowed == [], allowed
    assert egress_allows(policy, "10.96.0.50", 4223, "TCP")


async def test_no_other_namespace_or_pod_is_reachable(client):
    """Only kube-system (port 53) and the NATS namespace (its port) are opened by selector."""
    for name, policy in (await policies(client)).items():
        for rule in policy["spec"]["egress"]:
            for peer in rule.get("to") or []:
                if "ipBlock" in peer:
                    continue
                assert set(peer) == {"namespaceSelector"}, (name, peer)
                assert rule.get("ports"), (name, rule)
