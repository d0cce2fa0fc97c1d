"""Receiver configuration: flags with environment-variable equivalents (the flag wins).

The names and defaults are the contract in ``docs/configuration.md``; the operator sets the env.
"""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from akeneo_connector.durations import parse_duration
from akeneo_connector.names import ConnectionNames

DEFAULT_PORT = 8443
# /healthz, /readyz and /metrics, plain HTTP: probes and scraping reach the pod directly,
# nothing routes the internet there (the public port serves the event URLs only).
DEFAULT_ADMIN_PORT = 8081
DEFAULT_MAX_BODY_BYTES = 1_048_576
DEFAULT_TOLERANCE = "300s"
DEFAULT_MAX_PENDING = 10_000
DEFAULT_ACK_BUDGET = "400ms"  # the legacy PIM waits 0.5 s for the whole request
# The Event Platform waits 5 s: riding out a short JetStream stall beats a 503, which it only
# retries minutes later and counts against the subscription's success rate.
DEFAULT_EVENT_PLATFORM_ACK_BUDGET = "4s"


@dataclass(frozen=True)
class ReceiverConfig:
    names: ConnectionNames
    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password_file: Path | None = None
    nats_creds_file: Path | None = None
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    admin_port: int = DEFAULT_ADMIN_PORT  # 0: no admin server (embedded use)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    events_api_secret_file: Path | None = None
    event_platform_secrets_file: Path | None = None
    notification_secret_file: Path | None = None
    subject_prefix: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    timestamp_tolerance: float = 300.0
    ack_budget: float = 0.4
    event_platform_ack_budget: float = 4.0
    max_pending: int = DEFAULT_MAX_PENDING
    ensure_stream: bool = False
    reload_interval: float = 1.0
    log_level: str = "info"
    gap_spool_file: Path | None = None
    # the pod's name (downward API; the hostname by default): the key of its secret report
    pod_name: str = ""
    secret_report_interval: float = 30.0

    @property
    def pod(self) -> str:
        return self.pod_name or socket.gethostname()

    @property
    def connection(self) -> str:
        return self.names.ref

    @property
    def prefix(self) -> str:
        return self.subject_prefix or self.names.subject_prefix

    def event_subject(self, kind: str) -> str:
        if self.subject_prefix is None:
            return self.names.event_subject(kind)
        return f"{self.subject_prefix}.events.{kind}"

    @property
    def notifications_subject(self) -> str:
        if self.subject_prefix is None:
            return self.names.notifications_subject
        return f"{self.subject_prefix}.notifications"

    def gap_subject(self, source: str) -> str:
        if self.subject_prefix is None:
            return self.names.gap_subject(source)
        return f"{self.subject_prefix}.gaps.{source}"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _bool_env(name: str) -> bool:
    return (_env(name) or "").strip().lower() in ("1", "true", "yes", "on")


