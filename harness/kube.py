"""The single-node Kubernetes of ``scripts/kube-cluster.sh``, for tests and benchmarks.

The cluster runs in the network namespace ``modelops-kube`` with a registry of
its own at :data:`CLUSTER_REGISTRY` (plain HTTP), which the host pushes to and
containerd pulls pod images from. Its binaries come from ``scripts/kube.sh``
(``make test`` builds them once into the tools cache). A missing binary is an
error saying to run ``make test``; nothing is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.netns import Namespace
from harness.pulumi import REPO, PulumiProject, make_project

__all__ = ["CLUSTER_REGISTRY", "KubeCluster", "kube_bin_dir", "kube_project", "start_kube_cluster"]

CLUSTER_SCRIPT = REPO / "scripts" / "kube-cluster.sh"
#: The cluster's registry, fixed by scripts/kube-cluster.sh (the node's address, port 5000).
CLUSTER_REGISTRY = "10.233.0.2:5000"
#: The network namespace the cluster runs in (scripts/kube-cluster.sh).
CLUSTER_NETNS = "modelops-kube"
KUBE_BIN_FILE = REPO / ".modelops" / "kube-bin-dir"


def kube_bin_dir() -> Path:
    """The directory of the cluster binaries ``make kube`` recorded (``MODELOPS_KUBE_BIN`` overrides)."""
    env = os.environ.get("MODELOPS_KUBE_BIN")
    if env:
        path = Path(env)
    elif KUBE_BIN_FILE.is_file():
        path = Path(KUBE_BIN_FILE.read_text().strip())
    else:
        raise RuntimeError(f"no Kubernetes binaries: {KUBE_BIN_FILE} is missing; run `make test` "
                           "(its kube step builds them with scripts/kube.sh)")
    if not (path / "kube-apiserver").is_file():
        raise RuntimeError(f"{path} has no kube-apiserver; run `make test`")
    return path


@dataclass
class KubeCluster:
    """A running cluster. ``started`` is true when :func:`start_kube_cluster` started it (and so stops it)."""

    state: Path
    kubeconfig: Path
    bin_dir: Path
    registry: str
    started: bool

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def get(self, *args: str) -> dict[str, Any]:
        """``kubectl get ARGS -o json``, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.get("pods", "-n", namespace, "-l", selector)["items"]

    def node_namespace(self) -> Namespace:
        """The cluster's network namespace, to serve something where pods reach it (at the registry's host)."""
        return Namespace(CLUSTER_NETNS, host_if="", ns_if="", host_ip="", ns_ip=self.registry.rsplit(":", 1)[0])

    def diagnose(self, namespace: str) -> str:
        """Pods, events and the kubelet's last lines: what a failed test reports."""
        parts = [self.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout,
                 self.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False).stdout]
        log = self.state / "logs" / "kubelet.log"
        if log.exists():
            parts.append("kubelet log (last 40 lines):\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        return "\n".join(parts)

    @contextlib.contextmanager
    def dask_client(self, namespace: str, timeout: float = 60) -> Iterator[Any]:
        """A Dask client of the workspace in ``namespace``, through the smoke test's port-forward and connect."""
        from modelops_infra.client._smoketest import _connect
        from modelops_infra.infra.smoke._endpoint import scheduler_endpoint

        props = {"kubeconfig": self.kubeconfig.read_text(), "namespace": namespace,
                 "scheduler_service": "dask-scheduler"}
        with scheduler_endpoint(props, timeout=timeout) as address:
            client = _connect(address, timeout)
            try:
                yield client
            finally:
                client.close()

    def down(self) -> None:
        _script("down", self.state, self.bin_dir)


def kube_project(root: Path, kube_cluster: KubeCluster, base_ref: str, namespace: str) -> PulumiProject:
    """A ``kubernetes`` stack for the cluster: open registry over HTTP, small workers, a stack-built image."""
    project = make_project(root)
    project.run("config", "set", "modelops:cloud", "kubernetes")
    project.run("config", "set", "--secret", "modelops:kubeconfig", str(kube_cluster.kubeconfig))
    for key, value in {
        "modelops:kubernetes.registry.loginServer": kube_cluster.registry,
        "modelops:kubernetes.registry.insecure": "true",
        "modelops:workspace.namespace": namespace,
        "modelops:workspace.baseImage": base_ref,
        "modelops:workspace.workers": "2",
        # Small requests: three workers and the scheduler fit the 2-core node beside CoreDNS.
        "modelops:workspace.cpu": "250m",
        "modelops:workspace.memory": "1Gi",
        # The smallest cache volume: 1280Mi less the 1Gi in-flight headroom leaves a 256 MiB LRU cap.
        "modelops:workspace.cacheSize": "1280Mi",
        "modelops:workspace.scheduler.cpu": "200m",
        "modelops:workspace.scheduler.memory": "1Gi",
        "modelops:smokeTest.timeout": "120",
    }.items():
        project.config(key, value)
    return project


def _script(action: str, state: Path, bin_dir: Path) -> str:
    env = {**os.environ, "MODELOPS_KUBE_DIR": str(state), "MODELOPS_KUBE_BIN": str(bin_dir)}
    proc = subprocess.run([str(CLUSTER_SCRIPT), action], env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/kube-cluster.sh {action} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


def start_kube_cluster(state: Path | None = None) -> KubeCluster:
    """Start the cluster (state in ``.modelops/kube`` unless given), or use the one already running there."""
    state = state or REPO / ".modelops" / "kube"
    bin_dir = kube_bin_dir()
    running = "kubelet running" in _script("status", state, bin_dir) if state.is_dir() else False
    kubeconfig = Path(_script("up", state, bin_dir).strip().splitlines()[-1])
    return KubeCluster(state, kubeconfig, bin_dir, CLUSTER_REGISTRY, started=not running)
