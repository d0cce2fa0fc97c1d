"""NATS decentralized auth: nkeys, signed JWT claims (nats-io/jwt v2 format) and creds files.

There is no maintained Python library that *issues* NATS JWTs (``nkeys`` signs, ``nats-py``
only presents a creds file), and the format is small, so it lives here: a header
``{"typ":"JWT","alg":"ed25519-nkey"}``, claims with ``jti`` (SHA-512/256 of the standard
claims, base32, as jwt v2 computes it), ``iat``, ``exp``, ``iss``, ``sub``, ``name`` and a
``nats`` object, base64url without padding, signed with the issuer's ed25519 nkey. The real
nats-server (operator mode, tests/security) is what proves it right.

Seeds are secrets: ``Signer`` and ``UserKey`` never show them in ``repr``; errors name what
is wrong, never the value.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import nkeys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
VERSION = 2
NO_LIMIT = -1


class JwtError(ValueError):
    """A token, key or creds file that cannot be used (message without secret values)."""


class KeyKind(enum.IntEnum):
    """nkey prefix bytes (the first base32 letter of a public key: O, A, U)."""

    OPERATOR = nkeys.PREFIX_BYTE_OPERATOR
    ACCOUNT = nkeys.PREFIX_BYTE_ACCOUNT
    USER = nkeys.PREFIX_BYTE_USER


# -- keys --------------------------------------------------------------------------------------


def new_seed(kind: KeyKind) -> bytes:
    """A fresh nkey seed (``SO...``, ``SA...`` or ``SU...``)."""
    seed: bytes = nkeys.encode_seed(os.urandom(32), int(kind))
    return seed


def seed_kind(seed: bytes) -> KeyKind:
    try:
        prefix, _raw = nkeys.decode_seed(bytes(seed.strip()))
        return KeyKind(prefix)
    except (nkeys.NkeysError, ValueError) as exc:
        raise JwtError("not an operator, account or user nkey seed") from exc


def public_key_bytes(public: str) -> tuple[KeyKind, bytes]:
    """Decode a public nkey (``A...``): its kind and the raw ed25519 key; checks the CRC."""
    try:
        raw = base64.b32decode(public + "=" * (-len(public) % 8))
    except (binascii.Error, ValueError) as exc:
        raise JwtError("public nkey is not base32") from exc
    if len(raw) != 35:
        raise JwtError("public nkey has the wrong length")
    body, crc = raw[:-2], int.from_bytes(raw[-2:], "little")
    if nkeys.crc16(body) != crc:
        raise JwtError("public nkey checksum mismatch")
    try:
        kind = KeyKind(body[0])
    except ValueError as exc:
        raise JwtError("public nkey is not an operator, account or user key") from exc
    return kind, bytes(body[1:])


def is_public_key(public: str, kind: KeyKind) -> bool:
    try:
        return public_key_bytes(public)[0] is kind
    except JwtError:
        return False


@dataclass(frozen=True)
class Signer:
    """An nkey able to sign (operator, account or account signing key, or a user)."""

    seed: bytes = field(repr=False)
    kind: KeyKind = field(init=False)
    public: str = field(init=False)

    def __post_init__(self) -> None:
        seed = bytes(self.seed).strip()
        kind = seed_kind(seed)
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "public", nkeys.from_seed(bytearray(seed)).public_key.decode())

    @classmethod
    def generate(cls, kind: KeyKind) -> Signer:
        return cls(new_seed(kind))

    def sign(self, data: bytes) -> bytes:
        signature: bytes = nkeys.from_seed(bytearray(self.seed)).sign(data)
        return signature

    def __repr__(self) -> str:
        return f"Signer(kind={self.kind.name}, public={self.public!r})"


def verify(public: str, data: bytes, signature: bytes) -> bool:
    _kind, raw = public_key_bytes(public)
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, data)
    except InvalidSignature:
        return False
    return True


# -- tokens ------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JwtError("token part is not base64url") from exc


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# Standard claims in the order of jwt v2's ClaimsData, which is what its jti hashes.
_STANDARD = ("aud", "exp", "jti", "iat", "iss", "name", "nbf", "sub")


def claims_id(claims: Mapping[str, Any]) -> str:
    """jwt v2's ``jti``: SHA-512/256 of the standard claims (without ``jti``), base32."""
    data = {k: claims[k] for k in _STANDARD if k != "jti" and claims.get(k)}
    digest = hashlib.new("sha512_256", _json(data)).digest()
    return base64.b32encode(digest).rstrip(b"=").decode()


def encode(claims: Mapping[str, Any], signer: Signer) -> str:
    """Sign ``claims`` (``iss`` and ``jti`` are set here) into a compact JWT."""
    body = {**claims, "iss": signer.public}
    body.pop("jti", None)
    body = {"jti": claims_id(body), **body}
    signing_input = f"{_b64(_json(HEADER))}.{_b64(_json(body))}"
    return f"{signing_input}.{_b64(signer.sign(signing_input.encode()))}"


