"""Real receivers (``akeneo-connector receiver`` subprocesses, real TLS) for the hostile tests."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from akeneo_connector.names import ConnectionNames
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import ServerProcess, free_port, wait_until
from akeneo_testing.ground.tls import CertificateAuthority, KeyPair
from tests.integration.receiver.conftest import (  # noqa: F401  (fixtures reused here)
    EVENT_PLATFORM_SECRETS,
    EVENTS_API_SECRET,
    ca,
    start_receiver,
)

CLI = Path(sys.executable).parent / "akeneo-connector"
MAX_BODY = 64 * 1024


@pytest.fixture(scope="session")
def security_ca() -> CertificateAuthority:
    return CertificateAuthority("security test CA")


@dataclass
class ReceiverProcess:
    """One receiver subprocess serving HTTPS on a free loopback port."""

    names: ConnectionNames
    ca: CertificateAuthority
    files: Path
    nats_url: str
    events_api_secret: str = EVENTS_API_SECRET
    event_platform_secrets: Sequence[str] = EVENT_PLATFORM_SECRETS
    extra_args: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)  # probes and metrics, plain HTTP
    process: ServerProcess | None = None
    key_pair: KeyPair | None = None  # default: an EC certificate from ``ca``
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def argv(self) -> list[str]:
        f = self.files
        return [
            str(CLI), "receiver",
            "--connection", self.names.ref,
            "--nats-url", self.nats_url,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--admin-port", str(self.admin_port),
            "--tls-cert-file", str(f / "tls.crt"),
            "--tls-key-file", str(f / "tls.key"),
            "--events-api-secret-file", str(f / "eventsApiSecret"),
            "--event-platform-secrets-file", str(f / "eventPlatformSecrets"),
            "--max-body-bytes", str(MAX_BODY),
            "--log-level", "debug",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> ReceiverProcess:
        self.files.mkdir(parents=True, exist_ok=True)
        (self.key_pair or self.ca.issue()).write(self.files / "tls.crt", self.files / "tls.key")
        (self.files / "eventsApiSecret").write_text(self.events_api_secret + "\n")
        (self.files / "eventPlatformSecrets").write_text(
            "\n".join(self.event_platform_secrets) + "\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("AKENEO_")} | self.env
        self.process = ServerProcess("receiver", self.argv(), self.files).start(env=env)
        wait_until(self._ready, timeout=30, what="receiver", proc=self.process)
        return self

    def _ready(self) -> bool:
        with self.admin_client(timeout=1) as http:
            return http.get("/readyz").status_code == 200

    def client(self, timeout: float = 5) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ca.client_context(), timeout=timeout)

    def admin_client(self, timeout: float = 5) -> httpx.Client:
        """The admin port: /healthz, /readyz, /metrics."""
        return httpx.Client(base_url=f"http://127.0.0.1:{self.admin_port}", timeout=timeout)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def output(self) -> str:
        assert self.process is not None
        return self.process.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def stream_messages(server: NatsServer, stream: str) -> int:
    """Messages stored in ``stream``, read from the server's monitoring endpoint."""
    url = f"http://127.0.0.1:{server.monitor_port}/jsz?streams=true"
    with urllib.request.urlopen(url, timeout=5) as resp:
        data = json.load(resp)
    for account in data.get("account_details") or []:
        for detail in account.get("stream_detail") or []:
            if detail["name"] == stream:
                return int(detail["state"]["messages"])
    raise LookupError(f"stream {stream} not found")


_seq = iter(range(1_000_000))


def unique_names(namespace: str = "tenant-sec") -> ConnectionNames:
    return ConnectionNames(namespace, f"c{next(_seq)}-{time.time_ns() % 10**9}")


@pytest.fixture(scope="module")
def fuzz_receiver(
    nats_server: NatsServer,
    security_ca: CertificateAuthority,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ReceiverProcess]:
    """A receiver subprocess on the session nats-server that creates its own stream."""
    receiver = ReceiverProcess(
        unique_names(),
        security_ca,
        tmp_path_factory.mktemp("receiver"),
        nats_server.url,
        extra_args=("--ensure-stream",),
    ).start()
    try:
        yield receiver
    finally:
        receiver.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fuzzing totals in every run's summary, CI's included (no ``-s`` needed)."""
    fuzz = sys.modules.get("tests.security.test_fuzz")
    lines: list[str] = fuzz.totals() if fuzz is not None else []
    if lines:
        terminalreporter.section("receiver fuzzing")
        for line in lines:
            terminalreporter.write_line(line)
