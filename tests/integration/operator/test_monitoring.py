"""The chart's alerts and dashboard. promtool (built from its Go module) accepts the rendered
rules; the API server accepts the PrometheusRule, PodMonitor, ServiceMonitor and the
dashboard ConfigMap against prometheus-operator's real CRDs; and every metric a rule or a
panel names is exported by a running receiver, worker and operator, the events that create a
series (a rejected delivery, a dead letter, a suspension notification, a finished reconcile
Job) being triggered here."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from nats.aio.client import Client as NATS
from prometheus_client.parser import text_string_to_metric_families

from akeneo_connector.names import ConnectionNames
from akeneo_operator.kubeclient import ApiError, KubeClient
from akeneo_pim.paths import NOTIFICATIONS_PATH
from akeneo_pim.signatures import events_api_headers, notification_headers
from akeneo_receiver.app import Receiver
from akeneo_testing.ground import crds
from akeneo_testing.ground.binaries import k8s_binary
from akeneo_testing.ground.helm import render
from akeneo_testing.ground.kube import KubeCluster
from akeneo_testing.ground.processes import ServerProcess, free_port, wait_until
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_testing.payloads import legacy_batch
from tests.integration.operator.running import (
    API,
    OperatorProcess,
    OperatorSetup,
    admin_client,
    basic_spec,
    condition,
    connection,
    make_namespace,
    poll,
    tenant_secrets,
)
from tests.integration.receiver.conftest import (
    EVENTS_API_SECRET,
    NOTIFICATION_SECRET,
    make_config,
    write_files,
)
from tests.unit.pim_formats.test_notifications import DOC_SAMPLE

pytestmark = pytest.mark.kube
NS = "tenant-mon"
MONITORING = "monitoring.coreos.com/v1"
ALL_ON: dict[str, Any] = {
    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "grafanaDashboard": {"enabled": True},
    "metrics": {"podMonitor": {"enabled": True}, "serviceMonitor": {"enabled": True}},
    # no account signing key in a bare render: the chart wants that choice said aloud
    "nats": {"insecureSharedCredentials": True},
}
METRIC = re.compile(r"\bakeneo_[a-z0-9_]+")


def rendered() -> dict[str, dict[str, Any]]:
    docs = render("akc", "akeneo-operator", ALL_ON)
    return {d["kind"]: d for d in docs if d["kind"] != "ConfigMap"} | {
        "ConfigMap": next(
            d
            for d in docs
            if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")
        )
    }


def rule_exprs(rule: dict[str, Any]) -> list[str]:
    return [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]


def dashboard(doc: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(doc["data"]["akeneo-connector.json"])
    return data


def panel_exprs(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


def promtool_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(k8s_binary("promtool")), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_promtool_accepts_the_rendered_rules_and_refuses_a_broken_one(tmp_path: Path) -> None:
    rule = rendered()["PrometheusRule"]
    groups = rule["spec"]["groups"]
    good = tmp_path / "rules.yaml"
    good.write_text(yaml.safe_dump({"groups": groups}))
    done = promtool_check(good)
    count = sum(len(g["rules"]) for g in groups)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {count} rules found" in done.stdout
    names = {r["alert"] for g in groups for r in g["rules"]}
    assert {
        "AkeneoReceiverErrors",
        "AkeneoReceiverQueueUnavailable",
        "AkeneoReceiverRejectionsSpike",
        "AkeneoConsumerLagGrowing",
        "AkeneoDeadLetters",
        "AkeneoReconcileFailing",
        "AkeneoReconcileNotRun",
        "AkeneoCertificateExpiring",
        "AkeneoEventSubscriptionSuspended",
        "AkeneoOperatorHandlerErrors",
    } <= names
    broken = copy.deepcopy(groups)
    broken[0]["rules"][0]["expr"] = "sum by (namespace (rate(akeneo_receiver_requests_total[5m]))"
    bad = tmp_path / "broken.yaml"
    bad.write_text(yaml.safe_dump({"groups": broken}))
    assert promtool_check(bad).returncode != 0


# `promtool test rules`: series in, alerts out (interval 1m; `a+bxN`: N+1 samples from a).
ALERT_CASES: dict[str, Any] = {
    "rule_files": ["rules.yaml"],
    "evaluation_interval": "1m",
    "tests": [
        {
            "interval": "1m",
            "input_series": [
                # the queue went down at minute 10: 503s from then on
                {
                    "series": 'akeneo_receiver_requests_total{namespace="t",connection="c",'
                    'format="events_api",code="503"}',
                    "values": "0x10 0+5x20",
                },
                {
                    "series": 'akeneo_worker_dead_lettered_total{namespace="t",'
                    'connection="c",cause="malformed"}',
                    "values": "0x5 1x25",
                },
                # schedule every 15 min; the last run finished at t=0, so overdue after 30 min
                {
                    "series": 'akeneo_operator_reconcile_last_run_timestamp_seconds{namespace="t",'
                    'connection="c"}',
                    "values": "0x60",
                },
                {
                    "series": 'akeneo_operator_reconcile_period_seconds{namespace="t",'
                    'connection="c"}',
                    "values": "900x60",
                },
                {
                    "series": 'akeneo_operator_connection_condition{namespace="t",'
                    'connection="c",type="EventSubscriptionActive"}',
                    "values": "1x10 0x20",
                },
                # 1 rejection a minute for 6 h, then 30 a minute: a spike; c2 steady at 30
                {
                    "series": 'akeneo_receiver_rejected_requests_total{namespace="t",'
                    'connection="c",reason="bad_signature"}',
                    "values": "0+1x360 360+30x20",
                },
                {
                    "series": 'akeneo_receiver_rejected_requests_total{namespace="t",'
                    'connection="c2",reason="bad_signature"}',
                    "values": "0+30x380",
                },
                # c's backlog grows by 100 a minute; c2's is large but flat
                {
                    "series": 'akeneo_worker_consumer_lag{namespace="t",connection="c"}',
                    "values": "0+100x60",
                },
                {
                    "series": 'akeneo_worker_consumer_lag{namespace="t",connection="c2"}',
                    "values": "5000x60",
                },
            ],
            "alert_rule_test": [
                {
                    "eval_time": "355m",
                    "alertname": "AkeneoReceiverRejectionsSpike",
                    "exp_alerts": [],
                },
                {
                    "eval_time": "370m",
                    "alertname": "AkeneoReceiverRejectionsSpike",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "warning",
                                "namespace": "t",
                                "connection": "c",
                                "reason": "bad_signature",
                            }
                        }
                    ],
                },
                {"eval_time": "20m", "alertname": "AkeneoConsumerLagGrowing", "exp_alerts": []},
                {
                    "eval_time": "40m",
                    "alertname": "AkeneoConsumerLagGrowing",
                    "exp_alerts": [
                        {"exp_labels": {"severity": "warning", "namespace": "t", "connection": "c"}}
                    ],
                },
                {
                    "eval_time": "9m",
                    "alertname": "AkeneoReceiverQueueUnavailable",
                    "exp_alerts": [],
                },
                {
                    "eval_time": "15m",
                    "alertname": "AkeneoReceiverQueueUnavailable",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "critical",
                                "namespace": "t",
                                "connection": "c",
                            }
                        }
                    ],
                },
                {
                    "eval_time": "10m",
                    "alertname": "AkeneoDeadLetters",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "warning",
                                "namespace": "t",
                                "connection": "c",
                                "cause": "malformed",
                            }
                        }
                    ],
                },
                {"eval_time": "28m", "alertname": "AkeneoDeadLetters", "exp_alerts": []},
                {"eval_time": "30m", "alertname": "AkeneoReconcileNotRun", "exp_alerts": []},
                {
                    "eval_time": "40m",
                    "alertname": "AkeneoReconcileNotRun",
                    "exp_alerts": [
                        {"exp_labels": {"severity": "warning", "namespace": "t", "connection": "c"}}
                    ],
                },
                {
                    "eval_time": "10m",
                    "alertname": "AkeneoEventSubscriptionSuspended",
                    "exp_alerts": [],
                },
                {
                    "eval_time": "13m",
                    "alertname": "AkeneoEventSubscriptionSuspended",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "critical",
                                "namespace": "t",
                                "connection": "c",
                            }
                        }
                    ],
                },
            ],
        }
    ],
}


def test_alerts_fire_on_what_they_describe_and_not_before(tmp_path: Path) -> None:
    groups = copy.deepcopy(rendered()["PrometheusRule"]["spec"]["groups"])
    for group in groups:  # the texts are checked by `promtool check rules`; here: when
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "cases.yaml").write_text(yaml.safe_dump(ALERT_CASES))
    done = subprocess.run(
        [str(k8s_binary("promtool")), "test", "rules", "cases.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_selects_one_connection() -> None:
    doc = rendered()["ConfigMap"]
    assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = dashboard(doc)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert "label_values(" in variables["connection"]["query"]["query"]
    assert variables["connection"]["multi"] is True
    for expr in panel_exprs(board):
        if "akeneo_operator_reconciles_total" not in expr:  # operator-wide, no connection
            assert 'connection=~"$connection"' in expr, expr


def _path(doc: dict[str, Any], plural: str) -> str:
    return f"/apis/{doc['apiVersion']}/namespaces/{doc['metadata']['namespace']}/{plural}"


@pytest_asyncio.fixture(scope="module")
async def schemas(kube: KubeCluster) -> AsyncIterator[KubeClient]:
    """prometheus-operator's real CRDs installed (removed afterwards)."""
    c = admin_client(kube)
    which = (
        crds.PROMETHEUS_RULES,
        ("prometheus-operator", "monitoring.coreos.com_podmonitors.yaml"),
        ("prometheus-operator", "monitoring.coreos.com_servicemonitors.yaml"),
    )
    names = [await crds.install(c, w) for w in which]

    async def served() -> bool:
        try:
            for plural in ("prometheusrules", "podmonitors", "servicemonitors"):
                await c.request("GET", f"/apis/{MONITORING}/{plural}")
        except ApiError:
            return False
        return True

    await poll(served, what="prometheus-operator kinds served")
    yield c
    for name in names:
        await crds.remove(c, name)
    await c.close()


