"""The settings contract between the operator, local mode and the components, written once.

Each component's settings are one frozen dataclass whose fields carry their flag, env name,
description and default (``setting``). From these declarations come the components' flags
with env fallback (``add_arguments`` + ``resolve``: flag over env over default), the env the
operator's pods and local mode's children get (``to_env``), and ``docs/configuration.md``
(``akeneo_connector.settings_docs``). A field without metadata is an in-process knob, not
part of the contract.

Booleans have one parser for every component (``parse_bool``): ``1``, ``true``, ``yes``,
``on`` are true; empty, ``0``, ``false``, ``no``, ``off`` are false (case-insensitive); anything
else is refused with the variable's name, so a typo never silently means false. The operator
takes the same true words (``TRUE``) and, lenient as it always was, anything else as false.

Secrets are never values here: a secret setting is the path of a file (``secret=True``).
This module stays light (stdlib and ``names``/``durations`` only): the receiver imports it.
"""

# ruff: noqa: RUF009 (``setting(...)`` returns a dataclasses.field, not a shared default)
from __future__ import annotations

import argparse
import dataclasses
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from akeneo_connector.durations import parse_duration
from akeneo_connector.names import ConnectionNames

T = TypeVar("T")
Kind = Literal["text", "int", "bool", "duration", "path", "connection", "list"]

TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")

SINKS = ("webhook", "postgres", "sqlite")
WEBHOOK_SIGNATURES = ("standard", "legacy")  # akeneo_connector.signing_secrets.WebhookSignature
REST_BUDGETS = ("connection", "process")
# akeneo_connector.spec.ReconcileResource (kept equal by a unit test; the spec needs pydantic)
RECONCILE_RESOURCES = (
    "products", "product_models", "categories", "families", "attributes", "attribute_options",
)  # fmt: skip


# Where the operator mounts the files of the settings in the pods (Secret keys, read-only).
POD_TLS_DIR = "/etc/akeneo/tls"
POD_SIGNATURE_DIR = "/etc/akeneo/signature"
POD_PIM_DIR = "/etc/akeneo/pim/"
POD_SINK_DIR = "/etc/akeneo/sink"
POD_NATS_DIR = "/etc/akeneo/nats"
POD_NATS_CREDS_FILE = "nats.creds"
POD_GAP_SPOOL_FILE = "/tmp/akeneo-gaps.json"  # the /tmp emptyDir: kept across restarts
POD_NOTIFICATION_SPOOL_FILE = "/tmp/akeneo-notifications.json"  # likewise
POD_EVENT_SPOOL_FILE = "/tmp/akeneo-events.spool"  # likewise
POD_DATA_DIR = "/data"  # the sqlite sink's emptyDir; a relative spec path lives in it


class SettingsError(ValueError):
    """A setting is missing or unreadable; the message names the flag or env variable."""


class MissingSetting(SettingsError):
    """A required setting (the connection) was given neither as flag nor in env."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_bool(text: str) -> bool:
    """The one boolean parser of every flag's env equivalent (see the module docstring)."""
    value = text.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"not a boolean: {text[:40]!r} (use true or false)")


class Seconds(float):
    """A duration in seconds that keeps the text it came from (``5m``), so that env written
    from it reads exactly as the spec said."""

    text: str

    def __new__(cls, text: str) -> Self:
        value = super().__new__(cls, parse_duration(text).total_seconds())
        value.text = text
        return value


@dataclass(frozen=True)
class Setting:
    """What the contract says about one field."""

    env: str
    help: str
    kind: Kind = "text"
    flag: str = ""  # default: ``--`` and the field name with dashes
    choices: tuple[str, ...] | None = None
    secret: bool = False  # the path of a file holding a secret (a mounted Secret key)
    default_doc: str | None = None  # the docs' default column, when the value does not say it
    required: bool = False
    pod: str | None = None  # the file the operator mounts for it in the pods

    def flag_for(self, name: str) -> str:
        return self.flag or "--" + name.replace("_", "-")


def setting(
    default: T,
    env: str,
    help: str,
    *,
    kind: Kind = "text",
    flag: str = "",
    choices: tuple[str, ...] | None = None,
    secret: bool = False,
    default_doc: str | None = None,
    pod: str | None = None,
) -> T:
    """A contract field with its default value."""
    meta = Setting(env, help, kind, flag, choices, secret, default_doc, pod=pod)
    return field(default=default, metadata={"setting": meta})


