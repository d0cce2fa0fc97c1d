"""The NATS JWT module on its own: keys, signed claims, creds files (the real nats-server
judges the same tokens in tests/security/test_nats_jwt_auth.py)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from akeneo_connector.nats_jwt import (
    HEADER,
    JwtError,
    KeyKind,
    Signer,
    account_claims,
    claims_id,
    decode,
    encode,
    format_creds,
    is_public_key,
    operator_claims,
    parse_creds,
    public_key_bytes,
    user_claims,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _part(token: str, i: int) -> dict[str, Any]:
    text = token.split(".")[i]
    return dict(json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))))


@pytest.mark.parametrize(("kind", "letter"), [(KeyKind.OPERATOR, "O"), (KeyKind.ACCOUNT, "A"),
                                              (KeyKind.USER, "U")])  # fmt: skip
def test_generated_keys_have_the_nats_prefixes(kind: KeyKind, letter: str) -> None:
    signer = Signer.generate(kind)
    assert signer.public.startswith(letter) and len(signer.public) == 56
    assert signer.seed.startswith(b"S" + letter.encode())
    assert public_key_bytes(signer.public)[0] is kind
    assert is_public_key(signer.public, kind)
    assert signer.seed.decode() not in repr(signer)


def test_public_key_checksum_is_checked() -> None:
    public = Signer.generate(KeyKind.USER).public
    broken = public[:-1] + ("A" if public[-1] != "A" else "B")
    with pytest.raises(JwtError):
        public_key_bytes(broken)
    assert not is_public_key(broken, KeyKind.USER)
    assert not is_public_key(public, KeyKind.ACCOUNT)


def test_user_jwt_round_trip_and_claim_shape() -> None:
    account, signing, user = (Signer.generate(k) for k in (KeyKind.ACCOUNT, KeyKind.ACCOUNT,
                                                           KeyKind.USER))  # fmt: skip
    claims = user_claims(
        user.public, "ns/shop/worker", publish=["a.>", "$JS.API.INFO"], subscribe=["_INBOX_x.>"],
        now=NOW, expires=NOW + timedelta(days=30), issuer_account=account.public,
    )  # fmt: skip
    token = encode(claims, signing)
    assert _part(token, 0) == HEADER
    decoded = decode(token)
    body = decoded.claims
    assert body["iss"] == signing.public and body["sub"] == user.public
    assert body["iat"] == int(NOW.timestamp())
    assert decoded.expires == int((NOW + timedelta(days=30)).timestamp())
    assert body["name"] == "ns/shop/worker"
    assert body["jti"] == claims_id(body) and len(str(body["jti"])) == 52
    assert decoded.nats == {
        "pub": {"allow": ["a.>", "$JS.API.INFO"]},
        "sub": {"allow": ["_INBOX_x.>"]},
        "subs": -1, "data": -1, "payload": -1,
        "issuer_account": account.public,
        "type": "user", "version": 2,
    }  # fmt: skip


def test_tampered_or_foreign_tokens_are_refused() -> None:
    account, user = Signer.generate(KeyKind.ACCOUNT), Signer.generate(KeyKind.USER)
    token = encode(
        user_claims(user.public, "u", publish=["a"], subscribe=["b"], now=NOW, expires=None),
        account,
    )
    header, payload, sig = token.split(".")
    forged = dict(_part(token, 1))
    forged["nats"] = {**forged["nats"], "pub": {"allow": [">"]}}
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    for bad in (f"{header}.{forged_payload}.{sig}", f"{header}.{payload}", "x.y.z", token + "A"):
        with pytest.raises(JwtError):
            decode(bad)
    other = Signer.generate(KeyKind.ACCOUNT)
    stolen = dict(_part(token, 1))
    stolen["iss"] = other.public
    restamped = base64.urlsafe_b64encode(json.dumps(stolen).encode()).rstrip(b"=").decode()
    with pytest.raises(JwtError):
        decode(f"{header}.{restamped}.{sig}")


def test_user_subject_must_be_a_user_key() -> None:
    with pytest.raises(JwtError):
        user_claims(Signer.generate(KeyKind.ACCOUNT).public, "x", publish=[], subscribe=[],
                    now=NOW, expires=None)  # fmt: skip


def test_account_and_operator_claims() -> None:
    op, acct, sk = (Signer.generate(k) for k in (KeyKind.OPERATOR, KeyKind.ACCOUNT,
                                                 KeyKind.ACCOUNT))  # fmt: skip
    claims = account_claims(acct.public, "T", now=NOW, signing_keys=[sk.public])
    account = decode(encode(claims, op))
    assert account.claims["sub"] == acct.public and account.claims["iss"] == op.public
    assert account.nats["type"] == "account" and account.nats["signing_keys"] == [sk.public]
    assert account.nats["limits"]["disk_storage"] == -1  # JetStream enabled
    assert "exp" not in account.claims
    system = account_claims(acct.public, "SYS", now=NOW, jetstream=False)
    assert system["nats"]["limits"]["disk_storage"] == 0
    operator = decode(encode(operator_claims(op.public, "O", now=NOW,
                                             system_account=acct.public), op))  # fmt: skip
    assert operator.nats == {"system_account": acct.public, "type": "operator", "version": 2}


def test_creds_file_round_trip_and_nats_py_reads_it(tmp_path: Path) -> None:
    account, user = Signer.generate(KeyKind.ACCOUNT), Signer.generate(KeyKind.USER)
    token = encode(
        user_claims(user.public, "u", publish=["a"], subscribe=["b"], now=NOW, expires=None),
        account,
    )
    text = format_creds(token, user.seed)
    creds = parse_creds(text)
    assert creds.jwt == token and creds.seed == user.seed
    assert user.seed.decode() not in repr(creds)
    path = tmp_path / "nats.creds"
    path.write_text(text)
    client = Client()  # the exact readers nats-py uses for user_credentials
    assert bytes(client._read_creds_user_jwt(str(path))).decode() == token
    assert bytes(client._read_creds_user_nkey(str(path))) == user.seed
    with pytest.raises(JwtError):
        format_creds(token, account.seed)  # not a user seed
    with pytest.raises(JwtError):
        parse_creds("-----BEGIN NATS USER JWT-----\nabc\n------END NATS USER JWT------\n")
