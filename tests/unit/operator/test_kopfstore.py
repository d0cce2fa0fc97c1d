"""The lean diff-base storage: kopf's essence, the same as kopf's default builds, without
copying whole bodies; nothing for kinds without change handlers."""

from __future__ import annotations

import copy
import json
from typing import Any

import kopf

from akeneo_connector.spec import GROUP, KIND, PLURAL
from akeneo_operator.handlers import build_registry, configure_kopf
from akeneo_operator.kopfstore import LeanDiffBaseStorage, essence_source
from akeneo_operator.settings import OperatorSettings

LAST_HANDLED = "kopf.zalando.org/last-handled-configuration"


def connection() -> dict[str, Any]:
    spec = {"pim": {"url": "https://pim.example.com"}, "worker": {"replicas": 1}}
    return {
        "apiVersion": "akeneo.connectors.dev/v1alpha1",
        "kind": KIND,
        "metadata": {
            "name": "acme",
            "namespace": "shop",
            "uid": "u-1",
            "resourceVersion": "42",
            "generation": 3,
            "labels": {"team": "a"},
            "annotations": {
                LAST_HANDLED: json.dumps({"spec": spec}),
                "kopf.zalando.org/reconcile": '{"started": "x"}',
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "akeneo.connectors.dev/sync-now": "1",
            },
            "finalizers": ["akeneo.connectors.dev/finalizer"],
            "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}] * 5,
        },
        "spec": {**spec, "worker": {"replicas": 0}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_a_connection_essence_is_kopfs_own():
    body = connection()
    lean = LeanDiffBaseStorage({KIND})
    default = kopf.AnnotationsDiffBaseStorage()
    kept = copy.deepcopy(body)
    essence = lean.build(body=kopf.Body(body))  # type: ignore[arg-type]
    assert essence == default.build(body=kopf.Body(kept))  # type: ignore[arg-type]
    assert essence["spec"]["worker"] == {"replicas": 0}
    assert essence["metadata"] == {
        "labels": {"team": "a"},
        "annotations": {"akeneo.connectors.dev/sync-now": "1"},
    }
    assert body == kept  # the body itself is left as it was
    # the last handled state is read from the same annotation as before
    assert lean.fetch(body=kopf.Body(body)) == default.fetch(body=kopf.Body(kept))  # type: ignore[arg-type]


def test_children_have_no_essence_and_nothing_of_them_is_copied():
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "acme-tls", "labels": {"a": "b"}},
        "data": {"tls.key": "c2VjcmV0"},
    }
    assert essence_source(secret, frozenset({KIND})) == {}
    assert LeanDiffBaseStorage({KIND}).build(body=kopf.Body(secret)) == {}  # type: ignore[arg-type]
    source = essence_source(connection(), frozenset({KIND}))
    assert "status" not in source and "managedFields" not in source["metadata"]


def test_only_connections_have_change_handlers_and_the_operator_uses_the_lean_storage():
    """The empty essence of the children is right only while no change handler watches them."""
    registry, _ = build_registry(OperatorSettings(priority=1))
    changing = registry._changing.get_all_handlers()
    plurals = {(h.selector.group, h.selector.any_name) for h in changing if h.selector}
    assert plurals == {(GROUP, PLURAL)}
    settings = kopf.OperatorSettings()
    configure_kopf(settings, OperatorSettings(priority=1))
    assert isinstance(settings.persistence.diffbase_storage, LeanDiffBaseStorage)
    assert settings.persistence.diffbase_storage.changing_kinds == {KIND}
