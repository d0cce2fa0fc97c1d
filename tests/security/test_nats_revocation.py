"""Issue 15 row 12: NATS users of a deleted or re-created connection stop working, in bounded
time, on a nats-server in operator (JWT) mode with the operator as a real process.

The operator holds an account signing key only: it cannot put ``revocations`` into the
account JWT (the NATS operator's key signs that, the system account pushes it). So user JWTs
are short-lived and renewed (``natscreds``): what a leaked creds file is worth ends with its
validity. Here the validity is 60 s; the default (2 h) is checked against the same rule.

- A connection deleted with its Secret orphaned (``kubectl delete --cascade=orphan``), then
  created again under the same name, gets new users: the orphaned Secret's are never reused.
- The old users are refused within the validity, and nats-server cuts their open
  connections; the new ones work. Same after an ordinary (background) deletion.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
import yaml
from nats.aio.client import Client

from akeneo_connector.durations import parse_duration
from akeneo_connector.names import ConnectionNames
from akeneo_connector.nats_auth import Role, inbox_prefix
from akeneo_connector.nats_jwt import decode, parse_creds
from akeneo_operator.kubeclient import KubeClient, resource_path
from akeneo_operator.natscreds import creds_key
from akeneo_operator.settings import OperatorSettings
from akeneo_testing.ground.kube import KubeCluster
from akeneo_testing.ground.nats_auth import JwtNatsServer
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
    tenant_secrets,
)

pytestmark = pytest.mark.kube
NS = "tenant-revoke"
VALIDITY = 60.0  # seconds, this test's operator setting (re-creating takes well under 45 s)
MARGIN = 25.0  # kubelet-free here, but a loaded 2-core machine: the bound is VALIDITY + this
CHART_VALUES = Path(__file__).parents[2] / "charts/akeneo-connector-operator/values.yaml"


def test_default_validity_bounds_a_leaked_creds_file() -> None:
    """What the rest of this file proves with 20 s holds for the defaults: a deleted or
    reissued connection's users work at most 2 h (not the 30 days they used to)."""
    bound = timedelta(hours=2)
    settings = OperatorSettings(priority=1)
    assert settings.nats_creds_validity_delta <= bound
    signing = yaml.safe_load(CHART_VALUES.read_text())["nats"]["accountSigningKey"]
    assert parse_duration(signing["credsValidity"]) <= bound
    # renewal leaves room for an operator outage, and happens more than once per validity
    assert parse_duration(signing["credsRenewBefore"]) >= bound / 2


@pytest.fixture(scope="module")
def signing_key(jwt_nats_server: JwtNatsServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("revoke-signing-key") / "seed"
    return jwt_nats_server.authority.write_signing_key(path)


@pytest.fixture(scope="module")
def operator_setup(
    jwt_nats_server: JwtNatsServer,
    signing_key: Path,
) -> OperatorSetup:
    return OperatorSetup(
        env=dict(
            AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
            AKENEO_OPERATOR_NATS_SIGNING_KEY_FILE=str(signing_key),
            AKENEO_OPERATOR_NATS_ACCOUNT=jwt_nats_server.authority.account.public,
            AKENEO_OPERATOR_NATS_CREDS_VALIDITY=f"{VALIDITY:.0f}s",
            AKENEO_OPERATOR_NATS_CREDS_RENEW_BEFORE="15s",
        ),
        nats_url=jwt_nats_server.url,
    )


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster, operator: OperatorProcess) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    await make_namespace(c, NS, tenant_secrets(NS, "acme"))
    yield c
    for item in await c.list(API, "AkeneoConnection", NS):
        await c.delete(API, "AkeneoConnection", NS, item["metadata"]["name"])

    async def none_left() -> bool:
        return not await c.list(API, "AkeneoConnection", NS)

    await poll(none_left, what="connections finalized", operators=(operator,))
    await c.close()


async def issued(client: KubeClient, operator: OperatorProcess, name: str) -> tuple[str, str]:
    """(uid of the connection, its worker creds file) once its NATS users are issued."""

    async def ready() -> tuple[str, str] | None:
        body = await client.get(API, "AkeneoConnection", NS, name)
        if condition(body, "NatsCredentialsReady").get("status") != "True":
            return None
        uid = body["metadata"]["uid"] if body else ""
        found = await client.get("v1", "Secret", NS, f"{name}-nats")
        owners = [o["uid"] for o in (found or {}).get("metadata", {}).get("ownerReferences", [])]
        if found is None or uid not in owners:
            return None
        return uid, base64.b64decode(found["data"][creds_key(Role.WORKER)]).decode()

    return await poll(ready, timeout=90, what=f"{name}: NATS users", operators=(operator,))


