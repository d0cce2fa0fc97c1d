"""The Helm chart: lint, least-privilege RBAC, and a real install into the test API server."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s_client

from akeneo_testing.ground.binaries import k8s_binary
from akeneo_testing.ground.helm import (
    CHART,
    ChartIdentity,
    apply,
    helm,
    render,
    service_account_token,
    write_token_kubeconfig,
)
from akeneo_testing.ground.kube import KubeCluster
from tests.integration.operator.running import (
    API,
    OperatorProcess,
    admin_client,
    basic_spec,
    condition,
    connection,
    make_namespace,
    poll,
    tenant_secrets,
)

NAMESPACED_RESOURCES = {
    ("akeneo.connectors.dev", "akeneoconnections"),
    ("akeneo.connectors.dev", "akeneoconnections/status"),
    ("akeneo.connectors.dev", "akeneoconnections/finalizers"),
    ("", "secrets"),
    ("", "services"),
    ("", "serviceaccounts"),
    ("", "events"),
    ("events.k8s.io", "events"),
    ("apps", "deployments"),
    ("networking.k8s.io", "ingresses"),
    ("networking.k8s.io", "networkpolicies"),
    ("policy", "poddisruptionbudgets"),
    ("autoscaling", "horizontalpodautoscalers"),
    ("batch", "cronjobs"),
    ("batch", "jobs"),
    ("cert-manager.io", "certificates"),
    ("keda.sh", "scaledobjects"),
}
READ = {"get", "list", "watch"}


def shared(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """``values`` plus the explicit choice of shared NATS credentials (no signing key),
    without which the chart refuses to render (tests/security/test_nats_isolation_required)."""
    out = dict(values or {})
    out["nats"] = {"insecureSharedCredentials": True, **out.get("nats", {})}
    return out


def _rules(docs: list[dict[str, Any]], name: str) -> set[tuple[str, str, str]]:
    (role,) = [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == name]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


# -- static: lint and render ------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        shared(),
        shared(
            {
                "watchNamespaces": ["tenant-a", "tenant-b"],
                "metrics": {"serviceMonitor": {"enabled": True}},
                "nats": {"existingSecret": "nats-auth", "passwordKey": "password", "user": "op"},
            }
        ),
        {"nats": {"accountSigningKey": {"existingSecret": "nats-account", "account": "A" * 56}}},
    ],
)
def test_helm_lint_is_clean(values: dict[str, Any], tmp_path: Path) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    out = helm("lint", "--strict", CHART, "--values", values_file)
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out


def test_deployment_runs_the_operator_subcommand_without_a_registry_host() -> None:
    docs = render("akc", "ops", shared())
    (deployment,) = _by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["akeneo-connector", "operator"]
    assert container["image"] == "akeneo-connector:0.1.0"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AKENEO_NATS_URL"] == "nats://nats.nats:4222"
    assert env["AKENEO_WATCH_NAMESPACES"] == ""
    assert env["AKENEO_IMAGE"] == "akeneo-connector:0.1.0"
    assert container["resources"]["limits"]["memory"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["serviceAccountName"] == "akc-akeneo-connector-operator"
    # No registry host anywhere in the chart: image references start with a path, not a host.
    text = "\n".join(p.read_text() for p in CHART.rglob("*") if p.is_file())
    for image in re.findall(r"(?:image|repository):\s*\"?([^\s\"{]+)", text):
        assert not re.match(r"^[^/]*[.:][^/]*/", image), f"registry host in {image}"


def test_nats_cluster_servers_are_given_as_a_list_or_a_comma_separated_string() -> None:
    """Every server of a NATS cluster reaches the operator and, through it, the pods."""
    servers = [f"nats://nats-{i}.nats-headless.nats:4222" for i in range(3)]
    for url in (servers, ",".join(servers)):
        values = {"nats": {"url": url, "podUrl": url}}
        (deployment,) = _by_kind(render("akc", "ops", shared(values)), "Deployment")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["AKENEO_NATS_URL"] == ",".join(servers)
        assert env["AKENEO_OPERATOR_POD_NATS_URL"] == ",".join(servers)


def test_nats_credentials_are_mounted_files_never_values() -> None:
    values = {"nats": {"existingSecret": "nats-auth", "passwordKey": "password", "credsKey": "c"}}
    (deployment,) = _by_kind(render("akc", "ops", shared(values)), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["AKENEO_NATS_PASSWORD_FILE"] == "/etc/akeneo/nats/password"
    assert env["AKENEO_NATS_CREDS_FILE"] == "/etc/akeneo/nats/c"
    assert {"name": "nats", "secret": {"secretName": "nats-auth"}} in pod["volumes"]


def test_event_platform_api_url_and_its_ca_are_operator_settings() -> None:
    from akeneo_operator import settings

    def settings_of(values: dict[str, Any]) -> tuple[settings.OperatorSettings, dict[str, Any]]:
        (deployment,) = _by_kind(render("akc", "ops", shared(values)), "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        env = {e["name"]: e["value"] for e in pod["containers"][0]["env"] if "value" in e}
        return settings.from_sources(None, env), pod

    plain, pod = settings_of({})
    assert plain.event_platform_url == "https://event.prd.sdk.akeneo.cloud/api/v1"
    assert plain.event_platform_ca_file is None
    assert "event-platform-ca" not in str(pod["volumes"])
    values = {"eventPlatform": {"url": "https://ep.example.com/api/v1", "caConfigMap": "ep-ca"}}
    ops, pod = settings_of(values)
    assert ops.event_platform_url == "https://ep.example.com/api/v1"
    assert ops.event_platform_ca_file == "/etc/akeneo/event-platform-ca/ca.crt"
    items = [{"key": "ca.crt", "path": "ca.crt"}]
    volume = {"name": "event-platform-ca", "configMap": {"name": "ep-ca", "items": items}}
    assert volume in pod["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "event-platform-ca", "mountPath": "/etc/akeneo/event-platform-ca",
            "readOnly": True} in mounts  # fmt: skip


def test_account_signing_key_is_a_mounted_file_and_excludes_a_shared_credential() -> None:
    account = "A" + "B" * 55
    signing = {"existingSecret": "nats-account", "key": "seed", "account": account}
    (deployment,) = _by_kind(render("akc", "ops", {"nats": {"accountSigningKey": signing}}),
                             "Deployment")  # fmt: skip
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["AKENEO_OPERATOR_NATS_SIGNING_KEY_FILE"] == "/etc/akeneo/nats-signing/seed"
    assert env["AKENEO_OPERATOR_NATS_ACCOUNT"] == account
    assert env["AKENEO_OPERATOR_NATS_CREDS_VALIDITY"] == "2h"
    assert "AKENEO_OPERATOR_POD_NATS_SECRET" not in env
    (volume,) = [v for v in pod["volumes"] if v["name"] == "nats-signing"]
    assert volume["secret"]["secretName"] == "nats-account"
    assert volume["secret"]["items"] == [{"key": "seed", "path": "seed"}]
    with pytest.raises(RuntimeError, match="accountSigningKey"):
        render("akc", "ops", {"nats": {"accountSigningKey": signing, "podSecret": "shared"}})
    (plain,) = _by_kind(render("akc", "ops", shared()), "Deployment")
    assert "AKENEO_OPERATOR_NATS_SIGNING_KEY_FILE" not in str(plain)


def test_cluster_role_grants_only_what_the_operator_uses() -> None:
    docs = render("akc", "ops", shared())
    rules = _rules(docs, "akc-akeneo-connector-operator")
    assert {(g, r) for g, r, _ in rules} == NAMESPACED_RESOURCES
    assert all("*" not in (g, r, v) for g, r, v in rules)
    assert not {v for _, _, v in rules} & {"deletecollection", "escalate", "bind", "impersonate"}
    # one-off reconciles (first sync, sync-now, catch-up) are created, never edited
    assert {v for g, r, v in rules if (g, r) == ("batch", "jobs")} == {*READ, "create"}
    # writes are PATCHes; update only where blockOwnerDeletion needs it
    assert {r for _, r, v in rules if v == "update"} == {"akeneoconnections/finalizers"}
    assert {v for g, r, v in rules if r == "events"} == {"create", "patch"}
    cluster = _rules(docs, "akc-akeneo-connector-operator-cluster")
    assert cluster == {("apiextensions.k8s.io", "customresourcedefinitions", v) for v in READ} | {
        ("", "namespaces", v) for v in READ
    } | {("kopf.dev", "clusterkopfpeerings", v) for v in (*READ, "patch")}
    bindings = {d["roleRef"]["name"] for d in _by_kind(docs, "ClusterRoleBinding")}
    assert bindings == {"akc-akeneo-connector-operator", "akc-akeneo-connector-operator-cluster"}
    (peering,) = _by_kind(docs, "ClusterKopfPeering")
    (deployment,) = _by_kind(docs, "Deployment")
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["AKENEO_PEERING_NAME"] == peering["metadata"]["name"]


def test_watched_namespaces_get_role_bindings_and_nothing_cluster_wide() -> None:
    docs = render("akc", "ops", shared({"watchNamespaces": ["tenant-a", "tenant-b"]}))
    role_bindings = _by_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in role_bindings) == ["tenant-a", "tenant-b"]
    assert {b["roleRef"]["name"] for b in role_bindings} == {"akc-akeneo-connector-operator"}
    cluster_bindings = {d["roleRef"]["name"] for d in _by_kind(docs, "ClusterRoleBinding")}
    assert cluster_bindings == {"akc-akeneo-connector-operator-cluster"}
    cluster = _rules(docs, "akc-akeneo-connector-operator-cluster")
    assert not any(g == "kopf.dev" for g, _, _ in cluster)
    peerings = _by_kind(docs, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["tenant-a", "tenant-b"]
    (deployment,) = _by_kind(docs, "Deployment")
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["AKENEO_WATCH_NAMESPACES"] == "tenant-a,tenant-b"


def test_metrics_service_and_service_monitor_toggles() -> None:
    assert _by_kind(render("akc", "ops", shared()), "Service")
    assert not _by_kind(render("akc", "ops", shared()), "ServiceMonitor")
    on = render("akc", "ops", shared({"metrics": {"serviceMonitor": {"enabled": True}}}))
    (monitor,) = _by_kind(on, "ServiceMonitor")
    (service,) = _by_kind(on, "Service")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    off = render("akc", "ops", shared({"metrics": {"service": {"enabled": False}}}))
    assert not _by_kind(off, "Service")


# -- on the real API server -------------------------------------------------------------------


def _can_i(kubeconfig: Path, verb: str, resource: str, namespace: str | None = None) -> bool:
    argv = [str(k8s_binary("kubectl")), "--kubeconfig", str(kubeconfig), "auth", "can-i"]
    argv += [verb, resource] + (["-n", namespace] if namespace else [])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


@pytest.mark.kube
@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "allowed"),
    [
        ("watch", "akeneoconnections.akeneo.connectors.dev", None, True),
        ("patch", "akeneoconnections.akeneo.connectors.dev/status", "tenant-x", True),
        ("create", "deployments.apps", "tenant-x", True),
        ("delete", "cronjobs.batch", "tenant-x", True),
        ("create", "secrets", "tenant-x", True),
        ("list", "jobs.batch", "tenant-x", True),
        ("create", "events", "tenant-x", True),
        ("patch", "clusterkopfpeerings.kopf.dev", None, True),
        ("list", "customresourcedefinitions.apiextensions.k8s.io", None, True),
        ("create", "jobs.batch", "tenant-x", True),
        ("delete", "jobs.batch", "tenant-x", False),
        ("create", "pods", "tenant-x", False),
        ("list", "pods", "tenant-x", False),
        ("update", "deployments.apps", "tenant-x", False),
        ("get", "configmaps", "tenant-x", False),
        ("create", "namespaces", None, False),
        ("create", "clusterroles.rbac.authorization.k8s.io", None, False),
        ("create", "customresourcedefinitions.apiextensions.k8s.io", None, False),
        ("delete", "akeneoconnections.akeneo.connectors.dev", "tenant-x", False),
        ("impersonate", "serviceaccounts", "tenant-x", False),
    ],
)
def test_chart_identity_has_exactly_the_chart_permissions(
    chart_identity: ChartIdentity, verb: str, resource: str, namespace: str | None, allowed: bool
) -> None:
    assert _can_i(chart_identity.kubeconfig, verb, resource, namespace) is allowed


@pytest.mark.kube
async def test_chart_identity_token_authenticates_as_the_service_account(
    chart_identity: ChartIdentity, kube: KubeCluster
) -> None:
    from kubernetes_asyncio import config as k8s_config

    api = await k8s_config.new_client_from_config(config_file=str(chart_identity.kubeconfig))
    async with api:
        review = await k8s_client.AuthenticationV1Api(api).create_self_subject_review(
            k8s_client.V1SelfSubjectReview()
        )
    user = review.status.user_info
    assert user.username == (
        f"system:serviceaccount:{chart_identity.namespace}:{chart_identity.service_account}"
    )
    assert "system:masters" not in (user.groups or [])


@pytest.mark.kube
async def test_helm_install_runs_and_its_identity_reconciles_a_connection(
    kube: KubeCluster,
    nats: str,
    crd_installed: list[str],
    kube_api: k8s_client.ApiClient,
    tmp_path: Path,
) -> None:
    """helm install (namespaced mode); kwok makes the operator pod Ready. The same operator,
    run as a process with the installed ServiceAccount's token and the Deployment's env,
    reconciles a connection in the watched namespace."""
    release, namespace, tenant = "chart-test", "chart-test", "chart-test-tenant"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(shared({"watchNamespaces": [tenant]})))
    apply(
        kube.kubeconfig, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": tenant}}]
    )
    helm(
        "install", release, CHART, "--namespace", namespace, "--create-namespace",
        "--values", values, "--wait", "--timeout", "180s",
        kubeconfig=kube.kubeconfig, timeout=240,
    )  # fmt: skip
    operator: OperatorProcess | None = None
    try:
        apps = k8s_client.AppsV1Api(kube_api)
        name = f"{release}-akeneo-connector-operator"
        deployment = await apps.read_namespaced_deployment(name, namespace)
        assert deployment.status.available_replicas == 1
        core = k8s_client.CoreV1Api(kube_api)
        pods = await core.list_namespaced_pod(
            namespace, label_selector=f"app.kubernetes.io/instance={release}"
        )
        assert [p.status.phase for p in pods.items] == ["Running"]
        assert pods.items[0].spec.service_account_name == name
        status = helm("status", release, "--namespace", namespace, kubeconfig=kube.kubeconfig)
        assert "STATUS: deployed" in status

        token = await service_account_token(kube_api, namespace, name)
        kubeconfig = write_token_kubeconfig(
            kube, f"system:serviceaccount:{namespace}:{name}", token, tmp_path / "kubeconfig"
        )
        env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
        env.update(AKENEO_PORT="0", AKENEO_NATS_URL=nats)
        operator = OperatorProcess(tmp_path / "op", "operator", kubeconfig, nats, **env).start()
        client = admin_client(kube)
        try:
            await make_namespace(client, tenant, tenant_secrets(tenant, "acme"))
            await client.create(connection(tenant, "acme", basic_spec("acme")))

            async def ready() -> dict[str, Any] | None:
                body = await client.get(API, "AkeneoConnection", tenant, "acme")
                return body if condition(body, "Ready").get("status") == "True" else None

            await poll(ready, timeout=120, what="Ready=True", operators=(operator,))
        finally:
            await client.close()
        assert '"levelname": "ERROR"' not in operator.log
    finally:
        if operator is not None:
            operator.stop()
        helm("uninstall", release, "--namespace", namespace, "--wait", kubeconfig=kube.kubeconfig)


def test_rendered_env_is_the_operator_settings_contract() -> None:
    from akeneo_operator import settings

    values = {
        "watchNamespaces": ["tenant-a", "tenant-b"],
        "ingressClassName": "nginx",
        "nats": {
            "existingSecret": "nats-auth",
            "passwordKey": "password",
            "user": "operator",
            "podSecret": "nats-pods",
            "podUser": "pods",
        },
        "connectorResources": {"worker": {"limits": {"memory": "512Mi"}}},
        "defaultTLS": {"mode": "certManager", "issuerRef": {"name": "letsencrypt"}},
        "streamQuotas": {"max": {"maxBytes": 17179869184, "bucket": {"maxMsgs": 50000000}}},
    }
    (deployment,) = _by_kind(render("akc", "ops", shared(values)), "Deployment")
    env = {
        e["name"]: e["value"]
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    known = {option.env for option in settings.OPTIONS}
    assert set(env) <= known, f"not operator settings: {set(env) - known}"
    ops = settings.from_sources(None, env)
    assert ops.namespaces == ("tenant-a", "tenant-b")
    assert ops.nats_password_file == "/etc/akeneo/nats/password"
    assert ops.pod_nats_secret == "nats-pods"
    assert ops.ingress_class == "nginx"
    assert ops.resources("worker").limits == {"memory": "512Mi"}
    assert ops.resources("receiver").requests == {"cpu": "100m", "memory": "128Mi"}
    assert ops.image == "akeneo-connector:0.1.0"
    assert ops.default_tls is not None and ops.default_tls.issuer_ref is not None
    assert (ops.default_tls.mode, ops.default_tls.issuer_ref.name) == ("certManager", "letsencrypt")
    (plain,) = _by_kind(render("akc", "ops", shared()), "Deployment")
    assert "AKENEO_OPERATOR_DEFAULT_TLS" not in str(plain)  # none by default: selfSigned
    assert ops.stream_quotas.max.max_bytes == 16 * 1024**3  # rendered as an integer
    assert ops.stream_quotas.max.bucket.max_msgs == 50_000_000
    (peering,) = {
        d["metadata"]["name"] for d in _by_kind(render("akc", "ops", shared(values)), "KopfPeering")
    }
    assert ops.peering_name == peering


@pytest.mark.parametrize(
    "values",
    [
        {"watchNamespaces": ["Not_A_Namespace"]},
        {"nats": {"url": "http://nats:4222"}},
        {"nats": {"url": ["nats://a:4222", "http://b:4222"]}},
        {"nats": {"url": "nats://a:4222,http://b:4222"}},
        {"nats": {"url": []}},
        {"connectorResources": {"default": {"requests": {}}, "sidecar": {}}},
        {"defaultTLS": {"mode": "letsEncrypt"}},
        {"streamQuotas": {"max": {"maxBytes": "16Gi"}}},
        {"eventPlatform": {"url": "http://event.example.com/api/v1"}},
        {"eventPlatform": {"caConfigMap": "Not A Name"}},
    ],
)
def test_values_schema_refuses_invalid_values(values: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError, match="values don't meet the specifications"):
        render("akc", "ops", values)
