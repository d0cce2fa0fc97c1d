"""The real third-party CRDs (KEDA, cert-manager, prometheus-operator), as their Go modules
ship them (``make testbins`` copies them into the cache), installed into the test ground's
API server so that every object the operator or the chart writes is checked against them."""

from __future__ import annotations

from typing import Any

import yaml

from akeneo_operator.kubeclient import ApiError, KubeClient
from akeneo_testing.ground.binaries import crd_file

SCALED_OBJECTS = ("keda", "keda.sh_scaledobjects.yaml")
CERTIFICATES = ("cert-manager", "cert-manager.io_certificates.yaml")
PROMETHEUS_RULES = ("prometheus-operator", "monitoring.coreos.com_prometheusrules.yaml")
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def load(which: tuple[str, str]) -> dict[str, Any]:
    """The CRD document of ``which`` (project, file)."""
    docs = [d for d in yaml.safe_load_all(crd_file(*which).read_text()) if d]
    (crd,) = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    assert crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].get("properties"), (
        f"{which[1]} has no schema: not the real CRD"
    )
    return dict(crd)


def established(crd: dict[str, Any]) -> bool:
    conds = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conds)


async def install(client: KubeClient, which: tuple[str, str]) -> str:
    """Create (or update) the CRD; its name. The caller waits until its kind is served."""
    crd = load(which)
    await client.apply(crd)
    return str(crd["metadata"]["name"])


async def remove(client: KubeClient, name: str) -> None:
    try:
        await client.request("DELETE", f"{CRD_PATH}/{name}")
    except ApiError as exc:
        if exc.status != 404:
            raise


async def dry_run_create(client: KubeClient, path: str, manifest: dict[str, Any]) -> None:
    """Create ``manifest`` at ``path`` with dryRun=All and strict field validation: the API
    server checks it against the CRD's schema (unknown fields included) and stores nothing."""
    await client.request(
        "POST", path, body=manifest, params={"dryRun": "All", "fieldValidation": "Strict"}
    )
