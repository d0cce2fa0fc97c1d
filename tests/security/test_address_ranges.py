"""Issue 15 row 13: no destination a tenant names reaches the platform, in any address form.

One guard (``akeneo_connector.addresses``) serves the three clients that connect where a
tenant says: the webhook sink, the PIM REST client, the postgres sink. Each range is tried
through each client against real listeners: a loopback HTTP server (reached by every
loopback form if the guard fails) and the test ground's PostgreSQL on 127.0.0.1 (trust
authentication: a missed guard writes to it). Nothing may connect, whatever the form:
IPv4-mapped/compatible, 6to4, NAT64, Teredo, site-local, or IPv4 in another notation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiohttp import web

from akeneo_connector.addresses import RefusedAddress
from akeneo_pim.rest import AkeneoApiError, AkeneoRestClient, PimCredentials
from akeneo_testing.ground.postgres import PostgresServer
from akeneo_worker.sinks.base import SinkError
from akeneo_worker.sinks.postgres import PostgresSink
from akeneo_worker.sinks.webhook import WebhookSink

# (range, an address in it). Loopback forms reach the listeners below if not refused.
RANGES = [
    ("IPv4 loopback 127.0.0.0/8", "127.0.0.1"),
    ("IPv4 loopback, other address", "127.0.0.2"),
    ("IPv4 private 10.0.0.0/8", "10.0.0.1"),
    ("IPv4 private 172.16.0.0/12", "172.16.0.1"),
    ("IPv4 private 192.168.0.0/16", "192.168.0.1"),
    ("IPv4 link-local / cloud metadata", "169.254.169.254"),
    ("IPv4 this network 0.0.0.0/8", "0.0.0.0"),
    ("IPv4 shared 100.64.0.0/10", "100.64.0.1"),
    ("Alibaba Cloud metadata", "100.100.100.200"),
    ("Azure WireServer", "168.63.129.16"),
    ("IPv4 benchmarking 198.18.0.0/15", "198.18.0.1"),
    ("IPv4 reserved 240.0.0.0/4", "240.0.0.1"),
    ("IPv4 multicast", "224.0.0.1"),
    ("IPv6 loopback", "::1"),
    ("IPv6 unspecified", "::"),
    ("IPv6 link-local fe80::/10", "fe80::1"),
    ("IPv6 unique local fc00::/7", "fd12::1"),
    ("AWS IMDS over IPv6", "fd00:ec2::254"),
    ("IPv6 site-local fec0::/10", "fec0::1"),
    ("IPv6 multicast", "ff02::1"),
    ("IPv4-mapped loopback ::ffff:0:0/96", "::ffff:127.0.0.1"),
    ("IPv4-mapped metadata", "::ffff:169.254.169.254"),
    ("IPv4-compatible metadata ::/96", "::169.254.169.254"),
    ("6to4 of loopback 2002::/16", "2002:7f00:1::1"),
    ("6to4 of metadata", "2002:a9fe:a9fe::1"),
    ("6to4 of 10.0.0.1", "2002:a00:1::1"),
    ("NAT64 of metadata 64:ff9b::/96", "64:ff9b::a9fe:a9fe"),
    ("NAT64 of loopback", "64:ff9b::7f00:1"),
    ("NAT64 local-use 64:ff9b:1::/48", "64:ff9b:1::a00:1"),
    ("Teredo 2001::/32 (client 127.0.0.1, obfuscated)", "2001:0:4136:e378:8000:63bf:80ff:fffe"),
    ("IPv4 loopback as one decimal number", "2130706433"),
    ("IPv4 loopback, short form", "127.1"),
    ("IPv4 loopback in hex", "0x7f.0.0.1"),
    ("localhost (a name for loopback)", "localhost"),
]
IDS = [r for r, _a in RANGES]
CREDENTIALS = PimCredentials.model_validate(
    {"client_id": "id", "client_secret": "cs", "username": "u", "password": "p"}
)


def in_url(address: str) -> str:
    return f"[{address}]" if ":" in address else address


@dataclass
class Listener:
    """An HTTP server on 127.0.0.1 and ::1 that counts every request it gets."""

    port: int
    hits: int = 0


@pytest_asyncio.fixture
async def listener() -> AsyncIterator[Listener]:
    found = Listener(0)

    async def anything(request: web.Request) -> web.Response:
        found.hits += 1
        return web.json_response({"access_token": "t", "expires_in": 3600})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    found.port = runner.addresses[0][1]
    await web.TCPSite(runner, "::1", found.port).start()
    try:
        yield found
    finally:
        await runner.cleanup()


def tables(server: PostgresServer, name: str) -> bool:
    import psycopg

    with psycopg.connect(server.dsn) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


@pytest.mark.parametrize(("what", "address"), RANGES, ids=IDS)
async def test_webhook_sink_refuses(what: str, address: str, listener: Listener) -> None:
    sink = WebhookSink(f"http://{in_url(address)}:{listener.port}/hook")
    try:
        with pytest.raises(SinkError) as refused:
            await sink.open()
        assert not refused.value.retryable, refused.value
    finally:
        await sink.close()
    assert listener.hits == 0


@pytest.mark.parametrize(("what", "address"), RANGES, ids=IDS)
async def test_pim_client_refuses(what: str, address: str, listener: Listener) -> None:
    url = f"http://{in_url(address)}:{listener.port}"
    async with AkeneoRestClient(url, CREDENTIALS, max_tries=1, timeout=3) as client:
        with pytest.raises(AkeneoApiError, match="refused"):
            await client.get_json("/api/rest/v1/products")
    assert listener.hits == 0  # not even the token request (with the client secret)


@pytest.mark.parametrize(("what", "address"), RANGES, ids=IDS)
async def test_postgres_sink_refuses(
    what: str, address: str, postgres_server: PostgresServer
) -> None:
    table = f"ranges_{abs(hash(address)) % 10**8}"
    dsn = f"postgresql://postgres@{in_url(address)}:{postgres_server.port}/postgres"
    sink = PostgresSink(f"{dsn}?connect_timeout=3", table=table)
    try:
        with pytest.raises(SinkError, match="refused"):
            await sink.open()
    finally:
        await sink.close()
    assert not tables(postgres_server, table)


async def test_each_connection_is_checked_not_only_the_first(listener: Listener) -> None:
    """An IP literal does not go through DNS: the check must sit on the connection itself,
    for every connection a client's pool opens, not only on the configured URL at start."""
    sink = WebhookSink("http://93.184.216.34/hook")  # a public literal: passes at start
    await sink.open()
    try:
        session = sink._session  # the pool every POST of the sink goes through
        assert session is not None
        for address in ("127.0.0.1", "::ffff:127.0.0.1", "::1"):
            with pytest.raises(RefusedAddress):
                await session.get(f"http://{in_url(address)}:{listener.port}/")
    finally:
        await sink.close()
    async with AkeneoRestClient("http://93.184.216.34", CREDENTIALS, max_tries=1) as client:
        for address in ("127.0.0.1", "::1"):
            with pytest.raises(RefusedAddress):
                await client._http.get(f"http://{in_url(address)}:{listener.port}/")
    assert listener.hits == 0