async def test_monitoring_objects_validate_against_the_real_crds(schemas: KubeClient) -> None:
    c = schemas
    objects = rendered()
    await make_namespace(c, "akeneo-operator", [])
    for kind, plural in (
        ("PrometheusRule", "prometheusrules"),
        ("PodMonitor", "podmonitors"),
        ("ServiceMonitor", "servicemonitors"),
    ):
        await crds.dry_run_create(c, _path(objects[kind], plural), objects[kind])
    dash = objects["ConfigMap"]
    await crds.dry_run_create(
        c, f"/api/v1/namespaces/{dash['metadata']['namespace']}/configmaps", dash
    )
    # controls: the schema is really checked (strict: an unknown field is refused)
    wrong = copy.deepcopy(objects["PrometheusRule"])
    wrong["spec"]["groups"][0]["rules"][0]["expression"] = "up"
    with pytest.raises(ApiError) as refused:
        await crds.dry_run_create(c, _path(wrong, "prometheusrules"), wrong)
    assert refused.value.status in (400, 422)
    wrong = copy.deepcopy(objects["PodMonitor"])
    wrong["spec"]["podMetricsEndpoints"][0]["port"] = 8443  # a name, per the schema
    with pytest.raises(ApiError):
        await crds.dry_run_create(c, _path(wrong, "podmonitors"), wrong)


