"""Which addresses a tenant's destinations may reach: the one SSRF guard of every client.

The PIM REST client (``akeneo_pim.rest``), the webhook sink and the postgres sink connect to
hosts a tenant names. None of them may reach the platform: loopback, private, link-local,
cloud metadata, reserved ranges, nor any IPv6 form that embeds or tunnels to one of them
(IPv4-mapped/compatible, 6to4, NAT64, Teredo, site-local). Each client checks the address
it is about to connect to, at every connection (so a name that resolves to a public address
at start and to an internal one later — DNS rebinding — is refused too, and so is an IP
literal), unless the platform explicitly allows private addresses for that destination.

Refusals are not an oracle: the message names the host, never what it resolved to nor which
rule matched, and a name that does not resolve gets the very same refusal, so a tenant cannot
learn from them which internal names exist or where they point.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Callable
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata and host-agent endpoints that the generic ranges below do not cover.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "100.100.100.200",  # Alibaba Cloud metadata
        "168.63.129.16",  # Azure WireServer (host agent, a public address)
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; cluster-internal on some
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known prefix: the last 32 bits are IPv4
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # local-use NAT64 (RFC 8215)
_TEREDO = ipaddress.ip_network("2001::/32")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible IPv6 (RFC 4291)
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, still routed inside some sites


class RefusedAddress(Exception):
    """The destination does not resolve, or is or resolves to an address tenants may not
    reach (one message for all: see the module's docstring)."""

    def __init__(self, what: str, host: str) -> None:
        self.what, self.host = what, host
        super().__init__(
            f"{what} host {host[:253]!r} refused: it does not resolve, or resolves to a "
            "private, loopback, link-local, metadata or reserved address"
        )


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is refused, or None when tenants may reach it.

    IPv6 forms that carry an IPv4 address the network will deliver to (IPv4-mapped, NAT64,
    6to4) are judged by that IPv4 address; forms whose target cannot be judged (Teredo's
    obfuscated client, local-use NAT64, IPv4-compatible, site-local) are refused outright.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return refusal_reason(address.ipv4_mapped)
        if address in _NAT64:
            return refusal_reason(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address in _SIX_TO_FOUR:
            embedded = address.sixtofour
            assert embedded is not None
            return refusal_reason(embedded)
        for network, reason in (
            (_NAT64_LOCAL, "local-use NAT64"),
            (_TEREDO, "Teredo"),
            (_SITE_LOCAL, "site-local"),
        ):
            if address in network:
                return reason
        if address in _COMPATIBLE and not (address.is_loopback or address.is_unspecified):
            return "IPv4-compatible"
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
        ("not global", not address.is_global),
    )
    for reason, hit in checks:
        if hit:
            return reason
    return None


def parse_ip(text: str) -> IPAddress | None:
    """``text`` as an IP address (brackets and an IPv6 zone allowed), or None for a name."""
    bare = text.strip()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    bare = bare.split("%", 1)[0]
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        return None


_LOCALHOST = re.compile(r"(^|\.)localhost\.?$", re.IGNORECASE)


def literal_refused(host: str) -> bool:
    """True when ``host`` is refused without resolving it: a refused IP literal, or
    ``localhost`` (and its subdomains, RFC 6761), which always resolve to loopback."""
    address = parse_ip(host)
    if address is not None:
        return refusal_reason(address) is not None
    return bool(_LOCALHOST.search(host.strip()))


def check_address(what: str, host: str, address: str) -> None:
    """Raise ``RefusedAddress`` when ``address`` (one of ``host``'s) may not be reached."""
    parsed = parse_ip(address)
    if parsed is None or refusal_reason(parsed) is not None:
        raise RefusedAddress(what, host)


async def resolve_allowed(what: str, host: str, port: int) -> list[tuple[int, str]]:
    """``(family, address)`` of every address of ``host``, each checked; ``RefusedAddress``
    when any one of them is refused (a name is refused as a whole, whichever address a
    client would pick) or when it does not resolve."""
    literal = parse_ip(host)
    if literal is not None:
        check_address(what, host, str(literal))
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return [(family, str(literal))]
    if literal_refused(host):
        raise RefusedAddress(what, host)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError):
        raise RefusedAddress(what, host) from None
    found: list[tuple[int, str]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        check_address(what, host, address)
        if (family, address) not in found:
            found.append((family, address))
    if not found:
        raise RefusedAddress(what, host)
    return found


# -- aiohttp ------------------------------------------------------------------------------


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses the whole host if any of its addresses is refused."""

    def __init__(self, what: str, inner: AbstractResolver | None = None) -> None:
        self._what = what
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if literal_refused(host):
            raise RefusedAddress(self._what, host)
        try:
            results = await self._inner.resolve(host, port, family)
        except OSError:
            raise RefusedAddress(self._what, host) from None
        for result in results:
            check_address(self._what, host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()


def guarded_socket_factory(what: str) -> Callable[[tuple[Any, ...]], socket.socket]:
    """aiohttp ``socket_factory``: checks the very address each socket connects to.

    aiohttp connects to an IP literal without asking the resolver; this runs for every
    connection, literal or resolved, right before ``connect``."""

    def factory(addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto, _canonname, sockaddr = addr_info
        check_address(what, str(sockaddr[0]), str(sockaddr[0]))
        return socket.socket(family=family, type=type_, proto=proto)

    return factory


def guarded_connector(what: str, **kwargs: Any) -> Any:
    """An ``aiohttp.TCPConnector`` whose every connection goes through this module's checks."""
    import aiohttp

    return aiohttp.TCPConnector(
        resolver=GuardedResolver(what),
        socket_factory=guarded_socket_factory(what),
        **kwargs,
    )


async def check_host(what: str, host: str, port: int = 443) -> None:
    """Resolve ``host`` once and refuse it like a connection would (fail fast at start)."""
    await resolve_allowed(what, host, port)
