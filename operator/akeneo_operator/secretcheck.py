"""Which Secret keys a spec needs, and a precise reason when one is missing.

The API server cannot check references to Secrets; the operator does, before building pods
that would otherwise never start.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from akeneo_connector.component_env import PIM_KEYS
from akeneo_connector.signing_secrets import SigningSecretError, signing_keys
from akeneo_connector.spec import AkeneoConnectionSpec, TLSMode, WebhookSignature
from akeneo_operator import policy
from akeneo_operator.pods import SIGNATURE_KEYS
from akeneo_operator.status import Cond

DSN_KEYS = ("dsn",)


@dataclass(frozen=True)
class Need:
    secret: str
    keys: tuple[str, ...]
    any_of: bool = False  # at least one of the keys (signature secrets)
    purpose: str = ""
    signature: WebhookSignature | None = None  # signingSecret: the scheme its lines must suit


def needs(spec: AkeneoConnectionSpec, pod_nats_secret: str | None, pod_nats_key: str) -> list[Need]:
    out = [
        Need(
            spec.receiver.signature_secret, tuple(SIGNATURE_KEYS), True, "receiver.signatureSecret"
        )
    ]
    if spec.pim.credentials_secret:
        out.append(Need(spec.pim.credentials_secret, PIM_KEYS, False, "pim.credentialsSecret"))
    sink = spec.worker.sink
    if sink.webhook is not None and sink.webhook.signing_secret:
        out.append(
            Need(
                sink.webhook.signing_secret,
                ("signingSecret",),
                False,
                "sink.webhook",
                sink.webhook.signature,
            )
        )
    if sink.postgres is not None:
        out.append(Need(sink.postgres.dsn_secret, DSN_KEYS, False, "sink.postgres.dsnSecret"))
    if spec.effective_tls.mode is TLSMode.SECRET and spec.effective_tls.secret_name:
        out.append(
            Need(spec.effective_tls.secret_name, ("tls.crt", "tls.key"), False, "tls.secretName")
        )
    if pod_nats_secret:
        out.append(Need(pod_nats_secret, (pod_nats_key,), False, "operator NATS secret"))
    return out


def check(need: Need, present_keys: set[str] | None) -> Cond | None:
    """None when satisfied, else the blocking condition (names only, never values)."""
    if present_keys is None:
        return Cond.fail("SecretMissing", f"Secret {need.secret} ({need.purpose}) not found")
    missing = [k for k in need.keys if k not in present_keys]
    if need.any_of and len(missing) < len(need.keys):
        return None
    if not missing:
        return None
    what = " or ".join(missing) if need.any_of else ", ".join(missing)
    return Cond.fail("SecretKeyMissing", f"Secret {need.secret} ({need.purpose}) lacks key {what}")


def check_content(need: Need, data: Mapping[str, str]) -> Cond | None:
    """A signing secret the worker would refuse, reported as a condition (never its value).

    ``data`` is the Secret's ``data`` (base64 values, as the API server returns them).
    """
    if need.signature is None or "signingSecret" not in data:
        return None
    try:
        text = base64.b64decode(data["signingSecret"], validate=True).decode()
        signing_keys(text, need.signature)
    except (binascii.Error, UnicodeDecodeError):
        why = "is not text"
    except SigningSecretError as exc:
        why = str(exc)
    else:
        return None
    return Cond.fail(
        "SecretInvalid", f"Secret {need.secret} ({need.purpose}) key signingSecret {why}"
    )


def dsn_problem(secret: dict[str, Any], name: str, *, allow_private: bool) -> Cond | None:
    """The DSN's value judged by ``policy.dsn_refusal`` (the operator reads it for that only:
    it never lands in a log, an Event or the status)."""
    raw = (secret.get("data") or {}).get("dsn")
    try:
        dsn = base64.b64decode(str(raw), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return Cond.fail(policy.DSN_REFUSED, f"Secret {name} key dsn is not valid text")
    return policy.dsn_refusal(dsn, name, allow_private=allow_private)
