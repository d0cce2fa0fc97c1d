"""The Kubernetes part of the test ground is real: validation, controllers, kwok, GC, kopf."""

from __future__ import annotations

import asyncio
import os
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from akeneo_testing.ground.kube import KubeCluster

pytestmark = pytest.mark.kube

GROUP = "ground.akeneo.test"
WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


async def eventually(
    probe: Callable[[], Awaitable[bool]], *, timeout: float = 60, what: str = "condition"
) -> None:
    """Poll an async probe until it holds; readiness is waited for, never slept for."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            if await probe():
                return
        except ApiException as exc:
            if exc.status != 404:
                raise
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.fixture
async def api(kube: KubeCluster) -> AsyncIterator[client.ApiClient]:
    api_client = await kube.api()
    async with api_client:
        yield api_client


@pytest.fixture
async def namespace(api: client.ApiClient) -> AsyncIterator[str]:
    name = f"ground-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    await core.delete_namespace(name)


@pytest.fixture
async def widget_crd(api: client.ApiClient) -> str:
    ext = client.ApiextensionsV1Api(api)
    try:
        await ext.create_custom_resource_definition(WIDGET_CRD)  # type: ignore[arg-type]
    except ApiException as exc:
        if exc.status != 409:
            raise

    async def established() -> bool:
        crd = await ext.read_custom_resource_definition(f"widgets.{GROUP}")
        conditions = crd.status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    await eventually(established, what="CRD Established")
    return GROUP


async def test_apiserver_reports_the_pinned_version(kube: KubeCluster) -> None:
    from akeneo_testing.ground.binaries import versions

    assert kube.request("/version")["gitVersion"] == versions()["K8S_VERSION"]


async def test_crd_schema_violation_is_a_real_422(
    api: client.ApiClient, namespace: str, widget_crd: str
) -> None:
    custom = client.CustomObjectsApi(api)
    bad = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w"}}
    bad["spec"] = {"size": 0}
    with pytest.raises(ApiException) as too_small:
        await custom.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", bad)
    assert too_small.value.status == 422
    assert "spec.size" in str(too_small.value.body)

    bad["spec"] = {"size": 1, "colour": "red"}
    with pytest.raises(ApiException) as unknown:
        await custom.create_namespaced_custom_object(
            GROUP, "v1", namespace, "widgets", bad, field_validation="Strict"
        )
    # Strict field validation refuses unknown fields as a 400 BadRequest, naming the field.
    assert unknown.value.status == 400
    assert 'unknown field \\"spec.colour\\"' in str(unknown.value.body)


async def test_deployment_gets_a_ready_pod_from_kwok(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    labels = {"app": "ground"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="ground"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="main", image="example:1")]
                ),
            ),
        ),
    )
    await apps.create_namespaced_deployment(namespace, deployment)

    async def available() -> bool:
        d = await apps.read_namespaced_deployment_status("ground", namespace)
        return bool(d.status.available_replicas == 1)

    await eventually(available, what="Deployment availableReplicas=1")
    pods = await client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=ground")
    assert len(pods.items) == 1
    pod = pods.items[0]
    assert pod.status.phase == "Running"
    assert pod.spec.node_name == "kwok-node-0"
    assert any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


async def test_deleting_an_owner_garbage_collects_its_child(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    owner = await core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    await core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="child", owner_references=[ref])),
    )
    await core.delete_namespaced_config_map("owner", namespace)

    async def child_gone() -> bool:
        try:
            await core.read_namespaced_config_map("child", namespace)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    await eventually(child_gone, what="garbage collection of the child")


@pytest.fixture
def kubeconfig_env(kube: KubeCluster) -> Iterator[None]:
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    yield
    if old is None:
        del os.environ["KUBECONFIG"]
    else:
        os.environ["KUBECONFIG"] = old


async def test_kopf_runner_handles_a_create_event(
    api: client.ApiClient, namespace: str, widget_crd: str, tmp_path: Path, kubeconfig_env: None
) -> None:
    operator = tmp_path / "ground_operator.py"
    operator.write_text(
        textwrap.dedent(
            f"""
            import kopf

            @kopf.on.login()
            def login(**kwargs):
                return kopf.login_with_kubeconfig(**kwargs)

            @kopf.on.startup()
            def configure(settings, **_):
                settings.watching.server_timeout = 10
                settings.watching.client_timeout = 15

            @kopf.on.create("{GROUP}", "v1", "widgets")
            def created(spec, patch, **_):
                patch.status["doubled"] = spec["size"] * 2
            """
        )
    )
    custom = client.CustomObjectsApi(api)
    args = ["run", "--standalone", "--namespace", namespace, str(operator)]
    with KopfRunner(args, timeout=60) as runner:
        body = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": "handled"},
            "spec": {"size": 21},
        }
        await custom.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", body)

        async def handled() -> bool:
            obj = await custom.get_namespaced_custom_object(
                GROUP, "v1", namespace, "widgets", "handled"
            )
            return bool(obj.get("status", {}).get("doubled") == 42)

        await eventually(handled, what="kopf handler result in status")
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
