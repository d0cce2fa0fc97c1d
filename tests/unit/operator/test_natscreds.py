"""Per-connection NATS users: what is issued, when it is reissued, how pods mount it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from akeneo_connector.names import ConnectionNames
from akeneo_connector.nats_auth import Role, inbox_prefix, permissions
from akeneo_connector.nats_jwt import KeyKind, Signer, decode, parse_creds
from akeneo_operator.children import build_children
from akeneo_operator.meta import HASH_ANNOTATION
from akeneo_operator.natscreds import (
    ROLES,
    Issuer,
    IssuerFile,
    creds_key,
    creds_not_after,
    creds_secret,
    issue,
    issuer_from,
    live_creds,
    permissions_hash,
    reissue_reason,
    without_issuer,
)
from akeneo_operator.settings import OperatorSettings
from tests.unit.operator.builders_support import env_of, make_input, mounts_of

NOW = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)
NAMES = ConnectionNames("tenant-acme", "acme")


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    signing_key, account = Signer.generate(KeyKind.ACCOUNT), Signer.generate(KeyKind.ACCOUNT)
    return issuer_from(signing_key.seed, account.public)


def test_issued_creds_carry_exactly_the_role_permissions(issuer: Issuer) -> None:
    for role in ROLES:
        creds = parse_creds(issue(NAMES, role, issuer, NOW, 30 * DAY))
        token = decode(creds.jwt)
        perms = permissions(NAMES, role)
        assert token.claims["iss"] == issuer.signer.public
        assert token.claims["sub"] == Signer(creds.seed).public
        assert token.nats["issuer_account"] == issuer.account
        assert token.nats["pub"]["allow"] == list(perms.publish)
        assert token.nats["sub"]["allow"] == [f"{inbox_prefix(NAMES)}.>"]
        assert token.expires == int((NOW + 30 * DAY).timestamp())
        assert token.claims["iat"] < int(NOW.timestamp())  # backdated for clock skew


def test_each_issue_is_a_new_user(issuer: Issuer) -> None:
    a, b = (parse_creds(issue(NAMES, Role.WORKER, issuer, NOW, DAY)) for _ in range(2))
    assert a.seed != b.seed


def test_roles_differ_and_replay_has_its_own() -> None:
    perms = {role: permissions(NAMES, role) for role in Role}
    assert len({p.publish for p in perms.values()}) == len(Role)
    replay = perms[Role.REPLAY].publish
    assert f"$JS.API.STREAM.MSG.DELETE.{NAMES.stream}" in replay
    assert f"$JS.API.STREAM.PURGE.KV_{NAMES.guard_bucket}" in replay
    assert f"{NAMES.events_subject}.>" in replay
    assert not any(".DELETE." in s for s in perms[Role.RECEIVER].publish)


def test_reissue_reasons(issuer: Issuer) -> None:
    good = issue(NAMES, Role.WORKER, issuer, NOW, 30 * DAY)

    def why(text: str | None, role: Role = Role.WORKER, at: datetime = NOW, by: Issuer = issuer):
        return reissue_reason(text, NAMES, role, by, at, 10 * DAY)

    assert why(good) is None
    assert why(good, at=NOW + 19 * DAY) is None
    assert why(good, at=NOW + 20 * DAY) == "expiring"
    assert why(good, at=NOW + 31 * DAY) == "expiring"
    assert why(None) == "missing"
    assert why("garbage") == "unreadable"
    assert why(good, role=Role.RECEIVER) == "permissions changed"
    rotated = issuer_from(Signer.generate(KeyKind.ACCOUNT).seed, issuer.account)
    assert why(good, by=rotated) == "issuer changed"
    other = ConnectionNames("tenant-other", "acme")
    assert why(issue(other, Role.WORKER, issuer, NOW, 30 * DAY)) == "permissions changed"
    # a JWT stolen from one creds file, paired with another user's seed
    mine, theirs = parse_creds(good), parse_creds(issue(NAMES, Role.WORKER, issuer, NOW, DAY))
    mixed = good.replace(mine.seed.decode(), theirs.seed.decode())
    assert why(mixed) == "not this user's JWT"


def test_issuer_is_an_account_key(tmp_path: Path) -> None:
    account = Signer.generate(KeyKind.ACCOUNT)
    own = issuer_from(account.seed + b"\n", None)
    assert own.account == account.public and own.issuer_account is None
    with pytest.raises(ValueError, match="account signing key"):
        issuer_from(Signer.generate(KeyKind.USER).seed, None)
    with pytest.raises(ValueError, match="nats_account"):
        issuer_from(account.seed, Signer.generate(KeyKind.USER).public)
    with pytest.raises(ValueError) as caught:
        issuer_from(b"SAnot-a-seed", None, "/keys/seed")
    assert "/keys/seed" in str(caught.value) and "SAnot" not in str(caught.value)


def test_issuer_file_follows_rotation(tmp_path: Path) -> None:
    path = tmp_path / "seed"
    first, second = Signer.generate(KeyKind.ACCOUNT), Signer.generate(KeyKind.ACCOUNT)
    path.write_bytes(first.seed)
    source = IssuerFile(OperatorSettings(nats_signing_key_file=str(path), priority=1))
    assert source.current() is not None and source.current().signer.public == first.public  # type: ignore[union-attr]
    path.write_bytes(second.seed)
    assert source.current().signer.public == second.public  # type: ignore[union-attr]
    path.unlink()  # mid-rotation: keep signing with the last good key
    assert source.current().signer.public == second.public  # type: ignore[union-attr]
    assert IssuerFile(OperatorSettings(priority=1)).current() is None


def test_secret_manifest(issuer: Issuer) -> None:
    creds = {r: issue(NAMES, r, issuer, NOW, 30 * DAY) for r in ROLES}
    secret = creds_secret(NAMES, creds, issuer, NOW + 30 * DAY)
    meta = secret["metadata"]
    assert (meta["name"], meta["namespace"]) == ("acme-nats", "tenant-acme")
    assert meta["labels"]["app.kubernetes.io/instance"] == "acme"
    assert meta["labels"]["app.kubernetes.io/component"] == "nats"
    assert meta["annotations"][HASH_ANNOTATION] == permissions_hash(NAMES, issuer)
    assert set(secret["data"]) == {"receiver.creds", "worker.creds", "reconcile.creds",
                                   "replay.creds"}  # fmt: skip
    assert live_creds(secret) == creds
    assert creds_not_after(base64.b64decode(secret["data"][creds_key(Role.WORKER)]).decode()) == (
        NOW + 30 * DAY
    )
    rotated = issuer_from(Signer.generate(KeyKind.ACCOUNT).seed, issuer.account)
    assert permissions_hash(NAMES, rotated) != permissions_hash(NAMES, issuer)


def test_pods_mount_their_own_role_only(tmp_path: Path) -> None:
    inp = make_input(nats_signing_key_file=str(tmp_path / "seed"))
    children = {(m["kind"], m["metadata"]["name"]): m for m in build_children(inp)}
    expected = {
        ("Deployment", "acme-receiver"): "receiver.creds",
        ("Deployment", "acme-worker"): "worker.creds",
        ("CronJob", "acme-reconcile"): "reconcile.creds",
    }
    for ref, key in expected.items():
        manifest = children[ref]
        if ref[0] == "CronJob":
            manifest = manifest["spec"]["jobTemplate"]
        pod = manifest["spec"]["template"]["spec"]
        assert mounts_of(pod)["/etc/akeneo/nats"] == ("acme-nats", [key])
        (volume,) = [v for v in pod["volumes"] if v["name"] == "nats"]
        assert volume["secret"]["items"] == [{"key": key, "path": "nats.creds"}]
        env = env_of(pod["containers"][0])
        assert env["AKENEO_NATS_CREDS_FILE"] == "/etc/akeneo/nats/nats.creds"
        assert "AKENEO_NATS_USER" not in env and "AKENEO_NATS_PASSWORD_FILE" not in env


def test_settings_refuse_a_shared_credential_next_to_a_signing_key() -> None:
    with pytest.raises(ValidationError, match="pod_nats_secret"):
        OperatorSettings(nats_signing_key_file="/k", pod_nats_secret="shared", priority=1)
    with pytest.raises(ValidationError, match="shorter"):
        OperatorSettings(nats_creds_validity="24h", nats_creds_renew_before="48h", priority=1)


def test_without_a_signing_key_the_condition_says_so() -> None:
    shared = without_issuer(OperatorSettings(pod_nats_secret="nats-pods", priority=1))
    assert (shared.status, shared.reason) == ("True", "SharedCredentials")
    assert "nats-pods" in shared.message and "not isolated" in shared.message
    none = without_issuer(OperatorSettings(priority=1))
    assert (none.status, none.reason) == ("True", "NoCredentials")
