"""Manifests: the examples load; bad ones get a message naming the document and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from akeneo_connector.manifest import ManifestError, load_manifest, parse_manifest
from akeneo_connector.names import ConnectionNames

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

SECRET = """
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: t}
stringData: {eventsApiSecret: hush}
---
"""


def connection(spec: str) -> str:
    return (
        SECRET
        + "apiVersion: akeneo.connectors.dev/v1alpha1\nkind: AkeneoConnection\n"
        + "metadata: {name: acme, namespace: t}\n"
        + spec
    )


@pytest.mark.parametrize("name", ["local.yaml", "cluster.yaml", "postgres.yaml"])
def test_examples_load(name: str) -> None:
    conn = load_manifest(EXAMPLES / name)
    assert conn.spec.receiver.signature_secret in conn.secrets


def test_local_example_uses_sqlite_sink() -> None:
    conn = load_manifest(EXAMPLES / "local.yaml")
    assert conn.spec.worker.sink.kind == "sqlite"
    assert conn.names == ConnectionNames("demo", "demo")


def test_two_sinks_are_refused_naming_document_and_field() -> None:
    text = connection(
        "spec:\n  pim: {url: 'https://p.example.com'}\n  receiver: {signatureSecret: s}\n"
        "  worker: {sink: {sqlite: {path: a.db}, webhook: {url: 'https://h.example.com'}}}\n"
    )
    with pytest.raises(ManifestError) as err:
        parse_manifest(text, source="c.yaml")
    message = str(err.value)
    assert message.startswith("c.yaml: document 2 (AkeneoConnection acme)")
    assert "spec.worker.sink" in message
    assert "exactly one of webhook, postgres, sqlite" in message


def test_unknown_field_is_an_error() -> None:
    text = connection(
        "spec:\n  pim: {url: 'https://p.example.com'}\n"
        "  receiver: {signatureSecret: s, replica: 3}\n"
    )
    with pytest.raises(ManifestError, match=r"spec\.receiver\.replica: Extra inputs"):
        parse_manifest(text)


def test_missing_secret_and_missing_key_are_named_without_values() -> None:
    text = connection(
        "spec:\n  pim: {url: 'https://p.example.com', credentialsSecret: api}\n"
        "  receiver: {signatureSecret: s}\n"
    )
    with pytest.raises(ManifestError, match="Secret 'api' is referenced but not in the file"):
        parse_manifest(text)
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: api}\nstringData: {clientId: x}\n---\n"
        + text
    )
    with pytest.raises(ManifestError) as err:
        parse_manifest(text)
    assert "lacks key(s) clientSecret, username, password" in str(err.value)
    assert "hush" not in str(err.value)


def test_yaml_syntax_error_is_reported_not_raised_as_traceback() -> None:
    with pytest.raises(ManifestError, match="not valid YAML"):
        parse_manifest("kind: [unclosed", source="broken.yaml")


def webhook_connection(signing_secret: str, signature: str = "standard") -> str:
    return (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: hook}\nstringData:\n"
        f"  signingSecret: {json.dumps(signing_secret)}\n---\n"
        + connection(
            "spec:\n  pim: {url: 'https://p.example.com'}\n  receiver: {signatureSecret: s}\n"
            "  worker: {sink: {webhook: {url: 'https://h.example.com', signingSecret: hook, "
            f"signature: {signature}}}}}}}\n"
        )
    )


def test_a_raw_signing_secret_is_refused_for_standard_signatures_naming_the_way_out() -> None:
    with pytest.raises(ManifestError) as err:
        parse_manifest(webhook_connection("merchant-raw-secret"))
    message = str(err.value)
    assert "Secret 'hook' key signingSecret line 1 is not a whsec_ secret" in message
    assert "signature: legacy" in message and "merchant-raw-secret" not in message
    # the same secret is what the legacy scheme signs with
    conn = parse_manifest(webhook_connection("merchant-raw-secret", "legacy"))
    assert conn.spec.worker.sink.webhook is not None
    assert conn.spec.worker.sink.webhook.signature == "legacy"


def test_every_line_of_a_standard_signing_secret_must_be_usable() -> None:
    good = "whsec_" + "A" * 32  # 24 bytes
    parse_manifest(webhook_connection(f"{good}\n{good}\n"))
    with pytest.raises(ManifestError, match="line 2: the key is 18 bytes"):
        parse_manifest(webhook_connection(f"{good}\nwhsec_{'A' * 24}\n"))
    with pytest.raises(ManifestError, match=r"line 1: what follows whsec_ is not base64"):
        parse_manifest(webhook_connection("whsec_not*base64*at*all*but*long*enough"))
