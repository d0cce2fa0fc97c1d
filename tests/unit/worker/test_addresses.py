"""SSRF refusal of webhook destinations."""

from __future__ import annotations

import ipaddress

import pytest

from akeneo_worker.sinks.addresses import RefusedAddress, check_host, refusal_reason
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
        ("fd00:ec2::254", "cloud metadata"),  # AWS IMDS over IPv6
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12::1", "private"),
        ("0.0.0.0", "private"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("100.64.0.1", "shared"),
        ("224.0.0.1", "multicast"),
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
    ],
)
def test_refusal_reason(address: str, reason: str | None) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "169.254.169.254", "::1", "10.0.0.1"])
async def test_internal_hosts_are_refused(host: str) -> None:
    with pytest.raises(RefusedAddress, match="resolves to a"):
        await check_host(host)


async def test_a_public_address_is_allowed() -> None:
    await check_host("93.184.216.34")  # a literal: no DNS needed


async def test_the_webhook_sink_refuses_at_start_unless_allowed() -> None:
    sink = WebhookSink("https://169.254.169.254/latest/meta-data")
    with pytest.raises(SinkError) as refused:
        await sink.open()
    assert not refused.value.retryable
    allowed = WebhookSink("http://127.0.0.1:9/hook", allow_private=True)
    await allowed.open()
    await allowed.close()
