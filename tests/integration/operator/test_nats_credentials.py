"""Per-connection NATS users issued by the operator, on the real control plane and a real
nats-server in operator mode (JWT auth): the ``<name>-nats`` Secret, its mounts, the
permissions the server enforces, renewal on the maintenance timer, garbage collection.
Then every place the operator writes is grepped for the secrets it was given or issued.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from akeneo_connector.names import ConnectionNames
from akeneo_connector.nats_auth import Role, inbox_prefix, permissions
from akeneo_connector.nats_jwt import decode, parse_creds
from akeneo_connector.signing_secrets import generate
from akeneo_operator.kubeclient import KubeClient
from akeneo_operator.natscreds import ROLES, creds_key
from akeneo_testing.ground.kube import KubeCluster
from akeneo_testing.ground.nats_auth import JwtNatsServer
from akeneo_testing.ground.processes import free_port
from tests.integration.operator.running import (
    API,
    OperatorProcess,
    OperatorSetup,
    admin_client,
    condition,
    connection,
    make_namespace,
    poll,
    secret,
)

pytestmark = pytest.mark.kube
NS = "tenant-natsauth"
DENIED = (TimeoutError, nats.errors.TimeoutError, nats.errors.NoRespondersError)


def _known(label: str) -> str:
    return f"{label}-{secrets.token_hex(10)}"


# Secret values the operator is given; none may appear in what it writes.
GIVEN = {
    "clientId": _known("client-id"),
    "clientSecret": _known("client-secret"),
    "username": _known("pim-user"),
    "password": _known("pim-password"),
    "eventsApiSecret": _known("events-api"),
    "eventPlatformSecrets": f"{_known('platform-1')}\n{_known('platform-2')}",
    "signingSecret": generate(),  # Standard Webhooks (whsec_), as the sink's default needs
    "dsn": f"postgresql://sink:{_known('dsn-password')}@db.example.com:5432/sink",
}


def tenant_secrets() -> list[dict[str, Any]]:
    g = GIVEN
    pim = ("clientId", "clientSecret", "username", "password")
    events = ("eventsApiSecret", "eventPlatformSecrets")
    return [
        secret(NS, "shop-pim", {k: g[k] for k in pim}),
        secret(NS, "shop-events", {k: g[k] for k in events}),
        secret(NS, "shop-sink", {"signingSecret": g["signingSecret"]}),
        secret(NS, "pg-dsn", {"dsn": g["dsn"]}),
        secret(NS, "half-pim", {"clientId": g["clientId"], "clientSecret": g["clientSecret"]}),
    ]


SHOP = {
    "pim": {"url": "https://pim.example.com", "credentialsSecret": "shop-pim"},
    "receiver": {"signatureSecret": "shop-events"},
    "worker": {
        "sink": {"webhook": {"url": "https://app.example.com/hook", "signingSecret": "shop-sink"}}
    },
}
PG = {
    "pim": {"url": "https://pim.example.com"},
    "receiver": {"signatureSecret": "shop-events"},
    "worker": {"sink": {"postgres": {"dsnSecret": "pg-dsn"}}},
}
BROKEN = {  # a precise failure condition and Events, from a Secret that lacks keys
    "pim": {"url": "https://pim.example.com", "credentialsSecret": "half-pim"},
    "receiver": {"signatureSecret": "shop-events"},
}


@pytest.fixture(scope="module")
def signing_key(jwt_nats_server: JwtNatsServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The account signing key seed, as the chart mounts it from the admin's Secret."""
    path = tmp_path_factory.mktemp("signing-key") / "seed"
    return jwt_nats_server.authority.write_signing_key(path)


@pytest.fixture(scope="module")
def operator_setup(
    jwt_nats_server: JwtNatsServer,
    signing_key: Path,
) -> OperatorSetup:
    # No operator credentials: it issues its own user with the signing key.
    return OperatorSetup(
        env=dict(
            AKENEO_PORT=str(free_port()),
            AKENEO_LOG_LEVEL="debug",
            AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
            AKENEO_OPERATOR_NATS_SIGNING_KEY_FILE=str(signing_key),
            AKENEO_OPERATOR_NATS_ACCOUNT=jwt_nats_server.authority.account.public,
            AKENEO_OPERATOR_NATS_CREDS_VALIDITY="90s",
            AKENEO_OPERATOR_NATS_CREDS_RENEW_BEFORE="70s",
        ),
        nats_url=jwt_nats_server.url,
    )


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster, operator: OperatorProcess) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    await make_namespace(c, NS, tenant_secrets())
    yield c
    for item in await c.list(API, "AkeneoConnection", NS):
        await c.delete(API, "AkeneoConnection", NS, item["metadata"]["name"])

    async def none_left() -> bool:
        return not await c.list(API, "AkeneoConnection", NS)

    await poll(none_left, what="connections finalized", operators=(operator,))
    await c.close()


