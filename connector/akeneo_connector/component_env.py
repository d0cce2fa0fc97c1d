"""A connection's spec turned into each component's settings, env and mounted files.

One function per component, called by the operator's pod builder (``akeneo_operator.pods``)
and by local mode (``akeneo_cli.local``, ``local_layout``): what differs between a pod
and a local child is only where things are (``Placement``: file paths, ports, NATS, what the
platform allows). The env comes from the settings contract (``settings_contract.written``),
never from names typed here.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from akeneo_connector.names import ConnectionNames
from akeneo_connector.settings_contract import (
    CommonSettings,
    ReceiverSettings,
    ReconcileJobSettings,
    Seconds,
    WorkerSettings,
    written,
)
from akeneo_connector.spec import AkeneoConnectionSpec

S = TypeVar("S", bound=CommonSettings)
Volume = Literal["tls", "signature", "pim", "sink", "data"]
Destination = Literal["pim", "webhook", "postgres"]

# Keys of the signature Secret -> the receiver setting holding its file. A sender's secret
# (at least one of the first two) and the optional Event Platform notification secret.
SIGNATURE_FIELDS = {
    "eventsApiSecret": "events_api_secret_file",
    "eventPlatformSecrets": "event_platform_secrets_file",
    "eventPlatformNotificationSecret": "notification_secret_file",
}
PIM_KEYS = ("clientId", "clientSecret", "username", "password")
TLS_KEYS = ("tls.crt", "tls.key")


@dataclass(frozen=True)
class Mount:
    """A Secret's keys (or, ``secret`` None, an empty dir) the component finds at ``path``."""

    volume: Volume
    path: str
    secret: str | None = None
    keys: tuple[str, ...] = ()


@dataclass
class Rendered(Generic[S]):
    """A component's settings, the env carrying them and the files they point to."""

    settings: S
    env: list[tuple[str, str]]
    mounts: list[Mount] = field(default_factory=list)


class Placement(Protocol):
    """Where a component runs: a pod of the operator or a child of local mode."""

    @property
    def nats_url(self) -> str: ...

    def common(self) -> dict[str, Any]:
        """More common settings, in env order (NATS credentials, log level)."""

    def secret_dir(self, volume: Volume, secret: str) -> str:
        """The directory where ``secret``'s keys are found."""

    def allows(self, destination: Destination) -> bool:
        """Whether a private address the spec allows for ``destination`` may be used."""

    def tls_files(self) -> tuple[str, str] | None:
        """Certificate and key paths, or None: the TLS Secret is mounted (``tls_secret``)."""

    def receiver_listen(self) -> dict[str, Any]:
        """port, admin_port and (if not the default) host of the receiver."""

    def worker_port(self) -> int: ...

    def gap_spool_file(self) -> str: ...

    def notification_spool_file(self) -> str: ...

    def event_spool_file(self) -> str: ...

    def data_dir(self) -> str:
        """Where a relative sqlite path lives."""


class _Files:
    """Paths of Secret keys under a placement, and the mounts they need."""

    def __init__(self, place: Placement) -> None:
        self.place = place
        self.mounts: list[Mount] = []

    def dir(self, volume: Volume, secret: str, keys: Collection[str]) -> str:
        path = self.place.secret_dir(volume, secret)
        self.mounts.append(Mount(volume, path, secret, tuple(keys)))
        return path

    def files(self, volume: Volume, secret: str, keys: Collection[str]) -> dict[str, Path]:
        folder = self.dir(volume, secret, keys)
        return {key: Path(posixpath.join(folder, key)) for key in keys}


def _common(names: ConnectionNames, place: Placement) -> dict[str, Any]:
    return {"names": names, "nats_url": place.nats_url, **place.common()}


def _pim(spec: AkeneoConnectionSpec, place: Placement, files: _Files) -> dict[str, Any]:
    pim = spec.pim
    if pim.credentials_secret is None:
        return {}
    values: dict[str, Any] = {
        "pim_url": pim.url,
        "pim_credentials_dir": files.dir("pim", pim.credentials_secret, PIM_KEYS),
    }
    if pim.allow_private_addresses and place.allows("pim"):
        values["pim_allow_private"] = True
    return values


def receiver(
    names: ConnectionNames,
    spec: AkeneoConnectionSpec,
    place: Placement,
    *,
    tls_secret: str = "",
    signature_keys: Collection[str] = tuple(SIGNATURE_FIELDS),
) -> Rendered[ReceiverSettings]:
    """``signature_keys``: the keys the signature Secret has (each found as a file)."""
    r = spec.receiver
    files = _Files(place)
    values = {**_common(names, place), **place.receiver_listen()}
    tls = place.tls_files()
    if tls is None:
        paths = files.files("tls", tls_secret, TLS_KEYS)
        tls = (str(paths["tls.crt"]), str(paths["tls.key"]))
    values["tls_cert_file"], values["tls_key_file"] = Path(tls[0]), Path(tls[1])
    keys = [k for k in SIGNATURE_FIELDS if k in signature_keys]
    for key, path in files.files("signature", r.signature_secret, keys).items():
        values[SIGNATURE_FIELDS[key]] = path
    values["max_body_bytes"] = r.max_body_bytes
    values["timestamp_tolerance"] = Seconds(r.timestamp_tolerance)
    values["gap_spool_file"] = Path(place.gap_spool_file())
    values["notification_spool_file"] = Path(place.notification_spool_file())
    values["event_spool_file"] = Path(place.event_spool_file())
    settings, env = written(ReceiverSettings, **values)
    return Rendered(settings, env, files.mounts)


def worker(
    names: ConnectionNames, spec: AkeneoConnectionSpec, place: Placement
) -> Rendered[WorkerSettings]:
    w = spec.worker
    sink = w.sink
    files = _Files(place)
    values = {
        **_common(names, place),
        "port": place.worker_port(),
        "max_deliver": w.max_deliver,
        "ack_wait": Seconds(w.ack_wait),
        "sink": sink.kind,
    }
    if sink.webhook is not None:
        values["webhook_url"] = sink.webhook.url
        values["webhook_signature"] = sink.webhook.signature.value
        if sink.webhook.signing_secret is not None:
            secret = sink.webhook.signing_secret
            values["webhook_signing_secret_file"] = files.files("sink", secret, ["signingSecret"])[
                "signingSecret"
            ]
        if sink.webhook.allow_private_addresses and place.allows("webhook"):
            values["webhook_allow_private"] = True
    elif sink.postgres is not None:
        dsn = files.files("sink", sink.postgres.dsn_secret, ["dsn"])["dsn"]
        values["postgres_dsn_file"] = dsn
        values["postgres_table"] = sink.postgres.table
        if sink.postgres.allow_private_addresses and place.allows("postgres"):
            values["postgres_allow_private"] = True
    elif sink.sqlite is not None:
        path = posixpath.join(place.data_dir(), sink.sqlite.path)  # relative: in the data dir
        values["sqlite_path"] = Path(path)
        files.mounts.append(Mount("data", posixpath.dirname(path)))
    values.update(_pim(spec, place, files))
    settings, env = written(WorkerSettings, **values)
    return Rendered(settings, env, files.mounts)


def reconcile(
    names: ConnectionNames, spec: AkeneoConnectionSpec, place: Placement
) -> Rendered[ReconcileJobSettings]:
    rec = spec.reconciliation
    files = _Files(place)
    values = {
        **_common(names, place),
        **_pim(spec, place, files),
        "resources": tuple(rec.resources),
        "safety_margin": Seconds(rec.safety_margin),
    }
    settings, env = written(ReconcileJobSettings, **values)
    return Rendered(settings, env, files.mounts)
