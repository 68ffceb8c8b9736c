"""The real cluster and a ``kubernetes`` stack deployed on it with the real Pulumi Kubernetes provider.

The stack builds its worker image (``WorkerImage``) from the mmdebstrap base in
the cluster's registry, with packages from the configured package index (as the
image tests do), and the kubelet pulls it from that registry: nothing is
imported into containerd by hand.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.images import base_rootfs_tar, push_rootfs_image
from harness.kube import KubeCluster, kube_project, start_kube_cluster
from harness.pulumi import PulumiProject
from modelops_infra.bundles import RegistryClient

#: The workspace namespace of the module's stack: one per test process.
NAMESPACE = f"mops-kube-{os.getpid()}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test on the cluster reports its namespaces' pods, events and the kubelet's last lines."""
    outcome = yield
    report = outcome.get_result()
    cluster = getattr(item, "funcargs", {}).get("kube_cluster")
    if report.when == "call" and report.failed and isinstance(cluster, KubeCluster):
        for namespace in (NAMESPACE, f"{NAMESPACE}-noimg"):
            report.sections.append((f"namespace {namespace} after the failure", cluster.diagnose(namespace)))


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    """The single-node cluster (started here, or the one ``make kube-up`` left running)."""
    cluster = start_kube_cluster()
    # Namespaces of earlier runs that were killed before their destroy: on a cluster kept running
    # (make kube-up) their pods would hold the node's CPU requests and leave ours Pending.
    for ns in cluster.get("namespaces")["items"]:
        name = ns["metadata"]["name"]
        pid = name.removeprefix("mops-kube-").split("-")[0]
        if name.startswith("mops-kube-") and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
    yield cluster
    # What a failed test's destroy left behind; on a cluster kept running it would hold CPU requests.
    cluster.kubectl("delete", "namespace", NAMESPACE, f"{NAMESPACE}-noimg", "--ignore-not-found", "--wait=false",
                    check=False)
    if cluster.started:
        cluster.down()


@pytest.fixture(scope="session")
def cluster_base_ref(kube_cluster: KubeCluster) -> str:
    """The bookworm + python3 base in the cluster's registry, by digest."""
    with RegistryClient(kube_cluster.registry, insecure=True) as client:
        image = push_rootfs_image(client, "base/bookworm", "python3", base_rootfs_tar())
    return f"{kube_cluster.registry}/base/bookworm@{image.digest}"


@pytest.fixture(scope="module")
def kube_stack(tmp_path_factory: pytest.TempPathFactory, kube_cluster: KubeCluster,
               cluster_base_ref: str) -> Iterator[PulumiProject]:
    """The stack, configured but not yet deployed; destroyed at the end if a test left it up."""
    project = kube_project(tmp_path_factory.mktemp("kube") / "project", kube_cluster, cluster_base_ref,
                           NAMESPACE)
    yield project
    project.run("destroy", "--yes", "--skip-preview", check=False, timeout=300)
