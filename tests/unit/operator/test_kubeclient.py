"""The generic REST client: paths, credentials from kopf's login, errors, re-login on 401."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

from aiohttp import web

from akeneo_operator.kubeclient import (
    ApiError,
    Credentials,
    KubeClient,
    credentials_from,
    resource_path,
)
from akeneo_testing.ground.processes import free_port


def test_resource_paths():
    assert resource_path("v1", "Secret", "ns", "a") == "/api/v1/namespaces/ns/secrets/a"
    assert resource_path("apps/v1", "Deployment", "ns") == "/apis/apps/v1/namespaces/ns/deployments"
    assert resource_path("v1", "Namespace", None, "x") == "/api/v1/namespaces/x"
    assert (
        resource_path("akeneo.connectors.dev/v1alpha1", "AkeneoConnection", "t", "acme")
        == "/apis/akeneo.connectors.dev/v1alpha1/namespaces/t/akeneoconnections/acme"
    )


def test_credentials_from_kubeconfig_data():
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    info = SimpleNamespace(
        server="https://127.0.0.1:6443/",
        token=None,
        ca_path=None,
        ca_data=base64.b64encode(pem).decode(),
        insecure=None,
        certificate_path=None,
        private_key_path=None,
        certificate_data=base64.b64encode(b"CERT").decode(),
        private_key_data=base64.b64encode(b"KEY").decode(),
    )
    creds = credentials_from(info)
    assert creds.server == "https://127.0.0.1:6443"
    assert creds.ca_data == pem
    assert creds.cert_path and Path(creds.cert_path).read_bytes() == b"CERT"
    assert creds.key_path and Path(creds.key_path).read_bytes() == b"KEY"
    assert Path(creds.key_path).stat().st_mode & 0o077 == 0


def test_kind_missing_is_told_apart_from_object_missing():
    assert not ApiError(404, "NotFound", "x").kind_missing
    assert ApiError(404, "Unknown", "404 page not found").kind_missing


async def test_relogin_on_401_and_status_errors():
    async def handler(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer fresh":
            return web.json_response({"kind": "Status", "reason": "Unauthorized"}, status=401)
        if request.path.endswith("/missing"):
            body = {"kind": "Status", "reason": "NotFound", "message": "secrets missing not found"}
            return web.json_response(body, status=404)
        return web.json_response({"metadata": {"name": request.path.rsplit("/", 1)[-1]}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    server = f"http://127.0.0.1:{port}"
    refreshed = []

    def refresh() -> Credentials:
        refreshed.append(True)
        return Credentials(server=server, token="fresh")

    client = KubeClient(Credentials(server=server, token="stale"), "tests", refresh=refresh)
    try:
        got = await client.get("v1", "Secret", "ns", "present")
        assert got == {"metadata": {"name": "present"}}
        assert refreshed == [True]
        assert await client.get("v1", "Secret", "ns", "missing") is None
        assert not await client.delete("v1", "Secret", "ns", "missing")
        assert json.loads(json.dumps(await client.apply(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}}
        )))["metadata"]["name"] == "s"  # fmt: skip
    finally:
        await client.close()
        await runner.cleanup()
