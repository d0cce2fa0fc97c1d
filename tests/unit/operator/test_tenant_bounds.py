"""Pure parts of issue 15 (kube side): issuers, host patterns and claims, egress rules,
ownership of children, NatsIsolated. The behaviour on the real API server is in
tests/security/."""

from __future__ import annotations

import argparse
import copy
import ipaddress
from typing import Any

import pytest
from pydantic import ValidationError

from akeneo_operator import policy
from akeneo_operator.apply import ChildConflict, check_owner
from akeneo_operator.children import build_children
from akeneo_operator.childwatch import digest
from akeneo_operator.egress import PRIVATE_V4, PRIVATE_V6, nats_rules
from akeneo_operator.meta import adopt, owned_by, owner_uid
from akeneo_operator.natscreds import isolation
from akeneo_operator.settings import OperatorSettings, configure, from_sources
from akeneo_operator.status import NATS_ISOLATED, Cond, Observed, ready_condition
from tests.unit.operator.builders_support import BASE_SPEC, by_kind_name, make_input

OWNER = {
    "apiVersion": "akeneo.connectors.dev/v1alpha1",
    "kind": "AkeneoConnection",
    "metadata": {"name": "acme", "namespace": "t", "uid": "u-1", "labels": {"team": "x"}},
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(argv)


def test_settings_from_env_and_their_validation() -> None:
    s = from_sources(
        parse([]),
        {
            "AKENEO_OPERATOR_ALLOWED_ISSUERS": "ClusterIssuer/letsencrypt, Issuer/*",
            "AKENEO_OPERATOR_HOST_PATTERN": "*.{namespace}.hooks.example.com",
            "AKENEO_OPERATOR_ALLOWED_EGRESS_CIDRS": "10.1.2.3/16, fd00::1/64",
            "AKENEO_OPERATOR_EGRESS_NATS_NAMESPACE": "nats-system",
        },
    )
    assert s.allowed_issuers == ("ClusterIssuer/letsencrypt", "Issuer/*")
    assert s.allowed_egress_cidrs == ("10.1.0.0/16", "fd00::/64")
    assert OperatorSettings().allowed_issuers == ("Issuer/*",)
    for bad in (
        {"allowed_issuers": ("Vault/x",)},
        {"allowed_issuers": ("ClusterIssuer/UPPER",)},
        {"host_pattern": "*.Example.com"},
        {"host_pattern": "{tenant}.example.com"},
        {"host_pattern": "example"},
        {"allowed_egress_cidrs": ("10.0.0.0/33",)},
    ):
        with pytest.raises(ValidationError):
            OperatorSettings(**bad)


def _cert_manager(kind: str, name: str) -> dict[str, Any]:
    spec = copy.deepcopy(BASE_SPEC)
    spec["tls"] = {"mode": "certManager", "issuerRef": {"kind": kind, "name": name}}
    return spec


@pytest.mark.parametrize(
    ("allowed", "kind", "name", "ok"),
    [
        (("Issuer/*",), "Issuer", "own", True),
        (("Issuer/*",), "ClusterIssuer", "letsencrypt", False),
        (("ClusterIssuer/letsencrypt",), "ClusterIssuer", "letsencrypt", True),
        (("ClusterIssuer/letsencrypt",), "ClusterIssuer", "internal-ca", False),
        (("*",), "ClusterIssuer", "internal-ca", True),
        ((), "Issuer", "own", False),
    ],
)
def test_issuers(allowed: tuple[str, ...], kind: str, name: str, ok: bool) -> None:
    inp = make_input(_cert_manager(kind, name), allowed_issuers=allowed)
    cond = policy.issuer_refusal(inp.spec, inp.settings)
    assert (cond is None) is ok
    if cond is not None:
        assert cond.reason == policy.ISSUER_REFUSED and f"{kind}/{name}" in cond.message
    # self-signed connections name no issuer
    assert policy.issuer_refusal(make_input().spec, inp.settings) is None


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("shop.tenant-acme.hooks.example.com", True),
        ("acme.tenant-acme.hooks.example.com", True),
        ("shop.other.hooks.example.com", False),  # another tenant's zone
        ("a.b.tenant-acme.hooks.example.com", False),  # * is one label
        ("shop.tenant-acme.hooks.example.com.evil.io", False),
        ("shop.tenant-acmeXhooks.example.com", False),  # dots are literal
    ],
)
def test_host_pattern(host: str, ok: bool) -> None:
    spec = copy.deepcopy(BASE_SPEC)
    spec["receiver"]["host"] = host.lower()
    inp = make_input(spec, host_pattern="*.{namespace}.hooks.example.com")
    cond = policy.host_refusal(inp.spec, inp.settings, "tenant-acme", "acme")
    assert (cond is None) is ok
    assert policy.host_refusal(inp.spec, OperatorSettings(), "tenant-acme", "acme") is None


def _conn(ns: str, name: str, created: str, host: str | None, **meta: Any) -> dict[str, Any]:
    receiver = {"signatureSecret": "s", **({"host": host} if host else {})}
    return {
        "metadata": {"namespace": ns, "name": name, "creationTimestamp": created, **meta},
        "spec": {"receiver": receiver},
    }


