"""Files the platform rotates under a running pod: signature secrets and the TLS key pair.

Kubernetes updates a mounted Secret by swapping a symlink, so the files are polled (content
for the small secret files, ``stat`` for the key pair) rather than watched with inotify. A
failed reload keeps the previous value: a half-written rotation must not take the receiver down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("akeneo_receiver.reload")

# TLS 1.2: forward secrecy (ECDHE) and authenticated encryption (GCM, ChaCha20-Poly1305) only
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"


def read_secrets(path: Path) -> tuple[str, ...]:
    """One secret per non-empty line, surrounding whitespace removed."""
    text = path.read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


class SecretFile:
    """The current secrets of one file; ``refresh()`` re-reads it when its content changed."""

    def __init__(self, path: Path | None, label: str) -> None:
        self.path = path
        self.label = label
        self.secrets: tuple[str, ...] = ()
        self._raw: bytes | None = None
        if path is not None:
            self.refresh()

    def refresh(self) -> bool:
        """Return True when the secrets changed (never logs them)."""
        if self.path is None:
            return False
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            if self._raw is None:
                raise
            log.warning(
                "secret file unreadable, keeping previous secrets",
                extra={"file": self.label, "error": exc.__class__.__name__},
            )
            return False
        if raw == self._raw:
            return False
        secrets = read_secrets(self.path)
        self._raw = raw
        changed = secrets != self.secrets
        self.secrets = secrets
        if changed:
            log.info("secrets loaded", extra={"file": self.label, "count": len(secrets)})
        return changed


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)  # follows the ..data symlink of a Secret volume
    return st.st_ino, st.st_mtime_ns, st.st_size


class TLSKeyPair:
    """A server ``SSLContext`` whose certificate chain is replaced in place on rotation.

    ``load_cert_chain`` on the live context affects new handshakes only; established
    connections keep their session, so nothing is dropped.
    """

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_ciphers(TLS12_CIPHERS)  # TLS 1.3 suites are all AEAD already
        self.context.load_cert_chain(cert_file, key_file)
        self._stamps = self._current()
        self.loads = 1

    def _current(self) -> tuple[tuple[int, int, int], ...]:
        return (_stamp(self.cert_file), _stamp(self.key_file))

    def _load_checked(self) -> None:
        """Load a snapshot of the pair, first into a scratch context.

        OpenSSL drops the live context's private key when a new certificate does not match
        it, so a mismatched pair (cert rotated, key not yet) must never reach the live context.
        """
        with tempfile.TemporaryDirectory(prefix="tls-reload-") as tmp:
            cert = Path(tmp) / "tls.crt"
            key = Path(tmp) / "tls.key"
            cert.write_bytes(self.cert_file.read_bytes())
            key.write_bytes(self.key_file.read_bytes())
            key.chmod(0o600)
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
            self.context.load_cert_chain(cert, key)

    def refresh(self) -> bool:
        try:
            stamps = self._current()
        except OSError:
            return False
        if stamps == self._stamps:
            return False
        try:
            self._load_checked()
        except (OSError, ssl.SSLError) as exc:
            # cert and key are not swapped atomically: retry on the next poll
            log.warning("TLS key pair not reloaded yet", extra={"error": exc.__class__.__name__})
            return False
        self._stamps = stamps
        self.loads += 1
        log.info("TLS certificate reloaded")
        return True


class Reloader:
    """Polls every ``interval`` seconds until cancelled."""

    def __init__(
        self,
        secrets: Sequence[SecretFile],
        tls: TLSKeyPair | None,
        interval: float,
    ) -> None:
        self.secrets = list(secrets)
        self.tls = tls
        self.interval = interval

    def poll(self) -> None:
        for secret in self.secrets:
            try:
                secret.refresh()
            except OSError:
                log.warning("secret file unreadable", extra={"file": secret.label})
        if self.tls is not None:
            self.tls.refresh()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.poll()