def computed_setting(
    factory: Callable[[], T], env: str, help: str, *, default_doc: str, flag: str = ""
) -> T:
    """A contract field whose default is computed at start (e.g. the host name)."""
    meta = Setting(env, help, "text", flag, default_doc=default_doc)
    return field(default_factory=factory, metadata={"setting": meta})


def required_setting(env: str, help: str, *, kind: Kind = "text", flag: str = "") -> Any:
    """A contract field without default (the connection)."""
    return field(metadata={"setting": Setting(env, help, kind, flag, required=True)})


def contract_fields(cls: type[Any]) -> Iterator[tuple[str, Setting]]:
    """(field name, setting) of the contract fields of ``cls``, in declaration order."""
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("setting")
        if isinstance(meta, Setting):
            yield f.name, meta


def default_of(cls: type[Any], name: str) -> Any:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


# --- text <-> values -------------------------------------------------------------------------


def parse(meta: Setting, text: str) -> Any:
    """The value of a flag or env text; ``ValueError`` says what is wrong (never the text of a
    secret: secret settings are paths)."""
    match meta.kind:
        case "int":
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"not an integer: {text[:40]!r}") from None
        case "bool":
            return parse_bool(text)
        case "duration":
            return Seconds(text.strip())
        case "path":
            return Path(text)
        case "connection":
            return ConnectionNames.parse(text)
        case "list":
            items = tuple(i.strip() for i in text.split(",") if i.strip())
            bad = [i for i in items if meta.choices is not None and i not in meta.choices]
            if bad or not items:
                allowed = ", ".join(meta.choices or ())
                raise ValueError(
                    f"unknown resources {', '.join(bad) or '(none)'}: use a comma list of {allowed}"
                )
            return items
        case _:
            if meta.choices is not None and text not in meta.choices:
                raise ValueError(f"{text[:40]!r} is not one of {', '.join(meta.choices)}")
            return text


def render(meta: Setting, value: Any) -> str:
    """The env text of a value (``parse`` of it gives the value back)."""
    match meta.kind:
        case "bool":
            return "true" if value else "false"
        case "duration":
            return value.text if isinstance(value, Seconds) else f"{float(value):g}s"
        case "connection":
            return str(value.ref)
        case "list":
            return ",".join(value)
        case _:
            return str(value)


# --- reading: flags over env over defaults ---------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, cls: type[Any]) -> None:
    """One flag per contract field of ``cls``; its env name is in the help. Flags default to
    None (not given) so that ``resolve`` can fall back to the env, then the field default."""
    for name, meta in contract_fields(cls):
        flag = meta.flag_for(name)
        text = f"{meta.help} [{meta.env}]"
        metavar = None if meta.choices else flag.lstrip("-").upper().replace("-", "_")
        if meta.kind == "bool":
            parser.add_argument(flag, dest=name, action="store_true", default=None, help=text)
            continue
        choices = meta.choices if meta.kind == "text" else None
        convert = _argparse_type(meta)
        parser.add_argument(
            flag, dest=name, type=convert, choices=choices, default=None, help=text, metavar=metavar
        )