async def test_proxy_variables_do_not_route_around_the_guard(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy from the environment would carry the request past the checked connection."""
    proxy = f"http://127.0.0.1:{listener.port}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with AkeneoRestClient("http://localhost:9", CREDENTIALS, max_tries=1) as client:
        with pytest.raises(AkeneoApiError, match="refused"):
            await client.get_json("/api/rest/v1/products")
    sink = WebhookSink("http://localhost:9/hook")
    with pytest.raises(SinkError):
        await sink.open()
    await sink.close()
    assert listener.hits == 0


async def test_opted_in_clients_still_reach_loopback(
    listener: Listener, postgres_server: PostgresServer
) -> None:
    """Local mode and the test ground opt in explicitly; then the same clients connect."""
    sink = WebhookSink(f"http://127.0.0.1:{listener.port}/hook", allow_private=True)
    await sink.open()
    await sink.apply([])
    await sink.close()
    url = f"http://127.0.0.1:{listener.port}"
    async with AkeneoRestClient(url, CREDENTIALS, allow_private=True) as client:
        await client.get_json("/api/rest/v1/products")
    assert listener.hits >= 2  # the token, then the call
    pg = PostgresSink(postgres_server.dsn, table="ranges_opted_in", allow_private=True)
    await pg.open()
    await pg.close()
    assert tables(postgres_server, "ranges_opted_in")
