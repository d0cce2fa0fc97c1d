"""Per-connection NATS users under decentralized JWT auth: issue, check, renew.

The platform admin configures nats-server once (operator JWT, an account with a signing
key); the operator holds only that account signing key. For each connection it issues one
user per role (``nats_auth.Role``), a user JWT carrying exactly ``nats_auth.permissions``,
and keeps the creds files in the Secret ``<name>-nats`` (key ``<role>.creds``), mounted in
each pod as ``nats.creds``. nats-server needs no change when connections come and go.

A creds file is reissued (new user key, new JWT) when it is missing or unreadable, signed
by another key (rotation), carries other permissions (an upgrade changed them), or is
within ``nats_creds_renew_before`` of expiry; all of them when the Secret is not owned by
this very connection (one of the same name was deleted and its Secret orphaned, or not yet
garbage-collected: its users are never handed to the new one). Deciding that is pure
(``reissue_reason``); ``ensure_creds`` does the Secret I/O.

Revocation: the users are not revoked when a connection is deleted or its creds reissued.
That needs the ``revocations`` of the account JWT, which only the NATS operator's key signs
and only the system account pushes; this operator holds an account signing key only, and
giving it more would let it mint accounts. So user JWTs are short-lived instead
(``nats_creds_validity``, 2 h by default, renewed ``nats_creds_renew_before`` ahead): the
users of a deleted or reissued connection stop working within that time, and nats-server
cuts their open connections when the JWT expires.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from akeneo_connector.names import ConnectionNames
from akeneo_connector.nats_auth import Permissions, Role, operator_permissions, permissions
from akeneo_connector.nats_jwt import (
    JwtError,
    KeyKind,
    Signer,
    decode,
    encode,
    format_creds,
    is_public_key,
    parse_creds,
    user_claims,
)
from akeneo_operator.apply import check_owner, write_child
from akeneo_operator.kubeclient import KubeClient
from akeneo_operator.meta import (
    HASH_ANNOTATION,
    NATS,
    NATS_CREDS_FILE,
    Manifest,
    nats_creds_key,
    nats_secret_name,
    object_meta,
)
from akeneo_operator.settings import OperatorSettings
from akeneo_operator.status import Cond

ROLES = tuple(Role)
CREDS_FILE = NATS_CREDS_FILE
NOT_AFTER_ANNOTATION = "akeneo.connectors.dev/nats-creds-not-after"
_BACKDATE = timedelta(minutes=5)  # clock skew between the operator and nats-server


def creds_key(role: Role) -> str:
    return nats_creds_key(role.value)


@dataclass(frozen=True)
class Issuer:
    """The account signing key and the account it signs for."""

    signer: Signer
    account: str

    @property
    def issuer_account(self) -> str | None:
        """Set in user JWTs signed by a signing key rather than the account key itself."""
        return None if self.signer.public == self.account else self.account


def issuer_from(seed: bytes, account: str | None, source: str = "signing key") -> Issuer:
    """Check the seed is an account key and ``account`` an account public key."""
    try:
        signer = Signer(seed)
    except JwtError as exc:
        raise ValueError(f"{source}: {exc}") from None
    if signer.kind is not KeyKind.ACCOUNT:
        raise ValueError(f"{source}: an account signing key seed (SA...) is needed")
    account = account or signer.public
    if not is_public_key(account, KeyKind.ACCOUNT):
        raise ValueError("nats_account: not an account public key (A...)")
    return Issuer(signer, account)


class IssuerFile:
    """The mounted signing key, re-read when the Secret changes (key rotation)."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.path = Path(settings.nats_signing_key_file) if settings.nats_signing_key_file else None
        self.account = settings.nats_account
        self._raw: bytes | None = None
        self._issuer: Issuer | None = None

    @property
    def last_good(self) -> Issuer | None:
        return self._issuer

    def current(self) -> Issuer | None:
        """None without a configured key; ``ValueError`` when it is unusable."""
        if self.path is None:
            return None
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            if self._issuer is not None:
                return self._issuer  # a rotation half-written: keep signing with the last key
            raise ValueError(f"{self.path}: {type(exc).__name__}") from None
        if raw != self._raw:
            self._issuer = issuer_from(raw, self.account, str(self.path))
            self._raw = raw
        return self._issuer


