"""The receiver's serving certificate in its three modes.

- ``selfSigned``: a per-connection CA (Secret ``<name>-ca``, never mounted) signs a serving
  cert kept in ``<name>-tls``; reissued when missing, not matching the names, or within
  ``cert_renew_before`` of expiry.
- ``certManager``: a cert-manager ``Certificate`` writing ``<name>-tls`` (for the public host
  alone when there is one, so an ACME issuer can issue it); a missing CRD is a condition
  (``CertManagerNotInstalled``), not a crash.
- ``secret``: the user's Secret, checked to be a matching pair, valid now, covering the host.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from akeneo_connector.spec import TLSMode
from akeneo_operator.apply import check_owner, ensure_child, write_child
from akeneo_operator.certs import (
    CertFacts,
    CertProblem,
    KeyPair,
    inspect,
    issue_ca,
    issue_serving,
    needs_renewal,
    pair_matches,
    signed_by,
    validate_pair,
)
from akeneo_operator.children import child_names, tls_dns_names
from akeneo_operator.kubeclient import ApiError, KubeClient
from akeneo_operator.meta import TLS, Manifest, object_meta, with_hash
from akeneo_operator.pods import BuildInput
from akeneo_operator.status import Cond

Adopt = Callable[[Manifest], Manifest]


@dataclass(frozen=True)
class TLSOutcome:
    cond: Cond
    secret_name: str
    revision: str = ""
    not_after: datetime | None = None
    renews_itself: bool = False  # cert-manager renews; the operator renews selfSigned
    issued: bool = False  # a serving certificate was replaced just now (renewal, repair)


def secret_data(secret: Manifest | None, key: str) -> bytes | None:
    if secret is None:
        return None
    value = (secret.get("data") or {}).get(key)
    return base64.b64decode(value) if isinstance(value, str) else None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def ca_secret(inp: BuildInput, ca: KeyPair) -> Manifest:
    n = child_names(inp.names.name)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(n.ca_secret, inp.names.namespace, inp.names.name, TLS),
        "type": "Opaque",
        "data": {"ca.crt": _b64(ca.cert_pem), "ca.key": _b64(ca.key_pem)},
    }


def serving_secret(inp: BuildInput, ca: KeyPair, serving: KeyPair) -> Manifest:
    n = child_names(inp.names.name)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(n.tls_secret, inp.names.namespace, inp.names.name, TLS),
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": _b64(serving.cert_pem),
            "tls.key": _b64(serving.key_pem),
            "ca.crt": _b64(ca.cert_pem),
        },
    }


def certificate_dns_names(inp: BuildInput) -> list[str]:
    """The public host alone when there is one: an ACME issuer refuses a whole order that
    names a ``.svc`` name no public CA can validate (the Ingress does not check the backend's
    name); else the Service's names."""
    host = inp.spec.receiver.host
    return [host] if host else tls_dns_names(inp)


def certificate(inp: BuildInput) -> Manifest:
    issuer = inp.spec.effective_tls.issuer_ref
    assert issuer is not None
    n = child_names(inp.names.name)
    return with_hash(
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": object_meta(n.certificate, inp.names.namespace, inp.names.name, TLS),
            "spec": {
                "secretName": n.tls_secret,
                "dnsNames": certificate_dns_names(inp),
                "issuerRef": {"group": "cert-manager.io", "kind": issuer.kind, "name": issuer.name},
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
                "secretTemplate": {"labels": object_meta("", "", inp.names.name, TLS)["labels"]},
            },
        }
    )


def serving_cert_ok(
    secret: Manifest | None,
    ca: KeyPair,
    names: list[str],
    renew_before_ok: Callable[[CertFacts], bool],
) -> CertFacts | None:
    """Facts of a usable serving cert in ``secret``, None when it must be (re)issued."""
    cert, key = secret_data(secret, "tls.crt"), secret_data(secret, "tls.key")
    if cert is None or key is None:
        return None
    try:
        facts = inspect(cert)
        if not pair_matches(cert, key) or not signed_by(cert, ca.cert_pem):
            return None
    except (CertProblem, ValueError):
        return None
    if set(facts.dns_names) != set(names) or not renew_before_ok(facts):
        return None
    return facts


def _uid(live: Manifest | None) -> str | None:
    return None if live is None else str(live["metadata"]["uid"])


async def _own_secret(
    client: KubeClient, inp: BuildInput, adopt: Adopt, name: str
) -> Manifest | None:
    """The Secret ``name`` when it is the connection's own (or absent); ``ChildConflict``
    for someone else's, whose content is then neither used nor overwritten."""
    live = await client.get("v1", "Secret", inp.names.namespace, name)
    probe = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}
    check_owner(adopt(probe), live)
    return live