@dataclass(frozen=True)
class Decoded:
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def nats(self) -> dict[str, Any]:
        value = self.claims.get("nats")
        return value if isinstance(value, dict) else {}

    @property
    def expires(self) -> int | None:
        exp = self.claims.get("exp")
        return int(exp) if isinstance(exp, int) and exp > 0 else None


def decode(token: str) -> Decoded:
    """Parse and verify a JWT against its own ``iss`` (whether that issuer is trusted is the
    caller's decision); ``JwtError`` when malformed or the signature does not match."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise JwtError("a JWT has three dot-separated parts")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
    except ValueError as exc:
        raise JwtError("JWT header or claims are not JSON") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwtError("JWT header or claims are not objects")
    if header.get("alg") != HEADER["alg"]:
        raise JwtError(f"unsupported JWT algorithm {header.get('alg')!r}")
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not verify(
        issuer, f"{parts[0]}.{parts[1]}".encode(), _unb64(parts[2])
    ):
        raise JwtError("JWT signature does not match its issuer")
    return Decoded(header, claims)


# -- claims ------------------------------------------------------------------------------------


def _times(now: datetime, expires: datetime | None) -> dict[str, int]:
    out = {"iat": int(now.timestamp())}
    if expires is not None:
        out["exp"] = int(expires.timestamp())
    return out


def user_claims(
    user_public: str,
    name: str,
    *,
    publish: Sequence[str],
    subscribe: Sequence[str],
    now: datetime,
    expires: datetime | None,
    issuer_account: str | None = None,
) -> dict[str, Any]:
    """A user that may publish/subscribe exactly the given allow lists (all else denied).

    ``issuer_account``: the account's public key when the JWT is signed by one of its
    signing keys rather than by the account key itself.
    """
    if not is_public_key(user_public, KeyKind.USER):
        raise JwtError("user subject must be a public user nkey")
    nats: dict[str, Any] = {
        "pub": {"allow": list(publish)},
        "sub": {"allow": list(subscribe)},
        "subs": NO_LIMIT,
        "data": NO_LIMIT,
        "payload": NO_LIMIT,
    }
    if issuer_account:
        nats["issuer_account"] = issuer_account
    nats |= {"type": "user", "version": VERSION}
    return {**_times(now, expires), "name": name, "sub": user_public, "nats": nats}


def account_claims(
    account_public: str,
    name: str,
    *,
    now: datetime,
    signing_keys: Sequence[str] = (),
    jetstream: bool = True,
) -> dict[str, Any]:
    """An account without limits (JetStream enabled unless ``jetstream=False``)."""
    js = NO_LIMIT if jetstream else 0
    limits = {
        "subs": NO_LIMIT, "data": NO_LIMIT, "payload": NO_LIMIT,
        "imports": NO_LIMIT, "exports": NO_LIMIT, "wildcards": True,
        "conn": NO_LIMIT, "leaf": NO_LIMIT,
        "mem_storage": js, "disk_storage": js, "streams": js, "consumer": js,
    }  # fmt: skip
    nats: dict[str, Any] = {"limits": limits, "default_permissions": {"pub": {}, "sub": {}}}
    if signing_keys:
        nats["signing_keys"] = list(signing_keys)
    nats |= {"type": "account", "version": VERSION}
    return {**_times(now, None), "name": name, "sub": account_public, "nats": nats}


def operator_claims(
    operator_public: str,
    name: str,
    *,
    now: datetime,
    signing_keys: Sequence[str] = (),
    system_account: str | None = None,
) -> dict[str, Any]:
    nats: dict[str, Any] = {}
    if signing_keys:
        nats["signing_keys"] = list(signing_keys)
    if system_account:
        nats["system_account"] = system_account
    nats |= {"type": "operator", "version": VERSION}
    return {**_times(now, None), "name": name, "sub": operator_public, "nats": nats}


# -- creds files -------------------------------------------------------------------------------

_CREDS = """-----BEGIN NATS USER JWT-----
{jwt}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
{seed}
------END USER NKEY SEED------

*************************************************************
"""
_BLOCK = re.compile(r"-{3,}BEGIN ([A-Z ]+)-{3,}\r?\n([\w\-.=]+)\r?\n-{3,}END \1-{3,}")


def format_creds(jwt: str, user_seed: bytes) -> str:
    """NATS's standard ``.creds`` file: the user JWT and the user's nkey seed."""
    if seed_kind(user_seed) is not KeyKind.USER:
        raise JwtError("a creds file holds a user seed")
    return _CREDS.format(jwt=jwt, seed=user_seed.strip().decode())


@dataclass(frozen=True)
class Creds:
    jwt: str
    seed: bytes = field(repr=False)


def parse_creds(text: str) -> Creds:
    blocks = {kind: value for kind, value in _BLOCK.findall(text)}
    jwt, seed = blocks.get("NATS USER JWT"), blocks.get("USER NKEY SEED")
    if jwt is None or seed is None:
        raise JwtError("creds file lacks the user JWT or the user seed")
    return Creds(jwt, seed.encode())
