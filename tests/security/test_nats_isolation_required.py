"""Issue 15, row 3: shared NATS credentials are an explicit, visible choice of the platform.

The real helm binary refuses to render or lint the chart without an account signing key
unless ``nats.insecureSharedCredentials=true``; an operator without a signing key (on the
real API server) marks every connection ``NatsIsolated=False`` while it still becomes Ready.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from akeneo_operator.kubeclient import KubeClient
from akeneo_testing.ground.binaries import k8s_binary, versions
from akeneo_testing.ground.helm import CHART, ChartIdentity, helm, render
from akeneo_testing.ground.kube import KubeCluster
from tests.integration.operator.running import (
    admin_client,
    basic_spec,
    condition,
    connection,
    make_namespace,
    tenant_secrets,
)
from tests.security.kube_support import delete_connections, operator_in, ready_with

NS = "tenant-natsiso"
SIGNING = {"existingSecret": "nats-account", "account": "A" + "B" * 55}
INSECURE: dict[str, Any] = {"nats": {"insecureSharedCredentials": True}}


def _lint(values: dict[str, Any], tmp_path: Path) -> tuple[int, str]:
    """(exit status, report) of the real ``helm lint --strict``."""
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    argv = [str(k8s_binary("helm")), "lint", "--strict", str(CHART), "--values", str(values_file)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"nats": {"podSecret": "nats-pods"}},
        {"nats": {"insecureSharedCredentials": False}},
    ],
)
def test_chart_refuses_to_render_shared_nats_credentials_by_default(
    values: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError) as refused:
        render("akc", "ops", values)
    message = str(refused.value)
    assert "accountSigningKey" in message and "insecureSharedCredentials" in message
    status, report = _lint(values, tmp_path)
    assert status != 0 and "1 chart(s) failed" in report
    assert "accountSigningKey" in report and "insecureSharedCredentials" in report
    # the template refuses too, should the values schema be skipped
    with pytest.raises(RuntimeError) as refused:
        helm(
            "template", "akc", CHART, "--skip-schema-validation", "--values", "-",
            "--kube-version", versions()["K8S_VERSION"],
            stdin=yaml.safe_dump(values),
        )  # fmt: skip
    assert "nats.accountSigningKey.existingSecret is required" in str(refused.value)


def test_only_a_boolean_true_opts_out() -> None:
    with pytest.raises(RuntimeError, match="insecureSharedCredentials"):
        render("akc", "ops", {"nats": {"insecureSharedCredentials": "true"}})


def test_chart_renders_with_a_signing_key_or_the_explicit_opt_out(tmp_path: Path) -> None:
    signed = render("akc", "ops", {"nats": {"accountSigningKey": SIGNING}})
    assert any(d["kind"] == "Deployment" for d in signed)
    shared = render("akc", "ops", {"nats": {"insecureSharedCredentials": True, "podSecret": "p"}})
    assert any(d["kind"] == "Deployment" for d in shared)
    assert _lint(INSECURE, tmp_path)[0] == 0


@pytest_asyncio.fixture
async def client(kube: KubeCluster, crd_installed: list[str]) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    await make_namespace(c, NS, tenant_secrets(NS, "acme"))
    yield c
    await c.close()


@pytest.mark.kube
async def test_connections_without_a_signing_key_say_they_are_not_isolated(
    client: KubeClient,
    nats: str,
    chart_identity: ChartIdentity,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with operator_in(tmp_path_factory, chart_identity, nats, [NS]) as op:
        try:
            await client.create(connection(NS, "acme", basic_spec("acme")))
            body = await ready_with(client, op, NS, "acme", "True")
            isolated = condition(body, "NatsIsolated")
            assert isolated.get("status") == "False", body["status"]["conditions"]
            assert isolated["reason"] == "NoCredentials"
            assert "not isolated" in isolated["message"]
        finally:
            await delete_connections(client, op, NS)
