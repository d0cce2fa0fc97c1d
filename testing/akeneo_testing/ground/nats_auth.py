"""A nats-server in operator mode (decentralized JWT auth), set up as a platform admin would.

The admin's side (what ``nsc`` would generate): an operator, a system account and one
account for all connections with a signing key, preloaded into a memory resolver. The same
``akeneo_connector.nats_jwt`` the operator issues user JWTs with makes them here; nats-server
accepting or refusing is the judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from akeneo_connector.nats_jwt import (
    KeyKind,
    Signer,
    account_claims,
    encode,
    format_creds,
    operator_claims,
    user_claims,
)
from akeneo_operator.natscreds import Issuer
from akeneo_testing.ground.nats import NatsServer


def _signer(kind: KeyKind) -> Signer:
    return Signer.generate(kind)


@dataclass(frozen=True)
class NatsAuthority:
    operator: Signer = field(default_factory=lambda: _signer(KeyKind.OPERATOR))
    system: Signer = field(default_factory=lambda: _signer(KeyKind.ACCOUNT))
    account: Signer = field(default_factory=lambda: _signer(KeyKind.ACCOUNT))
    signing_key: Signer = field(default_factory=lambda: _signer(KeyKind.ACCOUNT))

    @property
    def issuer(self) -> Issuer:
        """What the akeneo operator is given: the account signing key (and account id)."""
        return Issuer(self.signing_key, self.account.public)

    def config(self) -> str:
        now = datetime.now(UTC)
        op, sys_, acct = self.operator, self.system, self.account
        operator_jwt = encode(
            operator_claims(op.public, "test-operator", now=now, system_account=sys_.public), op
        )
        system_jwt = encode(account_claims(sys_.public, "SYS", now=now, jetstream=False), op)
        account_jwt = encode(
            account_claims(acct.public, "akeneo", now=now, signing_keys=[self.signing_key.public]),
            op,
        )
        return (
            f"operator: {operator_jwt}\n"
            f"system_account: {sys_.public}\n"
            "resolver: MEMORY\n"
            "resolver_preload: {\n"
            f"  {sys_.public}: {system_jwt}\n"
            f"  {acct.public}: {account_jwt}\n"
            "}\n"
        )

    def write_signing_key(self, path: Path) -> Path:
        path.write_bytes(self.signing_key.seed + b"\n")
        path.chmod(0o600)
        return path

    def user_creds(
        self,
        publish: Sequence[str],
        subscribe: Sequence[str],
        *,
        name: str = "test-user",
        expires: datetime | None = None,
        signer: Signer | None = None,
    ) -> str:
        user = _signer(KeyKind.USER)
        claims = user_claims(
            user.public, name, publish=publish, subscribe=subscribe,
            now=datetime.now(UTC) - timedelta(minutes=1), expires=expires,
            issuer_account=self.account.public,
        )  # fmt: skip
        return format_creds(encode(claims, signer or self.signing_key), user.seed)

    def admin_creds(self, path: Path) -> Path:
        """A user of the account allowed everything (test set-up and assertions only)."""
        path.write_text(self.user_creds([">"], [">"], name="test-admin"))
        return path


class JwtNatsServer(NatsServer):
    """``NatsServer`` trusting ``authority``; ``admin_creds`` connects with every right."""

    def __init__(self, data_dir: Path, authority: NatsAuthority | None = None):
        self.authority = authority or NatsAuthority()
        super().__init__(data_dir, config=self.authority.config())
        self.admin_creds = self.authority.admin_creds(data_dir / "admin.creds")
