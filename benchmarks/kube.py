"""The ``kubernetes`` stack on the local single-node cluster: ``pulumi up`` cold and no-op, and the smoke test's
stage timings through the port-forward beside the local stack's (same machine, same run), and how soon
``pulumi up`` of a workspace whose image does not exist fails.

Needs the cluster binaries (``make kube``); starts the cluster unless ``make kube-up`` left one running.
"Cold" is a new stack and namespace: every Kubernetes object is created and the
smoke test runs. The worker image build inside it reuses the user's layer cache
(``~/.cache/modelops/image-layers``); its own cold figures are in the ``image`` benchmark.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks._result import Result
from harness.images import base_rootfs_tar, push_rootfs_image
from harness.kube import kube_project, start_kube_cluster
from harness.pulumi import PulumiProject, make_project
from harness.services import free_port
from modelops_infra.bundles import RegistryClient

#: The smoke test's timeout in the benchmark's stacks (``kube_project``), the issue's bar for a missing image.
SMOKE_TIMEOUT = 120.0


def _timed_up(project: PulumiProject) -> float:
    start = time.perf_counter()
    project.up()
    return time.perf_counter() - start


def _failed_up(project: PulumiProject) -> float:
    """Seconds until ``pulumi up`` (with its preview, as users run it) fails; raises if it does not."""
    start = time.perf_counter()
    proc = project.run("up", "--yes", check=False, timeout=900)
    if proc.returncode == 0 or "does not exist" not in proc.stdout:
        raise RuntimeError(f"pulumi up of a missing image did not fail at its check:\n{proc.stdout[-2000:]}")
    return time.perf_counter() - start


def run(rounds: int = 3) -> list[Result]:
    cluster = start_kube_cluster()
    try:
        with RegistryClient(cluster.registry, insecure=True) as client:
            base = push_rootfs_image(client, "base/bookworm", "python3", base_rootfs_tar())
        with tempfile.TemporaryDirectory(prefix="modelops-kube-bench-") as tmp:
            kube = kube_project(Path(tmp) / "kube", cluster, f"{cluster.registry}/base/bookworm@{base.digest}",
                                f"mops-bench-{os.getpid()}")
            local = make_project(Path(tmp) / "local")
            missing_image = kube_project(Path(tmp) / "missing", cluster,
                                         f"{cluster.registry}/base/bookworm@{base.digest}", f"mops-bench-{os.getpid()}-m")
            missing_image.config("modelops:workspace.image", f"{cluster.registry}/modelops/no-such-worker:missing")
            local.run("config", "set", "modelops:cloud", "local")
            for key in ("registryPort", "schedulerPort", "dashboardPort"):
                local.config(f"modelops:local.{key}", str(free_port()))
            try:
                cold = _timed_up(kube)
                noop = statistics.median(_timed_up(kube) for _ in range(rounds))
                kube_timings = kube.outputs()["smoke_test_timings"]
                local_cold = _timed_up(local)
                local_timings = local.outputs()["smoke_test_timings"]
                missing = statistics.median(_failed_up(missing_image) for _ in range(rounds))
            finally:
                kube.run("destroy", "--yes", "--skip-preview", check=False, timeout=300)
                local.run("destroy", "--yes", "--skip-preview", check=False, timeout=300)
    finally:
        if cluster.started:
            cluster.down()
    kube_total, local_total = sum(kube_timings.values()), sum(local_timings.values())
    stages = ", ".join(f"{k} {kube_timings[k]:.3f}/{local_timings.get(k, 0):.3f}" for k in kube_timings)
    return [
        Result("kubernetes up: no-op vs cold", noop / cold, "-", True,
               f"cold {cold:.1f} s (12 objects, image build, smoke test); no-op {noop:.1f} s (median of {rounds});"
               f" local stack cold {local_cold:.1f} s"),
        Result("smoke test: port-forward/local", kube_total / local_total, "-", True,
               f"{kube_total:.2f} s vs {local_total:.2f} s; per stage kube/local: {stages}"),
        Result("missing image: failed up / smoke-test timeout", missing / SMOKE_TIMEOUT, "< 1", missing < SMOKE_TIMEOUT,
               f"pulumi up (preview first) fails at the image check in {missing:.1f} s (median of {rounds}), default "
               f"rollout timeout (600 s); no-op up {noop:.1f} s"),
    ]
