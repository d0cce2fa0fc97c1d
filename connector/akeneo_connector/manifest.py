"""Read the multi-document manifest `kubectl apply -f` takes: a connection and its Secrets.

Errors name the document and the field (``document 2 (AkeneoConnection tenant/acme):
spec.worker.sink: ...``) instead of a traceback, because this is what a user sees first.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from akeneo_connector.names import ConnectionNames
from akeneo_connector.signing_secrets import SigningSecretError, signing_keys
from akeneo_connector.spec import API_VERSION, KIND, AkeneoConnectionSpec


class ManifestError(ValueError):
    """A manifest that cannot be used, with a message fit for the user."""


# Local mode writes each Secret as ``<data dir>/secrets/<name>/<key>`` and derives the data
# dir from the connection's namespace and name: each is checked as Kubernetes checks it
# (which also keeps ``/``, ``..`` and every other path trick out).
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^(?=.{{1,253}}$){_DNS_LABEL}(\.{_DNS_LABEL})*$")
_NAMESPACE = re.compile(rf"^(?=.{{1,63}}$){_DNS_LABEL}$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


def _shown(value: object) -> str:
    """A name from the file as an error message may show it (one line, bounded)."""
    text = str(value)
    return text if re.fullmatch(r"[-._a-zA-Z0-9/]{1,80}", text) else repr(text[:80])


def _check_name(value: object, pattern: re.Pattern[str], what: str, where: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ManifestError(f"{where}: {what} {_shown(value)} is not a valid Kubernetes name")
    return value


def _check_key(key: str, where: str) -> str:
    if not _SECRET_KEY.match(key) or key in (".", ".."):
        raise ManifestError(
            f"{where}: key {_shown(key)} is not a valid Secret key ([-._a-zA-Z0-9]+, not . or ..)"
        )
    return key


@dataclass(frozen=True)
class Connection:
    names: ConnectionNames
    spec: AkeneoConnectionSpec
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)

    def secret_value(self, secret: str, key: str) -> str:
        try:
            return self.secrets[secret][key]
        except KeyError:
            raise ManifestError(f"Secret {secret!r} has no key {key!r}") from None

    def referenced_secrets(self) -> dict[str, tuple[str, ...]]:
        """Secret name -> keys the spec needs from it (any one of several for the receiver)."""
        spec = self.spec
        refs: dict[str, tuple[str, ...]] = {spec.receiver.signature_secret: ()}
        if spec.pim.credentials_secret:
            refs[spec.pim.credentials_secret] = ("clientId", "clientSecret", "username", "password")
        sink = spec.worker.sink
        if sink.webhook is not None and sink.webhook.signing_secret:
            refs[sink.webhook.signing_secret] = ("signingSecret",)
        if sink.postgres is not None:
            refs[sink.postgres.dsn_secret] = ("dsn",)
        return refs


def format_validation_error(exc: ValidationError, prefix: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)


def _secret_data(doc: dict[str, Any], where: str) -> dict[str, str]:
    data: dict[str, str] = {}
    for field_name in ("data", "stringData"):
        items = doc.get(field_name) or {}
        if not isinstance(items, dict):
            raise ManifestError(f"{where}: {field_name} is not a mapping")
        for key, value in items.items():
            _check_key(str(key), where)
            if field_name == "stringData":
                data[str(key)] = str(value)
                continue
            try:
                data[str(key)] = base64.b64decode(str(value), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise ManifestError(f"{where}: data.{key} is not valid base64 text") from None
    return data


def parse_manifest(text: str, *, source: str = "manifest", name: str | None = None) -> Connection:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source}: not valid YAML: {exc}") from None
    connections: list[tuple[str, dict[str, Any]]] = []
    secrets: dict[str, dict[str, str]] = {}
    for index, doc in enumerate(docs, start=1):
        if not isinstance(doc, dict):
            raise ManifestError(f"{source}: document {index} is not a mapping")
        kind = doc.get("kind")
        meta = doc.get("metadata") or {}
        if not isinstance(meta, dict):
            raise ManifestError(f"{source}: document {index}: metadata is not a mapping")
        doc_name = meta.get("name")
        where = (
            f"{source}: document {index} ({_shown(kind)} "
            f"{_shown(doc_name) if doc_name else '<no name>'})"
        )
        if not doc_name:
            raise ManifestError(f"{where}: metadata.name is required")
        if kind in (KIND, "Secret"):
            _check_name(doc_name, _DNS_SUBDOMAIN, "metadata.name", where)
            if meta.get("namespace") is not None:
                _check_name(meta["namespace"], _NAMESPACE, "metadata.namespace", where)
        if kind == KIND:
            if doc.get("apiVersion") != API_VERSION:
                raise ManifestError(f"{where}: apiVersion must be {API_VERSION}")
            connections.append((where, doc))
        elif kind == "Secret":
            secrets[str(doc_name)] = _secret_data(doc, where)
    if name is not None:
        connections = [c for c in connections if c[1]["metadata"]["name"] == name]
    if len(connections) != 1:
        found = ", ".join(c[1]["metadata"]["name"] for c in connections) or "none"
        raise ManifestError(
            f"{source}: expected exactly one {KIND}"
            + (f" named {name!r}" if name else "")
            + f" (found: {found})"
        )
    where, doc = connections[0]
    meta = doc["metadata"]
    names = ConnectionNames(str(meta.get("namespace") or "default"), str(meta["name"]))
    try:
        spec = AkeneoConnectionSpec.model_validate(doc.get("spec") or {})
    except ValidationError as exc:
        raise ManifestError(f"{where}: {format_validation_error(exc, 'spec')}") from None
    connection = Connection(names, spec, secrets)
    _check_secrets(connection, where)
    return connection


def _check_secrets(connection: Connection, where: str) -> None:
    for secret, keys in connection.referenced_secrets().items():
        if secret not in connection.secrets:
            raise ManifestError(f"{where}: Secret {secret!r} is referenced but not in the file")
        missing = [k for k in keys if k not in connection.secrets[secret]]
        if missing:
            raise ManifestError(f"{where}: Secret {secret!r} lacks key(s) {', '.join(missing)}")
    webhook = connection.spec.worker.sink.webhook
    if webhook is not None and webhook.signing_secret:
        try:
            signing_keys(connection.secrets[webhook.signing_secret]["signingSecret"],
                         webhook.signature)  # fmt: skip
        except SigningSecretError as exc:
            raise ManifestError(
                f"{where}: Secret {webhook.signing_secret!r} key signingSecret {exc}"
            ) from None
    signature = connection.secrets[connection.spec.receiver.signature_secret]
    if not {"eventsApiSecret", "eventPlatformSecrets"} & signature.keys():
        raise ManifestError(
            f"{where}: Secret {connection.spec.receiver.signature_secret!r} needs "
            "eventsApiSecret and/or eventPlatformSecrets"
        )


def load_manifest(path: Path, *, name: str | None = None) -> Connection:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_manifest(text, source=str(path), name=name)
