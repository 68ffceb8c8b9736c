"""``pulumi up`` of a ``kubernetes`` stack on the real cluster, with the real Pulumi Kubernetes provider.

The tests run in file order on one stack: deploy, no-op, resize, network
policies, kill a worker under load, then destroy.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from harness.images import push_tiny_image, wait_for
from harness.kube import KubeCluster, kube_project
from harness.pulumi import PulumiProject
from modelops_infra.bundles import RegistryClient
from tests.kube.conftest import NAMESPACE

pytestmark = [pytest.mark.kube, pytest.mark.timeout(900)]

WORKERS = "app.kubernetes.io/component=worker"
SCHEDULER = "app.kubernetes.io/component=scheduler"
BUNDLE_CACHE = "/var/cache/modelops/bundles"


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def ready_pods(cluster: KubeCluster, selector: str, namespace: str = NAMESPACE) -> list[dict]:
    return [p for p in cluster.pods(namespace, selector) if ready(p) and not p["metadata"].get("deletionTimestamp")]


def changed_resources(stack: PulumiProject) -> dict[str, str]:
    """What ``pulumi preview`` would do: resource name -> operation, for every step that is not ``same``."""
    steps = json.loads(stack.run("preview", "--json", timeout=300).stdout).get("steps", [])
    return {s["urn"].rsplit("::", 1)[1]: s["op"] for s in steps if s["op"] != "same"}


def test_up_brings_the_scheduler_and_two_workers_from_the_registry_and_the_smoke_test_passes(
        kube_stack: PulumiProject, kube_cluster: KubeCluster) -> None:
    kube_stack.up()
    outputs = kube_stack.outputs()
    assert outputs["acr_login_server"] == kube_cluster.registry
    assert outputs["namespace"] == NAMESPACE
    assert outputs["scheduler_address"] == f"tcp://dask-scheduler.{NAMESPACE}.svc.cluster.local:8786"
    image = outputs["worker_image"]
    assert image.startswith(f"{kube_cluster.registry}/modelops/dask-worker@sha256:")
    assert outputs["smoke_test_bundle_ref"].startswith(f"{kube_cluster.registry}/")
    assert outputs["smoke_test_result"]
    workers, schedulers = ready_pods(kube_cluster, WORKERS), ready_pods(kube_cluster, SCHEDULER)
    assert len(workers) == 2 and len(schedulers) == 1
    digest = image.rsplit("@", 1)[1]
    for pod in workers + schedulers:
        (status,) = pod["status"]["containerStatuses"]
        # Pulled by the kubelet from the cluster's registry, the image the stack built, by digest.
        assert status["imageID"].endswith(digest), status
        assert pod["spec"]["containers"][0]["image"] == image


def test_a_no_op_up_changes_nothing_and_does_not_rerun_the_smoke_test(
        kube_stack: PulumiProject, kube_cluster: KubeCluster) -> None:
    before = kube_stack.outputs()
    pods_before = sorted(p["metadata"]["uid"] for p in kube_cluster.pods(NAMESPACE, "app.kubernetes.io/name=dask"))
    assert changed_resources(kube_stack) == {}
    kube_stack.up()
    assert kube_stack.outputs()["smoke_test_timings"] == before["smoke_test_timings"]
    assert sorted(p["metadata"]["uid"] for p in kube_cluster.pods(NAMESPACE, "app.kubernetes.io/name=dask")) \
        == pods_before


def test_a_worker_count_change_rolls_only_the_workers(kube_stack: PulumiProject, kube_cluster: KubeCluster) -> None:
    timings = kube_stack.outputs()["smoke_test_timings"]
    (scheduler,) = ready_pods(kube_cluster, SCHEDULER)
    kube_stack.config("modelops:workspace.workers", "3")
    assert changed_resources(kube_stack) == {"dask-workers": "update"}
    kube_stack.up()
    wait_for(lambda: len(ready_pods(kube_cluster, WORKERS)) == 3, 120, "three Ready workers")
    (after,) = ready_pods(kube_cluster, SCHEDULER)
    assert after["metadata"]["uid"] == scheduler["metadata"]["uid"]
    assert kube_stack.outputs()["smoke_test_timings"] == timings


def test_the_network_policies_are_accepted_and_select_the_scheduler_and_the_workers(
        kube_cluster: KubeCluster) -> None:
    policies = {p["metadata"]["name"]: p for p in kube_cluster.get("networkpolicy", "-n", NAMESPACE)["items"]}
    assert set(policies) == {"dask-scheduler", "dask-workers"}
    for name, role in (("dask-scheduler", SCHEDULER), ("dask-workers", WORKERS)):
        selector = ",".join(f"{k}={v}" for k, v in policies[name]["spec"]["podSelector"]["matchLabels"].items())
        selected = {p["metadata"]["name"] for p in kube_cluster.pods(NAMESPACE, selector)}
        assert selected and selected == {p["metadata"]["name"] for p in kube_cluster.pods(NAMESPACE, role)}
        (rule,) = policies[name]["spec"]["ingress"]
        peers = ",".join(f"{k}={v}" for k, v in rule["from"][0]["podSelector"]["matchLabels"].items())
        # Only the workspace's own pods are admitted: the scheduler and every worker.
        assert {p["metadata"]["name"] for p in kube_cluster.pods(NAMESPACE, peers)} == \
            {p["metadata"]["name"] for p in kube_cluster.pods(NAMESPACE, "app.kubernetes.io/name=dask")}


def test_a_killed_worker_is_replaced_and_a_batch_submitted_during_the_kill_completes(
        kube_stack: PulumiProject, kube_cluster: KubeCluster) -> None:
    victim = ready_pods(kube_cluster, WORKERS)[0]["metadata"]["name"]
    with kube_cluster.dask_client(NAMESPACE) as client:
        client.wait_for_workers(3, timeout=60)
        # 60 one-second tasks on three single-threaded workers: about 20 s of work.
        futures = client.map(time.sleep, [1.0] * 60, pure=False, retries=2)
        time.sleep(3)
        kube_cluster.kubectl("delete", "pod", "-n", NAMESPACE, victim, "--grace-period=0", "--force")
        results = client.gather(futures, errors="raise")
        assert results == [None] * 60
    wait_for(lambda: len(ready_pods(kube_cluster, WORKERS)) == 3, 120, "three Ready workers again")
    assert victim not in {p["metadata"]["name"] for p in kube_cluster.pods(NAMESPACE, WORKERS)}


def test_a_cache_filled_past_its_cap_evicts_bundles_and_the_worker_pod_is_not_evicted(
        kube_stack: PulumiProject, kube_cluster: KubeCluster, make_bundle) -> None:
    from modelops_infra.bundles import BundleSettings, push_bundle
    from modelops_infra.client import DaskSimulationService, SimTask

    kube_stack.config("modelops:workspace.workers", "1")
    kube_stack.up()
    wait_for(lambda: len(kube_cluster.pods(NAMESPACE, WORKERS)) == 1 == len(ready_pods(kube_cluster, WORKERS)),
                      120, "one worker")
    (worker,) = ready_pods(kube_cluster, WORKERS)
    pod = worker["metadata"]["name"]
    env = {e["name"]: e.get("value") for e in worker["spec"]["containers"][0]["env"]}
    cap = int(env["MODELOPS_BUNDLE_CACHE_MAX_BYTES"])
    volume = next(v for v in worker["spec"]["volumes"] if v["name"] == "bundle-cache")
    assert volume["emptyDir"]["sizeLimit"] == "1280Mi" and cap == 256 * 1024**2
    # Four bundles of a third of the cap each: the fourth cannot fit beside the first three.
    settings = BundleSettings(registry=kube_cluster.registry, insecure=True)
    refs = []
    for i in range(4):
        root = make_bundle(f"big{i}", {"sim.py": "def run(params, seed):\n    return {'seed': seed}\n",
                                        "data.bin": random.randbytes(cap // 3)})
        refs.append(push_bundle(root, kube_cluster.registry, settings=settings))
    with kube_cluster.dask_client(NAMESPACE) as client:
        svc = DaskSimulationService(client)
        for i, pushed in enumerate(refs):
            assert svc.submit(SimTask(str(pushed.reference), {}, seed=i)).result(timeout=180) == {"seed": i}
    used = int(kube_cluster.kubectl("exec", "-n", NAMESPACE, pod, "--", "du", "-sb", BUNDLE_CACHE).stdout.split()[0])
    assert used <= cap, f"the cache holds {used} bytes, over its cap of {cap}"
    listed = json.loads(kube_cluster.kubectl("exec", "-n", NAMESPACE, pod, "--", "mops", "cache", "verify",
                                             "--json").stdout)
    cached = {e["digest"] for e in listed["entries"]}
    assert refs[0].digest not in cached and refs[-1].digest in cached, (cached, [r.digest for r in refs])
    (after,) = kube_cluster.pods(NAMESPACE, WORKERS)
    assert after["metadata"]["uid"] == worker["metadata"]["uid"] and after["status"]["phase"] == "Running"
    assert after["status"].get("reason") != "Evicted"
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0


def test_a_package_index_reaches_the_workers_through_a_secret_and_their_environments_build_from_it(
        kube_stack: PulumiProject, kube_cluster: KubeCluster, make_bundle, tmp_path: Path) -> None:
    from harness.services import start_package_index, wheelhouse_dir
    from modelops_infra.bundles import BundleSettings, push_bundle
    from modelops_infra.client import DaskSimulationService, SimTask

    # The index, inside the cluster's network namespace where pods reach it; a token in its URL is secret.
    index = start_package_index(wheelhouse_dir(), tmp_path / "index", only=["six-1.17.0"],
                                netns=kube_cluster.node_namespace())
    try:
        url = index.url.replace("http://", "http://robot:idx-token-do-not-leak@")
        kube_stack.run("config", "set", "--secret", "modelops:packageIndex", url)
        assert changed_resources(kube_stack) == {"dask-package-index": "create", "dask-workers": "update"}
        kube_stack.up()
        wait_for(lambda: len(kube_cluster.pods(NAMESPACE, WORKERS)) == 1 == len(ready_pods(kube_cluster, WORKERS)),
                 120, "one rolled worker")
        (worker,) = ready_pods(kube_cluster, WORKERS)
        env = {e["name"]: e for e in worker["spec"]["containers"][0]["env"]}
        assert env["MODELOPS_BUNDLE_INDEX_URL"]["valueFrom"] == {
            "secretKeyRef": {"name": "dask-package-index", "key": "url"}}
        root = make_bundle("needs-six", {"sim.py": "import six\n\ndef run(params, seed):\n"
                                                    "    return {'six': six.__version__, 'at': six.__file__}\n"},
                           requirements="six==1.17.0\n")
        pushed = push_bundle(root, kube_cluster.registry, settings=BundleSettings(insecure=True))
        with kube_cluster.dask_client(NAMESPACE) as client:
            result = DaskSimulationService(client).submit(SimTask(str(pushed.reference), {}, seed=1)).result(
                timeout=180)
        assert result["six"] == "1.17.0" and result["at"].startswith(BUNDLE_CACHE), result
        assert index.requests_matching("/files/six-1.17.0") >= 1, "the worker built the environment from the index"
        state = kube_stack.run("stack", "export", timeout=120).stdout
        assert "idx-token-do-not-leak" not in state, "the index URL is in the stack's state in plain text"
        described = kube_cluster.kubectl("get", "deployment", "-n", NAMESPACE, "dask-workers", "-o", "yaml").stdout
        assert "idx-token-do-not-leak" not in described
    finally:
        index.stop()


def test_destroy_removes_every_object_and_the_namespace(kube_stack: PulumiProject, kube_cluster: KubeCluster) -> None:
    kube_stack.run("destroy", "--yes", "--skip-preview", timeout=300)
    gone = lambda: "NotFound" in kube_cluster.kubectl("get", "namespace", NAMESPACE, check=False).stderr  # noqa: E731
    wait_for(gone, 120, f"namespace {NAMESPACE} gone")
    left = kube_cluster.kubectl("get", "all,networkpolicy,pdb,serviceaccount,secret", "-n", NAMESPACE,
                                "-o", "name", check=False).stdout
    assert left.strip() == ""
    assert kube_stack.export()["deployment"].get("resources", []) == []


def test_an_image_that_does_not_exist_fails_up_in_seconds_naming_workers_and_the_registry_answer(
        tmp_path: Path, kube_cluster: KubeCluster, cluster_base_ref: str) -> None:
    """With the default rollout timeout (600 s): the check fails preview long before the smoke test's 120 s."""
    namespace = f"{NAMESPACE}-noimg"
    stack = kube_project(tmp_path / "project", kube_cluster, cluster_base_ref, namespace)
    missing = f"{kube_cluster.registry}/modelops/no-such-worker:missing"
    stack.config("modelops:workspace.image", missing)
    try:
        start = time.monotonic()
        proc = stack.run("up", "--yes", check=False, timeout=300)  # preview first, as users run it
        elapsed = time.monotonic() - start
        assert proc.returncode != 0
        text = proc.stdout + proc.stderr
        assert elapsed < 120, f"pulumi up took {elapsed:.0f} s, not within the smoke-test timeout"
        assert f"workers: image {missing} does not exist" in text, text[-3000:]
        assert "not found in registry" in text
        # Failed at preview: nothing was created, not even the namespace.
        assert "NotFound" in kube_cluster.kubectl("get", "namespace", namespace, check=False).stderr
    finally:
        stack.run("destroy", "--yes", "--skip-preview", check=False, timeout=300)