# -- pure ----------------------------------------------------------------------------------------


def jwt_name(names: ConnectionNames, role: Role) -> str:
    """The user's name in nats-server's logs."""
    return f"{names.ref}/{role.value}"


def desired_permissions(names: ConnectionNames, role: Role) -> Permissions:
    return permissions(names, role)


def issue(
    names: ConnectionNames, role: Role, issuer: Issuer, now: datetime, validity: timedelta
) -> str:
    """A new creds file for ``role``: a fresh user key and a JWT valid for ``validity``."""
    user = Signer.generate(KeyKind.USER)
    perms = desired_permissions(names, role)
    claims = user_claims(
        user.public,
        jwt_name(names, role),
        publish=perms.publish,
        subscribe=perms.subscribe,
        now=now - _BACKDATE,
        expires=now + validity,
        issuer_account=issuer.issuer_account,
    )
    return format_creds(encode(claims, issuer.signer), user.seed)


def creds_not_after(text: str) -> datetime | None:
    try:
        exp = decode(parse_creds(text).jwt).expires
    except JwtError:
        return None
    return None if exp is None else datetime.fromtimestamp(exp, UTC)


def reissue_reason(
    text: str | None,
    names: ConnectionNames,
    role: Role,
    issuer: Issuer,
    now: datetime,
    renew_before: timedelta,
) -> str | None:
    """Why the creds file of ``role`` must be issued anew; None while it is good."""
    if text is None:
        return "missing"
    try:
        creds = parse_creds(text)
        token = decode(creds.jwt)
        holder = Signer(creds.seed).public
    except JwtError:
        return "unreadable"
    claims, nats = token.claims, token.nats
    if claims.get("iss") != issuer.signer.public or nats.get("issuer_account") != (
        issuer.issuer_account
    ):
        return "issuer changed"
    if claims.get("sub") != holder or nats.get("type") != "user":
        return "not this user's JWT"
    perms = desired_permissions(names, role)
    granted = (
        tuple((nats.get("pub") or {}).get("allow") or ()),
        tuple((nats.get("sub") or {}).get("allow") or ()),
    )
    if granted != (perms.publish, perms.subscribe):
        return "permissions changed"
    exp = token.expires
    if exp is None or now >= datetime.fromtimestamp(exp, UTC) - renew_before:
        return "expiring"
    return None


def permissions_hash(names: ConnectionNames, issuer: Issuer) -> str:
    """What the Secret's JWTs must carry (permissions per role, issuer): its spec hash."""
    desired = {
        "issuer": issuer.signer.public,
        "account": issuer.account,
        "roles": {r.value: desired_permissions(names, r).__dict__ for r in ROLES},
    }
    text = json.dumps(desired, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def creds_secret(
    names: ConnectionNames, creds: dict[Role, str], issuer: Issuer, not_after: datetime
) -> Manifest:
    meta = object_meta(
        nats_secret_name(names.name),
        names.namespace,
        names.name,
        NATS,
        {
            HASH_ANNOTATION: permissions_hash(names, issuer),
            NOT_AFTER_ANNOTATION: f"{not_after:%Y-%m-%dT%H:%M:%SZ}",
        },
    )
    data = {creds_key(r): base64.b64encode(creds[r].encode()).decode() for r in ROLES}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": data}


def live_creds(secret: Manifest | None) -> dict[Role, str]:
    data = (secret or {}).get("data") or {}
    out: dict[Role, str] = {}
    for role in ROLES:
        value = data.get(creds_key(role))
        if isinstance(value, str):
            try:
                out[role] = base64.b64decode(value).decode()
            except ValueError:
                continue
    return out


# -- I/O -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CredsOutcome:
    cond: Cond
    not_after: datetime | None = None
    issuer: str | None = None  # public key the current creds were signed with
    reissued: tuple[str, ...] = ()  # "role (reason)" of what was issued just now


async def ensure_creds(
    client: KubeClient,
    names: ConnectionNames,
    issuer: Issuer,
    adopt: Callable[[Manifest], Manifest],
    now: datetime,
    settings: OperatorSettings,
) -> CredsOutcome:
    """Keep ``<name>-nats`` holding a good creds file per role; write only what changed."""
    secret_name = nats_secret_name(names.name)
    live = await client.get("v1", "Secret", names.namespace, secret_name)
    probe = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret_name}}
    check_owner(adopt(probe), live)  # never read nor overwrite someone else's Secret
    current = live_creds(live)
    owners = _owner_uids(adopt({"apiVersion": "v1", "kind": "Secret", "metadata": {}}))
    foreign = live is not None and not set(owners) <= set(_owner_uids(live))
    reissued: list[str] = []
    for role in ROLES:
        renew = settings.nats_creds_renew_before_delta
        why = (
            "not this connection's"
            if foreign
            else reissue_reason(current.get(role), names, role, issuer, now, renew)
        )
        if why is not None:
            current[role] = issue(names, role, issuer, now, settings.nats_creds_validity_delta)
            reissued.append(f"{role.value} ({why})")
    expiries = [creds_not_after(current[r]) for r in ROLES]
    not_after = min(e for e in expiries if e is not None)
    desired = adopt(creds_secret(names, current, issuer, not_after))
    if reissued or live is None or not _same_meta(desired, live):
        await write_child(client, desired, None if live is None else live["metadata"]["uid"])
    cond = Cond.ok(
        "CredentialsIssued",
        f"NATS users ({', '.join(r.value for r in ROLES)}) of Secret {secret_name} "
        f"valid until {not_after:%Y-%m-%dT%H:%M:%SZ}",
    )
    return CredsOutcome(cond, not_after, issuer.signer.public, tuple(reissued))


