"""Run a pod's container as a local process, the way a kubelet would, minus the container.

No kubelet runs containers on the test ground (kwok only fakes pod status), so the e2e test
takes the pod spec the operator wrote and runs each container's exact command, args and env
here, with its Secret/ConfigMap volumes written to files under a per-pod root. Two things
must differ from a real node and are the only rewrites: absolute mount paths are moved under
that root (the same rewrite is applied to env values and args that point into a mount), and
a port can be overridden because every "pod" shares the host's loopback.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ContainerPlan:
    argv: list[str]
    env: dict[str, str]
    files: dict[Path, bytes] = field(default_factory=dict)

    def write_files(self) -> None:
        for path, data in self.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o600)


class PodSpecError(ValueError):
    pass


def _volume_files(
    volume: dict[str, Any],
    secrets: dict[str, dict[str, Any]],
    config_maps: dict[str, dict[str, Any]],
) -> dict[str, bytes]:
    """Files a volume projects: key (or item path) -> content, as the kubelet would."""
    if "secret" in volume:
        src = volume["secret"]
        obj = secrets.get(src["secretName"])
        data = {k: base64.b64decode(v) for k, v in ((obj or {}).get("data") or {}).items()}
    elif "configMap" in volume:
        src = volume["configMap"]
        obj = config_maps.get(src["name"])
        data = {k: v.encode() for k, v in ((obj or {}).get("data") or {}).items()}
    elif "emptyDir" in volume:
        return {}
    else:
        raise PodSpecError(f"volume {volume['name']}: unsupported source")
    if obj is None:
        if src.get("optional"):
            return {}
        raise PodSpecError(f"volume {volume['name']}: object missing")
    items = src.get("items")
    if not items:
        return data
    out = {}
    for item in items:
        if item["key"] in data:
            out[item.get("path", item["key"])] = data[item["key"]]
        elif not src.get("optional"):
            raise PodSpecError(f"volume {volume['name']}: key {item['key']} missing")
    return out


def plan_container(
    pod_spec: dict[str, Any],
    container_name: str,
    *,
    root: Path,
    secrets: dict[str, dict[str, Any]],
    config_maps: dict[str, dict[str, Any]],
    overrides: dict[str, str] | None = None,
) -> ContainerPlan:
    container = next(c for c in pod_spec["containers"] if c["name"] == container_name)
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    files: dict[Path, bytes] = {}
    remap: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        remap[mount["mountPath"]] = str(target)
        projected = _volume_files(volumes[mount["name"]], secrets, config_maps)
        if "subPath" in mount:
            if mount["subPath"] in projected:
                files[target] = projected[mount["subPath"]]
        else:
            for key, data in projected.items():
                files[target / key] = data

    def rewrite(value: str) -> str:
        for mount_path in sorted(remap, key=len, reverse=True):
            if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                return remap[mount_path] + value[len(mount_path) :]
        return value

    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = rewrite(var["value"])
        elif "valueFrom" in var:
            ref = var["valueFrom"]
            if "secretKeyRef" in ref:
                key_ref = ref["secretKeyRef"]
                secret = secrets.get(key_ref["name"], {})
                raw = (secret.get("data") or {}).get(key_ref["key"])
                if raw is None:
                    if key_ref.get("optional"):
                        continue
                    raise PodSpecError(f"env {var['name']}: secret key missing")
                env[var["name"]] = base64.b64decode(raw).decode()
            elif "fieldRef" in ref:
                env[var["name"]] = {
                    "metadata.name": "local-pod",
                    "metadata.namespace": "local",
                    "status.podIP": "127.0.0.1",
                }.get(ref["fieldRef"]["fieldPath"], "")
            else:
                raise PodSpecError(f"env {var['name']}: unsupported valueFrom")
    env.update(overrides or {})
    argv = [rewrite(a) for a in [*container.get("command", []), *container.get("args", [])]]
    if not argv:
        raise PodSpecError(f"container {container_name}: no command (image entrypoint unknown)")
    return ContainerPlan(argv, {**os.environ, **env}, files)
