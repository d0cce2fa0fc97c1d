"""Idempotent create-or-patch of one child: skip when unchanged, patch when the build hash
differs or the live object was edited, recreate only when an immutable field forces it.

A connection writes only what it owns. An existing object is patched only when it carries
the connection's uid in its owner references, and the patch names the object's uid, so the
API server refuses it should the object have been replaced in between; anything else under
a child's name is a ``ChildConflict``, never taken over. An object is created by a
server-side apply without force: when one appeared under that name since it was read, its
fields conflict (409) or its other field managers show, and the apply is undone.
"""

from __future__ import annotations

import contextlib
import enum
from typing import Any

from akeneo_operator.kubeclient import ApiError, KubeClient
from akeneo_operator.meta import HASH_ANNOTATION, Manifest, owned_by, owner_uid


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


class ChildConflict(Exception):
    """A child's name is taken by an object the connection does not own."""

    def __init__(self, kind: str, name: str, why: str = "exists and is not owned by it"):
        super().__init__(f"{kind} {name} {why}")
        self.kind = kind
        self.name = name


def check_owner(desired: Manifest, live: Manifest | None) -> None:
    """Raise ``ChildConflict`` when ``live`` exists without ``desired``'s owner uid."""
    if live is not None and not owned_by(live, owner_uid(desired)):
        raise ChildConflict(desired["kind"], desired["metadata"]["name"])


def _immutable(exc: ApiError) -> bool:
    return exc.status == 422 and "immutable" in exc.message


def _replaced(exc: ApiError) -> bool:
    """The uid the patch named is not the object's any more (deleted and created again)."""
    return exc.status in (409, 422) and "uid" in exc.message.lower()


_UNREAD: Any = object()


async def ensure_child(
    client: KubeClient, desired: Manifest, live: Manifest | None = _UNREAD
) -> tuple[Outcome, Manifest | None]:
    """Make the live child match ``desired``: read it (unless given), write only when it
    differs and only when it is ours (``ChildConflict`` otherwise)."""
    if live is _UNREAD:
        meta = desired["metadata"]
        live = await client.get(
            desired["apiVersion"], desired["kind"], meta["namespace"], meta["name"]
        )
    check_owner(desired, live)
    if not needs_patch(desired, live):
        return Outcome.UNCHANGED, live
    return await write_child(client, desired, None if live is None else live["metadata"]["uid"])


async def write_child(
    client: KubeClient, desired: Manifest, live_uid: str | None
) -> tuple[Outcome, Manifest]:
    """Create ``desired``, or patch our object ``live_uid`` (the caller checked it is ours);
    delete and recreate it when an immutable field forces it."""
    if live_uid is None:
        return Outcome.CREATED, await create_child(client, desired)
    meta = desired["metadata"]
    pinned = {**desired, "metadata": {**meta, "uid": live_uid}}
    try:
        result = await client.apply(pinned, force=True)
    except ApiError as exc:
        if _replaced(exc):
            raise ChildConflict(desired["kind"], meta["name"], "was replaced") from None
        if not _immutable(exc):
            raise
        await client.delete(
            desired["apiVersion"], desired["kind"], meta["namespace"], meta["name"], uid=live_uid
        )
        return Outcome.RECREATED, await create_child(client, desired)
    return Outcome.PATCHED, result


async def create_child(client: KubeClient, desired: Manifest) -> Manifest:
    """Server-side apply without force for an object read as absent. Should one have been
    created under that name meanwhile, its fields conflict (409) or its managers show: the
    apply is taken back (our fields released) and ``ChildConflict`` raised."""
    meta = desired["metadata"]
    try:
        result = await client.apply(desired, force=False)
    except ApiError as exc:
        if exc.status == 409:
            raise ChildConflict(desired["kind"], meta["name"], "appeared meanwhile") from None
        raise
    others = {
        str(entry.get("manager"))
        for entry in result.get("metadata", {}).get("managedFields") or []
        if entry.get("manager") != client.field_manager
    }
    if others:
        with contextlib.suppress(ApiError):  # best effort: the admission policy may refuse
            await client.apply(
                {
                    "apiVersion": desired["apiVersion"],
                    "kind": desired["kind"],
                    "metadata": {
                        "name": meta["name"],
                        "namespace": meta["namespace"],
                        "uid": result["metadata"]["uid"],
                    },
                },
                force=False,
            )
        raise ChildConflict(desired["kind"], meta["name"], "appeared meanwhile")
    return result


async def prune_child(
    client: KubeClient, api_version: str, kind: str, live: Manifest, uid: str | None
) -> bool:
    """Delete ``live`` only when it carries the owner ``uid``, and only that very object."""
    if not owned_by(live, uid):
        return False
    meta = live["metadata"]
    return await client.delete(api_version, kind, meta["namespace"], meta["name"], uid=meta["uid"])
