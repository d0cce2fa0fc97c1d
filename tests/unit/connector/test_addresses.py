"""The platform's address policy (SSRF): which addresses tenants' destinations may reach.

Connections through each client, per range, are in ``tests/security/test_address_ranges.py``.
"""

from __future__ import annotations

import ipaddress

import pytest

from akeneo_connector.addresses import (
    RefusedAddress,
    check_host,
    literal_refused,
    refusal_reason,
)
from akeneo_worker.sinks.base import SinkError
from akeneo_worker.sinks.webhook import WebhookSink


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),  # AWS/GCP/Azure metadata
        ("fe80::1", "link-local"),
        ("100.100.100.200", "cloud metadata"),  # Alibaba
        ("168.63.129.16", "cloud metadata"),  # Azure WireServer
        ("fd00:ec2::254", "cloud metadata"),  # AWS IMDS over IPv6
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12::1", "private"),
        ("0.0.0.0", "private"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("100.64.0.1", "shared"),
        ("224.0.0.1", "multicast"),
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 of the metadata address
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("64:ff9b:1::1", "local-use NAT64"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo"),
        ("fec0::1", "site-local"),
        ("::a9fe:a9fe", "IPv4-compatible"),
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        ("2002:808:808::1", None),  # 6to4 of a public address
        ("64:ff9b::808:808", None),  # NAT64 of a public address (IPv6-only clusters)
    ],
)
def test_refusal_reason(address: str, reason: str | None) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("127.0.0.1", True),
        ("[::1]", True),
        ("localhost", True),
        ("db.localhost.", True),
        ("fe80::1%eth0", True),
        ("pim.example.com", False),  # a name: judged when resolved
        ("93.184.216.34", False),
    ],
)
def test_literal_refused(host: str, refused: bool) -> None:
    assert literal_refused(host) is refused


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "169.254.169.254", "::1", "10.0.0.1"])
async def test_internal_hosts_are_refused(host: str) -> None:
    with pytest.raises(RefusedAddress, match="refused"):
        await check_host("webhook", host)


async def test_a_name_that_does_not_resolve_gets_the_same_refusal() -> None:
    """No oracle: whether an internal name exists cannot be told from the refusal."""
    with pytest.raises(RefusedAddress) as missing:
        await check_host("webhook", "no-such-host.invalid")
    with pytest.raises(RefusedAddress) as private:
        await check_host("webhook", "localhost")
    assert str(missing.value).replace("no-such-host.invalid", "H") == str(private.value).replace(
        "localhost", "H"
    )


async def test_a_public_address_is_allowed() -> None:
    await check_host("webhook", "93.184.216.34")  # a literal: no DNS needed


async def test_the_webhook_sink_refuses_at_start_unless_allowed() -> None:
    sink = WebhookSink("https://169.254.169.254/latest/meta-data")
    with pytest.raises(SinkError) as refused:
        await sink.open()
    assert not refused.value.retryable
    allowed = WebhookSink("http://127.0.0.1:9/hook", allow_private=True)
    await allowed.open()
    await allowed.close()
