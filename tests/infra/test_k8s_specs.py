"""Pure Kubernetes specs of the Dask workspace, checked without Pulumi."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops_infra.bundles import BundleSettings
from modelops_infra.bundles._auth import resolve_basic_credentials
from modelops_infra.infra.azure.workload_identity import WORKLOAD_IDENTITY_LABEL, aks_pod_access, federated_subject
from modelops_infra.infra.kubernetes import specs

NAMES = specs.workspace_names("dask", "modelops")
AKS = aks_pod_access("client-id")


def _env(env: list[dict[str, object]]) -> dict[str, object]:
    return {e["name"]: e["value"] for e in env}  # type: ignore[misc]


def test_names_derive_from_the_workspace_name() -> None:
    assert NAMES.scheduler == NAMES.scheduler_service == "dask-scheduler"
    assert NAMES.workers == "dask-workers"
    assert NAMES.service_account == "dask-sa"
    assert NAMES.registry_secret == "dask-registry"
    assert federated_subject(NAMES) == "system:serviceaccount:modelops:dask-sa"


def test_worker_command_preloads_modelops_and_sizes_from_resources() -> None:
    cmd = specs.worker_command("dask-scheduler", nthreads=4, memory_limit_bytes=8 * 2**30)
    assert cmd[:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    assert cmd[cmd.index("--preload") + 1] == "modelops_infra.worker"
    assert cmd[cmd.index("--nthreads") + 1] == "4"
    assert cmd[cmd.index("--memory-limit") + 1] == str(8 * 2**30)


@pytest.mark.parametrize(("threads", "memory"), [(0, 1), (1, 0)])
def test_worker_command_refuses_empty_sizes(threads: int, memory: int) -> None:
    with pytest.raises(ValueError):
        specs.worker_command("s", nthreads=threads, memory_limit_bytes=memory)


def test_bundle_env_passes_outputs_through_untouched() -> None:
    sentinel_registry, sentinel_client = object(), object()
    env = _env(specs.bundle_env(login_server=sentinel_registry, repository="modelops/bundles",
                                identity_env=aks_pod_access(sentinel_client).env))
    assert env["MODELOPS_BUNDLE_REGISTRY"] is sentinel_registry, "the login server output must not be stringified"
    assert env["AZURE_CLIENT_ID"] is sentinel_client
    assert env["MODELOPS_BUNDLE_REPOSITORY"] == "modelops/bundles"
    assert "MODELOPS_BUNDLE_CACHE_DIR" not in env, "the cache is the workers' own (bundle_cache_env)"


def test_bundle_cache_env_writes_the_cap_as_bytes_the_worker_settings_read_back() -> None:
    env = _env(specs.bundle_cache_env(8 * 2**30))
    assert env["MODELOPS_BUNDLE_CACHE_DIR"] == specs.BUNDLE_CACHE_DIR
    assert env["MODELOPS_BUNDLE_CACHE_MAX_BYTES"] == str(8 * 2**30)
    settings = BundleSettings.from_env({k: str(v) for k, v in env.items()})
    assert settings.cache_max_bytes == 8 * 2**30
    assert str(settings.cache_dir) == specs.BUNDLE_CACHE_DIR


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "8Gi"])
def test_bundle_cache_env_refuses_anything_but_a_positive_byte_count(bad: object) -> None:
    with pytest.raises(ValueError, match="cache_max_bytes must be a positive number of bytes"):
        specs.bundle_cache_env(bad)  # type: ignore[arg-type]


def test_container_security_context_is_restricted() -> None:
    sc = specs.container_security_context()
    assert sc["run_as_non_root"] is True
    assert sc["allow_privilege_escalation"] is False
    assert sc["read_only_root_filesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccomp_profile"] == {"type": "RuntimeDefault"}


def test_scheduler_spec_probes_health_and_is_safe_from_eviction() -> None:
    spec = specs.scheduler_deployment_spec(NAMES, image="img", env=[], cpu="1", memory="2Gi", access=AKS)
    pod = spec["template"]
    assert pod["metadata"]["annotations"] == {specs.SAFE_TO_EVICT_ANNOTATION: "false"}
    assert pod["metadata"]["labels"][WORKLOAD_IDENTITY_LABEL] == "true"
    (c,) = pod["spec"]["containers"]
    assert c["readiness_probe"]["http_get"] == {"path": "/health", "port": 8787}
    assert c["liveness_probe"]["http_get"] == {"path": "/health", "port": 8787}
    assert c["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    assert spec["strategy"] == {"type": "Recreate"}, "never two schedulers at once"
    assert set(spec["selector"]["match_labels"].items()) <= set(pod["metadata"]["labels"].items())


def test_scheduler_has_a_tmp_volume_and_no_bundle_cache() -> None:
    pod = specs.scheduler_deployment_spec(NAMES, image="img", env=[], cpu="1", memory="2Gi")["template"]["spec"]
    assert pod["volumes"] == [{"name": "tmp", "empty_dir": {}}], "the scheduler never fetches a bundle"
    (c,) = pod["containers"]
    assert c["volume_mounts"] == [{"name": "tmp", "mount_path": "/tmp"}]
    assert "--preload" not in c["command"], "a preload could fetch bundles; then the scheduler would need the cache"


def test_worker_spec_without_replicas_leaves_scaling_to_the_hpa() -> None:
    kwargs = dict(
        image="img", env=[], cpu="2", memory="4Gi", nthreads=2, memory_limit_bytes=4 * 2**30,
        cache_size="2Gi", cache_max_bytes=2**30,
    )
    assert specs.worker_deployment_spec(NAMES, replicas=3, **kwargs)["replicas"] == 3  # type: ignore[arg-type]
    assert "replicas" not in specs.worker_deployment_spec(NAMES, replicas=None, **kwargs)  # type: ignore[arg-type]


def test_worker_spec_on_aks_lands_on_the_tainted_pool_only() -> None:
    spec = specs.worker_deployment_spec(
        NAMES, image="i", env=[], cpu="2", memory="4Gi", nthreads=2, memory_limit_bytes=1, cache_size="5Gi",
        cache_max_bytes=4 * 2**30, replicas=1, access=AKS,
    )
    pod = spec["template"]["spec"]
    key, value = specs.WORKER_POOL_LABEL
    assert pod["node_selector"] == {key: value}
    taint_key, taint_value, effect = specs.WORKER_POOL_TAINT
    assert pod["tolerations"] == [{"key": taint_key, "operator": "Equal", "value": taint_value, "effect": effect}]
    assert specs.worker_pool_taint() == f"{taint_key}={taint_value}:{effect}"
    assert {"name": "bundle-cache", "empty_dir": {"size_limit": "5Gi"}} in pod["volumes"]


def test_worker_gets_the_cache_volume_and_its_cap_after_the_shared_env() -> None:
    shared = [{"name": "MODELOPS_BUNDLE_REGISTRY", "value": "r.azurecr.io"}]
    spec = specs.worker_deployment_spec(
        NAMES, image="i", env=shared, cpu="2", memory="4Gi", nthreads=2, memory_limit_bytes=1, cache_size="10Gi",
        cache_max_bytes=8 * 2**30, replicas=1,
    )
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    assert c["env"][0] == shared[0], "the shared bundle env comes first, untouched"
    env = _env(c["env"])
    assert env["MODELOPS_BUNDLE_CACHE_MAX_BYTES"] == str(8 * 2**30)
    assert env["MODELOPS_BUNDLE_CACHE_DIR"] == specs.BUNDLE_CACHE_DIR
    assert {"name": "bundle-cache", "mount_path": specs.BUNDLE_CACHE_DIR} in c["volume_mounts"]
    assert {"name": "bundle-cache", "empty_dir": {"size_limit": "10Gi"}} in pod["volumes"]


def test_service_is_cluster_ip_on_scheduler_and_dashboard_ports() -> None:
    svc = specs.scheduler_service_spec(NAMES)
    assert svc["type"] == "ClusterIP"
    assert {p["port"] for p in svc["ports"]} == {8786, 8787}


def test_network_policies_cover_scheduler_ports_and_workers() -> None:
    policies = specs.network_policy_specs(NAMES)
    assert set(policies) == {"scheduler", "workers"}
    sched = policies["scheduler"]
    assert sched["policy_types"] == ["Ingress"]
    assert {p["port"] for p in sched["ingress"][0]["ports"]} == {8786, 8787}
    peer = sched["ingress"][0]["from"][0]["pod_selector"]["match_labels"]
    assert peer == {"app.kubernetes.io/name": "dask", "app.kubernetes.io/instance": "dask"}
    assert policies["workers"]["ingress"] == [{"from": sched["ingress"][0]["from"]}]


def test_hpa_targets_the_worker_deployment() -> None:
    hpa = specs.worker_hpa_spec(NAMES, min_replicas=1, max_replicas=5, target_cpu_utilization=60)
    assert hpa["scale_target_ref"]["name"] == "dask-workers"
    assert hpa["metrics"][0]["resource"]["target"]["average_utilization"] == 60


# --------------------------------------------------------------------------- any cluster (no AKS access)

WORKER_KW = dict(
    image="i", env=[], cpu="2", memory="4Gi", nthreads=2, memory_limit_bytes=1, cache_size="5Gi",
    cache_max_bytes=4 * 2**30, replicas=1,
)


def test_without_access_workers_run_on_any_node_with_no_identity_or_credentials() -> None:
    pod = specs.worker_deployment_spec(NAMES, **WORKER_KW)["template"]  # type: ignore[arg-type]
    assert "node_selector" not in pod["spec"] and "tolerations" not in pod["spec"], "no pool to land on"
    assert "image_pull_secrets" not in pod["spec"]
    assert WORKLOAD_IDENTITY_LABEL not in pod["metadata"]["labels"]
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["tmp", "bundle-cache"]
    assert "DOCKER_CONFIG" not in _env(pod["spec"]["containers"][0]["env"])
    assert specs.service_account_metadata(NAMES, "ns") == {"name": "dask-sa", "namespace": "ns"}


def test_a_registry_secret_pulls_both_images_and_only_workers_mount_it() -> None:
    access = specs.PodAccess(registry_secret=NAMES.registry_secret)
    worker = specs.worker_deployment_spec(NAMES, access=access, **WORKER_KW)["template"]["spec"]  # type: ignore[arg-type]
    scheduler = specs.scheduler_deployment_spec(
        NAMES, image="i", env=[], cpu="1", memory="2Gi", access=access
    )["template"]["spec"]
    assert worker["image_pull_secrets"] == scheduler["image_pull_secrets"] == [{"name": "dask-registry"}]
    (c,) = worker["containers"]
    assert _env(c["env"])["DOCKER_CONFIG"] == specs.REGISTRY_AUTH_DIR
    assert {"name": "registry-auth", "mount_path": specs.REGISTRY_AUTH_DIR, "read_only": True} in c["volume_mounts"]
    (volume,) = [v for v in worker["volumes"] if v["name"] == "registry-auth"]
    assert volume["secret"] == {
        "secret_name": "dask-registry", "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
    }
    assert [v["name"] for v in scheduler["volumes"]] == ["tmp"], "the scheduler never fetches a bundle"


def test_docker_config_json_is_what_the_bundle_client_reads_back(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(specs.docker_config_json("registry.example:5000", "robot", "s3:cret"))
    creds = resolve_basic_credentials("registry.example:5000", {"DOCKER_CONFIG": str(tmp_path)})
    assert creds is not None and (creds.username, creds.password) == ("robot", "s3:cret")
    assert resolve_basic_credentials("other.example", {"DOCKER_CONFIG": str(tmp_path)}) is None, (
        "the credentials are for the login server only"
    )
