"""TLS on the receiver's port: 1.2+ only, ECDHE with AEAD only, no plain HTTP answered."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.tls import CertificateAuthority
from tests.security.conftest import ReceiverProcess, unique_names
from tests.security.tls_probe import (
    AEAD_ECDHE,
    CBC_ECDHE,
    NO_ECDHE,
    TLS1_0,
    TLS1_1,
    TLS1_2,
    client_hello,
    issue_rsa,
    probe,
)

PROTOCOL_VERSION_ALERT = 70
HANDSHAKE_FAILURE_ALERT = 40


@pytest.fixture(scope="module", params=["ec", "rsa"])
def tls_receiver(
    request: pytest.FixtureRequest,
    nats_server: NatsServer,
    security_ca: CertificateAuthority,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ReceiverProcess]:
    """Receivers with an EC and with an RSA key: RSA is what would allow non-ECDHE suites."""
    key_pair = issue_rsa(security_ca) if request.param == "rsa" else None
    receiver = ReceiverProcess(
        unique_names(),
        security_ca,
        Path(tmp_path_factory.mktemp(f"tls-{request.param}")),
        nats_server.url,
        extra_args=("--ensure-stream",),
        key_pair=key_pair,
    ).start()
    try:
        yield receiver
    finally:
        receiver.stop()


def test_modern_hello_is_accepted_as_tls12(tls_receiver: ReceiverProcess) -> None:
    """The positive control for the probes below: same bytes, modern offer, a ServerHello."""
    answer = probe(tls_receiver.port, client_hello(TLS1_2, AEAD_ECDHE))
    assert answer.server_hello_version == TLS1_2


@pytest.mark.parametrize("version", [TLS1_0, TLS1_1], ids=["tls1.0", "tls1.1"])
def test_old_protocol_versions_are_refused(tls_receiver: ReceiverProcess, version: int) -> None:
    answer = probe(tls_receiver.port, client_hello(version, AEAD_ECDHE + CBC_ECDHE + NO_ECDHE))
    assert not answer.accepted
    assert answer.alert in (PROTOCOL_VERSION_ALERT, None) and (answer.alert or answer.closed)


@pytest.mark.parametrize(
    "ciphers", [CBC_ECDHE, NO_ECDHE, CBC_ECDHE + NO_ECDHE], ids=["ecdhe-cbc", "no-ecdhe", "both"]
)
def test_tls12_without_ecdhe_aead_is_refused(
    tls_receiver: ReceiverProcess, ciphers: tuple[int, ...]
) -> None:
    answer = probe(tls_receiver.port, client_hello(TLS1_2, ciphers))
    assert not answer.accepted
    assert answer.alert in (HANDSHAKE_FAILURE_ALERT, None) and (answer.alert or answer.closed)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_real_clients_on_tls12_and_tls13_get_answers(
    tls_receiver: ReceiverProcess, version: ssl.TLSVersion
) -> None:
    ctx = tls_receiver.ca.client_context()
    ctx.minimum_version = ctx.maximum_version = version
    with (
        socket.create_connection(("127.0.0.1", tls_receiver.port), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        assert tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2"}.get(version, "TLSv1.3")
        negotiated = tls.cipher()
        assert negotiated is not None
        cipher = negotiated[0]
        assert "GCM" in cipher or "CHACHA20" in cipher
        tls.sendall(b"GET /events HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert tls.recv(4096).startswith(b"HTTP/1.1 405")  # an HTTP answer over this TLS


def test_plain_http_on_the_tls_port_gets_no_http_answer(tls_receiver: ReceiverProcess) -> None:
    body = b"{}"
    request = (
        b"POST /events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\n\r\n" + body
    )
    with socket.create_connection(("127.0.0.1", tls_receiver.port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except (TimeoutError, ConnectionError):
            pass
    assert b"HTTP/" not in received
    assert received == b"" or received[0] == 0x15  # closed, or a TLS alert record
