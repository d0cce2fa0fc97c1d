"""Issue 15, row 11: a compromised operator cannot write what is not labelled as ours.

The chart ships a ValidatingAdmissionPolicy (on by default where the API server serves
``admissionregistration.k8s.io/v1``). Installed with the real helm into the real API server
(v1.34), the operator's own ServiceAccount token is refused every create, update and delete
of a Secret or Deployment not labelled as ours, while labelled ones pass, and the operator
still reconciles a connection to Ready with the policy in force.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from kubernetes_asyncio import client as k8s_client

from akeneo_operator.kubeclient import ApiError, Credentials, KubeClient
from akeneo_operator.meta import managed_selector
from akeneo_testing.ground.helm import (
    CHART,
    VAP_API,
    helm,
    render,
    service_account_token,
    write_token_kubeconfig,
)
from akeneo_testing.ground.kube import KubeCluster
from tests.integration.operator.running import (
    OperatorProcess,
    admin_client,
    basic_spec,
    connection,
    make_namespace,
    poll,
    tenant_secrets,
)
from tests.security.kube_support import ready_with

RELEASE = "vap-test"
OPERATOR_NS = "vap-test"
TENANT = "tenant-vap"
SA = f"{RELEASE}-akeneo-connector-operator"
VALUES: dict[str, Any] = {
    "watchNamespaces": [TENANT],
    "nats": {"insecureSharedCredentials": True},
}
OURS = managed_selector()


def _kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {d["kind"] for d in docs}


def test_policy_is_rendered_by_default_and_only_where_the_api_serves_it(tmp_path: Path) -> None:
    docs = render("akc", "ops", VALUES)
    assert {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= _kinds(docs)
    (binding,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    off = render("akc", "ops", {**VALUES, "admissionPolicy": {"enabled": False}})
    assert "ValidatingAdmissionPolicy" not in _kinds(off)
    # an API server that does not serve admissionregistration.k8s.io/v1 policies (before
    # 1.30), or nothing known of the API server (helm template without --api-versions)
    for version, api in (("v1.29.0", VAP_API), ("v1.34.4", None)):
        args = ["--kube-version", version] + (["--api-versions", api] if api else [])
        out = helm(
            "template", "akc", CHART, "--namespace", "ops", *args, "--values", "-",
            stdin=yaml.safe_dump(VALUES),
        )  # fmt: skip
        assert "ValidatingAdmissionPolicy" not in out, version


def test_values_say_what_the_default_cluster_role_binding_grants() -> None:
    text = (CHART / "values.yaml").read_text()
    for words in ("ClusterRoleBinding", "every namespace", "Secrets", "ValidatingAdmissionPolicy"):
        assert words in text, words


def labelled(meta: dict[str, Any], ours: bool) -> dict[str, Any]:
    return {**meta, "labels": dict(OURS)} if ours else meta


def secret(name: str, ours: bool) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": labelled({"name": name, "namespace": TENANT}, ours),
        "data": {"k": base64.b64encode(b"v").decode()},
    }


def deployment(name: str, ours: bool) -> dict[str, Any]:
    sel = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": labelled({"name": name, "namespace": TENANT}, ours),
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": sel},
            "template": {
                "metadata": {"labels": sel},
                "spec": {"containers": [{"name": "c", "image": "tenant/app:1"}]},
            },
        },
    }


@pytest_asyncio.fixture(scope="module")
async def installed(kube: KubeCluster, crd_installed: list[str]) -> AsyncIterator[str]:
    admin = admin_client(kube)
    try:
        await make_namespace(admin, TENANT, tenant_secrets(TENANT, "acme"))
    finally:
        await admin.close()
    helm(
        "install", RELEASE, CHART, "--namespace", OPERATOR_NS, "--create-namespace",
        "--values", "-", "--wait", "--timeout", "180s",
        kubeconfig=kube.kubeconfig, timeout=240, stdin=yaml.safe_dump(VALUES),
    )  # fmt: skip
    try:
        yield SA
    finally:
        helm("uninstall", RELEASE, "--namespace", OPERATOR_NS, "--wait", kubeconfig=kube.kubeconfig)


@pytest_asyncio.fixture(scope="module")
async def as_operator(
    kube: KubeCluster, installed: str, kube_api: k8s_client.ApiClient
) -> AsyncIterator[tuple[KubeClient, str]]:
    token = await service_account_token(kube_api, OPERATOR_NS, installed)
    client = KubeClient(
        Credentials(server=kube.server, token=token, ca_path=str(kube.ca_file)),
        "akeneo-connector-operator",
    )
    yield client, token
    await client.close()


async def _denied(call: Any) -> ApiError:
    with pytest.raises(ApiError) as refused:
        await call
    return refused.value


@pytest.mark.kube
async def test_operator_account_writes_only_objects_labelled_as_ours(kube, as_operator) -> None:
    op, _token = as_operator
    admin = admin_client(kube)
    try:
        for manifest in (
            secret("foreign", False),
            secret("ours", True),
            deployment("foreign-app", False),
            deployment("ours-app", True),
        ):
            await admin.create(manifest)
    finally:
        await admin.close()
    patch = {"metadata": {"annotations": {"touched": "yes"}}}

    async def policy_in_force() -> ApiError | None:
        try:
            await op.merge_patch("v1", "Secret", TENANT, "foreign", patch)
        except ApiError as exc:
            return exc if exc.status in (403, 422) else None
        return None

    refused = await poll(policy_in_force, timeout=60, what="policy denies the unlabelled Secret")
    assert "ValidatingAdmissionPolicy" in refused.message, refused.message
    assert "labelled" in refused.message, refused.message

    # labelled objects: update, create, delete pass
    await op.merge_patch("v1", "Secret", TENANT, "ours", patch)
    await op.merge_patch("apps/v1", "Deployment", TENANT, "ours-app", patch)
    await op.apply(secret("ours-new", True))
    assert await op.delete("apps/v1", "Deployment", TENANT, "ours-app")

    # unlabelled: update, create, delete, and labelling it to make it look ours, all refused
    await _denied(op.merge_patch("apps/v1", "Deployment", TENANT, "foreign-app", patch))
    await _denied(op.delete("apps/v1", "Deployment", TENANT, "foreign-app"))
    await _denied(op.delete("v1", "Secret", TENANT, "foreign"))
    await _denied(op.apply(secret("foreign-new", False)))
    await _denied(op.apply(secret("foreign", True)))  # relabel through server-side apply
    await _denied(op.merge_patch("v1", "Secret", TENANT, "ours", {"metadata": {"labels": None}}))


@pytest.mark.kube
async def test_the_operator_still_reconciles_with_the_policy_installed(
    kube, as_operator, nats: str, tmp_path: Path
) -> None:
    _op, token = as_operator
    user = f"system:serviceaccount:{OPERATOR_NS}:{SA}"
    kubeconfig = write_token_kubeconfig(kube, user, token, tmp_path / "kubeconfig")
    admin = admin_client(kube)
    try:
        dep = await admin.get("apps/v1", "Deployment", OPERATOR_NS, SA)
        assert dep is not None
        env = {
            e["name"]: e.get("value", "")
            for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        env.update(AKENEO_PORT="0", AKENEO_NATS_URL=nats, AKENEO_OPERATOR_MAINTENANCE_INTERVAL="2s")
        op = OperatorProcess(tmp_path / "op", "operator", kubeconfig, nats, **env).start()
        try:
            await admin.create(connection(TENANT, "acme", basic_spec("acme")))
            await ready_with(admin, op, TENANT, "acme", "True", timeout=120)
            assert "admission webhook" not in op.log and "ValidatingAdmissionPolicy" not in op.log
            await admin.delete("akeneo.connectors.dev/v1alpha1", "AkeneoConnection", TENANT, "acme")

            async def finalized() -> bool:
                return not await admin.list(
                    "akeneo.connectors.dev/v1alpha1", "AkeneoConnection", TENANT
                )

            await poll(finalized, what="connection finalized", operators=(op,))
        finally:
            op.stop()
    finally:
        await admin.close()