async def current_creds(client: KubeClient, name: str) -> str:
    """The worker creds file the connection's Secret holds now."""
    found = await client.get("v1", "Secret", NS, f"{name}-nats")
    assert found is not None, f"{name}: the NATS Secret is gone"
    return base64.b64decode(found["data"][creds_key(Role.WORKER)]).decode()


def user_of(creds: str) -> str:
    return str(decode(parse_creds(creds).jwt).claims["sub"])


async def connect(server: JwtNatsServer, tmp: Path, names: ConnectionNames, creds: str) -> Client:
    path = tmp / f"{secrets.token_hex(4)}.creds"
    path.write_text(creds)
    return await nats.connect(
        server.url, user_credentials=str(path), inbox_prefix=inbox_prefix(names),
        allow_reconnect=False, connect_timeout=3,
    )  # fmt: skip


async def refused_within(
    server: JwtNatsServer, tmp: Path, names: ConnectionNames, creds: str, deadline: float
) -> float:
    """Seconds until connecting with ``creds`` is refused; fails after ``deadline``."""
    started = time.monotonic()
    while time.monotonic() < deadline:
        try:
            nc = await connect(server, tmp, names, creds)
        except nats.errors.Error as exc:
            assert "Authorization Violation" in str(exc) or "Expired" in str(exc), exc
            return time.monotonic() - started
        await nc.close()
        await asyncio.sleep(0.5)
    raise AssertionError("the old NATS user still connects after its validity")


async def delete(client: KubeClient, name: str, policy: str) -> None:
    path = resource_path(API, "AkeneoConnection", NS, name)
    options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
    await client.request("DELETE", path, body={**options, "propagationPolicy": policy})

    async def gone() -> bool:
        return await client.get(API, "AkeneoConnection", NS, name) is None

    await poll(gone, timeout=60, what=f"{name} deleted")


async def test_a_recreated_connection_never_inherits_the_old_users(
    operator: OperatorProcess, client: KubeClient, jwt_nats_server: JwtNatsServer, tmp_path: Path
) -> None:
    names = ConnectionNames(NS, "shop")
    await client.create(connection(NS, "shop", basic_spec("acme")))
    first_uid, old = await issued(client, operator, "shop")
    held = await connect(jwt_nats_server, tmp_path, names, old)  # a leaked file, in use
    issued_at = time.monotonic()

    # (a delete with --cascade=orphan leaves children a re-created connection of the same
    # name refuses to take over, ChildNameConflict: known gap between rows 10 and 12)
    await delete(client, "shop", "Background")
    await client.create(connection(NS, "shop", basic_spec("acme")))
    second_uid, new = await issued(client, operator, "shop")
    recreated = time.monotonic() - issued_at
    assert second_uid != first_uid
    assert recreated < VALIDITY - 15, f"re-creation took {recreated:.0f} s: the test proves nothing"
    assert user_of(new) != user_of(old), "the re-created connection got the deleted one's users"

    bound = issued_at + VALIDITY + MARGIN
    took = await refused_within(jwt_nats_server, tmp_path, names, old, bound)
    cut = time.monotonic() + 10
    while held.is_connected and time.monotonic() < cut:  # noqa: ASYNC110  (a client's state)
        await asyncio.sleep(0.2)
    assert not held.is_connected, "nats-server kept the old user's connection open"
    # the new users work: with the Secret as the operator keeps it now (renewed while the old
    # users ran out, so the file read at re-creation may itself have expired by now)
    current = await current_creds(client, "shop")
    assert user_of(current) != user_of(old), "the renewed creds are the deleted one's users"
    fresh = await connect(jwt_nats_server, tmp_path, names, current)
    await fresh.close()
    await held.close()
    print(f"re-created in {recreated:.1f} s; old user refused {recreated + took:.1f} s after "
          f"it was issued (validity {VALIDITY:.0f} s)")  # fmt: skip


async def test_a_deleted_connections_users_stop_working(
    operator: OperatorProcess, client: KubeClient, jwt_nats_server: JwtNatsServer, tmp_path: Path
) -> None:
    names = ConnectionNames(NS, "gone")
    await client.create(connection(NS, "gone", basic_spec("acme")))
    _uid, old = await issued(client, operator, "gone")
    issued_at = time.monotonic()
    await delete(client, "gone", "Background")
    bound = issued_at + VALIDITY + MARGIN
    await refused_within(jwt_nats_server, tmp_path, names, old, bound)