def test_the_oldest_claim_keeps_a_host_and_the_message_names_no_other_tenant() -> None:
    s = OperatorSettings(host_pattern="*.{namespace}.hooks.example.com")
    host = "shop.b.hooks.example.com"
    listed = [
        _conn("a", "squat", "2020-01-01T00:00:00Z", host),  # outside a's zone: no claim
        _conn("b", "old", "2021-01-01T00:00:00Z", host),
        _conn("b", "new", "2022-01-01T00:00:00Z", host),
        _conn("b", "gone", "2019-01-01T00:00:00Z", host, deletionTimestamp="x"),
        _conn("b", "other", "2019-01-01T00:00:00Z", "x.b.hooks.example.com"),
    ]
    claims = policy.host_claims(listed, host, s)
    assert [(c.namespace, c.name) for c in claims] == [("b", "old"), ("b", "new")]
    old, new = claims
    assert policy.host_conflict(host, old, claims) is None
    refused = policy.host_conflict(host, new, claims)
    assert refused is not None and refused.reason == policy.HOST_CONFLICT
    assert "old" not in refused.message.replace("older", "")
    # the same second: namespace then name decide, the same way for everyone
    tie = [
        _conn("b", "x", "2021-01-01T00:00:00Z", host),
        _conn("b", "y", "2021-01-01T00:00:00Z", host),
    ]
    x, y = policy.host_claims(tie, host, s)
    assert policy.host_conflict(host, x, [x, y]) is None
    assert policy.host_conflict(host, y, [x, y]) is not None


def test_private_ranges_cover_metadata_and_embedded_ipv4() -> None:
    v4 = [ipaddress.ip_network(c) for c in PRIVATE_V4]
    v6 = [ipaddress.ip_network(c) for c in PRIVATE_V6]
    for addr in ("169.254.169.254", "100.100.100.200", "10.0.0.1", "172.31.1.1", "127.0.0.1"):
        assert any(ipaddress.ip_address(addr) in n for n in v4), addr
    for addr in (
        "fd00:ec2::254",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::",
    ):
        assert any(ipaddress.ip_address(addr) in n for n in v6), addr
    for addr in ("8.8.8.8", "1.1.1.1"):
        assert not any(ipaddress.ip_address(addr) in n for n in v4), addr
    assert not any(ipaddress.ip_address("2001:4860:4860::8888") in n for n in v6)


def test_nats_peers_come_from_the_pod_urls() -> None:
    s = OperatorSettings(
        pod_nats_url="nats://nats.nats.svc:4222,tls://10.0.0.9:7422,nats://nats.example.com"
    )
    assert nats_rules(s) == [
        {
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "nats"}}}],
            "ports": [{"protocol": "TCP", "port": 4222}],
        },
        {
            "to": [{"ipBlock": {"cidr": "10.0.0.9/32"}}],
            "ports": [{"protocol": "TCP", "port": 7422}],
        },
    ]
    named = OperatorSettings(nats_url="nats://nats.example.com:4222", egress_nats_namespace="n")
    (rule,) = nats_rules(named)
    assert rule["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "n"}}}
    ]


def test_egress_is_part_of_the_build_and_of_its_hash() -> None:
    plain = by_kind_name(build_children(make_input()))
    listed = by_kind_name(build_children(make_input(allowed_egress_cidrs=("10.9.0.0/16",))))
    worker = plain[("NetworkPolicy", "acme-worker")]
    assert worker["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert {"to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}]} in listed[
        ("NetworkPolicy", "acme-worker")
    ]["spec"]["egress"]
    assert (
        worker["metadata"]["annotations"]
        != listed[("NetworkPolicy", "acme-worker")]["metadata"]["annotations"]
    )


def test_adopt_sets_one_owner_and_copies_no_label() -> None:
    child = build_children(make_input())[0]
    adopted = adopt(child, OWNER)
    assert adopted["metadata"]["labels"] == child["metadata"]["labels"]
    assert adopted["metadata"]["ownerReferences"] == [
        {
            "apiVersion": OWNER["apiVersion"],
            "kind": "AkeneoConnection",
            "name": "acme",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert owner_uid(adopted) == "u-1"
    assert "ownerReferences" not in child["metadata"]  # the build is left alone


def test_only_an_object_with_our_owner_uid_is_ours() -> None:
    desired = adopt(build_children(make_input())[0], OWNER)
    ours = copy.deepcopy(desired)
    ours["metadata"]["uid"] = "obj-1"
    check_owner(desired, ours)
    check_owner(desired, None)
    foreign = copy.deepcopy(ours)
    foreign["metadata"]["ownerReferences"] = [{"kind": "AkeneoConnection", "uid": "u-2"}]
    for live in (foreign, {"metadata": {"name": "acme", "uid": "x"}}):
        with pytest.raises(ChildConflict, match="ServiceAccount acme"):
            check_owner(desired, live)
    assert not owned_by(foreign, "u-1") and not owned_by(ours, None)
    event = digest("MODIFIED", foreign, desired)
    assert event.owners == frozenset({"u-2"}) and event.uid == "obj-1"
    assert digest("DELETED", ours, desired).uid is None


def test_nats_isolated_is_shown_and_never_blocks_ready() -> None:
    shared = isolation(OperatorSettings())
    assert (shared.status, shared.reason) == ("False", "NoCredentials")
    assert isolation(OperatorSettings(pod_nats_secret="p")).reason == "SharedCredentials"
    signed = isolation(OperatorSettings(nats_signing_key_file="/k"))
    assert (signed.status, signed.reason) == ("True", "PerConnectionUsers")
    obs = Observed()
    obs.conditions = {k: Cond.ok("Fine") for k in obs.conditions}
    obs.conditions[NATS_ISOLATED] = shared
    assert ready_condition(obs).status == "True"