# -- every metric named is exported by a running component ---------------------------------


@pytest.fixture(scope="module")
def operator_setup() -> OperatorSetup:
    return OperatorSetup(
        env=dict(
            AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
            AKENEO_PORT=str(free_port()),
        ),
    )


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster, operator: OperatorProcess) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    await make_namespace(c, NS, tenant_secrets(NS, "mon"))
    yield c
    await c.delete(API, "AkeneoConnection", NS, "mon")

    async def finalized() -> bool:
        return await c.get(API, "AkeneoConnection", NS, "mon") is None

    await poll(finalized, what="connection finalized", operators=(operator,))
    await c.close()


async def scrape(http: aiohttp.ClientSession, url: str) -> set[str]:
    """Names of the samples ``url`` exports (``_total``, ``_bucket`` included); none while
    the component is still starting."""
    try:
        async with http.get(url) as resp:
            text = await resp.text()
    except aiohttp.ClientConnectionError:
        return set()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def worker_process(names: ConnectionNames, nats: str, port: int, workdir: Path) -> ServerProcess:
    argv = [sys.executable, "-m", "akeneo_cli", "worker", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKENEO_")}
    env |= {
        "AKENEO_CONNECTION": names.ref,
        "AKENEO_NATS_URL": nats,
        "AKENEO_SINK": "sqlite",
        "AKENEO_SQLITE_PATH": str(workdir / "catalog.db"),
        "AKENEO_REPLICA": "mon",
    }
    return ServerProcess(f"worker-{port}", argv, workdir).start(env=env)


async def finished_reconcile_job(client: KubeClient) -> None:
    cron = await client.get("batch/v1", "CronJob", NS, "mon-reconcile")
    assert cron is not None
    template = cron["spec"]["jobTemplate"]
    await client.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "mon-reconcile-manual",
                "namespace": NS,
                "labels": template["metadata"]["labels"],
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": "mon-reconcile",
                        "uid": cron["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": template["spec"],
        }
    )