def _owner_uids(manifest: Manifest) -> list[str | None]:
    return [r.get("uid") for r in manifest.get("metadata", {}).get("ownerReferences") or []]


def _same_meta(desired: Manifest, live: Manifest) -> bool:
    want, have = desired["metadata"], live.get("metadata", {})
    return (
        all((have.get("labels") or {}).get(k) == v for k, v in want["labels"].items())
        and all((have.get("annotations") or {}).get(k) == v for k, v in want["annotations"].items())
        and [r.get("uid") for r in want.get("ownerReferences") or []]
        == [r.get("uid") for r in have.get("ownerReferences") or []]
    )


def without_issuer(settings: OperatorSettings) -> Cond:
    """Today's behaviour, said plainly: no per-tenant NATS isolation without a signing key."""
    if settings.pod_nats_secret:
        return Cond.ok(
            "SharedCredentials",
            f"no NATS account signing key configured: pods use the operator-wide Secret "
            f"{settings.pod_nats_secret}; connections are not isolated from each other on NATS",
        )
    return Cond.ok(
        "NoCredentials",
        "no NATS account signing key configured: pods connect to NATS without credentials; "
        "connections are not isolated from each other on NATS",
    )


def isolation(settings: OperatorSettings) -> Cond:
    """``NatsIsolated``: own NATS users per connection, or the platform's shared choice."""
    if settings.issues_nats_credentials:
        return Cond.ok(
            "PerConnectionUsers",
            "the connection's pods have NATS users of their own, limited to its stream and bucket",
        )
    shared = without_issuer(settings)
    return Cond.fail(shared.reason, shared.message)


def operator_connect_options(issuer: Issuer, now: Callable[[], datetime]) -> dict[str, Any]:
    """nats.connect options for the operator's own user, issued in memory at each connect.

    The JWT never leaves the process (whoever could read it could read the signing key), so
    it has no expiry: a long-lived connection is never cut by "User Authentication Expired".
    """
    user = Signer.generate(KeyKind.USER)
    perms = operator_permissions()

    def user_jwt() -> bytearray:
        claims = user_claims(
            user.public,
            "akeneo-connector-operator",
            publish=perms.publish,
            subscribe=perms.subscribe,
            now=now() - _BACKDATE,
            expires=None,
            issuer_account=issuer.issuer_account,
        )
        return bytearray(encode(claims, issuer.signer).encode())

    def sign(nonce: str) -> bytes:
        return base64.b64encode(user.sign(nonce.encode()))

    return {"user_jwt_cb": user_jwt, "signature_cb": sign}