def _seconds(text: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _path(text: str) -> Path:
    return Path(text)


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--connection", default=_env("AKENEO_CONNECTION"), help="namespace/name [AKENEO_CONNECTION]"
    )
    add(
        "--nats-url",
        default=_env("AKENEO_NATS_URL", "nats://127.0.0.1:4222"),
        help="comma-separated NATS URLs [AKENEO_NATS_URL]",
    )
    add("--nats-user", default=_env("AKENEO_NATS_USER"), help="[AKENEO_NATS_USER]")
    add(
        "--nats-password-file",
        type=_path,
        default=_env("AKENEO_NATS_PASSWORD_FILE"),
        help="[AKENEO_NATS_PASSWORD_FILE]",
    )
    add(
        "--nats-creds-file",
        type=_path,
        default=_env("AKENEO_NATS_CREDS_FILE"),
        help="[AKENEO_NATS_CREDS_FILE]",
    )
    add("--log-level", default=_env("AKENEO_LOG_LEVEL", "info"), help="[AKENEO_LOG_LEVEL]")
    add("--host", default=_env("AKENEO_HOST", "0.0.0.0"), help="listen address [AKENEO_HOST]")
    add(
        "--port",
        type=int,
        default=int(_env("AKENEO_PORT", str(DEFAULT_PORT)) or DEFAULT_PORT),
        help="[AKENEO_PORT]",
    )
    add(
        "--admin-port",
        type=int,
        default=int(_env("AKENEO_ADMIN_PORT", str(DEFAULT_ADMIN_PORT)) or DEFAULT_ADMIN_PORT),
        help="plain-HTTP port of /healthz, /readyz and /metrics; never expose it publicly "
        "(0: none) [AKENEO_ADMIN_PORT]",
    )
    add(
        "--tls-cert-file",
        type=_path,
        default=_env("AKENEO_TLS_CERT_FILE"),
        help="PEM certificate chain, reloaded on change [AKENEO_TLS_CERT_FILE]",
    )
    add(
        "--tls-key-file",
        type=_path,
        default=_env("AKENEO_TLS_KEY_FILE"),
        help="PEM private key, reloaded on change [AKENEO_TLS_KEY_FILE]",
    )
    add(
        "--events-api-secret-file",
        type=_path,
        default=_env("AKENEO_EVENTS_API_SECRET_FILE"),
        help="legacy Events API secret(s), one per line [AKENEO_EVENTS_API_SECRET_FILE]",
    )
    add(
        "--event-platform-secrets-file",
        type=_path,
        default=_env("AKENEO_EVENT_PLATFORM_SECRETS_FILE"),
        help="Event Platform secrets, one per line [AKENEO_EVENT_PLATFORM_SECRETS_FILE]",
    )
    add(
        "--event-platform-notification-secret-file",
        type=_path,
        default=_env("AKENEO_EVENT_PLATFORM_NOTIFICATION_SECRET_FILE"),
        help="the subscriber's notification webhook secret (key eventPlatformNotificationSecret)"
        " [AKENEO_EVENT_PLATFORM_NOTIFICATION_SECRET_FILE]",
    )
    add(
        "--subject-prefix",
        default=_env("AKENEO_SUBJECT_PREFIX"),
        help="default: derived from the connection [AKENEO_SUBJECT_PREFIX]",
    )
    add(
        "--max-body-bytes",
        type=int,
        default=int(_env("AKENEO_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES)) or 0),
        help="[AKENEO_MAX_BODY_BYTES]",
    )
    add(
        "--timestamp-tolerance",
        type=_seconds,
        default=_seconds(_env("AKENEO_TIMESTAMP_TOLERANCE", DEFAULT_TOLERANCE) or ""),
        help="legacy signature timestamp tolerance, past or future [AKENEO_TIMESTAMP_TOLERANCE]",
    )
    add(
        "--ack-budget",
        type=_seconds,
        default=_seconds(_env("AKENEO_ACK_BUDGET", DEFAULT_ACK_BUDGET) or ""),
        help="max wait for JetStream acks before answering 503 [AKENEO_ACK_BUDGET]",
    )
    add(
        "--event-platform-ack-budget",
        type=_seconds,
        default=_seconds(
            _env("AKENEO_EVENT_PLATFORM_ACK_BUDGET", DEFAULT_EVENT_PLATFORM_ACK_BUDGET) or ""
        ),
        help="the same for Event Platform deliveries, whose sender waits 5 s "
        "[AKENEO_EVENT_PLATFORM_ACK_BUDGET]",
    )
    add(
        "--max-pending",
        type=int,
        default=int(_env("AKENEO_MAX_PENDING", str(DEFAULT_MAX_PENDING)) or 0),
        help="Event Platform gets 429 while the worker consumer has more pending "
        "[AKENEO_MAX_PENDING]",
    )
    add(
        "--gap-spool-file",
        type=_path,
        default=_env("AKENEO_GAP_SPOOL_FILE"),
        help="where an outage (503s) is kept until NATS takes its gap record; survives "
        "restarts [AKENEO_GAP_SPOOL_FILE]",
    )
    add(
        "--pod-name",
        default=_env("AKENEO_POD_NAME", ""),
        help="names this receiver's report of its loaded secrets (fingerprints only) in the "
        "connection's bucket; default: the hostname [AKENEO_POD_NAME]",
    )
    add(
        "--ensure-stream",
        action="store_true",
        default=_bool_env("AKENEO_ENSURE_STREAM"),
        help="create/update the stream and bucket at start [AKENEO_ENSURE_STREAM]",
    )


def from_args(args: argparse.Namespace) -> ReceiverConfig:
    if not args.connection:
        raise ValueError("--connection (or AKENEO_CONNECTION) is required")
    if (args.tls_cert_file is None) != (args.tls_key_file is None):
        raise ValueError("--tls-cert-file and --tls-key-file go together")
    return ReceiverConfig(
        names=ConnectionNames.parse(args.connection),
        nats_url=args.nats_url,
        nats_user=args.nats_user,
        nats_password_file=_opt_path(args.nats_password_file),
        nats_creds_file=_opt_path(args.nats_creds_file),
        host=args.host,
        port=args.port,
        admin_port=args.admin_port,
        tls_cert_file=_opt_path(args.tls_cert_file),
        tls_key_file=_opt_path(args.tls_key_file),
        events_api_secret_file=_opt_path(args.events_api_secret_file),
        event_platform_secrets_file=_opt_path(args.event_platform_secrets_file),
        notification_secret_file=_opt_path(args.event_platform_notification_secret_file),
        subject_prefix=args.subject_prefix,
        max_body_bytes=args.max_body_bytes,
        timestamp_tolerance=args.timestamp_tolerance,
        ack_budget=args.ack_budget,
        event_platform_ack_budget=args.event_platform_ack_budget,
        max_pending=args.max_pending,
        ensure_stream=args.ensure_stream,
        log_level=args.log_level,
        gap_spool_file=_opt_path(args.gap_spool_file),
        pod_name=args.pod_name or "",
    )


def _opt_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)
