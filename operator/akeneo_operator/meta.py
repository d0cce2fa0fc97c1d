"""Labels, names and the build hash shared by every child object of a connection."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from akeneo_connector.settings_contract import POD_NATS_CREDS_FILE
from akeneo_operator.settings import MANAGED_BY

Manifest = dict[str, Any]

APP = "akeneo-connector"
HASH_ANNOTATION = "akeneo.connectors.dev/build-hash"
FINALIZER = "akeneo.connectors.dev/finalizer"  # kopf's, on each AkeneoConnection
TLS_SERIAL_ANNOTATION = "akeneo.connectors.dev/tls-serial"
L_NAME = "app.kubernetes.io/name"
L_INSTANCE = "app.kubernetes.io/instance"
L_COMPONENT = "app.kubernetes.io/component"
L_MANAGED_BY = "app.kubernetes.io/managed-by"

RECEIVER = "receiver"
WORKER = "worker"
RECONCILE = "reconcile"
TLS = "tls"
NATS = "nats"  # the connection's NATS credentials (Secret <name>-nats)
CONNECTION = "connection"  # objects serving the whole connection (ServiceAccount)


NATS_CREDS_FILE = POD_NATS_CREDS_FILE  # the file name of a role's creds inside its pod


def nats_secret_name(name: str) -> str:
    """Secret holding the connection's NATS creds files, one key per role."""
    return f"{name}-nats"


def nats_creds_key(role: str) -> str:
    """Key of a role's creds file in ``nats_secret_name``: ``receiver.creds``, ..."""
    return f"{role}.creds"


def selector(name: str, component: str) -> dict[str, str]:
    """Stable selector labels (never change for a Deployment's lifetime)."""
    return {L_NAME: APP, L_INSTANCE: name, L_COMPONENT: component}


def labels(name: str, component: str) -> dict[str, str]:
    return {**selector(name, component), L_MANAGED_BY: MANAGED_BY}


def managed_selector() -> dict[str, str]:
    """Label filter of every object the operator manages (for watches)."""
    return {L_NAME: APP, L_MANAGED_BY: MANAGED_BY}


def build_hash(manifest: Manifest) -> str:
    """sha256 of the canonical JSON of a manifest, ignoring the hash annotation itself."""
    body = copy.deepcopy(manifest)
    meta = body.get("metadata", {})
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(HASH_ANNOTATION, None)
        if not annotations:
            del meta["annotations"]
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def with_hash(manifest: Manifest) -> Manifest:
    """The manifest with its build hash annotation set."""
    digest = build_hash(manifest)
    out = copy.deepcopy(manifest)
    out.setdefault("metadata", {}).setdefault("annotations", {})[HASH_ANNOTATION] = digest
    return out


def owner_reference(owner: Manifest) -> Manifest:
    """The controller owner reference to ``owner`` (garbage collection, ownership checks)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def adopt(manifest: Manifest, owner: Manifest) -> Manifest:
    """A copy of ``manifest`` owned by ``owner`` and nothing else of it: the owner's labels
    are not copied (a tenant's labels could make a child match someone else's selector)."""
    child = copy.deepcopy(manifest)
    child["metadata"]["ownerReferences"] = [owner_reference(owner)]
    return child


def owner_uid(manifest: Manifest) -> str | None:
    """uid of the controller owner reference ``adopt`` set on a desired manifest."""
    for ref in manifest.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") and isinstance(ref.get("uid"), str):
            return str(ref["uid"])
    return None


def owned_by(live: Manifest, uid: str | None) -> bool:
    """True when ``live`` carries an owner reference to ``uid``."""
    refs = live.get("metadata", {}).get("ownerReferences") or []
    return uid is not None and any(ref.get("uid") == uid for ref in refs)


def object_meta(
    name: str,
    namespace: str,
    instance: str,
    component: str,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    meta: Manifest = {
        "name": name,
        "namespace": namespace,
        "labels": labels(instance, component),
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta
