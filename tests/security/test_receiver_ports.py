"""Issue 15, row 6: the internet reaches the event URLs only.

A real receiver process (real TLS, the session's nats-server): its public port answers the
three event paths and 404 for everything else, ``/metrics`` and the probes included; those
are served in plain HTTP on the admin port, which no Service or Ingress the operator builds
for the PIM exposes. Readiness is cached: a flood of ``/readyz`` costs the NATS server at
most one ``STREAM.INFO`` per cache period, not one per hit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import nats
import pytest

from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import AkeneoConnectionSpec
from akeneo_operator.children import build_children
from akeneo_operator.pods import ADMIN_PORT, RECEIVER_PORT, BuildInput
from akeneo_operator.settings import OperatorSettings
from akeneo_pim.paths import PATHS
from akeneo_receiver.app import READINESS_CACHE_SECONDS
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import free_port
from akeneo_testing.ground.tls import CertificateAuthority
from tests.security.conftest import ReceiverProcess, unique_names

FLOOD = 200


@pytest.fixture(scope="module")
def receiver(
    nats_server: NatsServer,
    security_ca: CertificateAuthority,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ReceiverProcess]:
    proc = ReceiverProcess(
        unique_names(),
        security_ca,
        tmp_path_factory.mktemp("ports"),
        nats_server.url,
        extra_args=("--ensure-stream",),
        admin_port=free_port(),
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_public_port_serves_only_the_event_urls(receiver: ReceiverProcess) -> None:
    with receiver.client() as http:
        for path in ("/metrics", "/readyz", "/healthz", "/", "/admin", "/events/../metrics"):
            assert http.get(path).status_code == 404, path
        for path in PATHS:
            # a GET on an event URL is not a 404 (the Event Platform suspends on 404s)
            assert http.get(path).status_code == 405, path
            assert http.post(path, content=b"{}").status_code == 401, path


def test_admin_port_serves_probes_and_metrics_in_plain_http(receiver: ReceiverProcess) -> None:
    base = f"http://127.0.0.1:{receiver.admin_port}"
    with httpx.Client(base_url=base, timeout=5) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert "akeneo_receiver_" in metrics.text
        for path in PATHS:
            assert http.post(path, content=b"{}").status_code in (404, 405), path


async def test_readiness_is_cached_not_a_stream_info_per_hit(
    receiver: ReceiverProcess, nats_server: NatsServer
) -> None:
    names: ConnectionNames = receiver.names
    nc = await nats.connect(nats_server.url)
    seen: list[float] = []

    async def count(_msg: object) -> None:
        seen.append(time.monotonic())

    try:
        await nc.subscribe(f"$JS.API.STREAM.INFO.{names.stream}", cb=count)
        await nc.flush()
        started = time.monotonic()
        answers: list[httpx.Response] = []
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{receiver.admin_port}", timeout=5
        ) as http:
            for burst in range(2):  # two floods, a cache period apart
                if burst:
                    await asyncio.sleep(READINESS_CACHE_SECONDS + 0.5)
                answers += await asyncio.gather(*(http.get("/readyz") for _ in range(FLOOD)))
        elapsed = time.monotonic() - started
        await nc.flush()
        await asyncio.sleep(0.2)
    finally:
        await nc.close()
    assert {a.status_code for a in answers} == {200}
    # looked up again once the cache expired (readiness follows the stream), but at most
    # once per cache period, plus the one in flight: never once per hit
    allowed = int(elapsed // READINESS_CACHE_SECONDS) + 2
    assert 1 <= len(seen) <= allowed, (
        f"{len(seen)} STREAM.INFO, {2 * FLOOD} /readyz, {elapsed:.1f}s"
    )


def test_no_service_or_ingress_exposes_the_admin_port() -> None:
    spec = AkeneoConnectionSpec.model_validate(
        {
            "pim": {"url": "https://pim.example.com"},
            "receiver": {"signatureSecret": "s", "host": "shop.example.com"},
        }
    )
    inp = BuildInput(ConnectionNames("t", "acme"), spec, OperatorSettings(), "acme-tls")
    children = {(m["kind"], m["metadata"]["name"]): m for m in build_children(inp)}
    service = children["Service", "acme-receiver"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["https"]
    (rule,) = children["Ingress", "acme"]["spec"]["rules"]
    backends = {p["backend"]["service"]["port"]["number"] for p in rule["http"]["paths"]}
    assert backends == {service["spec"]["ports"][0]["port"]}
    pod = children["Deployment", "acme-receiver"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"https": RECEIVER_PORT, "admin": ADMIN_PORT}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == "admin", probe
        assert container[probe]["httpGet"]["scheme"] == "HTTP", probe
    policy = children["NetworkPolicy", "acme-receiver"]
    opened = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert opened == {RECEIVER_PORT}
