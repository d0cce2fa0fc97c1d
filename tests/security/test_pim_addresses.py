"""Issue 15 row 1: a tenant's ``pim.url`` and its PIM's answers reach nothing of the platform.

- The REST client (worker hydration, reconcile, replay) checks the address it connects to,
  at connect time, after resolving: the PIM simulator over real TLS on ``localhost`` is an
  "internal" PIM here, refused unless the platform opted in (``allow_private``, the
  ``AKENEO_PIM_ALLOW_PRIVATE`` of the pods the operator builds when it allows it).
- A PIM's ``_links.next.href`` is followed only on the configured PIM's origin: the access
  token never goes to another origin.
- A PIM's error bodies that are not Akeneo's JSON errors are never repeated (status,
  content type and length only), and Akeneo's messages are bounded and printable.
(The operator's ``Ready=False``/``PrivateAddressesNotAllowed`` is in ``test_spec_refusals``.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from akeneo_pim.rest import AkeneoApiError, AkeneoRestClient, PimCredentials
from akeneo_pim.simulator import PimSimulator
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.tls import CertificateAuthority
from tests.integration.reconcile.streams import provisioned

PRODUCTS = "/api/rest/v1/products"
MARKER = "HOSTILE-PIM-BODY-7f3a"


def _server_context(ca: CertificateAuthority, tmp: Path) -> ssl.SSLContext:
    pair = ca.issue("localhost", "127.0.0.1")
    pair.write(tmp / "tls.crt", tmp / "tls.key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
    return context


@pytest_asyncio.fixture
async def tls_simulator(
    security_ca: CertificateAuthority, tmp_path: Path
) -> AsyncIterator[PimSimulator]:
    sim = PimSimulator(
        products=5, host="localhost", ssl_context=_server_context(security_ca, tmp_path)
    )
    async with sim:
        yield sim


async def test_a_pim_on_an_internal_address_is_refused_at_connect(
    tls_simulator: PimSimulator, security_ca: CertificateAuthority
) -> None:
    sim = tls_simulator
    assert sim.url.startswith("https://localhost:")  # a name, resolved at connect time
    verify = security_ca.client_context()
    async with AkeneoRestClient(sim.url, sim.credentials, verify=verify, max_tries=1) as client:
        with pytest.raises(AkeneoApiError, match="refused") as refused:
            await client.get_json(PRODUCTS)
    assert "127.0.0.1" not in str(refused.value)  # the refusal does not tell where it points
    assert sim.stats.requests == 0, "the client secret went to the internal address"
    # the platform opts in explicitly: then the same PIM is read over TLS
    async with AkeneoRestClient(
        sim.url, sim.credentials, verify=verify, allow_private=True
    ) as client:
        page = await client.get_json(PRODUCTS)
    assert len(page["_embedded"]["items"]) == 5


@dataclass
class HostilePim:
    """A PIM that answers what a hostile tenant makes it answer, over TLS."""

    url: str = ""
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)
    next_href: str = ""


async def _hostile_app(pim: HostilePim) -> web.Application:
    async def token(request: web.Request) -> web.Response:
        pim.seen.append((request.path, request.headers.get("Authorization")))
        return web.json_response(
            {"access_token": "the-token", "refresh_token": "r", "expires_in": 3600}
        )

    async def products(request: web.Request) -> web.Response:
        pim.seen.append((request.path_qs, request.headers.get("Authorization")))
        links = {"self": {"href": str(request.url)}, "next": {"href": pim.next_href}}
        return web.json_response({"_links": links, "_embedded": {"items": [{"uuid": "a"}]}})

    async def html_error(request: web.Request) -> web.Response:
        pim.seen.append((request.path, request.headers.get("Authorization")))
        body = f"<html><body>\x1b[31m{MARKER}\nERROR fake log line\n" + "x" * 200_000
        return web.Response(status=400, text=body, content_type="text/html")

    async def json_error(request: web.Request) -> web.Response:
        message = f"{MARKER}\n2026-01-01 ERROR forged log line\x1b[0m " + "y" * 10_000
        return web.json_response({"code": 422, "message": message}, status=422)

    app = web.Application()
    app.router.add_post("/api/oauth/v1/token", token)
    app.router.add_get(PRODUCTS, products)
    app.router.add_get("/api/rest/v1/categories", html_error)
    app.router.add_get("/api/rest/v1/families", json_error)
    return app


@pytest_asyncio.fixture
async def hostile(security_ca: CertificateAuthority, tmp_path: Path) -> AsyncIterator[HostilePim]:
    pim, other = HostilePim(), HostilePim()
    runners = []
    for target, folder in ((pim, "a"), (other, "b")):
        (tmp_path / folder).mkdir()
        runner = web.AppRunner(await _hostile_app(target), access_log=None)
        await runner.setup()
        context = _server_context(security_ca, tmp_path / folder)
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
        target.url = f"https://localhost:{runner.addresses[0][1]}"
        runners.append(runner)
    pim.next_href = f"{other.url}{PRODUCTS}?search_after=stolen"  # another origin
    other.seen = pim.seen  # one log: whoever gets the token shows up here
    try:
        yield pim
    finally:
        for runner in runners:
            await runner.cleanup()


def _client(pim: HostilePim, ca: CertificateAuthority) -> AkeneoRestClient:
    credentials = PimCredentials.model_validate(
        {"client_id": "id", "client_secret": "cs", "username": "u", "password": "p"}
    )
    return AkeneoRestClient(
        pim.url, credentials, verify=ca.client_context(), max_tries=1, allow_private=True
    )


async def test_next_links_are_followed_only_on_the_pims_origin(
    hostile: HostilePim, security_ca: CertificateAuthority
) -> None:
    async with _client(hostile, security_ca) as client:
        pages = client.iter_pages(PRODUCTS, {})
        first = await anext(pages)
        assert first == [{"uuid": "a"}]
        with pytest.raises(AkeneoApiError, match="outside the configured PIM URL"):
            await anext(pages)
        await asyncio.sleep(0.2)  # a request sent ahead (the page peek) would have landed
    stolen = [(path, auth) for path, auth in hostile.seen if "stolen" in path]
    assert not stolen, f"the other origin was sent {stolen}"


async def test_error_bodies_of_the_pim_are_not_repeated(
    hostile: HostilePim, security_ca: CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with _client(hostile, security_ca) as client:
        with pytest.raises(AkeneoApiError) as html:
            await client.get_json("/api/rest/v1/categories")
        with pytest.raises(AkeneoApiError) as json_error:
            await client.get_json("/api/rest/v1/families")
    text = str(html.value)
    assert MARKER not in text and "<html" not in text, text[:400]
    assert "400 answer (text/html" in text and "bytes)" in text, text[:400]
    message = json_error.value.message  # Akeneo's own message: kept, bounded, one line
    assert message.startswith(MARKER) and len(message) <= 200
    assert "\n" not in message and "\x1b" not in message
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert "<html" not in logged and "fake log line" not in logged


async def test_the_reconcile_job_refuses_an_internal_pim(
    nats_server: NatsServer,
    tls_simulator: PimSimulator,
    security_ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    """The job a CronJob runs: without ``AKENEO_PIM_ALLOW_PRIVATE`` it never calls the PIM."""
    sim = tls_simulator
    creds = tmp_path / "pim"
    creds.mkdir()
    c = sim.credentials
    for name, value in (("clientId", c.client_id), ("clientSecret", c.client_secret),
                        ("username", c.username), ("password", c.password)):  # fmt: skip
        (creds / name).write_text(value.get_secret_value())
    (tmp_path / "ca.crt").write_bytes(security_ca.cert_pem)
    async with provisioned(nats_server.url, "pim-addresses") as conn:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AKENEO_")},
            "AKENEO_CONNECTION": conn.names.ref,
            "AKENEO_NATS_URL": nats_server.url,
            "AKENEO_PIM_URL": sim.url,
            "AKENEO_PIM_CREDENTIALS_DIR": str(creds),
            "AKENEO_PIM_CA_FILE": str(tmp_path / "ca.crt"),
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "akeneo_cli", "reconcile",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode != 0
    assert "refused" in err.decode(), err.decode()[-2000:]
    assert sim.stats.requests == 0
