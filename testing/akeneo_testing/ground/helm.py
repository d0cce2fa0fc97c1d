"""The operator's Helm chart against a ``KubeCluster``: render, apply, and act as its identity.

Used by the operator tests (so they run with exactly the chart's RBAC, no hidden
cluster-admin) and by the operator-at-scale scenario (``scenarios.operator_scale``).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client as k8s_client

from akeneo_testing.ground.binaries import REPO, k8s_binary, versions
from akeneo_testing.ground.kube import KubeCluster

CHART = REPO / "charts" / "akeneo-connector-operator"
CHART_NAME = "akeneo-connector-operator"
RBAC_TEMPLATES = (
    "templates/serviceaccount.yaml",
    "templates/rbac.yaml",
    "templates/peering.yaml",
    "templates/admissionpolicy.yaml",  # the operator runs under the chart's policy too
)
VAP_API = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"
# The identity is the same with or without a NATS signing key; the chart wants the choice said.
IDENTITY_VALUES: dict[str, Any] = {"nats": {"insecureSharedCredentials": True}}


def helm(
    *args: str | Path,
    kubeconfig: Path | None = None,
    timeout: float = 180,
    stdin: str | None = None,
) -> str:
    """Run helm with its caches in a private dir; raise with stderr when it fails."""
    home = Path(os.environ.get("TMPDIR", "/tmp")) / "akeneo-helm-home"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    argv = [str(k8s_binary("helm")), *map(str, args)]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=env
    )
    if result.returncode != 0:
        raise RuntimeError(f"helm {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result.stdout


def render(
    release: str,
    namespace: str,
    values: dict[str, Any] | None = None,
    show_only: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """``helm template`` of the chart: the manifests as dicts (CRDs not included)."""
    # helm built from source assumes Kubernetes v1.20 offline: render for the tested version,
    # whose API server serves ValidatingAdmissionPolicy (helm lists only groups offline).
    kube_version = versions()["K8S_VERSION"]
    args: list[str | Path] = ["template", release, CHART, "--namespace", namespace]
    args += ["--kube-version", kube_version, "--values", "-"]
    args += ["--api-versions", VAP_API]
    for template in show_only:
        args += ["--show-only", template]
    out = helm(*args, stdin=json.dumps(values or {}), timeout=60)
    return [d for d in yaml.safe_load_all(out) if d]


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(k8s_binary("kubectl")), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def apply(kubeconfig: Path, docs: list[dict[str, Any]]) -> None:
    """Server-side apply of manifests (idempotent)."""
    if docs:
        stream = yaml.safe_dump_all(docs)
        kubectl(
            kubeconfig, "apply", "--server-side", "--field-manager=akeneo-tests", "-f", "-",
            stdin=stream,
        )  # fmt: skip


@dataclass(frozen=True)
class ChartIdentity:
    """The operator's ServiceAccount as the chart installs it, with a kubeconfig to act as it."""

    release: str
    namespace: str
    service_account: str
    peering_name: str
    kubeconfig: Path


async def service_account_token(
    api: k8s_client.ApiClient, namespace: str, name: str, seconds: int = 86400
) -> str:
    """A bound token for the ServiceAccount from the TokenRequest API."""
    request = k8s_client.AuthenticationV1TokenRequest(
        spec=k8s_client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
    )
    response = await k8s_client.CoreV1Api(api).create_namespaced_service_account_token(
        name, namespace, request
    )
    token: str = response.status.token
    return token


def write_token_kubeconfig(kube: KubeCluster, user: str, token: str, path: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {"server": kube.server, "certificate-authority": str(kube.ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


async def install_chart_identity(
    kube: KubeCluster,
    api: k8s_client.ApiClient,
    path: Path,
    *,
    release: str = CHART_NAME,
    namespace: str = "akeneo-operator",
    values: dict[str, Any] | None = None,
) -> ChartIdentity:
    """Apply the chart's ServiceAccount, RBAC and peering object, and a kubeconfig for them."""
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    apply(kube.kubeconfig, [ns])
    docs = render(
        release, namespace, {**IDENTITY_VALUES, **(values or {})}, show_only=RBAC_TEMPLATES
    )
    apply(kube.kubeconfig, docs)
    (sa,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    peerings = [d for d in docs if d["kind"] in ("ClusterKopfPeering", "KopfPeering")]
    sa_name = sa["metadata"]["name"]
    token = await service_account_token(api, namespace, sa_name)
    user = f"system:serviceaccount:{namespace}:{sa_name}"
    return ChartIdentity(
        release=release,
        namespace=namespace,
        service_account=sa_name,
        peering_name=peerings[0]["metadata"]["name"] if peerings else "",
        kubeconfig=write_token_kubeconfig(kube, user, token, path),
    )


def crd_manifests() -> list[dict[str, Any]]:
    """The generated AkeneoConnection CRD and the kopf peering CRDs the chart ships."""
    from akeneo_operator.crd import build_crd

    peering = [d for d in yaml.safe_load_all((CHART / "crds" / "kopf-peering.yaml").read_text())]
    return [build_crd(), *(d for d in peering if d)]


def crds_established(kube: KubeCluster, names: list[str]) -> bool:
    for name in names:
        crd = kube.request(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        conditions = crd.get("status", {}).get("conditions", [])
        if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return False
    return True