async def test_every_metric_of_a_rule_or_panel_is_exported(
    operator: OperatorProcess, client: KubeClient, nats: str, tmp_path: Path
) -> None:
    objects = rendered()
    wanted = {
        name
        for expr in rule_exprs(objects["PrometheusRule"])
        + panel_exprs(dashboard(objects["ConfigMap"]))
        for name in METRIC.findall(expr)
    }
    names = ConnectionNames(NS, "mon")
    await client.create(connection(NS, "mon", basic_spec("mon")))

    async def stream_ready() -> bool:
        body = await client.get(API, "AkeneoConnection", NS, "mon")
        return condition(body, "StreamReady").get("status") == "True"

    await poll(stream_ready, what="stream provisioned", operators=(operator,))
    await finished_reconcile_job(client)

    # the receiver of that connection, on the operator's stream: one accepted delivery, one
    # notification that Akeneo suspended the subscription, one with a bad signature
    ca = CertificateAuthority("monitoring test CA")
    write_files(tmp_path / "receiver", ca)
    config = make_config(tmp_path / "receiver", nats, names=names, ensure_stream=False)
    receiver = Receiver(config)
    await receiver.start()
    worker_port = free_port()
    worker = worker_process(names, nats, worker_port, tmp_path)
    nc = NATS()
    await nc.connect(nats)
    exported: set[str] = set()
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ca.client_context())
        ) as http:
            base = f"https://localhost:{config.port}"
            sent = notification_headers(NOTIFICATION_SECRET, DOC_SAMPLE)
            async with http.post(base + NOTIFICATIONS_PATH, data=DOC_SAMPLE, headers=sent) as r:
                assert r.status == 200, await r.text()
            legacy = legacy_batch(2)
            signed = events_api_headers(EVENTS_API_SECRET, legacy)
            async with http.post(base + "/events", data=legacy, headers=signed) as r:
                assert r.status == 200, await r.text()
            async with http.post(
                base + "/events", data=b"{}", headers={"X-Akeneo-Request-Signature": "0" * 64}
            ) as r:
                assert r.status in (400, 401)
            # a message no worker can read goes to the dead letters at once
            await nc.jetstream().publish(names.event_subject("product"), b"not an event")
            worker_url = f"http://127.0.0.1:{worker_port}/metrics"

            async def suspended() -> bool:
                body = await client.get(API, "AkeneoConnection", NS, "mon")
                return condition(body, "EventSubscriptionActive").get("status") == "False"

            await poll(suspended, timeout=60, what="subscription suspended", operators=(operator,))

            async def all_exported() -> set[str] | None:
                admin = f"http://127.0.0.1:{config.admin_port}/metrics"  # not the public port
                found = await scrape(http, admin)
                with_worker = found | await scrape(http, worker_url)
                op = f"http://127.0.0.1:{operator.env['AKENEO_PORT']}/metrics"
                exported.clear()
                exported.update(with_worker | await scrape(http, op))
                return exported if wanted <= exported else None

            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and await all_exported() is None:
                operator.assert_alive()
                wait_until(lambda: worker.alive, timeout=1, what="worker alive")
                await asyncio.sleep(0.5)
    finally:
        await nc.close()
        worker.stop()
        await receiver.stop()
    assert wanted - exported == set(), (
        f"named in rules/panels, exported by nothing: {wanted - exported}"
    )
