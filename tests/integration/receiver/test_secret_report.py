"""Each receiver reports the fingerprints of the Event Platform secrets it loaded, in the
connection's bucket, so that the operator's rotation promotes a new secret only once every
receiver accepts it (``akeneo_connector.secret_report``). Real receiver, real nats-server,
the secret files swapped the way a Secret volume update swaps them."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import replace
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError

from akeneo_connector.jetstream import ensure_all
from akeneo_connector.nats_auth import (
    NatsUser,
    Permissions,
    Role,
    inbox_prefix,
    render_authorization,
    tenant_users,
    user_name,
)
from akeneo_connector.secret_report import SecretReport, fingerprint, report_key
from akeneo_connector.spec import StreamSpec
from akeneo_pim.signatures import event_platform_headers
from akeneo_receiver.app import Receiver
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_testing.payloads import cloud_event
from tests.integration.receiver.conftest import (
    EVENT_PLATFORM_SECRETS,
    NOTIFICATION_SECRET,
    StartReceiver,
    make_config,
    poll,
    write_files,
)


def _swap(path: Path, data: bytes) -> None:
    """Replace a file atomically, as a Secret volume update does."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


async def _report(nc: Client, bucket: str, pod: str) -> SecretReport | None:
    try:  # the bucket is created just after the stream the receiver's readiness waits for
        kv = await nc.jetstream().key_value(bucket)
        entry = await kv.get(report_key(pod))
    except NatsError:
        return None
    return SecretReport.model_validate_json(entry.value or b"")


async def test_a_reloaded_secret_file_is_reported_by_fingerprint(
    start_receiver: StartReceiver,
) -> None:
    r = await start_receiver(pod_name="receiver-7d4b9-x2x", secret_report_interval=60.0)
    bucket = r.config.names.guard_bucket
    first = await _wait_report(r.nc, bucket, "receiver-7d4b9-x2x", EVENT_PLATFORM_SECRETS)
    assert first.notification == (fingerprint(NOTIFICATION_SECRET),)
    raw = (await (await r.nc.jetstream().key_value(bucket)).get(report_key(first.pod))).value
    assert raw is not None
    for secret in (*EVENT_PLATFORM_SECRETS, NOTIFICATION_SECRET):
        assert secret.encode() not in raw

    new = secrets.token_urlsafe(32)
    _swap(r.files / "eventPlatformSecrets", f"{EVENT_PLATFORM_SECRETS[0]}\n{new}\n".encode())
    # reported as soon as loaded (the interval is 60 s): the operator waits for no timer
    after = await _wait_report(r.nc, bucket, first.pod, (EVENT_PLATFORM_SECRETS[0], new))
    assert new.encode() not in after.to_bytes()
    # what the report says is what the receiver does: the new secret is accepted
    body = json.dumps(cloud_event("u-1")).encode()
    status, _ = await r.post(body, event_platform_headers(new, body), "/event-platform")
    assert status == 200


async def _wait_report(
    nc: Client, bucket: str, pod: str, expected: tuple[str, ...], timeout: float = 10
) -> SecretReport:
    want = tuple(fingerprint(s) for s in expected)
    seen: list[SecretReport] = []

    async def reported() -> bool:
        got = await _report(nc, bucket, pod)
        if got is not None:
            seen[:] = [got]
        return got is not None and got.event_platform == want

    await poll(reported, timeout=timeout, what=f"report of {want}")
    return seen[0]


async def test_the_receiver_reports_on_its_own_tenant_credentials_only(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    """With nothing but the receiver role's NATS user: the report is stored, and that user
    may write nothing else in the bucket (no guard entry, no worker stats)."""
    files = tmp_path / "files"
    write_files(files, ca)
    config = make_config(files, "nats://unused", ensure_stream=False, pod_name="receiver-0")
    names = config.names
    passwords = {role: secrets.token_hex(12) for role in Role}
    admin = NatsUser("admin", secrets.token_hex(16), Permissions((">",), (">",)))
    (tmp_path / "nats").mkdir()
    server = NatsServer(
        tmp_path / "nats", config=render_authorization([admin, *tenant_users(names, passwords)])
    ).start()
    password_file = tmp_path / "receiver.pw"
    password_file.write_text(passwords[Role.RECEIVER] + "\n")
    try:
        nc = await nats.connect(server.url, user="admin", password=admin.password)
        await ensure_all(nc.jetstream(), names, StreamSpec())
        config = replace(
            config,
            nats_url=server.url,
            nats_user=user_name(names, Role.RECEIVER),
            nats_password_file=password_file,
        )
        receiver = Receiver(config)
        await receiver.start()
        try:
            await _wait_report(nc, names.guard_bucket, "receiver-0", EVENT_PLATFORM_SECRETS)
        finally:
            await receiver.stop()
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        as_receiver = await nats.connect(
            server.url,
            user=user_name(names, Role.RECEIVER),
            password=passwords[Role.RECEIVER],
            inbox_prefix=inbox_prefix(names),
            error_cb=on_error,
            allow_reconnect=False,
        )
        try:
            for key in ("guard.product.x", "stats.worker.x", "reconcile.lock"):
                with pytest.raises(NatsError):
                    await as_receiver.jetstream().publish(
                        f"$KV.{names.guard_bucket}.{key}", b"{}", timeout=1
                    )
        finally:
            await as_receiver.close()
        await nc.close()
    finally:
        server.stop()