def test_an_image_the_kubelet_cannot_pull_fails_up_within_the_rollout_timeout_naming_workers_and_the_pull_error(
        tmp_path: Path, kube_cluster: KubeCluster, cluster_base_ref: str) -> None:
    """The registry holds the manifest (the check passes) but has lost a layer: only the kubelet can tell."""
    with RegistryClient(kube_cluster.registry, insecure=True) as client:
        image = push_tiny_image(client, "modelops/broken-worker", "v1",
                                files={"opt/marker": random.randbytes(64)})  # a layer of its own
    (layer,) = image.layers
    hexdigest = layer.digest.split(":", 1)[1]
    blob = kube_cluster.state / "registry/data/docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"
    blob.unlink()
    namespace = f"{NAMESPACE}-noimg"
    stack = kube_project(tmp_path / "project", kube_cluster, cluster_base_ref, namespace)
    broken = f"{kube_cluster.registry}/modelops/broken-worker:v1"
    stack.config("modelops:workspace.image", broken)
    stack.config("modelops:workspace.rolloutTimeout", "40")
    stack.config("modelops:smokeTest.timeout", "60")
    try:
        start = time.monotonic()
        proc = stack.up(check=False)
        elapsed = time.monotonic() - start
        assert proc.returncode != 0
        text = proc.stdout + proc.stderr
        # The 40 s rollout timeout plus the engine's and the program's start, not Pulumi's 10-minute default.
        assert elapsed < 120, f"pulumi up took {elapsed:.0f} s"
        assert "dask-workers" in text
        assert f"{broken}@{image.digest}" in text, "the pods ran the image pinned by digest"
        assert "ErrImagePull" in text or "ImagePullBackOff" in text, text[-3000:]
        assert "not found" in text
    finally:
        stack.run("destroy", "--yes", "--skip-preview", check=False, timeout=300)
