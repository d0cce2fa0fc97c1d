"""An in-process stand-in for the Kubernetes API, the subset of ``KubeClient`` the
``Reconciler`` and its collaborators call, with the API server's answers they rely on
(``tests/integration/operator/test_fake_api.py`` checks each against a real one):

- server-side apply creates or updates and records its field manager; without ``force`` it
  refuses (409) an object another manager wrote (stricter than the server, which refuses
  only a field set to another value: both end in ``ChildConflict``);
- a ``metadata.uid`` in an applied object refuses any other object under that name (422;
  409 when there is none);
- an apply that changes nothing keeps the ``resourceVersion``; a changed spec bumps
  ``generation``;
- an immutable field (a Deployment's selector, a Job's template) is a 422;
- a kind whose CRD is not installed (KEDA, cert-manager by default) is a 404 whose reason
  is not ``NotFound``, a missing object a 404 ``NotFound``;
- a delete with a uid precondition refuses (409) another object.

The real-control-plane tests (``tests/integration/operator``) run the same code against a
real kube-apiserver; this one lets unit tests reach each branch of the reconciler in
milliseconds and count its requests.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

from akeneo_operator.kubeclient import ApiError

Manifest = dict[str, Any]
Key = tuple[str, str, str]  # kind, namespace, name

# Kinds of CRDs a bare cluster does not serve.
NOT_INSTALLED = frozenset({"ScaledObject", "Certificate"})
IMMUTABLE: dict[str, tuple[str, ...]] = {"Deployment": ("selector",), "Job": ("template",)}


@dataclass(frozen=True)
class Write:
    verb: str  # apply | create | replace | patch | status | delete
    kind: str
    name: str


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


def _body(obj: Manifest) -> Manifest:
    """What ``generation`` counts: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


