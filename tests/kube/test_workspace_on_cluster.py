"""``pulumi up`` of a ``kubernetes`` stack on the real cluster, with the real Pulumi Kubernetes provider.

The tests run in file order on one stack: deploy, no-op, resize, kill a worker
under load, then destroy.
"""

from __future__ import annotations

import pytest

from harness.kube import KubeCluster
from harness.pulumi import PulumiProject
from tests.kube.conftest import NAMESPACE

pytestmark = [pytest.mark.kube, pytest.mark.timeout(900)]

WORKERS = "app.kubernetes.io/component=worker"
SCHEDULER = "app.kubernetes.io/component=scheduler"


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def test_up_brings_the_scheduler_and_two_workers_from_the_registry_and_the_smoke_test_passes(
        kube_stack: PulumiProject, kube_cluster: KubeCluster) -> None:
    kube_stack.up()
    outputs = kube_stack.outputs()
    assert outputs["acr_login_server"] == kube_cluster.registry
    assert outputs["namespace"] == NAMESPACE
    image = outputs["worker_image"]
    assert image.startswith(f"{kube_cluster.registry}/modelops/dask-worker@sha256:")
    assert outputs["smoke_test_result"]
    workers = kube_cluster.pods(NAMESPACE, WORKERS)
    schedulers = kube_cluster.pods(NAMESPACE, SCHEDULER)
    assert len(workers) == 2 and len(schedulers) == 1
    for pod in workers + schedulers:
        assert ready(pod), pod["metadata"]["name"]
        (status,) = pod["status"]["containerStatuses"]
        # Pulled by the kubelet from the cluster's registry, by digest.
        assert status["image"] == image or status["imageID"].endswith(image.rsplit("@", 1)[1])