async def _self_signed(
    client: KubeClient, inp: BuildInput, adopt: Adopt, now: datetime
) -> TLSOutcome:
    s = inp.settings
    n = child_names(inp.names.name)
    ca_live = await _own_secret(client, inp, adopt, n.ca_secret)
    ca_cert, ca_key = secret_data(ca_live, "ca.crt"), secret_data(ca_live, "ca.key")
    ca: KeyPair | None = None
    if ca_cert is not None and ca_key is not None:
        try:
            facts = inspect(ca_cert)
            if pair_matches(ca_cert, ca_key) and not needs_renewal(
                facts, s.cert_validity_delta, now
            ):
                ca = KeyPair(ca_cert, ca_key)
        except CertProblem:
            ca = None
    if ca is None:
        ca = issue_ca(f"akeneo-connector CA {inp.names.ref}", s.ca_validity_delta, now)
        await write_child(client, adopt(ca_secret(inp, ca)), _uid(ca_live))
    names = tls_dns_names(inp)
    live = await _own_secret(client, inp, adopt, n.tls_secret)
    current = serving_cert_ok(
        live, ca, names, lambda f: not needs_renewal(f, s.cert_renew_before_delta, now)
    )
    issued = current is None and live is not None  # a renewal or repair, not the first issue
    if current is None:
        serving = issue_serving(ca, names, s.cert_validity_delta, now)
        await write_child(client, adopt(serving_secret(inp, ca, serving)), _uid(live))
        current = inspect(serving.cert_pem)
    facts = current
    return TLSOutcome(
        Cond.ok(
            "CertificateValid",
            f"self-signed certificate valid until {facts.not_after:%Y-%m-%dT%H:%M:%SZ}",
        ),
        n.tls_secret,
        facts.serial,
        facts.not_after,
        issued=issued,
    )


async def _cert_manager(client: KubeClient, inp: BuildInput, adopt: Adopt) -> TLSOutcome:
    n = child_names(inp.names.name)
    try:
        _outcome, live = await ensure_child(client, adopt(certificate(inp)))
    except ApiError as exc:
        if exc.kind_missing:
            return TLSOutcome(
                Cond.fail(
                    "CertManagerNotInstalled", "cert-manager.io/v1 Certificate is not served"
                ),
                n.tls_secret,
                renews_itself=True,
            )
        raise
    status = (live or {}).get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is not None and ready.get("status") == "True":
        return TLSOutcome(
            Cond.ok(
                "CertificateIssued",
                f"cert-manager certificate valid until {status.get('notAfter')}",
            ),
            n.tls_secret,
            str(status.get("revision") or ""),
            not_after=_time(status.get("notAfter")),
            renews_itself=True,
        )
    why = (ready or {}).get("reason") or "Issuing"
    return TLSOutcome(
        Cond.fail("CertificatePending", f"cert-manager certificate not ready ({why})"),
        n.tls_secret,
        renews_itself=True,
    )


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


async def _user_secret(client: KubeClient, inp: BuildInput, now: datetime) -> TLSOutcome:
    name = inp.spec.effective_tls.secret_name
    assert name is not None
    secret = await client.get("v1", "Secret", inp.names.namespace, name)
    cert, key = secret_data(secret, "tls.crt"), secret_data(secret, "tls.key")
    if cert is None or key is None:
        return TLSOutcome(
            Cond.fail("SecretKeyMissing", f"Secret {name} lacks tls.crt/tls.key"), name
        )
    hosts = [inp.spec.receiver.host] if inp.spec.receiver.host else []
    try:
        facts = validate_pair(cert, key, hosts, now)
    except CertProblem as exc:
        return TLSOutcome(Cond.fail(exc.reason, f"Secret {name}: {exc}"), name)
    return TLSOutcome(
        Cond.ok(
            "SecretValid",
            f"certificate of Secret {name} valid until {facts.not_after:%Y-%m-%dT%H:%M:%SZ}",
        ),
        name,
        facts.serial,
        facts.not_after,
        renews_itself=True,
    )


async def ensure_tls(
    client: KubeClient, inp: BuildInput, adopt: Adopt, now: datetime
) -> TLSOutcome:
    mode = inp.spec.effective_tls.mode
    if mode is TLSMode.SELF_SIGNED:
        return await _self_signed(client, inp, adopt, now)
    if mode is TLSMode.CERT_MANAGER:
        return await _cert_manager(client, inp, adopt)
    return await _user_secret(client, inp, now)
