"""A small generic Kubernetes REST client (aiohttp) for manifests held as dicts.

kopf watches and patches the AkeneoConnections itself; this client creates and patches the
children with server-side apply. It reuses kopf's ``ConnectionInfo`` so both talk to the
API server with the same credentials.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

Manifest = dict[str, Any]

PLURALS: dict[str, str] = {
    "ServiceAccount": "serviceaccounts",
    "Service": "services",
    "Secret": "secrets",
    "Event": "events",
    "Namespace": "namespaces",
    "Deployment": "deployments",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "NetworkPolicy": "networkpolicies",
    "Ingress": "ingresses",
    "CronJob": "cronjobs",
    "Job": "jobs",
    "Pod": "pods",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "Certificate": "certificates",
    "ScaledObject": "scaledobjects",
    "AkeneoConnection": "akeneoconnections",
    "CustomResourceDefinition": "customresourcedefinitions",
    "KopfPeering": "kopfpeerings",
    "ClusterKopfPeering": "clusterkopfpeerings",
}
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterKopfPeering"}


class ApiError(RuntimeError):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def kind_missing(self) -> bool:
        """404 for the resource type itself (e.g. cert-manager's CRD is not installed)."""
        return self.status == 404 and self.reason != "NotFound"


@dataclass(frozen=True)
class Credentials:
    server: str
    token: str | None = None
    ca_path: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    cert_path: str | None = None
    key_path: str | None = None


def credentials_from(info: Any) -> Credentials:
    """From a ``kopf.ConnectionInfo`` (kubeconfig or service account login)."""
    cert_path = str(info.certificate_path) if info.certificate_path else None
    key_path = str(info.private_key_path) if info.private_key_path else None
    if info.certificate_data and info.private_key_data:
        workdir = Path(tempfile.mkdtemp(prefix="akeneo-operator-"))
        (workdir / "tls.crt").write_bytes(_b64(info.certificate_data))
        key_file = workdir / "tls.key"
        key_file.touch(mode=0o600)
        key_file.write_bytes(_b64(info.private_key_data))
        cert_path, key_path = str(workdir / "tls.crt"), str(key_file)
    return Credentials(
        server=info.server.rstrip("/"),
        token=info.token,
        ca_path=str(info.ca_path) if info.ca_path else None,
        ca_data=_b64(info.ca_data) if info.ca_data else None,
        insecure=bool(info.insecure),
        cert_path=cert_path,
        key_path=key_path,
    )


def _b64(data: str | bytes) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return raw if raw.lstrip().startswith(b"-----BEGIN") else base64.b64decode(raw)


def resource_path(
    api_version: str, kind: str, namespace: str | None, name: str | None = None
) -> str:
    plural = PLURALS[kind]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace is not None and kind not in CLUSTER_SCOPED:
        base += f"/namespaces/{quote(namespace)}"
    base += f"/{plural}"
    return base if name is None else f"{base}/{quote(name)}"


class KubeClient:
    def __init__(
        self,
        creds: Credentials,
        field_manager: str,
        timeout: float = 30,
        refresh: Callable[[], Credentials] | None = None,
    ):
        self.creds = creds
        self._refresh = refresh  # re-login when a token expired (401)
        self.field_manager = field_manager
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self.calls = 0  # API calls made (benchmarks)

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.creds.insecure:
            return False
        ctx = ssl.create_default_context(
            cafile=self.creds.ca_path,
            cadata=self.creds.ca_data.decode() if self.creds.ca_data else None,
        )
        if self.creds.cert_path and self.creds.key_path:
            ctx.load_cert_chain(self.creds.cert_path, self.creds.key_path)
        return ctx

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json"}
            if self.creds.token:
                headers["Authorization"] = f"Bearer {self.creds.token}"
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl(), limit=20),
                headers=headers,
                timeout=self._timeout,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> Manifest:
        try:
            return await self._request(method, path, body, content_type, params)
        except ApiError as exc:
            if exc.status != 401 or self._refresh is None:
                raise
        self.creds = self._refresh()
        if self._session is not None:
            await self._session.close()
            self._session = None
        return await self._request(method, path, body, content_type, params)

    async def _request(
        self,
        method: str,
        path: str,
        body: Any,
        content_type: str,
        params: Mapping[str, str] | None,
    ) -> Manifest:
        self.calls += 1
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self._sess().request(
            method, self.creds.server + path, data=data, headers=headers, params=params
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                reason, message = "Unknown", text[:300]
                try:
                    status = json.loads(text)
                    reason = status.get("reason") or reason
                    message = status.get("message") or message
                except ValueError:
                    pass
                raise ApiError(resp.status, reason, message)
            result: Manifest = json.loads(text) if text else {}
            return result

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
        try:
            return await self.request("GET", resource_path(api_version, kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404 and not exc.kind_missing:
                return None
            raise

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        label_selector: str | None = None,
    ) -> list[Manifest]:
        """Objects of ``kind`` in ``namespace`` (None: every namespace)."""
        params = {"labelSelector": label_selector} if label_selector else None
        out = await self.request("GET", resource_path(api_version, kind, namespace), params=params)
        items: list[Manifest] = out.get("items", [])
        return items

    async def apply(self, manifest: Manifest, *, force: bool = True) -> Manifest:
        """Server-side apply as the operator's field manager (creates when absent). Without
        ``force`` a field another manager owns is a 409 conflict instead of taken over; a
        ``metadata.uid`` in ``manifest`` makes the server refuse any other object."""
        meta = manifest["metadata"]
        path = resource_path(
            manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"]
        )
        return await self.request(
            "PATCH",
            path,
            body=manifest,
            content_type="application/apply-patch+yaml",
            params={"fieldManager": self.field_manager, "force": "true" if force else "false"},
        )

    async def create(self, manifest: Manifest) -> Manifest:
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"))
        return await self.request("POST", path, body=manifest)

    async def replace(self, manifest: Manifest) -> Manifest:
        meta = manifest["metadata"]
        path = resource_path(
            manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"]
        )
        return await self.request("PUT", path, body=manifest)

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: Manifest,
        subresource: str | None = None,
    ) -> Manifest:
        path = resource_path(api_version, kind, namespace, name)
        if subresource:
            path += f"/{subresource}"
        return await self.request(
            "PATCH", path, body=patch, content_type="application/merge-patch+json"
        )

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None
    ) -> bool:
        """Delete (background propagation); False when it was already gone. With ``uid``, the
        server deletes only that object (409 when the name now holds another one)."""
        options: Manifest = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        }
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            await self.request(
                "DELETE", resource_path(api_version, kind, namespace, name), body=options
            )
        except ApiError as exc:
            if exc.status == 404 and not exc.kind_missing:
                return False
            raise
        return True
