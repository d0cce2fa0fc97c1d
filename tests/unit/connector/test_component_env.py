"""One spec -> settings builder for the operator's pods and local mode's children: they differ
only where the placement says (paths, ports, NATS credentials, the platform's allowances)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from akeneo_connector import component_env
from akeneo_connector.local_layout import LocalPlacement
from akeneo_connector.nats_auth import Role
from akeneo_connector.settings_contract import WorkerSettings, resolve
from akeneo_connector.spec import AkeneoConnectionSpec
from akeneo_operator.pods import PodPlacement
from tests.unit.operator.builders_support import BASE_SPEC, make_input

SPEC: dict[str, Any] = {
    **copy.deepcopy(BASE_SPEC),
    "worker": {
        "maxDeliver": 4,
        "ackWait": "1m30s",
        "sink": {"webhook": {"url": "http://10.0.0.7/hook", "allowPrivateAddresses": True,
                             "signingSecret": "hook-secret"}},
    },
}  # fmt: skip


def test_pods_and_local_mode_get_the_same_settings_but_for_placement(tmp_path: Path) -> None:
    inp = make_input(SPEC, allow_private_webhooks=True)
    spec = AkeneoConnectionSpec.model_validate(SPEC)
    pod = component_env.worker(inp.names, spec, PodPlacement(inp, Role.WORKER))
    local = component_env.worker(inp.names, spec, LocalPlacement(tmp_path, "nats://127.0.0.1:1"))
    pod_env, local_env = dict(pod.env), dict(local.env)
    assert set(pod_env) - set(local_env) == {"AKENEO_LOG_LEVEL"}  # the operator's own level
    same = ("AKENEO_MAX_DELIVER", "AKENEO_ACK_WAIT", "AKENEO_SINK", "AKENEO_WEBHOOK_URL",
            "AKENEO_WEBHOOK_ALLOW_PRIVATE", "AKENEO_PIM_URL", "AKENEO_CONNECTION")  # fmt: skip
    assert {k: pod_env[k] for k in same} == {k: local_env[k] for k in same}
    assert pod_env["AKENEO_ACK_WAIT"] == "1m30s"  # as the spec wrote it
    assert pod_env["AKENEO_WEBHOOK_SIGNING_SECRET_FILE"] == "/etc/akeneo/sink/signingSecret"
    assert local_env["AKENEO_WEBHOOK_SIGNING_SECRET_FILE"] == str(
        tmp_path / "secrets" / "hook-secret" / "signingSecret"
    )
    # what the worker reads back from either env is the settings the builder meant
    assert resolve(WorkerSettings, None, pod_env) == pod.settings
    assert resolve(WorkerSettings, None, local_env) == local.settings


def test_the_platform_decides_on_private_addresses_in_pods_only(tmp_path: Path) -> None:
    inp = make_input(SPEC)  # allow_private_webhooks off
    spec = AkeneoConnectionSpec.model_validate(SPEC)
    pod = component_env.worker(inp.names, spec, PodPlacement(inp, Role.WORKER))
    local = component_env.worker(inp.names, spec, LocalPlacement(tmp_path, "nats://127.0.0.1:1"))
    assert not pod.settings.webhook_allow_private
    assert local.settings.webhook_allow_private  # local mode's platform is its user


def test_mounts_are_the_secret_keys_the_settings_point_to() -> None:
    inp = make_input(SPEC)
    rendered = component_env.receiver(
        inp.names, inp.spec, PodPlacement(inp, Role.RECEIVER), tls_secret="acme-tls",
        signature_keys={"eventPlatformSecrets"},
    )  # fmt: skip
    mounts = {(m.volume, m.secret, m.keys) for m in rendered.mounts}
    assert mounts == {("tls", "acme-tls", ("tls.crt", "tls.key")),
                      ("signature", "acme-events", ("eventPlatformSecrets",))}  # fmt: skip
    assert rendered.settings.events_api_secret_file is None
    assert str(rendered.settings.event_platform_secrets_file) == (
        "/etc/akeneo/signature/eventPlatformSecrets"
    )


def test_the_receiver_spools_where_a_restart_keeps_it(tmp_path: Path) -> None:
    """The outage's gap window, the notifications and events NATS could not take: in pods in the
    /tmp emptyDir (kept across container restarts), in local mode in the data dir."""
    inp = make_input(SPEC)
    pod = component_env.receiver(
        inp.names, inp.spec, PodPlacement(inp, Role.RECEIVER), tls_secret="acme-tls"
    )
    local = component_env.receiver(
        inp.names, inp.spec, LocalPlacement(tmp_path, "nats://127.0.0.1:1")
    )
    assert dict(pod.env)["AKENEO_NOTIFICATION_SPOOL_FILE"] == "/tmp/akeneo-notifications.json"
    assert local.settings.notification_spool_file == tmp_path / "receiver-notifications.json"
    assert dict(pod.env)["AKENEO_EVENT_SPOOL_FILE"] == "/tmp/akeneo-events.spool"
    assert local.settings.event_spool_file == tmp_path / "receiver-events.spool"
    spools = {"gap", "notification", "event"}
    files = {getattr(local.settings, f"{kind}_spool_file") for kind in spools}
    assert len(files) == len(spools)  # one file each
