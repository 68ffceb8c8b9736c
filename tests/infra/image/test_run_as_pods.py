"""The worker image runs as the pods run it: scheduler and workers under the pod spec's constraints, smoke-tested.

The containers get the spec's user, read-only root, dropped capabilities,
no-new-privileges, env, command, and tmpfs mounts where the spec has
``emptyDir`` volumes (tests/infra/image/pods.py translates). Networking is the
host's, so the spec's fixed ports are rewritten to free ones.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests

from harness.images import Dockerd, wait_for
from harness.services import Registry, free_port
from modelops_infra.client import run_smoke_test
from modelops_infra.infra.kubernetes import specs
from modelops_infra.infra.quantities import bundle_cache_cap, parse_memory
from tests.infra.image.pods import docker_run_argv

WORKER_MEMORY = "2Gi"
EMPTY_DIRS = (specs.TMP_DIR, specs.BUNDLE_CACHE_DIR)


@dataclass
class Pods:
    scheduler_address: str
    dashboard_port: int
    containers: list[str]
    dockerd: Dockerd

    def state(self, name: str) -> tuple[bool, int]:
        out = self.dockerd.docker("inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", name).stdout.split()
        return out[0] == "true", int(out[1])

    def logs(self, name: str) -> str:
        proc = self.dockerd.docker("logs", name, check=False)
        return proc.stdout + proc.stderr


@contextmanager
def workspace_pods(dockerd: Dockerd, image: str, registry: Registry, *, omit: Collection[str] = (),
                   workers: int = 2) -> Iterator[Pods]:
    """One scheduler and ``workers`` worker containers from the DaskWorkspace's own Deployment specs."""
    names = specs.workspace_names("imgtest", "modelops")
    port, dashboard = free_port(), free_port()
    # With host networking the scheduler Service is 127.0.0.1 and the fixed ports must be free ones.
    names = dataclasses.replace(names, scheduler="127.0.0.1")
    env = specs.bundle_env(login_server=registry.address, repository="modelops/bundles")
    scheduler = specs.scheduler_deployment_spec(names, image=image, env=env, cpu="1", memory="2Gi")
    worker = specs.worker_deployment_spec(names, image=image, env=env, cpu="1", memory=WORKER_MEMORY, nthreads=1,
                                          memory_limit_bytes=parse_memory(WORKER_MEMORY, key="memory"),
                                          cache_size="2Gi", cache_max_bytes=bundle_cache_cap("2Gi", key="cache_size"),
                                          replicas=workers)
    rewrite = {str(specs.SCHEDULER_PORT): str(port), f":{specs.DASHBOARD_PORT}": f":{dashboard}",
               f"tcp://127.0.0.1:{specs.SCHEDULER_PORT}": f"tcp://127.0.0.1:{port}",
               f":{specs.WORKER_DASHBOARD_PORT}": ":0"}
    tag = uuid.uuid4().hex[:8]
    pods = Pods(f"tcp://127.0.0.1:{port}", dashboard, [], dockerd)
    try:
        name = f"sched-{tag}"
        dockerd.docker(*docker_run_argv(scheduler, name=name, image=image, omit=omit, rewrite=rewrite))
        pods.containers.append(name)
        for i in range(workers):
            name = f"worker{i}-{tag}"
            dockerd.docker(*docker_run_argv(worker, name=name, image=image, omit=omit, rewrite=rewrite))
            pods.containers.append(name)
        yield pods
    finally:
        for name in pods.containers:
            dockerd.docker("rm", "-f", name, check=False)


def test_a_scheduler_and_two_workers_under_the_pod_constraints_pass_the_smoke_test(
        dockerd: Dockerd, pulled_worker_image: str, registry: Registry) -> None:
    with workspace_pods(dockerd, pulled_worker_image, registry) as pods:
        wait_for(lambda: requests.get(f"http://127.0.0.1:{pods.dashboard_port}/health", timeout=2).ok, 60,
                 "the scheduler container")
        inspect = dockerd.docker("inspect", "-f", "{{.HostConfig.ReadonlyRootfs}} {{.Config.User}} "
                                 "{{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}}", pods.containers[1]).stdout
        assert inspect.split() == ["true", "1000:1000", "[ALL]", "[no-new-privileges]"], inspect
        start = time.perf_counter()
        report = run_smoke_test(bundle=None, registry=registry.address, scheduler=pods.scheduler_address,
                                timeout=120, min_workers=2)
        logs = "\n".join(pods.logs(n)[-2000:] for n in pods.containers)
        assert report.passed, f"expected the smoke test to pass against the containers: {report.error}\n{logs}"
        print(f"\nsmoke test against the containers: {time.perf_counter() - start:.1f} s {report.timings}")


def test_without_the_empty_dir_mounts_the_workers_fail_visibly(
        dockerd: Dockerd, pulled_worker_image: str, registry: Registry) -> None:
    with workspace_pods(dockerd, pulled_worker_image, registry, omit=EMPTY_DIRS) as pods:
        report = run_smoke_test(bundle=None, registry=registry.address, scheduler=pods.scheduler_address,
                                timeout=15, min_workers=2)
        assert not report.passed, "the smoke test passed although no emptyDir was mounted"
        exited = [n for n in pods.containers if not pods.state(n)[0]]
        assert exited, "expected containers to exit without their emptyDirs"
        logs = "\n".join(pods.logs(n) for n in pods.containers[1:])
        assert "Read-only file system" in logs, f"expected the workers to say why:\n{logs[-3000:]}"
        print(f"\nwithout emptyDirs: {exited} exited; smoke test failed at {report.stage}: "
              f"{report.error.splitlines()[0]}")


def test_without_the_bundle_cache_mount_the_workers_look_healthy_but_the_smoke_test_fails_at_fetch(
        dockerd: Dockerd, pulled_worker_image: str, registry: Registry) -> None:
    with workspace_pods(dockerd, pulled_worker_image, registry, omit=(specs.BUNDLE_CACHE_DIR,)) as pods:
        wait_for(lambda: requests.get(f"http://127.0.0.1:{pods.dashboard_port}/health", timeout=2).ok, 60,
                 "the scheduler container")
        report = run_smoke_test(bundle=None, registry=registry.address, scheduler=pods.scheduler_address,
                                timeout=60, min_workers=2)
        assert all(pods.state(n)[0] for n in pods.containers), "every container should still be running"
        assert (report.passed, report.stage) == (False, "fetch"), f"expected a failure at fetch: {report.error}"
        assert "Read-only file system" in report.error or "read-only" in report.error.lower(), report.error


def test_the_image_runs_the_worker_install_and_has_no_pulumi(dockerd: Dockerd, pulled_worker_image: str) -> None:
    flags = ["run", "--rm", "--network", "none", "--user", "1000:1000", "--read-only", "--cap-drop", "ALL",
             "--security-opt", "no-new-privileges", pulled_worker_image]
    ok = dockerd.docker(*flags, "python", "-c",
                        "import modelops_infra.worker, distributed, azure.identity, bokeh, sys; print(sys.prefix)")
    assert ok.stdout.strip() == "/opt/venv"
    assert dockerd.docker(*flags, "uv", "--version").stdout.startswith("uv ")
    pulumi = dockerd.docker(*flags, "python", "-c", "import pulumi", check=False)
    assert pulumi.returncode != 0 and "No module named 'pulumi'" in pulumi.stderr, pulumi.stderr