async def ready(client: KubeClient, name: str) -> dict[str, Any] | None:
    body = await client.get(API, "AkeneoConnection", NS, name)
    return body if condition(body, "Ready").get("status") == "True" else None


def creds_of(nats_secret: dict[str, Any]) -> dict[Role, str]:
    return {r: base64.b64decode(nats_secret["data"][creds_key(r)]).decode() for r in ROLES}


async def as_role(
    server: JwtNatsServer, tmp: Path, names: ConnectionNames, creds: str
) -> tuple[Client, list[str]]:
    path = tmp / f"{names.name}-{secrets.token_hex(4)}.creds"
    path.write_text(creds)
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(
        server.url, user_credentials=str(path), inbox_prefix=inbox_prefix(names),
        allow_reconnect=False, error_cb=on_error,
    )  # fmt: skip
    return nc, errors


async def test_connection_gets_its_own_nats_users(operator, client, jwt_nats_server, tmp_path):
    created = await client.create(connection(NS, "shop", SHOP))
    await client.create(connection(NS, "pg", PG))
    body = await poll(
        lambda: ready(client, "shop"), timeout=120, what="shop Ready", operators=(operator,)
    )
    await poll(lambda: ready(client, "pg"), timeout=120, what="pg Ready", operators=(operator,))
    cond = condition(body, "NatsCredentialsReady")
    assert (cond["status"], cond["reason"]) == ("True", "CredentialsIssued"), cond
    assert "shop-nats" in cond["message"]
    isolated = condition(body, "NatsIsolated")  # issue 15, row 3: the isolated case
    assert (isolated["status"], isolated["reason"]) == ("True", "PerConnectionUsers"), isolated
    # StreamReady: the operator provisioned the stream with the user it issued itself
    assert condition(body, "StreamReady")["status"] == "True"

    nats_secret = await client.get("v1", "Secret", NS, "shop-nats")
    assert nats_secret is not None
    meta = nats_secret["metadata"]
    assert [(o["uid"], o["kind"]) for o in meta["ownerReferences"]] == [
        (created["metadata"]["uid"], "AkeneoConnection")
    ]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "akeneo-connector-operator"
    assert meta["labels"]["app.kubernetes.io/component"] == "nats"
    assert "akeneo.connectors.dev/build-hash" in meta["annotations"]
    names = ConnectionNames(NS, "shop")
    account = jwt_nats_server.authority.account.public
    for role, text in creds_of(nats_secret).items():
        token = decode(parse_creds(text).jwt)
        want = permissions(names, role)
        assert token.claims["iss"] == jwt_nats_server.authority.signing_key.public
        assert token.nats["issuer_account"] == account
        assert (token.nats["pub"]["allow"], token.nats["sub"]["allow"]) == (
            list(want.publish),
            list(want.subscribe),
        ), role

    for kind, name, key in (
        ("Deployment", "shop-receiver", "receiver.creds"),
        ("Deployment", "shop-worker", "worker.creds"),
    ):
        dep = await client.get("apps/v1", kind, NS, name)
        assert dep is not None
        pod = dep["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "nats"]
        assert volume["secret"]["secretName"] == "shop-nats"
        assert volume["secret"]["items"] == [{"key": key, "path": "nats.creds"}]
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        assert env["AKENEO_NATS_CREDS_FILE"] == "/etc/akeneo/nats/nats.creds"
    cron = await client.get("batch/v1", "CronJob", NS, "shop-reconcile")
    assert cron is not None
    volumes = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
    assert {"key": "reconcile.creds", "path": "nats.creds"} in next(
        v["secret"]["items"] for v in volumes if v["name"] == "nats"
    )


async def test_issued_creds_reach_exactly_their_own_connection(
    operator, client, jwt_nats_server, tmp_path
):
    shop, pg = ConnectionNames(NS, "shop"), ConnectionNames(NS, "pg")
    nats_secret = await client.get("v1", "Secret", NS, "shop-nats")
    assert nats_secret is not None
    creds = creds_of(nats_secret)
    receiver, errors_r = await as_role(jwt_nats_server, tmp_path, shop, creds[Role.RECEIVER])
    worker, errors_w = await as_role(jwt_nats_server, tmp_path, shop, creds[Role.WORKER])
    try:
        ack = await receiver.jetstream().publish(
            shop.event_subject("product"), b"{}", headers={"Nats-Msg-Id": "natsauth-1"}
        )
        assert ack.stream == shop.stream
        kv = await worker.jetstream().key_value(shop.guard_bucket)
        await kv.put("guard.product.k", b"1")
        await receiver.flush(timeout=5)
        await worker.flush(timeout=5)
        assert errors_r == errors_w == []
        for nc in (receiver, worker):
            js = nc.jetstream(timeout=0.5)
            outcomes = await asyncio.gather(
                js.publish(pg.event_subject("product"), b"forged"),
                js.stream_info(pg.stream),
                js.key_value(pg.guard_bucket),
                js.add_consumer(pg.stream, durable_name="stolen"),
                return_exceptions=True,
            )
            assert all(isinstance(o, DENIED) for o in outcomes), outcomes
    finally:
        await receiver.close()
        await worker.close()


async def test_creds_are_renewed_on_the_timer(operator, client):
    first = await client.get("v1", "Secret", NS, "shop-nats")
    assert first is not None
    before = decode(parse_creds(creds_of(first)[Role.WORKER]).jwt)

    async def renewed() -> dict[str, Any] | None:
        now = await client.get("v1", "Secret", NS, "shop-nats")
        if now is None:
            return None
        token = decode(parse_creds(creds_of(now)[Role.WORKER]).jwt)
        return now if token.claims["jti"] != before.claims["jti"] else None

    # 90s validity, renewed 70s before expiry: about 20s after issue, by a maintenance tick
    after = await poll(renewed, timeout=60, what="creds renewed", operators=(operator,))
    token = decode(parse_creds(creds_of(after)[Role.WORKER]).jwt)
    assert token.expires is not None and before.expires is not None
    assert token.expires > before.expires
    assert (
        parse_creds(creds_of(after)[Role.WORKER]).seed
        != parse_creds(creds_of(first)[Role.WORKER]).seed
    )
    assert after["metadata"]["uid"] == first["metadata"]["uid"]  # updated in place
    # between renewals the maintenance ticks (1s) leave the Secret alone
    await asyncio.sleep(4)
    still = await client.get("v1", "Secret", NS, "shop-nats")
    assert still is not None
    assert still["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]
    events = await client.list("v1", "Event", NS)
    reasons = {e["reason"] for e in events if e["involvedObject"].get("name") == "shop"}
    assert {"NatsCredentialsRenewal", "NatsCredentialsIssued"} <= reasons


async def test_deleted_secret_is_reissued(operator, client):
    old = await client.get("v1", "Secret", NS, "pg-nats")
    assert old is not None
    await client.delete("v1", "Secret", NS, "pg-nats")

    async def back() -> bool:
        now = await client.get("v1", "Secret", NS, "pg-nats")
        return bool(now and now["metadata"]["uid"] != old["metadata"]["uid"])

    await poll(back, what="pg-nats reissued", operators=(operator,))


async def test_nothing_the_operator_writes_holds_a_secret(
    operator, client, jwt_nats_server, signing_key
):
    """Logs, status, Events and metrics after a run with known secret values."""
    await client.create(connection(NS, "broken", BROKEN))

    async def key_missing() -> bool:
        body = await client.get(API, "AkeneoConnection", NS, "broken")
        return condition(body, "Ready").get("reason") == "SecretKeyMissing"

    await poll(key_missing, what="broken: SecretKeyMissing", operators=(operator,))
    known = [v for value in GIVEN.values() for v in value.split("\n")]
    known.append(signing_key.read_text().strip())  # the account signing key seed
    for name in ("shop-nats", "pg-nats"):
        issued = await client.get("v1", "Secret", NS, name)
        assert issued is not None
        for text in creds_of(issued).values():
            creds = parse_creds(text)
            known += [creds.seed.decode(), creds.jwt]
    assert all(len(k) >= 20 for k in known)

    texts: dict[str, str] = {"operator log": operator.log}
    for item in await client.list(API, "AkeneoConnection", NS):
        texts[f"status of {item['metadata']['name']}"] = json.dumps(item.get("status"))
    texts["events"] = json.dumps(await client.list("v1", "Event", NS))
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{operator.env['AKENEO_PORT']}/metrics"
        async with http.get(url) as resp:
            texts["metrics"] = await resp.text()
    assert "akeneo_operator_reconciles_total" in texts["metrics"]
    assert "SecretKeyMissing" in texts["events"] and "NatsCredentialsIssued" in texts["events"]
    assert "Issued NATS users of" in texts["operator log"]  # debug level: the most it writes
    leaks = [(where, k[:12]) for where, text in texts.items() for k in known if k in text]
    assert leaks == []
    assert "Traceback" not in operator.log


async def test_deleting_the_connection_removes_its_nats_secret(operator, client):
    assert await client.get("v1", "Secret", NS, "shop-nats") is not None
    await client.delete(API, "AkeneoConnection", NS, "shop")

    async def gone() -> bool:
        return await client.get("v1", "Secret", NS, "shop-nats") is None

    await poll(gone, timeout=90, what="shop-nats garbage-collected", operators=(operator,))
