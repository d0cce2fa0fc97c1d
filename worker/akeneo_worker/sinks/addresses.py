"""Refuse webhook destinations inside the platform (SSRF): loopback, private, metadata, ...

The check runs on every connection through ``GuardedResolver``, so a host name that
resolves to a public address at start and to an internal one later (DNS rebinding) is
refused too.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata endpoints that are not covered by the generic ranges below.
_METADATA = {
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
}
_SHARED = ipaddress.ip_network(
    "100.64.0.0/10"
)  # carrier-grade NAT, cluster-internal on some clouds


class RefusedAddress(Exception):
    """The destination resolves to an address tenants may not reach."""


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is refused, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refusal_reason(address.ipv4_mapped)
    if address in _METADATA:
        return "cloud metadata"
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("shared", isinstance(address, ipaddress.IPv4Address) and address in _SHARED),
    )
    for reason, hit in checks:
        if hit:
            return reason
    return None


def check_address(host: str, address: str) -> None:
    reason = refusal_reason(ipaddress.ip_address(address.split("%", 1)[0]))
    if reason is not None:
        raise RefusedAddress(f"webhook host {host!r} resolves to a {reason} address ({address})")


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses the whole host if any of its addresses is internal."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_address(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()


async def check_host(host: str, port: int = 443) -> None:
    """Resolve ``host`` once and refuse it like the resolver would (fail fast at start)."""
    resolver = GuardedResolver()
    try:
        await resolver.resolve(host, port, socket.AF_UNSPEC)
    finally:
        await resolver.close()
