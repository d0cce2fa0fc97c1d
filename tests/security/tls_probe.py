"""Hand-made TLS ClientHellos: probe what a server accepts independently of the local OpenSSL.

A client ``SSLContext`` cannot prove that a server refuses TLS 1.0: the local OpenSSL may
refuse to send such a hello in the first place. These bytes go out whatever the client
library allows, and the server's first record tells whether it would negotiate.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from akeneo_testing.ground.tls import CertificateAuthority, KeyPair

TLS1_0, TLS1_1, TLS1_2 = 0x0301, 0x0302, 0x0303

AEAD_ECDHE = (0xC02B, 0xC02C, 0xCCA9, 0xC02F, 0xC030, 0xCCA8)
CBC_ECDHE = (0xC023, 0xC024, 0xC009, 0xC00A, 0xC027, 0xC028, 0xC013, 0xC014)
NO_ECDHE = (0x009E, 0x009F, 0x009C, 0x009D, 0x0067, 0x006B, 0x003C, 0x002F, 0x0035)

_GROUPS = (0x001D, 0x0017, 0x0018)
_SIGALGS = (0x0403, 0x0503, 0x0804, 0x0805, 0x0401, 0x0501, 0x0201, 0x0203)


def _ext(kind: int, data: bytes) -> bytes:
    return struct.pack("!HH", kind, len(data)) + data


def _u16_list(values: Sequence[int]) -> bytes:
    return struct.pack("!H", 2 * len(values)) + b"".join(struct.pack("!H", v) for v in values)


def client_hello(version: int, ciphers: Sequence[int], host: str = "localhost") -> bytes:
    """One TLS record holding a ClientHello that offers ``version`` and only ``ciphers``."""
    name = host.encode()
    sni = struct.pack("!BH", 0, len(name)) + name
    extensions = b"".join(
        [
            _ext(0x0000, struct.pack("!H", len(sni)) + sni),
            _ext(0x000A, _u16_list(_GROUPS)),
            _ext(0x000B, b"\x01\x00"),
            _ext(0x000D, _u16_list(_SIGALGS)),
            _ext(0xFF01, b"\x00"),
        ]
    )
    body = (
        struct.pack("!H", version)
        + os.urandom(32)
        + b"\x00"
        + _u16_list(ciphers)
        + b"\x01\x00"
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16" + struct.pack("!HH", TLS1_0, len(handshake)) + handshake


@dataclass(frozen=True)
class HelloAnswer:
    """What the server sent first: a ServerHello (and its version), an alert, or nothing."""

    server_hello_version: int | None
    alert: int | None
    closed: bool  # the server ended the connection (rather than leaving us waiting)

    @property
    def accepted(self) -> bool:
        return self.server_hello_version is not None


def probe(port: int, hello: bytes, timeout: float = 5) -> HelloAnswer:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(hello)
        data = b""
        closed = False
        try:
            while len(data) < 11:
                chunk = sock.recv(4096)
                if not chunk:
                    closed = True
                    break
                data += chunk
        except ConnectionError:
            closed = True
        except TimeoutError:
            pass
    if len(data) >= 11 and data[0] == 0x16 and data[5] == 0x02:
        return HelloAnswer(struct.unpack("!H", data[9:11])[0], None, closed)
    if len(data) >= 7 and data[0] == 0x15:
        return HelloAnswer(None, data[6], closed)
    return HelloAnswer(None, None, closed)


def issue_rsa(ca: CertificateAuthority, host: str = "localhost") -> KeyPair:
    """An RSA serving certificate: lets a server offer the non-ECDHE RSA/DHE suites at all."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), key_pem, cert.serial_number)
