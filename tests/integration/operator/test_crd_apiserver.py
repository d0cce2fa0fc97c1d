"""The generated CRD on the real API server: defaults as the models', invalid specs refused."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio.client.exceptions import ApiException

from akeneo_connector.spec import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    AkeneoConnectionSpec,
    StreamSpec,
)
from akeneo_operator.status_model import CatchUpStatus
from akeneo_testing.ground.helm import apply, kubectl
from akeneo_testing.ground.kube import KubeCluster

pytestmark = pytest.mark.kube

NAMESPACE = "crd-checks"
MERGE = "application/merge-patch+json"
MINIMAL: dict[str, Any] = {
    "pim": {"url": "https://acme.cloud.akeneo.com"},
    "receiver": {"signatureSecret": "acme-events"},
}


@pytest.fixture(scope="module")
def namespace(kube: KubeCluster, crd_installed: list[str]) -> str:
    apply(
        kube.kubeconfig,
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}],
    )
    return NAMESPACE


def _body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}


async def _create(api: k8s_client.ApiClient, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    objects = k8s_client.CustomObjectsApi(api)
    created: dict[str, Any] = await objects.create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, _body(name, spec), field_validation="Strict"
    )
    return created


async def _refused(api: k8s_client.ApiClient, name: str, spec: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as caught:
        await _create(api, name, spec)
    assert caught.value.status == 422, caught.value.body
    message: str = json.loads(caught.value.body or b"{}")["message"]
    return message


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("minimal", MINIMAL),
        ("webhook", {**MINIMAL, "worker": {"sink": {"webhook": {"url": "https://a.example/h"}}}}),
        ("no-full-scan", {**MINIMAL, "reconciliation": {"fullScanSchedule": None}}),
        ("autoscaled", {**MINIMAL, "receiver": {**MINIMAL["receiver"], "autoscaling": {}}}),
        ("worker-autoscaled", {**MINIMAL, "worker": {"autoscaling": {}}}),
        ("event-platform", {**MINIMAL, "eventPlatform": {"technicalEmail": "ops@example.com"}}),
    ],
)
async def test_server_defaults_equal_model_defaults(
    kube_api: k8s_client.ApiClient, namespace: str, name: str, spec: dict[str, Any]
) -> None:
    created = await _create(kube_api, name, copy.deepcopy(spec))
    model = AkeneoConnectionSpec.model_validate(spec)
    expected = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    if model.reconciliation.full_scan_schedule is None:
        expected["reconciliation"]["fullScanSchedule"] = None
    assert created["spec"] == expected
    assert AkeneoConnectionSpec.model_validate(created["spec"]) == model


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {**MINIMAL, "worker": {"sink": {"sqlite": {}, "postgres": {"dsnSecret": "db"}}}},
            "exactly one of webhook, postgres, sqlite",
        ),
        ({**MINIMAL, "worker": {"sink": {}}}, "exactly one of webhook, postgres, sqlite"),
        ({**MINIMAL, "tls": {"mode": "certManager"}}, "tls.issuerRef is required"),
        ({**MINIMAL, "tls": {"mode": "secret"}}, "tls.secretName is required"),
        (
            {
                **MINIMAL,
                "receiver": {
                    **MINIMAL["receiver"],
                    "autoscaling": {"minReplicas": 5, "maxReplicas": 3},
                },
            },
            "minReplicas must not exceed maxReplicas",
        ),
        (
            {**MINIMAL, "worker": {"autoscaling": {"minReplicas": 6}}},  # max defaults to 5
            "worker.autoscaling.minReplicas must not exceed maxReplicas",
        ),
        ({**MINIMAL, "worker": {"autoscaling": {"lagPerReplica": 0}}}, "lagPerReplica"),
        (
            {**MINIMAL, "stream": {"maxAge": "1h", "duplicateWindow": "90m"}},
            "duplicateWindow must not exceed stream.maxAge",
        ),
        ({**MINIMAL, "tls": {"mode": "letsEncrypt"}}, "spec.tls.mode"),
        (
            {**MINIMAL, "receiver": {"signatureSecret": "s", "replicas": 0}},
            "spec.receiver.replicas",
        ),
        ({**MINIMAL, "stream": {"maxAge": "a week"}}, "spec.stream.maxAge"),
        ({"pim": {"url": "ftp://x"}, "receiver": MINIMAL["receiver"]}, "spec.pim.url"),
        ({"pim": MINIMAL["pim"]}, "spec.receiver"),
        (
            {
                **MINIMAL,
                "reconciliation": {"fullScanSchedule": None, "resources": ["families"]},
            },
            "fullScanSchedule is required when resources lists categories",
        ),
        (
            {**MINIMAL, "eventPlatform": {"manageSubscription": True}},
            "technicalEmail is required when manageSubscription is true",
        ),
        (
            {**MINIMAL, "eventPlatform": {"events": ["com.akeneo.pim.v1.product.exploded"]}},
            "spec.eventPlatform.events[0]",
        ),
        ({**MINIMAL, "eventPlatform": {"filters": "x" * 501}}, "spec.eventPlatform.filters"),
    ],
)
async def test_server_refuses_what_the_models_refuse(
    kube_api: k8s_client.ApiClient, namespace: str, spec: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValueError):
        AkeneoConnectionSpec.model_validate(spec)
    assert expected in await _refused(kube_api, "invalid", spec)


async def test_duplicate_window_in_days_is_left_to_the_operator(
    kube_api: k8s_client.ApiClient, namespace: str
) -> None:
    """CEL durations know no "d": the API server accepts it, the operator must report it."""
    spec = {**MINIMAL, "stream": {"maxAge": "1h", "duplicateWindow": "1d"}}
    with pytest.raises(ValueError):
        AkeneoConnectionSpec.model_validate(spec)
    created = await _create(kube_api, "days", spec)
    assert created["spec"]["stream"]["duplicateWindow"] == "1d"
    ok = {**MINIMAL, "stream": {"maxAge": "7d", "duplicateWindow": "2h"}}
    assert (await _create(kube_api, "days-ok", ok))["spec"]["stream"]["maxAge"] == "7d"


async def test_unknown_fields_are_refused_with_strict_validation(
    kube_api: k8s_client.ApiClient, namespace: str
) -> None:
    spec = {**MINIMAL, "reciever": {"replicas": 3}}
    with pytest.raises(ApiException) as caught:
        await _create(kube_api, "typo", spec)
    assert caught.value.status == 400
    message = json.loads(caught.value.body or b"{}")["message"]
    assert 'unknown field "spec.reciever"' in message


async def test_names_too_long_for_children_are_refused(
    kube_api: k8s_client.ApiClient, namespace: str
) -> None:
    assert "metadata.name must be a DNS-1035 label" in await _refused(kube_api, "a" * 41, MINIMAL)
    assert (await _create(kube_api, "a" * 40, MINIMAL))["metadata"]["name"] == "a" * 40


async def test_status_subresource_and_printer_columns(
    kube: KubeCluster, kube_api: k8s_client.ApiClient, namespace: str
) -> None:
    objects: Any = k8s_client.CustomObjectsApi(kube_api)  # stubs lack _content_type
    await _create(kube_api, "printed", MINIMAL)
    status = {
        "observedGeneration": 1,
        "endpoint": "https://printed.example.com/events",
        "endpoints": {
            "events": "https://printed.example.com/events",
            "eventPlatform": "https://printed.example.com/event-platform",
            "notifications": "https://printed.example.com/event-platform/notifications",
        },
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "AllChildrenReady",
                "message": "ok",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 1,
            },
            {
                "type": "EventSubscriptionActive",
                "status": "False",
                "reason": "SuspendedBySystem",
                "message": "Success rate dropped below 90%",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 1,
            },
            {
                "type": "CatchUp",
                "status": "True",
                "reason": "CaughtUp",
                "message": "every recorded window repaired",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 1,
            },
            {
                "type": "PubliclyTrusted",
                "status": "False",
                "reason": "SelfSignedCertificate",
                "message": "the PIM and the Event Platform will refuse it",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 1,
            },
        ],
        "counters": {"applied": 42, "skippedOutdated": 1, "deadLettered": 0},
        "sync": {"syncNow": "2026-01-01", "initialJob": "printed-initial-sync"},
        "catchUp": {
            "through": 7,
            "planned": 7,
            "job": "printed-catch-up-7",
            "since": "2026-01-01T00:00:00Z",
            "windows": "2026-01-01T00:05:00Z..2026-01-01T00:10:00Z (subscription)",
            "attempt": 1,
        },
        "kopf": {"progress": {"anything": {"retries": 1}}},
    }
    await objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        NAMESPACE,
        PLURAL,
        "printed",
        {"status": status},
        _content_type=MERGE,
    )
    got = await objects.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "printed")
    assert got["status"] == status
    # The main resource ignores status; the status subresource ignores spec.
    await objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        PLURAL,
        "printed",
        {"status": {"endpoint": "x"}},
        _content_type=MERGE,
    )
    got = await objects.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "printed")
    assert got["status"]["endpoint"] == "https://printed.example.com/events"
    table = kubectl(kube.kubeconfig, "get", "akc", "printed", "-n", NAMESPACE, "-o", "wide")
    header, row = table.splitlines()
    assert header.split() == [
        "NAME",
        "READY",
        "REASON",
        "ENDPOINT",
        "EVENTPLATFORM",
        "NOTIFICATIONS",
        "SUBSCRIPTION",
        "TRUSTED",
        "CATCHUP",
        "APPLIED",
        "DEADLETTERED",
        "AGE",
    ]
    assert row.split()[:11] == [
        "printed",
        "True",
        "AllChildrenReady",
        "https://printed.example.com/events",
        "https://printed.example.com/event-platform",
        "https://printed.example.com/event-platform/notifications",
        "SuspendedBySystem",
        "False",
        "CaughtUp",
        "42",
        "0",
    ]
    # Short name and category both resolve.
    assert "printed" in kubectl(kube.kubeconfig, "get", "akeneo", "-n", NAMESPACE, "-o", "name")


async def test_kubectl_explain_prints_the_models_descriptions(
    kube: KubeCluster, namespace: str
) -> None:
    """What a user reads before writing a spec: the server publishes the CRD's schema (with a
    delay) and `kubectl explain` prints each field's description from the spec and status
    models."""
    max_age = StreamSpec.model_fields["max_age"].description
    since = CatchUpStatus.model_fields["since"].description
    assert max_age and since
    for path, description in (
        ("akc.spec.stream.maxAge", max_age),
        ("akc.status.catchUp.since", since),
    ):
        printed = ""
        for _ in range(60):
            try:
                out = await asyncio.to_thread(kubectl, kube.kubeconfig, "explain", path)
            except RuntimeError as exc:  # not published yet
                out = str(exc)
            printed = " ".join(out.split())
            if " ".join(description.split()) in printed:
                break
            await asyncio.sleep(1)
        assert " ".join(description.split()) in printed, printed
