"""The operator's side of the secret rotation (``rotation``, ``rotation_driver``): the
signature Secret through the API server, the receivers from their reports in the bucket and
the receiver Deployment's ready replicas (the operator does not list Pods), the remote side
through the managed subscription's own sync (``ep_manager``), which pushes what the Secret
holds. Thin: decisions are the planner's."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from akeneo_connector.names import ConnectionNames
from akeneo_operator.kubeclient import KubeClient
from akeneo_operator.meta import managed_selector
from akeneo_operator.rotation import (
    SECRET_KEYS,
    ReceiverView,
    Track,
    receiver_views,
)
from akeneo_operator.rotation_driver import SecretView
from akeneo_operator.streams import NatsLink


class RemoteNotUpdated(RuntimeError):
    """The managed subscription's sync failed: the step is done again next time (its
    condition says why; this message holds no secret)."""


def _lines(value: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in value.splitlines() if line.strip())


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class KubeRotationIO:
    def __init__(
        self,
        client: KubeClient,
        nats: NatsLink,
        names: ConnectionNames,
        secret_name: str,
        receiver_deployment: str,
        sync_remote: Callable[[], Awaitable[bool]],
        now: datetime,
    ) -> None:
        self.client, self.nats, self.names = client, nats, names
        self.secret_name, self.deployment = secret_name, receiver_deployment
        self.sync_remote, self.now = sync_remote, now
        self._pushed = False

    async def read_secret(self) -> SecretView:
        live = await self.client.get("v1", "Secret", self.names.namespace, self.secret_name)
        if live is None:
            return SecretView(False)
        meta = live.get("metadata") or {}
        labels = meta.get("labels") or {}
        managed = all(labels.get(k) == v for k, v in managed_selector().items())
        lines: dict[Track, tuple[str, ...]] = {}
        for track, key in SECRET_KEYS.items():
            raw = (live.get("data") or {}).get(key)
            if raw is None:
                continue
            try:
                lines[track] = _lines(base64.b64decode(str(raw), validate=True).decode())
            except (binascii.Error, UnicodeDecodeError):
                continue
        return SecretView(managed, lines, _time(meta.get("creationTimestamp")))

    async def write_secret(self, lines: Mapping[Track, tuple[str, ...]]) -> None:
        data = {
            SECRET_KEYS[track]: base64.b64encode(
                "".join(f"{v}\n" for v in values).encode()
            ).decode()
            for track, values in lines.items()
        }
        await self.client.merge_patch(
            "v1", "Secret", self.names.namespace, self.secret_name, {"data": data}
        )

    async def push_remote(self, track: Track, primary: str, secondary: str | None) -> None:
        """The subscription's sync pushes the Secret's lines (primary first); once a turn."""
        del track, primary, secondary  # what the Secret now holds, which the sync reads
        if self._pushed:
            return
        if not await self.sync_remote():
            raise RemoteNotUpdated("the managed subscription was not updated")
        self._pushed = True

    async def receivers(self) -> Sequence[ReceiverView]:
        deployment = await self.client.get(
            "apps/v1", "Deployment", self.names.namespace, self.deployment
        )
        ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
        reports = await self.nats.secret_reports(self.names)
        rows = [(r.pod, r.at, r.event_platform, r.notification) for r in reports]
        return receiver_views(rows, ready, self.now)
