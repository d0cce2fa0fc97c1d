from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from akeneo_receiver import config


def parse(argv: list[str]) -> config.ReceiverConfig:
    parser = argparse.ArgumentParser()
    config.configure(parser)
    return config.from_args(parser.parse_args(argv))


def test_defaults_follow_the_configuration_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AKENEO_PORT", "AKENEO_MAX_BODY_BYTES", "AKENEO_TIMESTAMP_TOLERANCE"):
        monkeypatch.delenv(name, raising=False)
    cfg = parse(["--connection", "tenant-a/acme"])
    assert (cfg.port, cfg.max_body_bytes, cfg.timestamp_tolerance) == (8443, 1_048_576, 300.0)
    assert cfg.tls_cert_file is None and not cfg.ensure_stream
    assert cfg.event_subject("product") == "akeneo.tenant-a__acme.events.product"
    assert cfg.notifications_subject == "akeneo.tenant-a__acme.notifications"


def test_env_is_read_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AKENEO_CONNECTION", "tenant-b/shop")
    monkeypatch.setenv("AKENEO_PORT", "9443")
    monkeypatch.setenv("AKENEO_TIMESTAMP_TOLERANCE", "2m")
    monkeypatch.setenv("AKENEO_ENSURE_STREAM", "true")
    monkeypatch.setenv("AKENEO_EVENTS_API_SECRET_FILE", "/etc/akeneo/signature/eventsApiSecret")
    monkeypatch.setenv("AKENEO_SUBJECT_PREFIX", "custom")
    cfg = parse(["--port", "7443"])
    assert cfg.connection == "tenant-b/shop" and cfg.port == 7443
    assert cfg.timestamp_tolerance == 120.0 and cfg.ensure_stream
    assert cfg.events_api_secret_file == Path("/etc/akeneo/signature/eventsApiSecret")
    assert cfg.event_subject("product_model") == "custom.events.product_model"
    assert cfg.notifications_subject == "custom.notifications"


def test_notification_secret_file_from_env_or_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "AKENEO_EVENT_PLATFORM_NOTIFICATION_SECRET_FILE"
    monkeypatch.delenv(name, raising=False)
    assert parse(["--connection", "a/b"]).notification_secret_file is None
    monkeypatch.setenv(name, "/etc/akeneo/signature/eventPlatformNotificationSecret")
    cfg = parse(["--connection", "a/b"])
    assert cfg.notification_secret_file == Path(
        "/etc/akeneo/signature/eventPlatformNotificationSecret"
    )
    cfg = parse(["--connection", "a/b", "--event-platform-notification-secret-file", "/n"])
    assert cfg.notification_secret_file == Path("/n")


def test_connection_required_and_tls_pair_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AKENEO_CONNECTION", raising=False)
    with pytest.raises(ValueError, match="connection"):
        parse([])
    with pytest.raises(ValueError, match="together"):
        parse(["--connection", "a/b", "--tls-cert-file", "/x.crt"])


def test_receiver_subcommand_imports_nothing_heavy() -> None:
    """Idle RSS: ``akeneo-connector receiver`` must not load the operator's or worker's stack."""
    code = (
        "import sys\n"
        "from akeneo_cli.main import build_parser\n"
        "build_parser('receiver')\n"
        "import akeneo_receiver.app\n"
        "heavy = {'kopf', 'kubernetes_asyncio', 'psycopg', 'httpx', 'yaml', 'croniter'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
