"""Shared inputs for the builder tests."""

from __future__ import annotations

from typing import Any

from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import AkeneoConnectionSpec
from akeneo_operator.meta import Manifest
from akeneo_operator.pods import BuildInput
from akeneo_operator.settings import OperatorSettings

BASE_SPEC: dict[str, Any] = {
    "pim": {"url": "https://acme.cloud.akeneo.com", "credentialsSecret": "acme-pim-api"},
    "receiver": {"signatureSecret": "acme-events"},
}


def make_input(spec: dict[str, Any] | None = None, **settings: Any) -> BuildInput:
    return BuildInput(
        names=ConnectionNames("tenant-acme", "acme"),
        spec=AkeneoConnectionSpec.model_validate(spec or BASE_SPEC),
        settings=OperatorSettings(nats_url="nats://nats.nats:4222", priority=1, **settings),
        tls_secret="acme-tls",
        tls_revision="abc123",
    )


def env_of(container: dict[str, Any]) -> dict[str, str]:
    """name -> value; a downward-API value as ``fieldRef:<path>``."""
    return {
        e["name"]: e["value"]
        if "value" in e
        else f"fieldRef:{e['valueFrom']['fieldRef']['fieldPath']}"
        for e in container["env"]
    }


def mounts_of(pod_spec: dict[str, Any]) -> dict[str, tuple[str, list[str] | None]]:
    """mountPath -> (secret name or 'emptyDir', keys)."""
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    out = {}
    for m in pod_spec["containers"][0]["volumeMounts"]:
        v = volumes[m["name"]]
        if "secret" in v:
            items = v["secret"].get("items")
            out[m["mountPath"]] = (
                v["secret"]["secretName"],
                [i["key"] for i in items] if items else None,
            )
        else:
            out[m["mountPath"]] = ("emptyDir", None)
    return out


def by_kind_name(manifests: list[Manifest]) -> dict[tuple[str, str], Manifest]:
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def pod_spec(manifest: Manifest) -> Manifest:
    if manifest["kind"] == "CronJob":
        manifest = manifest["spec"]["jobTemplate"]
    spec: Manifest = manifest["spec"]["template"]["spec"]
    return spec
