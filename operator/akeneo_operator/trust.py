"""``PubliclyTrusted``: will Akeneo's senders accept the receiver's certificate?

The PIM (Events API) and the Event Platform verify TLS against the public web's root CAs,
so a certificate the connection's own CA signed (``tls.mode: selfSigned``), a self-signed
one, or one from a private CA is refused however well the receiver works: no event ever
arrives. Only connections with a ``receiver.host`` get the condition (without one, only
in-cluster senders reach the receiver). Roots: Mozilla's list as packaged by ``certifi``,
the set public clients (curl, browsers) trust.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from datetime import datetime
from functools import cache
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from akeneo_connector.spec import TLSMode
from akeneo_operator.status import Cond

REFUSED = "the PIM and the Event Platform verify TLS and will refuse it"
FIX = (
    "use tls.mode certManager with an ACME issuer such as Let's Encrypt "
    "(or leave tls out and set the operator's defaultTLS)"
)


_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


@cache
def public_roots() -> tuple[x509.Certificate, ...]:
    """The bundle's roots, one by one: a root ``cryptography`` refuses (one has a negative
    serial number) is left out instead of failing them all."""
    roots = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        for block in _PEM.findall(Path(certifi.where()).read_bytes()):
            with contextlib.suppress(ValueError):
                roots.append(x509.load_pem_x509_certificate(block))
    return tuple(roots)


def publicly_trusted(
    host: str | None,
    mode: TLSMode,
    chain_pem: bytes | None,
    now: datetime,
    roots: tuple[x509.Certificate, ...] | None = None,
) -> Cond | None:
    """The condition for a connection's serving certificate; None without a public host."""
    if host is None:
        return None
    if mode is TLSMode.SELF_SIGNED:
        return Cond.fail(
            "SelfSignedCertificate",
            f"the certificate of {host} is signed by the connection's own CA: {REFUSED}; {FIX}",
        )
    if not chain_pem:
        return Cond("Unknown", "CertificatePending", f"no certificate for {host} yet")
    try:
        leaf, *intermediates = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        return Cond("Unknown", "CertificateUnreadable", f"the certificate of {host} is not PEM")
    if leaf.issuer == leaf.subject:
        return Cond.fail(
            "SelfSignedCertificate", f"the certificate of {host} is self-signed: {REFUSED}; {FIX}"
        )
    store = Store(list(roots if roots is not None else public_roots()))
    verifier = PolicyBuilder().store(store).time(now).build_server_verifier(x509.DNSName(host))
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        detail = str(exc)[:200]
        return Cond.fail(
            "UntrustedCertificate",
            f"the certificate of {host} does not chain to a public root CA ({detail}): "
            f"{REFUSED}; {FIX}",
        )
    return Cond.ok("PubliclyTrusted", f"the certificate of {host} chains to a public root CA")
