"""Pure builders: every child, its labels, hash, env and mounted files per the config contract."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from akeneo_operator.children import (
    apply_waves,
    build_children,
    endpoint,
    possible_children,
    ref_of,
    worker_scaled_object,
)
from akeneo_operator.meta import (
    HASH_ANNOTATION,
    L_COMPONENT,
    L_INSTANCE,
    L_MANAGED_BY,
    L_NAME,
    Manifest,
)
from akeneo_operator.settings import Resources
from tests.unit.operator.builders_support import (
    BASE_SPEC,
    by_kind_name,
    env_of,
    make_input,
    mounts_of,
    pod_spec,
)


def test_default_connection_builds_every_child_with_labels_and_hash():
    children = by_kind_name(build_children(make_input()))
    assert set(children) == {
        ("ServiceAccount", "acme"),
        ("Deployment", "acme-receiver"),
        ("Service", "acme-receiver"),
        ("PodDisruptionBudget", "acme-receiver"),
        ("NetworkPolicy", "acme-receiver"),
        ("Deployment", "acme-worker"),
        ("NetworkPolicy", "acme-worker"),
        ("CronJob", "acme-reconcile"),
        ("CronJob", "acme-full-scan"),
    }
    for m in children.values():
        labels = m["metadata"]["labels"]
        assert labels[L_NAME] == "akeneo-connector"
        assert labels[L_INSTANCE] == "acme"
        assert labels[L_MANAGED_BY] == "akeneo-connector-operator"
        assert labels[L_COMPONENT] in {"receiver", "worker", "reconcile", "connection"}
        assert len(m["metadata"]["annotations"][HASH_ANNOTATION]) == 32
        assert m["metadata"]["namespace"] == "tenant-acme"
    refs = {(r.kind, r.name) for r in possible_children("acme")}
    assert set(children) <= refs


def test_build_is_deterministic_and_hash_follows_the_spec():
    a, b = build_children(make_input()), build_children(make_input())
    assert a == b
    spec = copy.deepcopy(BASE_SPEC)
    spec["worker"] = {"replicas": 3}
    changed = by_kind_name(build_children(make_input(spec)))
    before = by_kind_name(a)

    def h(m: Manifest) -> str:
        return str(m["metadata"]["annotations"][HASH_ANNOTATION])

    assert h(changed[("Deployment", "acme-worker")]) != h(before[("Deployment", "acme-worker")])
    assert h(changed[("Deployment", "acme-receiver")]) == h(before[("Deployment", "acme-receiver")])


def test_receiver_pod_matches_the_configuration_contract():
    dep = by_kind_name(build_children(make_input()))[("Deployment", "acme-receiver")]
    spec = pod_spec(dep)
    c = spec["containers"][0]
    assert c["command"] == ["akeneo-connector", "receiver"]
    assert c["image"] == "akeneo-connector:0.1.0"
    assert env_of(c) == {
        "AKENEO_CONNECTION": "tenant-acme/acme",
        "AKENEO_NATS_URL": "nats://nats.nats:4222",
        "AKENEO_LOG_LEVEL": "info",
        "AKENEO_PORT": "8443",
        "AKENEO_ADMIN_PORT": "8081",
        "AKENEO_TLS_CERT_FILE": "/etc/akeneo/tls/tls.crt",
        "AKENEO_TLS_KEY_FILE": "/etc/akeneo/tls/tls.key",
        "AKENEO_EVENTS_API_SECRET_FILE": "/etc/akeneo/signature/eventsApiSecret",
        "AKENEO_EVENT_PLATFORM_SECRETS_FILE": "/etc/akeneo/signature/eventPlatformSecrets",
        "AKENEO_MAX_BODY_BYTES": "1048576",
        "AKENEO_TIMESTAMP_TOLERANCE": "300s",
        "AKENEO_GAP_SPOOL_FILE": "/tmp/akeneo-gaps.json",  # in the /tmp emptyDir
        "AKENEO_NOTIFICATION_SPOOL_FILE": "/tmp/akeneo-notifications.json",  # likewise
        "AKENEO_EVENT_SPOOL_FILE": "/tmp/akeneo-events.spool",  # likewise
        "AKENEO_POD_NAME": "fieldRef:metadata.name",  # names its report of loaded secrets
    }
    assert mounts_of(spec) == {
        "/tmp": ("emptyDir", None),
        "/etc/akeneo/tls": ("acme-tls", ["tls.crt", "tls.key"]),
        "/etc/akeneo/signature": ("acme-events", ["eventsApiSecret", "eventPlatformSecrets"]),
    }
    # probes on the admin port (plain HTTP), never on the public one
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin", "scheme": "HTTP"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin", "scheme": "HTTP"}
    assert {"name": "admin", "containerPort": 8081, "protocol": "TCP"} in c["ports"]
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["template"]["metadata"]["annotations"] == {
        "akeneo.connectors.dev/tls-serial": "abc123"
    }


def test_only_present_signature_keys_are_mounted():
    inp = make_input()
    inp = type(inp)(**{**inp.__dict__, "signature_keys": frozenset({"eventPlatformSecrets"})})
    dep = by_kind_name(build_children(inp))[("Deployment", "acme-receiver")]
    env = env_of(pod_spec(dep)["containers"][0])
    assert "AKENEO_EVENTS_API_SECRET_FILE" not in env
    assert env["AKENEO_EVENT_PLATFORM_SECRETS_FILE"] == "/etc/akeneo/signature/eventPlatformSecrets"
    assert mounts_of(pod_spec(dep))["/etc/akeneo/signature"] == (
        "acme-events",
        ["eventPlatformSecrets"],
    )


def test_every_pod_is_locked_down():
    for m in build_children(make_input()):
        if m["kind"] not in ("Deployment", "CronJob"):
            continue
        spec = pod_spec(m)
        assert spec["automountServiceAccountToken"] is False
        assert spec["serviceAccountName"] == "acme"
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        sc = spec["containers"][0]["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert spec["containers"][0]["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    sa = by_kind_name(build_children(make_input()))[("ServiceAccount", "acme")]
    assert sa["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    ("sink", "expected_env", "expected_mount"),
    [
        (
            {"webhook": {"url": "https://app.example.com/hook", "signingSecret": "acme-sink"}},
            {"AKENEO_SINK": "webhook", "AKENEO_WEBHOOK_URL": "https://app.example.com/hook",
             "AKENEO_WEBHOOK_SIGNATURE": "standard",
             "AKENEO_WEBHOOK_SIGNING_SECRET_FILE": "/etc/akeneo/sink/signingSecret"},
            ("/etc/akeneo/sink", ("acme-sink", ["signingSecret"])),
        ),
        (
            {"webhook": {"url": "https://app.example.com/hook", "signingSecret": "acme-sink",
                         "signature": "legacy"}},
            {"AKENEO_SINK": "webhook", "AKENEO_WEBHOOK_SIGNATURE": "legacy",
             "AKENEO_WEBHOOK_SIGNING_SECRET_FILE": "/etc/akeneo/sink/signingSecret"},
            ("/etc/akeneo/sink", ("acme-sink", ["signingSecret"])),
        ),
        (
            {"postgres": {"dsnSecret": "acme-db"}},
            {"AKENEO_SINK": "postgres", "AKENEO_POSTGRES_DSN_FILE": "/etc/akeneo/sink/dsn",
             "AKENEO_POSTGRES_TABLE": "akeneo_resources"},
            ("/etc/akeneo/sink", ("acme-db", ["dsn"])),
        ),
        (
            {"sqlite": {"path": "/data/catalog.db"}},
            {"AKENEO_SINK": "sqlite", "AKENEO_SQLITE_PATH": "/data/catalog.db"},
            ("/data", ("emptyDir", None)),
        ),
        (  # relative: in the data dir, as local mode has it (the root filesystem is read-only)
            {"sqlite": {"path": "catalog.db"}},
            {"AKENEO_SINK": "sqlite", "AKENEO_SQLITE_PATH": "/data/catalog.db"},
            ("/data", ("emptyDir", None)),
        ),
        (
            {"sqlite": {"path": "/var/lib/akeneo/shop.db"}},
            {"AKENEO_SINK": "sqlite", "AKENEO_SQLITE_PATH": "/var/lib/akeneo/shop.db"},
            ("/var/lib/akeneo", ("emptyDir", None)),
        ),
    ],
)  # fmt: skip
def test_worker_pod_per_sink(sink, expected_env, expected_mount):
    spec = copy.deepcopy(BASE_SPEC)
    spec["worker"] = {"sink": sink, "maxDeliver": 7}
    dep = by_kind_name(build_children(make_input(spec)))[("Deployment", "acme-worker")]
    c = pod_spec(dep)["containers"][0]
    env = env_of(c)
    assert c["command"] == ["akeneo-connector", "worker"]
    assert env.items() >= expected_env.items()
    assert env["AKENEO_MAX_DELIVER"] == "7"
    assert env["AKENEO_PORT"] == "8080"
    assert env["AKENEO_PIM_URL"] == "https://acme.cloud.akeneo.com"
    assert env["AKENEO_PIM_CREDENTIALS_DIR"] == "/etc/akeneo/pim/"
    mounts = mounts_of(pod_spec(dep))
    assert mounts[expected_mount[0]] == expected_mount[1]
    assert mounts["/etc/akeneo/pim"] == (
        "acme-pim-api",
        ["clientId", "clientSecret", "username", "password"],
    )
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTP"


def test_no_secret_value_or_reference_to_env_values():
    for m in build_children(make_input()):
        for value in (str(v) for v in _walk(m)):
            assert "secretKeyRef" not in value


def _walk(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)
    else:
        yield node


def test_reconcile_cronjobs():
    children = by_kind_name(build_children(make_input()))
    inc, full = children[("CronJob", "acme-reconcile")], children[("CronJob", "acme-full-scan")]
    assert inc["spec"]["concurrencyPolicy"] == "Forbid"
    assert inc["spec"]["schedule"] == "*/15 * * * *"
    assert full["spec"]["schedule"] == "0 3 * * 0"
    assert pod_spec(inc)["containers"][0]["command"] == ["akeneo-connector", "reconcile"]
    assert pod_spec(full)["containers"][0]["command"] == ["akeneo-connector", "reconcile", "--full"]
    assert pod_spec(inc)["restartPolicy"] == "Never"
    env = env_of(pod_spec(inc)["containers"][0])
    assert env["AKENEO_RECONCILE_RESOURCES"] == "products,product_models"
    assert env["AKENEO_SAFETY_MARGIN"] == "5m"
    assert env["AKENEO_PIM_CREDENTIALS_DIR"] == "/etc/akeneo/pim/"
    assert inc["spec"]["jobTemplate"]["metadata"]["labels"][L_COMPONENT] == "reconcile"


def test_no_cronjob_without_pim_credentials_and_no_full_scan_when_unscheduled():
    spec = copy.deepcopy(BASE_SPEC)
    spec["pim"] = {"url": "https://acme.cloud.akeneo.com"}
    kinds = {m["kind"] for m in build_children(make_input(spec))}
    assert "CronJob" not in kinds
    spec = copy.deepcopy(BASE_SPEC)
    spec["reconciliation"] = {"fullScanSchedule": None}
    names = {
        m["metadata"]["name"] for m in build_children(make_input(spec)) if m["kind"] == "CronJob"
    }
    assert names == {"acme-reconcile"}


def test_ingress_network_policy_and_hpa_options():
    spec = copy.deepcopy(BASE_SPEC)
    spec["receiver"] = {
        "signatureSecret": "acme-events",
        "host": "acme.hooks.example.com",
        "allowedSourceRanges": ["203.0.113.0/24"],
        "autoscaling": {"minReplicas": 2, "maxReplicas": 6},
    }
    inp = make_input(spec, ingress_class="nginx", ingress_namespace="edge")
    children = by_kind_name(build_children(inp))
    ing = children[("Ingress", "acme")]
    annotations = ing["metadata"]["annotations"]
    assert annotations["external-dns.alpha.kubernetes.io/hostname"] == "acme.hooks.example.com"
    assert annotations["nginx.ingress.kubernetes.io/whitelist-source-range"] == "203.0.113.0/24"
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"] == [{"hosts": ["acme.hooks.example.com"], "secretName": "acme-tls"}]
    pol = children[("NetworkPolicy", "acme-receiver")]
    assert pol["spec"]["ingress"] == [
        {
            "ports": [{"protocol": "TCP", "port": 8443}],
            "from": [
                {"ipBlock": {"cidr": "203.0.113.0/24"}},
                # the Ingress hop: the controller's pods, the Ingress checks the ranges
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}},
            ],
        }
    ]
    without_ingress = copy.deepcopy(spec)
    del without_ingress["receiver"]["host"]
    direct = by_kind_name(build_children(make_input(without_ingress)))
    assert direct[("NetworkPolicy", "acme-receiver")]["spec"]["ingress"][0]["from"] == [
        {"ipBlock": {"cidr": "203.0.113.0/24"}}
    ]
    worker_pol = children[("NetworkPolicy", "acme-worker")]
    assert worker_pol["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in worker_pol["spec"]  # nothing comes in; egress: tests/security
    hpa = children[("HorizontalPodAutoscaler", "acme-receiver")]
    assert hpa["spec"]["maxReplicas"] == 6
    assert "replicas" not in children[("Deployment", "acme-receiver")]["spec"]
    assert endpoint(inp) == "https://acme.hooks.example.com/events"
    assert endpoint(make_input()) == "https://acme-receiver.tenant-acme.svc:443/events"


def test_a_metrics_namespace_may_scrape_worker_and_receiver_and_nothing_else():
    spec = copy.deepcopy(BASE_SPEC)
    spec["receiver"] = {"signatureSecret": "acme-events", "allowedSourceRanges": ["10.0.0.0/8"]}
    children = by_kind_name(build_children(make_input(spec, metrics_namespace="monitoring")))
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    worker = children[("NetworkPolicy", "acme-worker")]["spec"]
    assert worker["ingress"] == [
        {"from": [prometheus], "ports": [{"protocol": "TCP", "port": 8080}]}
    ]
    receiver = children[("NetworkPolicy", "acme-receiver")]["spec"]["ingress"]
    assert receiver == [
        {
            "ports": [{"protocol": "TCP", "port": 8443}],
            "from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, prometheus],
        }
    ]


def test_worker_autoscaling_writes_a_keda_scaled_object_on_the_consumer_lag():
    spec = copy.deepcopy(BASE_SPEC)
    spec["worker"] = {
        "replicas": 3,
        "autoscaling": {"minReplicas": 0, "maxReplicas": 8, "lagPerReplica": 250},
    }
    inp = make_input(spec)
    scaled = worker_scaled_object(inp)
    assert scaled is not None and HASH_ANNOTATION in scaled["metadata"]["annotations"]
    assert (scaled["apiVersion"], scaled["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    assert scaled["metadata"]["name"] == "acme-worker"
    assert scaled["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "acme-worker",
    }
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (0, 8)
    assert scaled["spec"]["triggers"] == [
        {
            "type": "nats-jetstream",
            "metadata": {
                "natsServerMonitoringEndpoint": "nats.nats:8222",
                "account": "$G",
                "stream": inp.names.stream,
                "consumer": "worker",
                "lagThreshold": "250",
            },
        }
    ]
    # KEDA owns the worker's replicas: the operator's manifest leaves them out
    children = by_kind_name(build_children(inp))
    assert "replicas" not in children[("Deployment", "acme-worker")]["spec"]
    assert ("ScaledObject", "acme-worker") not in children  # applied apart (KEDA may be absent)
    assert (
        by_kind_name(build_children(make_input()))[("Deployment", "acme-worker")]["spec"][
            "replicas"
        ]
        == 1
    )
    assert worker_scaled_object(make_input()) is None
    custom = worker_scaled_object(
        make_input(spec, keda_nats_monitoring="nats-mon.infra:8222", nats_account="ABCD")
    )
    assert custom is not None
    trigger = custom["spec"]["triggers"][0]["metadata"]
    assert trigger["natsServerMonitoringEndpoint"] == "nats-mon.infra:8222"
    assert trigger["account"] == "ABCD"


@pytest.mark.parametrize(
    "auto",
    [
        {"minReplicas": 5, "maxReplicas": 2},
        {"maxReplicas": 0},
        {"maxReplicas": 51},
        {"lagPerReplica": 0},
    ],
)
def test_worker_autoscaling_bounds_are_refused(auto):
    spec = copy.deepcopy(BASE_SPEC)
    spec["worker"] = {"autoscaling": auto}
    with pytest.raises(ValueError):
        make_input(spec)


def test_settings_change_image_nats_and_resources():
    inp = make_input(
        image="mirror/akeneo-connector:9",
        pod_nats_secret="nats-creds",
        pod_nats_url="nats://nats.other:4222",
        worker_resources=Resources(requests={"cpu": "1"}),
    )
    children = by_kind_name(build_children(inp))
    worker = pod_spec(children[("Deployment", "acme-worker")])
    env = env_of(worker["containers"][0])
    assert worker["containers"][0]["image"] == "mirror/akeneo-connector:9"
    assert env["AKENEO_NATS_URL"] == "nats://nats.other:4222"
    assert env["AKENEO_NATS_CREDS_FILE"] == "/etc/akeneo/nats/nats.creds"
    assert mounts_of(worker)["/etc/akeneo/nats"] == ("nats-creds", ["nats.creds"])
    assert worker["containers"][0]["resources"] == {"requests": {"cpu": "1"}}
    receiver = pod_spec(children[("Deployment", "acme-receiver")])
    assert receiver["containers"][0]["resources"]["requests"]["cpu"] == "100m"


def test_ref_of():
    m = build_children(make_input())[0]
    assert ref_of(m).kind == m["kind"]


def test_children_are_written_in_two_waves_pods_last():
    """What a pod needs (its ServiceAccount, Service, policies) is written before what makes
    pods: a Deployment's pod created before its ServiceAccount is refused."""
    spec = copy.deepcopy(BASE_SPEC)
    spec["receiver"] = {**spec["receiver"], "autoscaling": {"minReplicas": 2, "maxReplicas": 6}}
    children = build_children(make_input(spec))
    waves = apply_waves(children)
    assert [sorted({m["kind"] for m in wave}) for wave in waves] == [
        ["NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount"],
        ["CronJob", "Deployment", "HorizontalPodAutoscaler"],
    ]
    written = [ref_of(m) for wave in waves for m in wave]
    assert len(written) == len(children) and set(written) == set(map(ref_of, children))
    assert apply_waves([]) == []
