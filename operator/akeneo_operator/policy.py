"""What the platform's settings forbid a tenant's spec to ask for.

The CRD lets a tenant write anything its schema allows; some of it only the platform may
grant. A refused spec gets a precise ``Ready=False`` reason and nothing is built from it.
"""

from __future__ import annotations

from akeneo_connector.quotas import QUOTA_EXCEEDS_PLATFORM_LIMIT
from akeneo_connector.spec import AkeneoConnectionSpec
from akeneo_operator.settings import OperatorSettings
from akeneo_operator.status import Cond

PRIVATE_WEBHOOKS_REFUSED = "PrivateAddressesNotAllowed"


def refusal(spec: AkeneoConnectionSpec, settings: OperatorSettings) -> Cond | None:
    """Why the platform refuses this spec, or None."""
    webhook = spec.worker.sink.webhook
    asks_private = webhook is not None and webhook.allow_private_addresses
    if asks_private and not settings.allow_private_webhooks:
        return Cond.fail(
            PRIVATE_WEBHOOKS_REFUSED,
            "spec.worker.sink.webhook.allowPrivateAddresses: this operator does not let "
            "connections reach private, loopback or metadata addresses "
            "(operator setting allowPrivateWebhooks)",
        )
    over = settings.stream_quotas.violations(spec.stream)
    if over:
        return Cond.fail(QUOTA_EXCEEDS_PLATFORM_LIMIT, "; ".join(over))
    return None