@dataclass
class FakeKube:
    """Objects by (kind, namespace, name); ``writes``: every mutating request (no-op ones too)."""

    field_manager: str = "akeneo-connector-operator"
    not_installed: frozenset[str] = NOT_INSTALLED
    objects: dict[Key, Manifest] = field(default_factory=dict)
    writes: list[Write] = field(default_factory=list)
    calls: int = 0
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    # -- helpers for tests ---------------------------------------------------------------------
    def put(self, manifest: Manifest, manager: str = "kubectl") -> Manifest:
        """An object written by someone else (a user, a controller): not counted as a write."""
        obj = self._new(copy.deepcopy(manifest), manager, "Update")
        self.objects[self._key(obj)] = obj
        return copy.deepcopy(obj)

    def find(self, kind: str, namespace: str, name: str) -> Manifest | None:
        obj = self.objects.get((kind, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def set_status(self, kind: str, namespace: str, name: str, status: Manifest) -> Manifest:
        """A controller's status write (a Deployment's available replicas)."""
        obj = self.objects[(kind, namespace, name)]
        obj["status"] = copy.deepcopy(status)
        self._touch(obj)
        return copy.deepcopy(obj)

    def remove(self, kind: str, namespace: str, name: str) -> None:
        """A deletion by hand."""
        del self.objects[(kind, namespace, name)]

    def of_kind(self, kind: str, namespace: str) -> dict[str, Manifest]:
        return {k[2]: v for k, v in self.objects.items() if k[0] == kind and k[1] == namespace}

    # -- KubeClient ----------------------------------------------------------------------------
    async def close(self) -> None:
        return None

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
        self._served(kind)
        return self.find(kind, namespace, name)

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        label_selector: str | None = None,
    ) -> list[Manifest]:
        self._served(kind)
        wanted = dict(p.split("=", 1) for p in label_selector.split(",")) if label_selector else {}
        out = []
        for (k, ns, _name), obj in sorted(self.objects.items()):
            labels = obj["metadata"].get("labels") or {}
            if k == kind and namespace in (None, ns) and wanted.items() <= labels.items():
                out.append(copy.deepcopy(obj))
        return out

    async def apply(self, manifest: Manifest, *, force: bool = True) -> Manifest:
        self._served(manifest["kind"])
        key = self._key(manifest)
        live = self.objects.get(key)
        uid = manifest["metadata"].get("uid")
        if live is None:
            if uid is not None:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {key[0]} "{key[2]}": uid mismatch: the '
                    f"provided object specified uid {uid}, and no existing object was found",
                )
            obj = self._new(copy.deepcopy(manifest), self.field_manager, "Apply")
            self.objects[key] = obj
            self.writes.append(Write("apply", key[0], key[2]))
            return copy.deepcopy(obj)
        if uid is not None and uid != live["metadata"]["uid"]:
            raise ApiError(
                422,
                "Invalid",
                f'{key[0]} "{key[2]}" is invalid: metadata.uid: Invalid value: "{uid}": '
                "field is immutable",
            )
        managers = {m.get("manager") for m in live["metadata"].get("managedFields") or []}
        if not force and managers - {self.field_manager}:
            others = ", ".join(sorted(str(m) for m in managers - {self.field_manager}))
            raise ApiError(409, "Conflict", f"Apply failed with conflicts: conflict with {others}")
        self._immutable(key, live, manifest)
        updated = copy.deepcopy(manifest)
        meta = updated["metadata"]
        for k in ("uid", "creationTimestamp", "resourceVersion", "generation", "managedFields"):
            if k in live["metadata"]:
                meta[k] = copy.deepcopy(live["metadata"][k])
        if self.field_manager not in managers:
            meta["managedFields"] = [
                *meta.get("managedFields", []),
                {"manager": self.field_manager, "operation": "Apply"},
            ]
        if "status" in live:
            updated["status"] = copy.deepcopy(live["status"])
        self.writes.append(Write("apply", key[0], key[2]))  # a request, even if a no-op
        if updated == live:
            return copy.deepcopy(live)  # a no-op apply: the server keeps the resourceVersion
        if _body(updated) != _body(live):
            meta["generation"] = int(meta.get("generation", 1)) + 1
        self._touch(updated)
        self.objects[key] = updated
        return copy.deepcopy(updated)

    async def create(self, manifest: Manifest) -> Manifest:
        self._served(manifest["kind"])
        key = self._key(manifest)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{key[0]} "{key[2]}" already exists')
        obj = self._new(copy.deepcopy(manifest), "python-client", "Update")
        self.objects[key] = obj
        self.writes.append(Write("create", key[0], key[2]))
        return copy.deepcopy(obj)

    async def replace(self, manifest: Manifest) -> Manifest:
        key = self._key(manifest)
        live = self.objects.get(key)
        if live is None:
            raise ApiError(404, "NotFound", f'{key[0]} "{key[2]}" not found')
        self._immutable(key, live, manifest)
        updated = copy.deepcopy(manifest)
        updated["metadata"] = {**live["metadata"], **updated["metadata"]}
        if _body(updated) != _body(live):
            updated["metadata"]["generation"] = int(live["metadata"].get("generation", 1)) + 1
        self._touch(updated)
        self.objects[key] = updated
        self.writes.append(Write("replace", key[0], key[2]))
        return copy.deepcopy(updated)

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: Manifest,
        subresource: str | None = None,
    ) -> Manifest:
        self._served(kind)
        key = (kind, namespace, name)
        live = self.objects.get(key)
        if live is None:
            raise ApiError(404, "NotFound", f'{kind} "{name}" not found')
        if subresource == "status":
            updated = {**live, "status": _merge(live.get("status") or {}, patch.get("status"))}
        else:
            updated = _merge(live, {k: v for k, v in patch.items() if k != "status"})
            if _body(updated) != _body(live):
                updated["metadata"]["generation"] = int(live["metadata"].get("generation", 1)) + 1
        self._touch(updated)
        self.objects[key] = updated
        self.writes.append(Write("status" if subresource == "status" else "patch", kind, name))
        return copy.deepcopy(updated)

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None
    ) -> bool:
        self._served(kind)
        key = (kind, namespace, name)
        live = self.objects.get(key)
        if live is None:
            return False
        if uid is not None and uid != live["metadata"]["uid"]:
            raise self._precondition(key, uid, live["metadata"]["uid"])
        del self.objects[key]
        self.writes.append(Write("delete", kind, name))
        return True

    # -- internals -----------------------------------------------------------------------------
    @staticmethod
    def _key(manifest: Manifest) -> Key:
        meta = manifest["metadata"]
        return manifest["kind"], meta.get("namespace", ""), meta["name"]

    def _served(self, kind: str) -> None:
        self.calls += 1
        if kind in self.not_installed:
            raise ApiError(404, "Unknown", "404 page not found")

    def _touch(self, obj: Manifest) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))

    def _new(self, obj: Manifest, manager: str, operation: str) -> Manifest:
        meta = obj["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        meta["generation"] = 1
        meta["managedFields"] = [{"manager": manager, "operation": operation}]
        self._touch(obj)
        return obj

    @staticmethod
    def _precondition(key: Key, wanted: str, actual: str) -> ApiError:
        return ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {key[0]} "{key[2]}": the UID in the '
            f"precondition ({wanted}) does not match the UID in record ({actual}). The object "
            "might have been deleted and then recreated",
        )

    @staticmethod
    def _immutable(key: Key, live: Manifest, manifest: Manifest) -> None:
        for name in IMMUTABLE.get(key[0], ()):
            before = (live.get("spec") or {}).get(name)
            after = (manifest.get("spec") or {}).get(name)
            if after is not None and before != after:
                message = f'{key[0]} "{key[2]}" is invalid: spec.{name}: field is immutable'
                raise ApiError(422, "Invalid", message)
