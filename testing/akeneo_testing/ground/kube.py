"""A real Kubernetes control plane on loopback, started the way envtest does (no containers).

etcd + kube-apiserver (secure port, RBAC, admin by static token) + kube-controller-manager
(GC, namespaces, Deployment -> ReplicaSet -> Pod, CronJob -> Job) + kube-scheduler + kwok,
which plays the kubelet of one fake Node so pods become Running and Ready.
"""

from __future__ import annotations

import json
import secrets
import ssl
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from akeneo_testing.ground.binaries import k8s_binary
from akeneo_testing.ground.processes import ServerProcess, free_port, wait_until

NODE_NAME = "kwok-node-0"
ADMIN_USER = "akeneo-test-admin"


class KubeCluster:
    def __init__(self, data_dir: Path):
        self.dir = data_dir
        self.token = secrets.token_hex(24)
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.api_port = free_port()
        self.kubeconfig = data_dir / "kubeconfig"
        self.processes: list[ServerProcess] = []

    # -- public -----------------------------------------------------------------------------
    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        return self.dir / "certs" / "apiserver.crt"

    async def api(self) -> k8s_client.ApiClient:
        """A kubernetes_asyncio client for the admin; close it (``async with``) when done."""
        return await k8s_config.new_client_from_config(config_file=str(self.kubeconfig))

    def request(self, path: str) -> Any:
        """A synchronous GET as the admin (JSON), for readiness checks."""
        req = urllib.request.Request(
            self.server + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            body = resp.read()
        return json.loads(body) if body.startswith(b"{") else body.decode()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._write_credentials()
        self._start_etcd()
        self._start_apiserver()
        self._write_kubeconfig()
        self._start("kube-controller-manager", self._controller_manager_args())
        self._start("kube-scheduler", self._scheduler_args())
        self._start("kwok", self._kwok_args())
        self._create_node()
        wait_until(self._node_ready, timeout=60, what="kwok node Ready", proc=self.processes[-1])
        # Node admission taints a new node not-ready; the node-lifecycle controller would lift
        # it, but it is off (no kubelet heartbeats here: it would evict every pod), so lift it.
        self._kubectl("taint", "node", NODE_NAME, "node.kubernetes.io/not-ready:NoSchedule-")
        wait_until(self._default_sa, timeout=60, what="default ServiceAccount")

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()

    # -- pieces -------------------------------------------------------------------------------
    def _start(self, name: str, argv: list[str | Path]) -> ServerProcess:
        proc = ServerProcess(name, [k8s_binary(name), *argv], self.dir).start()
        self.processes.append(proc)
        return proc

    def _write_credentials(self) -> None:
        (self.dir / "certs").mkdir(exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (self.dir / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (self.dir / "sa.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (self.dir / "tokens.csv").write_text(
            f'{self.token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n'
        )

    def _start_etcd(self) -> None:
        proc = self._start(
            "etcd",
            [
                "--data-dir", self.dir / "etcd",
                "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.etcd_peer_port}",
                "--initial-cluster", f"default=http://127.0.0.1:{self.etcd_peer_port}",
                "--unsafe-no-fsync=true",
                "--log-level", "warn",
            ],
        )  # fmt: skip

        def healthy() -> bool:
            url = f"http://127.0.0.1:{self.etcd_port}/health"
            with urllib.request.urlopen(url, timeout=1) as resp:
                return b'"true"' in resp.read()

        wait_until(healthy, timeout=60, what="etcd", proc=proc)

    def _start_apiserver(self) -> None:
        proc = self._start(
            "kube-apiserver",
            [
                "--etcd-servers", f"http://127.0.0.1:{self.etcd_port}",
                "--cert-dir", self.dir / "certs",
                "--secure-port", str(self.api_port),
                "--bind-address", "127.0.0.1",
                "--advertise-address", "127.0.0.1",
                "--service-cluster-ip-range", "10.0.0.0/24",
                "--authorization-mode", "RBAC",
                "--allow-privileged=true",
                "--token-auth-file", self.dir / "tokens.csv",
                "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file", self.dir / "sa.pub",
                "--service-account-signing-key-file", self.dir / "sa.key",
                "--endpoint-reconciler-type", "none",
                "--enable-priority-and-fairness=false",
                "--v", "1",
            ],
        )  # fmt: skip

        def ready() -> bool:
            return bool(self.ca_file.exists() and self.request("/readyz") == "ok")

        wait_until(ready, timeout=120, what="kube-apiserver /readyz", proc=proc)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": ADMIN_USER, "user": {"token": self.token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": ADMIN_USER}}],
            "current-context": "test",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))

    def _controller_manager_args(self) -> list[str | Path]:
        return [
            "--kubeconfig", self.kubeconfig,
            "--leader-elect=false",
            "--secure-port", "0",
            "--controllers", "*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-route,-service",
            "--service-account-private-key-file", self.dir / "sa.key",
            "--root-ca-file", self.ca_file,
            "--concurrent-gc-syncs", "5",
        ]  # fmt: skip

    def _scheduler_args(self) -> list[str | Path]:
        return [
            "--kubeconfig", self.kubeconfig,
            "--authentication-kubeconfig", self.kubeconfig,
            "--authorization-kubeconfig", self.kubeconfig,
            "--leader-elect=false",
            "--bind-address", "127.0.0.1",
            "--secure-port", str(free_port()),
        ]  # fmt: skip

    def _kwok_args(self) -> list[str | Path]:
        return [
            "--kubeconfig", self.kubeconfig,
            "--config", Path(__file__).parent / "kwok" / "stages.yaml",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
            "--cidr", "10.0.1.0/24",
            "--node-ip", "10.0.1.1",
            "--node-port", str(free_port()),
            "--server-address", f"127.0.0.1:{free_port()}",
        ]  # fmt: skip

    def _kubectl(self, *args: str, stdin: str | None = None) -> str:
        import subprocess

        result = subprocess.run(
            [str(k8s_binary("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def _create_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
            },
        }
        self._kubectl("apply", "-f", "-", stdin=json.dumps(node))

    def _node_ready(self) -> bool:
        node = self.request(f"/api/v1/nodes/{NODE_NAME}")
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _default_sa(self) -> bool:
        self.request("/api/v1/namespaces/default/serviceaccounts/default")
        return True