def _argparse_type(meta: Setting) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(meta, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def resolve(
    cls: type[T],
    args: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
    **fixed: Any,
) -> T:
    """The settings from ``fixed`` values, else flags, else env (empty counts as unset),
    else the field defaults. Raise ``SettingsError`` naming the flag and env variable."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, meta in contract_fields(cls):
        if name in fixed:
            values[name] = fixed.pop(name)
            continue
        given = getattr(args, name, None) if args is not None else None
        if given is not None:
            values[name] = given
            continue
        text = env.get(meta.env)
        if text:
            try:
                values[name] = parse(meta, text)
            except ValueError as exc:
                raise SettingsError(f"{meta.env}: {exc}") from None
        elif meta.required:
            raise MissingSetting(name, f"{meta.flag_for(name)} (or {meta.env}) is required")
    return cls(**values, **fixed)


# --- writing: the env of a component ---------------------------------------------------------


def to_env(settings: Any, given: tuple[str, ...]) -> list[tuple[str, str]]:
    """(env name, text) of the fields named in ``given`` that hold a value, in that order:
    what the operator writes into a pod and local mode into a child's environment."""
    metas = dict(contract_fields(type(settings)))
    unknown = [name for name in given if name not in metas]
    if unknown:
        raise TypeError(f"not contract fields of {type(settings).__name__}: {unknown}")
    values = ((metas[name], getattr(settings, name)) for name in given)
    return [(meta.env, render(meta, value)) for meta, value in values if value is not None]


def written(cls: type[T], **values: Any) -> tuple[T, list[tuple[str, str]]]:
    """Settings built from ``values`` (validated as a component would read them) and the env
    that carries exactly these values."""
    settings = cls(**values)
    _check_choices(settings)
    return settings, to_env(settings, tuple(values))


def _check_choices(settings: Any) -> None:
    for name, meta in contract_fields(type(settings)):
        value = getattr(settings, name)
        if value is not None and meta.choices is not None:
            items = value if meta.kind == "list" else (value,)
            bad = [i for i in items if i not in meta.choices]
            if bad:
                raise SettingsError(
                    f"{meta.env}: {bad[0]!r} is not one of {', '.join(meta.choices)}"
                )


# --- the components --------------------------------------------------------------------------


@dataclass(frozen=True)
class CommonSettings:
    """Every component's: which connection, and NATS as the component reaches it."""

    names: ConnectionNames = required_setting(
        "AKENEO_CONNECTION",
        "`namespace/name` of the AkeneoConnection (stream/bucket names derive from it, "
        "`akeneo_connector.names`)",
        kind="connection",
        flag="--connection",
    )
    nats_url: str = setting(
        "nats://127.0.0.1:4222",
        "AKENEO_NATS_URL",
        "NATS server URL(s), e.g. `nats://nats.nats:4222`; a comma-separated list gives every "
        "server of a NATS cluster, so that a client leaves a dead one at once",
    )
    nats_user: str | None = setting(None, "AKENEO_NATS_USER", "NATS user", default_doc="none")
    nats_password_file: Path | None = setting(
        None, "AKENEO_NATS_PASSWORD_FILE", "file holding the NATS password", kind="path",
        secret=True, default_doc="none", pod=f"{POD_NATS_DIR}/password",
    )  # fmt: skip
    nats_creds_file: Path | None = setting(
        None, "AKENEO_NATS_CREDS_FILE", "NATS `.creds` file (JWT/NKey), re-read when it changes",
        kind="path", secret=True, default_doc="none", pod=f"{POD_NATS_DIR}/{POD_NATS_CREDS_FILE}",
    )  # fmt: skip
    log_level: str = setting(
        "info", "AKENEO_LOG_LEVEL", "`debug`, `info`, `warning` or `error`; logs are JSON lines "
        "on stderr with kopf's keys (`timestamp`, `severity`, `message`) and `logger`",
    )  # fmt: skip

    @property
    def connection(self) -> str:
        return self.names.ref


@dataclass(frozen=True)
class ReceiverSettings(CommonSettings):
    """``akeneo-connector receiver``."""

    port: int = setting(
        8443, "AKENEO_PORT", "the public port: the three event URLs only (anything else: `404`)",
        kind="int",
    )  # fmt: skip
    # /healthz, /readyz and /metrics, plain HTTP: probes and scraping reach the pod directly,
    # nothing routes the internet there (the public port serves the event URLs only).
    admin_port: int = setting(
        8081, "AKENEO_ADMIN_PORT",
        "`/healthz`, `/readyz` (stream lookup cached 5 s), `/metrics` in plain HTTP; probes and "
        "scraping only, never exposed publicly: no Service or Ingress routes it (0: none)",
        kind="int",
    )  # fmt: skip
    host: str = setting("0.0.0.0", "AKENEO_HOST", "listen address")
    tls_cert_file: Path | None = setting(
        None, "AKENEO_TLS_CERT_FILE",
        "PEM certificate chain, re-read when it changes; goes with `--tls-key-file`",
        kind="path", default_doc="none (plain HTTP, warned)", pod=f"{POD_TLS_DIR}/tls.crt",
    )  # fmt: skip
    tls_key_file: Path | None = setting(
        None, "AKENEO_TLS_KEY_FILE", "PEM private key, re-read when it changes", kind="path",
        secret=True, default_doc="none (plain HTTP, warned)", pod=f"{POD_TLS_DIR}/tls.key",
    )  # fmt: skip
    events_api_secret_file: Path | None = setting(
        None, "AKENEO_EVENTS_API_SECRET_FILE",
        "legacy Events API secret(s), one per line, re-read when it changes (rotation)",
        kind="path", secret=True, default_doc="none", pod=f"{POD_SIGNATURE_DIR}/eventsApiSecret",
    )  # fmt: skip
    event_platform_secrets_file: Path | None = setting(
        None, "AKENEO_EVENT_PLATFORM_SECRETS_FILE",
        "Event Platform secrets, one per line, re-read when it changes (rotation)",
        kind="path", secret=True, default_doc="none",
        pod=f"{POD_SIGNATURE_DIR}/eventPlatformSecrets",
    )  # fmt: skip
    notification_secret_file: Path | None = setting(
        None, "AKENEO_EVENT_PLATFORM_NOTIFICATION_SECRET_FILE",
        "the subscriber's notification webhook secret (Secret key "
        "`eventPlatformNotificationSecret`)",
        kind="path", secret=True, flag="--event-platform-notification-secret-file",
        default_doc="none (notifications get `401 no_secret_configured`)",
        pod=f"{POD_SIGNATURE_DIR}/eventPlatformNotificationSecret",
    )  # fmt: skip
    max_body_bytes: int = setting(
        1_048_576, "AKENEO_MAX_BODY_BYTES", "largest request body accepted", kind="int"
    )
    timestamp_tolerance: float = setting(
        Seconds("300s"), "AKENEO_TIMESTAMP_TOLERANCE",
        "legacy signature timestamp tolerance, past or future", kind="duration",
    )  # fmt: skip
    gap_spool_file: Path | None = setting(
        None, "AKENEO_GAP_SPOOL_FILE",
        "where an outage's first and last `503` are kept until NATS stores its gap record; "
        "survives restarts (in pods, the `/tmp` emptyDir)",
        kind="path", default_doc="none (memory only)", pod=POD_GAP_SPOOL_FILE,
    )  # fmt: skip
    notification_spool_file: Path | None = setting(
        None, "AKENEO_NOTIFICATION_SPOOL_FILE",
        "where verified Event Platform notifications are kept (answered `200`, at most 64) "
        "while NATS is unavailable, until JetStream stores them; survives restarts (in pods, "
        "the `/tmp` emptyDir)",
        kind="path", default_doc="none (notifications get `503` while NATS is down)",
        pod=POD_NOTIFICATION_SPOOL_FILE,
    )  # fmt: skip
    event_spool_file: Path | None = setting(
        None, "AKENEO_EVENT_SPOOL_FILE",
        "where verified events are kept (answered `200`, `\"status\": \"spooled\"`) when "
        "JetStream cannot acknowledge them in time (NATS down, a clustered stream electing a "
        "new leader), until it stores them in arrival order; survives restarts (in pods, the "
        "`/tmp` emptyDir)",
        kind="path", default_doc="none (such events get `503`)", pod=POD_EVENT_SPOOL_FILE,
    )  # fmt: skip
    # A clustered stream whose leader dies takes nothing for 4 to 9 s (nats-server's Raft
    # election timeout): 5,000 events hold 15 s of a 300 events/s peak; 8 MiB is the memory
    # the spool may add to the receiver (it is also kept in memory), about 1.6 KiB an event.
    event_spool_max_events: int = setting(
        5_000, "AKENEO_EVENT_SPOOL_MAX_EVENTS",
        "events the spool holds at most; beyond, deliveries get `503` as without a spool",
        kind="int",
    )  # fmt: skip
    event_spool_max_bytes: int = setting(
        8 * 1024 * 1024, "AKENEO_EVENT_SPOOL_MAX_BYTES",
        "event bytes the spool holds at most (it is kept in memory too)", kind="int",
    )  # fmt: skip
    subject_prefix: str | None = setting(
        None, "AKENEO_SUBJECT_PREFIX", "subject prefix of the stream",
        default_doc="derived from the connection",
    )  # fmt: skip
    ack_budget: float = setting(
        Seconds("400ms"), "AKENEO_ACK_BUDGET",
        "longest wait for all JetStream acks, counted from the request start; then `503` (the "
        "legacy PIM waits 0.5 s for the whole request)",
        kind="duration",
    )  # fmt: skip
    # The Event Platform waits 5 s: riding out a short JetStream stall beats a 503, which it
    # only retries minutes later and counts against the subscription's success rate.
    event_platform_ack_budget: float = setting(
        Seconds("4s"), "AKENEO_EVENT_PLATFORM_ACK_BUDGET",
        "the same for Event Platform deliveries (their sender waits 5 s, and retries a `503` "
        "only minutes later)",
        kind="duration",
    )  # fmt: skip
    max_pending: int = setting(
        10_000, "AKENEO_MAX_PENDING",
        "Event Platform gets `429` while the worker consumer has more undelivered messages (no "
        "consumer yet: never `429`)",
        kind="int",
    )  # fmt: skip
    ensure_stream: bool = setting(
        False, "AKENEO_ENSURE_STREAM", "create/update the stream and bucket at start (local mode)",
        kind="bool",
    )  # fmt: skip
    # the pod's name (downward API in pods): the key of its report of loaded secrets
    pod_name: str = setting(
        "", "AKENEO_POD_NAME",
        "names this receiver's report of its loaded secrets (fingerprints only) in the "
        "connection's bucket",
        default_doc="the hostname",
    )  # fmt: skip
    reload_interval: float = 1.0  # seconds between looks at the secret files (tests: less)
    secret_report_interval: float = 30.0  # seconds between reports when nothing changed

    @property
    def pod(self) -> str:
        return self.pod_name or socket.gethostname()

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

    def check(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise SettingsError("--tls-cert-file and --tls-key-file go together")
        return self


@dataclass(frozen=True)
class PimSettings(CommonSettings):
    """The PIM REST API, for the worker's hydration and the reconcile job."""

    pim_url: str | None = setting(
        None, "AKENEO_PIM_URL", "PIM base URL", default_doc="none (worker: no hydration)"
    )
    # text, not a Path: the pods' value keeps its trailing slash
    pim_credentials_dir: str | None = setting(
        None, "AKENEO_PIM_CREDENTIALS_DIR",
        "directory with the files `clientId`, `clientSecret`, `username`, `password`",
        secret=True, default_doc="none", pod=POD_PIM_DIR,
    )  # fmt: skip
    pim_allow_private: bool = setting(
        False, "AKENEO_PIM_ALLOW_PRIVATE",
        "allow a PIM on private/loopback addresses; set when the spec asks and the platform "
        "allows (`--allow-private-pim`)",
        kind="bool",
    )  # fmt: skip
    rest_budget: str = setting(
        "connection", "AKENEO_REST_BUDGET",
        "`connection`: at most 4 PIM calls in flight for the whole connection, shared by every "
        "worker replica and the reconcile job through the KV slots `budget.slot.0`..`3` "
        "(below); `process`: 4 for this process alone",
        choices=REST_BUDGETS,
    )  # fmt: skip


@dataclass(frozen=True)
class WorkerSettings(PimSettings):
    """``akeneo-connector worker``."""

    port: int = setting(8080, "AKENEO_PORT", "health/metrics port, plain HTTP", kind="int")
    max_deliver: int = setting(
        10, "AKENEO_MAX_DELIVER", "tries before a message is dead-lettered", kind="int"
    )
    ack_wait: float = setting(
        Seconds("30s"), "AKENEO_ACK_WAIT", "redeliver an unacked message after this long",
        kind="duration",
    )  # fmt: skip
    sink: str = setting("sqlite", "AKENEO_SINK", "where resources are applied", choices=SINKS)
    webhook_url: str | None = setting(
        None, "AKENEO_WEBHOOK_URL", "the webhook sink's URL (required with `--sink webhook`)"
    )
    webhook_signature: str = setting(
        "standard", "AKENEO_WEBHOOK_SIGNATURE",
        "`standard` (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`, "
        "every secret signs) or `legacy` (`X-Connector-Timestamp`, `X-Connector-Signature`); "
        "from `spec.worker.sink.webhook.signature`",
        choices=WEBHOOK_SIGNATURES,
    )  # fmt: skip
    webhook_signing_secret_file: Path | None = setting(
        None, "AKENEO_WEBHOOK_SIGNING_SECRET_FILE",
        "one secret per line, re-read when it changes (rotation); `standard` needs `whsec_` "
        "secrets (base64 of 24 to 64 bytes) and refuses others at start, `legacy` signs with "
        "the first line",
        kind="path", secret=True, default_doc="none (unsigned)",
        pod=f"{POD_SINK_DIR}/signingSecret",
    )  # fmt: skip
    webhook_allow_private: bool = setting(
        False, "AKENEO_WEBHOOK_ALLOW_PRIVATE",
        "allow private/loopback webhook targets; set when the spec asks and the platform "
        "allows (`--allow-private-webhooks`)",
        kind="bool",
    )  # fmt: skip
    postgres_dsn_file: Path | None = setting(
        None, "AKENEO_POSTGRES_DSN_FILE",
        "file holding the libpq DSN (required with `--sink postgres`)",
        kind="path", secret=True, default_doc="none", pod=f"{POD_SINK_DIR}/dsn",
    )  # fmt: skip
    postgres_table: str = setting(
        "akeneo_resources", "AKENEO_POSTGRES_TABLE",
        "removals are kept in `<table>_tombstones` (below)",
    )  # fmt: skip
    postgres_allow_private: bool = setting(
        False, "AKENEO_POSTGRES_ALLOW_PRIVATE",
        "allow database hosts on private/loopback addresses; set when the spec asks and the "
        "platform allows (`--allow-private-postgres`)",
        kind="bool",
    )  # fmt: skip
    sqlite_path: Path = setting(
        Path(f"{POD_DATA_DIR}/catalog.db"), "AKENEO_SQLITE_PATH",
        "the sqlite file: the same two tables, named after `akeneo_resources`; in pods, a "
        "relative `spec.worker.sink.sqlite.path` lives in the `/data` emptyDir",
        kind="path",
    )  # fmt: skip
    own_client_id: str | None = setting(
        None, "AKENEO_OWN_CLIENT_ID",
        "skip events whose author is this client id (the connector's own REST writes)",
        default_doc="none",
    )  # fmt: skip
    replica: str = computed_setting(
        socket.gethostname, "AKENEO_REPLICA",
        "name under which the worker publishes `WorkerStats` (`stats.worker.<replica>`)",
        default_doc="host name (the pod name)",
    )  # fmt: skip

    def check(self) -> Self:
        """The sink's own settings are there (the sink's name was checked on reading)."""
        if self.sink == "webhook" and not self.webhook_url:
            raise SettingsError("--webhook-url is required with --sink webhook")
        if self.sink == "postgres" and not self.postgres_dsn_file:
            raise SettingsError("--postgres-dsn-file is required with --sink postgres")
        return self


@dataclass(frozen=True)
class ReconcileJobSettings(PimSettings):
    """``akeneo-connector reconcile``: the PIM catch-up job."""

    resources: tuple[str, ...] = setting(
        ("products", "product_models"), "AKENEO_RECONCILE_RESOURCES",
        "comma list of resources, each read from its own watermark (below)",
        kind="list", choices=RECONCILE_RESOURCES,
    )  # fmt: skip
    safety_margin: float = setting(
        Seconds("5m"), "AKENEO_SAFETY_MARGIN", "re-read this much before the watermark",
        kind="duration",
    )  # fmt: skip
    lock_ttl: float = setting(
        Seconds("10m"), "AKENEO_RECONCILE_LOCK_TTL",
        "lease of `reconcile.lock`, renewed every third of it while the run lasts",
        kind="duration",
    )  # fmt: skip
    lock_wait: float = setting(
        Seconds("0s"), "AKENEO_RECONCILE_LOCK_WAIT",
        "when another run holds the lock, wait this long for it instead of exiting `75` (the "
        "operator's one-off Jobs use `30m`)",
        kind="duration",
    )  # fmt: skip
    pim_ca_file: str | None = setting(
        None, "AKENEO_PIM_CA_FILE", "CA bundle to verify the PIM's certificate",
        default_doc="system CAs",
    )  # fmt: skip


COMPONENTS: dict[str, type[CommonSettings]] = {
    "receiver": ReceiverSettings,
    "worker": WorkerSettings,
    "reconcile": ReconcileJobSettings,
    "replay": CommonSettings,
}
