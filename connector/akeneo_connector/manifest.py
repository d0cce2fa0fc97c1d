"""Read the multi-document manifest `kubectl apply -f` takes: a connection and its Secrets.

Errors name the document and the field (``document 2 (AkeneoConnection tenant/acme):
spec.worker.sink: ...``) instead of a traceback, because this is what a user sees first.
"""

from __future__ import annotations

import base64
import binascii
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
    for key, value in (doc.get("data") or {}).items():
        try:
            data[str(key)] = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ManifestError(f"{where}: data.{key} is not valid base64 text") from None
    for key, value in (doc.get("stringData") or {}).items():
        data[str(key)] = str(value)
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
        doc_name = meta.get("name")
        where = f"{source}: document {index} ({kind} {doc_name or '<no name>'})"
        if not doc_name:
            raise ManifestError(f"{where}: metadata.name is required")
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
