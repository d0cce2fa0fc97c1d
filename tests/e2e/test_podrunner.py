"""The pod runner turns a pod spec into the process a kubelet would start."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from akeneo_testing.podrunner import PodSpecError, plan_container


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


POD = {
    "containers": [
        {
            "name": "receiver",
            "command": ["akeneo-connector", "receiver"],
            "args": ["--tls-cert-file", "/etc/akeneo/tls/tls.crt"],
            "env": [
                {"name": "AKENEO_TLS_KEY_FILE", "value": "/etc/akeneo/tls/tls.key"},
                {"name": "AKENEO_PORT", "value": "8443"},
                {
                    "name": "AKENEO_NATS_PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "nats", "key": "password"}},
                },
                {
                    "name": "OPTIONAL",
                    "valueFrom": {"secretKeyRef": {"name": "nats", "key": "x", "optional": True}},
                },
            ],
            "volumeMounts": [
                {"name": "tls", "mountPath": "/etc/akeneo/tls", "readOnly": True},
                {"name": "sig", "mountPath": "/etc/akeneo/signature"},
            ],
        }
    ],
    "volumes": [
        {"name": "tls", "secret": {"secretName": "acme-tls"}},
        {
            "name": "sig",
            "secret": {
                "secretName": "acme-events",
                "items": [
                    {"key": "eventsApiSecret", "path": "eventsApiSecret"},
                    {"key": "eventPlatformSecrets", "path": "eventPlatformSecrets"},
                ],
                "optional": True,
            },
        },
    ],
}
SECRETS = {
    "acme-tls": {"data": {"tls.crt": b64("CERT"), "tls.key": b64("KEY")}},
    "acme-events": {"data": {"eventsApiSecret": b64("s3")}},
    "nats": {"data": {"password": b64("pw")}},
}


def test_plan_rewrites_mounts_and_resolves_env(tmp_path: Path) -> None:
    plan = plan_container(
        POD,
        "receiver",
        root=tmp_path,
        secrets=SECRETS,
        config_maps={},
        overrides={"AKENEO_PORT": "18443"},
    )
    cert = tmp_path / "etc/akeneo/tls/tls.crt"
    assert plan.argv == ["akeneo-connector", "receiver", "--tls-cert-file", str(cert)]
    assert plan.env["AKENEO_TLS_KEY_FILE"] == str(tmp_path / "etc/akeneo/tls/tls.key")
    assert plan.env["AKENEO_PORT"] == "18443"
    assert plan.env["AKENEO_NATS_PASSWORD"] == "pw"
    assert "OPTIONAL" not in plan.env
    plan.write_files()
    assert cert.read_bytes() == b"CERT"
    assert (tmp_path / "etc/akeneo/signature/eventsApiSecret").read_bytes() == b"s3"
    assert not (tmp_path / "etc/akeneo/signature/eventPlatformSecrets").exists()


def test_missing_required_secret_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PodSpecError, match="object missing"):
        plan_container(POD, "receiver", root=tmp_path, secrets={}, config_maps={})
