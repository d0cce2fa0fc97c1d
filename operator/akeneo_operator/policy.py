"""What the platform's settings forbid a tenant's spec to ask for.

The CRD lets a tenant write anything its schema allows; some of it only the platform may
grant. A refused spec gets a precise ``Ready=False`` reason and nothing is built from it.

Destinations (the PIM, a webhook, a database) on private, loopback, link-local or metadata
addresses are refused unless the spec asks for it and the platform allows it. Here only what
the spec itself says is judged (an IP literal, ``localhost``); the clients check the
resolved address at every connection (``akeneo_connector.addresses``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from akeneo_connector import pgdsn
from akeneo_connector.addresses import literal_refused
from akeneo_connector.quotas import QUOTA_EXCEEDS_PLATFORM_LIMIT
from akeneo_connector.spec import AkeneoConnectionSpec
from akeneo_operator.settings import OperatorSettings
from akeneo_operator.status import Cond

PRIVATE_WEBHOOKS_REFUSED = "PrivateAddressesNotAllowed"
PRIVATE_ADDRESSES_REFUSED = PRIVATE_WEBHOOKS_REFUSED
DSN_REFUSED = "DsnNotAllowed"

_PRIVATE = "private, loopback, link-local or metadata addresses"


def _asked(field: str, setting: str) -> Cond:
    return Cond.fail(
        PRIVATE_ADDRESSES_REFUSED,
        f"{field}.allowPrivateAddresses: this operator does not let connections reach "
        f"{_PRIVATE} (operator setting {setting})",
    )


def _literal(field: str, setting: str) -> Cond:
    return Cond.fail(
        PRIVATE_ADDRESSES_REFUSED,
        f"{field}: the host is one of the {_PRIVATE} connections may not reach (the platform "
        f"may allow it: operator setting {setting} and {field.rsplit('.', 1)[0]}."
        "allowPrivateAddresses)",
    )


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def refusal(spec: AkeneoConnectionSpec, settings: OperatorSettings) -> Cond | None:
    """Why the platform refuses this spec, or None."""
    pim = spec.pim
    pim_private = pim.allow_private_addresses
    if pim_private and not settings.allow_private_pim:
        return _asked("spec.pim", "allowPrivatePim")
    if not pim_private and literal_refused(_host(pim.url)):
        return _literal("spec.pim.url", "allowPrivatePim")
    webhook = spec.worker.sink.webhook
    if webhook is not None:
        if webhook.allow_private_addresses and not settings.allow_private_webhooks:
            return _asked("spec.worker.sink.webhook", "allowPrivateWebhooks")
        if not webhook.allow_private_addresses and literal_refused(_host(webhook.url)):
            return _literal("spec.worker.sink.webhook.url", "allowPrivateWebhooks")
    postgres = spec.worker.sink.postgres
    asks = postgres is not None and postgres.allow_private_addresses
    if asks and not settings.allow_private_postgres:
        return _asked("spec.worker.sink.postgres", "allowPrivatePostgres")
    over = settings.stream_quotas.violations(spec.stream)
    if over:
        return Cond.fail(QUOTA_EXCEEDS_PLATFORM_LIMIT, "; ".join(over))
    return None


def dsn_refusal(dsn: str, secret: str, *, allow_private: bool) -> Cond | None:
    """Why the DSN in Secret ``secret`` (key ``dsn``) is refused, or None. What can be judged
    without DNS: its parameters and the form of its hosts, and IP-literal hosts. The message
    never quotes the DSN."""
    try:
        pgdsn.check(dsn, allow_private=allow_private)
    except pgdsn.DsnRefused as exc:
        reason = PRIVATE_ADDRESSES_REFUSED if exc.address else DSN_REFUSED
        return Cond.fail(reason, f"Secret {secret} key dsn (sink.postgres.dsnSecret): {exc}")
    return None
