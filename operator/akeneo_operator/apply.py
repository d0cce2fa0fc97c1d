"""Idempotent create-or-patch of one child: skip when unchanged, patch when the build hash
differs or the live object was edited, recreate only when an immutable field forces it."""

from __future__ import annotations

import enum
from typing import Any

from akeneo_operator.kubeclient import ApiError, KubeClient
from akeneo_operator.meta import HASH_ANNOTATION, Manifest


class Outcome(enum.StrEnum):
    CREATED = "Created"
    PATCHED = "Patched"
    RECREATED = "Recreated"
    UNCHANGED = "Unchanged"


def contains(live: Any, desired: Any) -> bool:
    """True when every field of ``desired`` has the same value in ``live``.

    Fields the server adds (defaults, status, managedFields) are ignored; lists must have
    the same length and match element by element.
    """
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        return all(k in live and contains(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(contains(lv, dv) for lv, dv in zip(live, desired, strict=True))
    return bool(live == desired)


def live_hash(live: Manifest) -> str | None:
    value = (live.get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION)
    return value if isinstance(value, str) else None


def needs_patch(desired: Manifest, live: Manifest | None) -> bool:
    if live is None:
        return True
    if live_hash(live) != live_hash(desired):
        return True
    return not (
        contains(live.get("metadata", {}), desired["metadata"])
        and all(
            contains(live.get(k), v) for k, v in desired.items() if k not in ("metadata", "status")
        )
    )


def _immutable(exc: ApiError) -> bool:
    return exc.status == 422 and "immutable" in exc.message


async def ensure_child(client: KubeClient, desired: Manifest) -> tuple[Outcome, Manifest | None]:
    """Make the live child match ``desired``: read it, write only when it differs."""
    meta = desired["metadata"]
    live = await client.get(desired["apiVersion"], desired["kind"], meta["namespace"], meta["name"])
    if not needs_patch(desired, live):
        return Outcome.UNCHANGED, live
    return await write_child(client, desired, exists=live is not None)


async def write_child(
    client: KubeClient, desired: Manifest, *, exists: bool
) -> tuple[Outcome, Manifest]:
    """Server-side apply ``desired``; delete and recreate when an immutable field forces it."""
    meta = desired["metadata"]
    try:
        result = await client.apply(desired)
    except ApiError as exc:
        if not _immutable(exc):
            raise
        await client.delete(desired["apiVersion"], desired["kind"], meta["namespace"], meta["name"])
        return Outcome.RECREATED, await client.apply(desired)
    return (Outcome.PATCHED if exists else Outcome.CREATED), result
