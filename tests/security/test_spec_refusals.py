"""Issue 15 rows 1 and 8, the operator's side: a spec pointing inside the platform builds
nothing, on the real API server with the operator as a process (default platform settings).

- ``pim.url`` on a private, loopback, link-local or metadata literal (any form), or asking
  for ``allowPrivateAddresses`` the platform does not grant: ``Ready=False``,
  ``PrivateAddressesNotAllowed``, no worker, no reconcile job.
- The postgres DSN (read from the tenant's Secret, never repeated): a Unix socket, a
  parameter that reads local files or bypasses the host check (``DsnNotAllowed``), a private
  literal host (``PrivateAddressesNotAllowed``). The resolved address is checked by the
  worker at connect time (``test_postgres_dsn``, ``test_address_ranges``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from akeneo_operator.kubeclient import KubeClient
from akeneo_testing.ground.kube import KubeCluster
from tests.integration.operator.running import (
    API,
    OperatorProcess,
    OperatorSetup,
    admin_client,
    basic_spec,
    condition,
    connection,
    make_namespace,
    poll,
    secret,
    tenant_secrets,
)

pytestmark = pytest.mark.kube
NS = "tenant-inward"
PASSWORD = "dsn-pw-5b0d-never-shown"
DSNS = {
    "pg-socket": f"host=/var/run/postgresql user=postgres password={PASSWORD}",
    "pg-sslkey": f"postgresql://app:{PASSWORD}@db.example.com/app?sslkey=/etc/akeneo/nats/x",
    "pg-hostaddr": f"host=db.example.com hostaddr=10.0.0.5 password={PASSWORD}",
    "pg-loopback": f"postgresql://app:{PASSWORD}@127.0.0.1:5432/app",
    "pg-public": f"postgresql://app:{PASSWORD}@db.example.com:5432/app?sslmode=verify-full",
}


@pytest.fixture(scope="module")
def operator_setup() -> OperatorSetup:
    return OperatorSetup(
        env=dict(
            AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
            AKENEO_LOG_LEVEL="debug",
        ),
    )


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster, operator: OperatorProcess) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    dsn_secrets = [secret(NS, name, {"dsn": dsn}) for name, dsn in DSNS.items()]
    await make_namespace(c, NS, [*tenant_secrets(NS, "acme"), *dsn_secrets])
    yield c
    for item in await c.list(API, "AkeneoConnection", NS):
        await c.delete(API, "AkeneoConnection", NS, item["metadata"]["name"])

    async def none_left() -> bool:
        return not await c.list(API, "AkeneoConnection", NS)

    await poll(none_left, what="connections finalized", operators=(operator,))
    await c.close()


async def refused(
    client: KubeClient, operator: OperatorProcess, name: str, spec: dict[str, Any], reason: str
) -> str:
    """Create the connection; wait for Ready=False with ``reason``; nothing built."""
    await client.create(connection(NS, name, spec))

    async def settled() -> dict[str, Any] | None:
        body = await client.get(API, "AkeneoConnection", NS, name)
        cond = condition(body, "Ready")
        built = await client.get("apps/v1", "Deployment", NS, f"{name}-worker")
        return cond if cond.get("reason") == reason or built is not None else None

    cond = await poll(settled, timeout=60, what=f"{name}: refused", operators=(operator,))
    assert (cond["status"], cond["reason"]) == ("False", reason), cond
    for kind, child in (("Deployment", f"{name}-worker"), ("Deployment", f"{name}-receiver")):
        assert await client.get("apps/v1", kind, NS, child) is None, f"{child} was built"
    assert await client.get("batch/v1", "CronJob", NS, f"{name}-reconcile") is None
    return str(cond["message"])


def pim(url: str, **extra: Any) -> dict[str, Any]:
    spec = basic_spec("acme")
    spec["pim"] = {**spec["pim"], "url": url, **extra}
    return spec


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("pim-metadata", "http://169.254.169.254/latest/meta-data"),
        ("pim-loopback", "https://127.0.0.1:8443"),
        ("pim-localhost", "https://localhost"),
        ("pim-mapped", "https://[::ffff:10.0.0.1]"),
        ("pim-sixtofour", "https://[2002:a9fe:a9fe::1]"),
        ("pim-cluster-ip", "https://10.96.0.1"),
    ],
)
async def test_a_pim_url_inside_the_platform_is_refused(operator, client, name, url) -> None:
    message = await refused(client, operator, name, pim(url), "PrivateAddressesNotAllowed")
    assert "spec.pim.url" in message and "allowPrivatePim" in message


async def test_a_tenant_cannot_grant_itself_a_private_pim(operator, client) -> None:
    spec = pim("https://pim.example.com", allowPrivateAddresses=True)
    message = await refused(client, operator, "pim-asks", spec, "PrivateAddressesNotAllowed")
    assert "spec.pim.allowPrivateAddresses" in message


def postgres(dsn_secret: str, **extra: Any) -> dict[str, Any]:
    spec = basic_spec("acme")
    spec["worker"] = {"sink": {"postgres": {"dsnSecret": dsn_secret, **extra}}}
    return spec


@pytest.mark.parametrize(
    ("name", "reason", "said"),
    [
        ("pg-socket", "DsnNotAllowed", "Unix sockets are not allowed"),
        ("pg-sslkey", "DsnNotAllowed", "parameter sslkey is not allowed"),
        ("pg-hostaddr", "DsnNotAllowed", "parameter hostaddr is not allowed"),
        ("pg-loopback", "PrivateAddressesNotAllowed", "host refused"),
    ],
)
async def test_a_dsn_reaching_inside_the_platform_is_refused(
    operator, client, name, reason, said
) -> None:
    message = await refused(client, operator, name, postgres(name), reason)
    assert f"Secret {name} key dsn" in message and said in message, message


async def test_a_tenant_cannot_grant_itself_a_private_database(operator, client) -> None:
    spec = postgres("pg-public", allowPrivateAddresses=True)
    message = await refused(client, operator, "pg-asks", spec, "PrivateAddressesNotAllowed")
    assert "spec.worker.sink.postgres.allowPrivateAddresses" in message


async def test_a_public_dsn_builds_and_no_dsn_is_ever_repeated(
    operator: OperatorProcess, client: KubeClient
) -> None:
    await client.create(connection(NS, "pg-ok", postgres("pg-public")))

    async def worker() -> dict[str, Any] | None:
        found: dict[str, Any] | None = await client.get("apps/v1", "Deployment", NS, "pg-ok-worker")
        return found

    await poll(worker, timeout=90, what="pg-ok worker built", operators=(operator,))
    pod = (await worker() or {})["spec"]["template"]["spec"]
    env = {e["name"] for e in pod["containers"][0]["env"]}
    assert "AKENEO_POSTGRES_ALLOW_PRIVATE" not in env
    texts = {
        "operator log": operator.log,
        "connections": json.dumps(await client.list(API, "AkeneoConnection", NS)),
        "events": json.dumps(await client.list("v1", "Event", NS)),
    }
    for where, text in texts.items():
        assert PASSWORD not in text, f"the DSN's password is in the {where}"
