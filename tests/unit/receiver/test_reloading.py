from __future__ import annotations

import contextlib
import logging
import os
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from akeneo_receiver.reloading import SecretFile, TLSKeyPair
from akeneo_testing.ground.tls import CertificateAuthority


def test_secret_file_lines_and_reload(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "secrets"
    path.write_text("primary-xyz\n\n  secondary-xyz  \n")
    secret = SecretFile(path, "event_platform")
    assert list(secret.secrets) == ["primary-xyz", "secondary-xyz"]
    assert secret.refresh() is False
    caplog.set_level(logging.INFO)
    path.write_text("third-xyz\n")
    assert secret.refresh() is True and list(secret.secrets) == ["third-xyz"]
    path.unlink()
    assert secret.refresh() is False and list(secret.secrets) == ["third-xyz"]  # kept
    assert "xyz" not in caplog.text


def test_missing_secret_file_at_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        SecretFile(tmp_path / "absent", "events_api")
    assert SecretFile(None, "events_api").secrets == ()


def test_tls_reload_in_place_and_bad_pair_kept(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    first = ca.issue()
    first.write(cert, key)
    pair = TLSKeyPair(cert, key)
    context = pair.context
    assert pair.refresh() is False
    other = ca.issue()
    cert.write_bytes(other.cert_pem)  # key not rotated yet: mismatch, keep serving the old pair
    os.utime(cert, ns=(1, 1))
    assert pair.refresh() is False and pair.loads == 1
    assert handshake_serial(pair.context, ca) == first.serial  # still serving
    key.write_bytes(other.key_pem)
    assert pair.refresh() is True and pair.loads == 2
    assert pair.context is context
    assert handshake_serial(context, ca) == other.serial


def handshake_serial(server_ctx: ssl.SSLContext, ca: CertificateAuthority) -> int:
    """Serial of the certificate a TLS handshake in memory gets from ``server_ctx``."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = ca.client_context().wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for end in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    der = client.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number
