"""``…Args.from_config``: each component's Args take a config section whole, and default to its declared defaults."""

from __future__ import annotations

from typing import Any

from modelops_infra.infra.config import AksConfig, LocalConfig, RegistryConfig, WorkspaceConfig, parse_stack_config

PROVIDER: Any = object()  # the Args only carry it

WORKSPACE = parse_stack_config({"workspace": {
    "namespace": "sims", "workers": 5, "threads": 3, "cpu": "3", "memory": "6Gi", "image": "r.example/w:1",
    "baseImage": "r.example/python:3.11", "extraPackages": ["numpy"], "imageTag": "v9",
    "bundleRepository": "team/bundles", "cacheSize": "4Gi", "scheduler": {"cpu": "250m", "memory": "1Gi"},
    "autoscale": {"enabled": True, "minReplicas": 2, "maxReplicas": 7, "targetCpuUtilization": 55},
}}).workspace


def test_workspace_args_take_every_workspace_key() -> None:
    from modelops_infra.infra.kubernetes import DaskWorkspaceArgs

    args = DaskWorkspaceArgs.from_config(WORKSPACE, provider=PROVIDER, login_server="r.example")
    assert (args.namespace, args.workers, args.threads, args.cpu, args.memory) == ("sims", 5, 3, "3", "6Gi")
    assert (args.scheduler_cpu, args.scheduler_memory) == ("250m", "1Gi")
    assert (args.image, args.base_image, args.extra_packages, args.image_tag) == (
        "r.example/w:1", "r.example/python:3.11", ("numpy",), "v9")
    assert (args.bundle_repository, args.cache_size, args.autoscale) == ("team/bundles", "4Gi", WORKSPACE.autoscale)
    assert args.provider is PROVIDER and args.login_server == "r.example"


def test_an_explicit_argument_overrides_the_config() -> None:
    from modelops_infra.infra.kubernetes import DaskWorkspaceArgs

    args = DaskWorkspaceArgs.from_config(WORKSPACE, provider=PROVIDER, login_server="r", image="built@sha256:x")
    assert args.image == "built@sha256:x"


def test_the_aks_workspace_args_are_built_the_same_way_with_their_azure_fields() -> None:
    from modelops_infra.infra.azure import DaskWorkspaceArgs

    args = DaskWorkspaceArgs.from_config(WORKSPACE, provider=PROVIDER, login_server="r", resource_group_name="rg",
                                         oidc_issuer_url="https://issuer", registry_id="/acr")
    assert isinstance(args, DaskWorkspaceArgs)
    assert (args.namespace, args.resource_group_name, args.registry_id) == ("sims", "rg", "/acr")


def test_workspace_args_default_to_the_declared_workspace_defaults() -> None:
    from modelops_infra.infra.kubernetes import DaskWorkspaceArgs

    by_hand = DaskWorkspaceArgs(provider=PROVIDER, login_server="r")
    from_config = DaskWorkspaceArgs.from_config(WorkspaceConfig(), provider=PROVIDER, login_server="r")
    assert from_config == by_hand
    assert by_hand.autoscale is not None and not by_hand.autoscale.enabled, "no HPA unless asked for"


def test_aks_and_registry_args_take_their_sections_and_default_to_them() -> None:
    from modelops_infra.infra.azure import AksClusterArgs, ContainerRegistryArgs

    aks = parse_stack_config({"aks": {"kubernetesVersion": "1.30", "systemPool": {"vmSize": "S", "count": 2},
                                      "workerPool": {"vmSize": "W", "minCount": 0, "maxCount": 9,
                                                     "osDiskSizeGb": 64}}}).aks
    args = AksClusterArgs.from_config(aks, resource_group_name="rg", registry_id="/acr", dns_prefix="p")
    assert (args.kubernetes_version, args.system_vm_size, args.system_count) == ("1.30", "S", 2)
    assert (args.worker_vm_size, args.worker_min_count, args.worker_max_count, args.worker_os_disk_size_gb) == (
        "W", 0, 9, 64)
    common = {"resource_group_name": "rg", "registry_id": "/acr", "dns_prefix": "p"}
    assert AksClusterArgs.from_config(AksConfig(), **common) == AksClusterArgs(**common)
    registry = ContainerRegistryArgs.from_config(RegistryConfig(sku="Premium", resource_group="shared"), tags={})
    assert (registry.sku, registry.resource_group_name, registry.tags) == ("Premium", "shared", {})
    assert ContainerRegistryArgs.from_config(RegistryConfig()) == ContainerRegistryArgs()


def test_local_workspace_args_take_the_local_section() -> None:
    from modelops_infra.infra.local.workspace import LocalDaskWorkspaceArgs

    local = LocalConfig(scheduler_port=9786, dashboard_port=9787, workers=3)
    args = LocalDaskWorkspaceArgs.from_config(local, login_server="127.0.0.1:5050", data_dir="d", log_dir="l")
    assert (args.scheduler_port, args.dashboard_port, args.workers) == (9786, 9787, 3)
    assert args.repository == WorkspaceConfig().bundle_repository
