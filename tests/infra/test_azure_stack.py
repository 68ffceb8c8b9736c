"""The Azure stack, run whole under Pulumi's mocks with ``Pulumi.dev.yaml`` loaded.

Each test runs the program afresh (:func:`run_program` resets mocks and config).
The smoke test is switched off in these runs: it is a separate resource with
its own tests; :func:`test_smoke_test_hook_*` checks how the program wires it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pulumi
import pytest
import yaml

from modelops_infra.bundles import BundleSettings
from modelops_infra.errors import ConfigurationError
from modelops_infra.infra import program
from modelops_infra.infra.config import DEFAULT_BASE_IMAGE, load_stack_config
from modelops_infra.infra.naming import role_assignment_name
from tests.infra.stack_harness import (
    ACR_PULL_GUID,
    IDENTITY_CLIENT_ID,
    IDENTITY_PRINCIPAL_ID,
    KUBECONFIG,
    KUBELET_OBJECT_ID,
    OIDC_ISSUER,
    PINNED_IMAGE_DIGEST,
    REPO_ROOT,
    SUBSCRIPTION_ID,
    WORKER_IMAGE_DIGEST,
    WORKER_IMAGE_TYPE,
    AzureMocks,
    Run,
    containers,
    env_of,
    run_program,
    stack_config,
    walk,
)

# A failed StackReference lookup leaves Pulumi-internal coroutines unawaited; harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:coroutine 'Output:RuntimeWarning")

NO_SMOKE = {"modelops:smokeTest": {"enabled": False}}
COMPONENTS = {
    "modelops:infra:ContainerRegistry": "modelops",
    "modelops:infra:AksCluster": "modelops",
    "modelops:infra:DaskWorkspace": "dask",
}


@pytest.fixture(scope="module")
def dev() -> Run:
    """The dev stack as configured in Pulumi.dev.yaml (smoke test off)."""
    return run_program(stack_config("dev", NO_SMOKE))


def _worker(run: Run) -> dict[str, Any]:
    return containers(run.named("dask-workers"))[0]


def _scheduler(run: Run) -> dict[str, Any]:
    return containers(run.named("dask-scheduler"))[0]


def _dev_workspace(**changes: Any) -> dict[str, Any]:
    """``modelops:workspace`` of Pulumi.dev.yaml with ``changes`` (overrides replace whole objects)."""
    workspace = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())["config"]["modelops:workspace"]
    return {**workspace, **changes}


# --------------------------------------------------------------------------- registry


def test_registry_uses_the_configured_sku_and_disables_the_admin_user(dev: Run) -> None:
    acr = dev.one("azure-native:containerregistry:Registry")
    assert acr.inputs["sku"] == {"name": "Standard"}, "Pulumi.dev.yaml sets registry.sku Standard"
    assert acr.inputs["adminUserEnabled"] is False, "the ACR admin user must be disabled"


def test_registry_name_is_5_to_50_alphanumerics_from_project_stack_and_random_suffix(dev: Run) -> None:
    name = dev.one("azure-native:containerregistry:Registry").inputs["registryName"]
    assert re.fullmatch(r"[a-z0-9]{5,50}", name), f"invalid ACR name {name!r}"
    assert name.startswith("modelopsdev"), f"expected project+stack prefix, got {name!r}"
    suffix = dev.one("random:index/randomString:RandomString")
    assert name.endswith(suffix.state["result"]), "the suffix comes from the RandomString kept in state"


def test_registry_gets_a_new_resource_group_when_none_is_configured(dev: Run) -> None:
    group = dev.one("azure-native:resources:ResourceGroup")
    acr = dev.one("azure-native:containerregistry:Registry")
    assert acr.inputs["resourceGroupName"] == group.state["name"]


def test_an_existing_resource_group_is_used_instead_of_creating_one() -> None:
    run = run_program(stack_config("dev", {**NO_SMOKE, "modelops:registry": {"sku": "Premium", "resourceGroup": "shared-rg"}}))
    assert run.of_type("azure-native:resources:ResourceGroup") == []
    acr = run.one("azure-native:containerregistry:Registry")
    assert acr.inputs["resourceGroupName"] == "shared-rg"
    assert acr.inputs["sku"] == {"name": "Premium"}
    assert run.one("azure-native:containerservice:ManagedCluster").inputs["resourceGroupName"] == "shared-rg"


# --------------------------------------------------------------------------- role assignments


def test_both_acr_pull_assignments_target_the_registry_id_with_the_acr_pull_role(dev: Run) -> None:
    registry_id = dev.one("azure-native:containerregistry:Registry").resource_id
    assignments = dev.of_type("azure-native:authorization:RoleAssignment")
    by_principal = {a.inputs["principalId"]: a for a in assignments}
    assert set(by_principal) == {KUBELET_OBJECT_ID, IDENTITY_PRINCIPAL_ID}, (
        "expected AcrPull for the kubelet identity and the workspace identity"
    )
    role = f"/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/{ACR_PULL_GUID}"
    for principal, a in by_principal.items():
        assert a.inputs["scope"] == registry_id, f"AcrPull for {principal} must be scoped to the registry id"
        assert a.inputs["roleDefinitionId"] == role
        assert a.inputs["principalType"] == "ServicePrincipal"
        name = a.inputs["roleAssignmentName"]
        assert uuid.UUID(name), "role assignment names are GUIDs"
        assert name == role_assignment_name(registry_id, principal, role), "the name is deterministic"


def test_role_assignment_names_are_stable_across_runs(dev: Run) -> None:
    again = run_program(stack_config("dev", NO_SMOKE))
    names = lambda r: sorted(a.inputs["roleAssignmentName"] for a in r.of_type("azure-native:authorization:RoleAssignment"))  # noqa: E731
    assert names(again) == names(dev)


# --------------------------------------------------------------------------- AKS


def test_aks_has_a_system_pool_with_oidc_issuer_and_workload_identity(dev: Run) -> None:
    cluster = dev.one("azure-native:containerservice:ManagedCluster").inputs
    (system,) = cluster["agentPoolProfiles"]
    assert system["mode"] == "System"
    assert system["count"] == 1
    assert system["vmSize"] == "Standard_D2s_v5"
    assert cluster["oidcIssuerProfile"] == {"enabled": True}
    assert cluster["securityProfile"]["workloadIdentity"] == {"enabled": True}
    assert cluster["identity"] == {"type": "SystemAssigned"}
    assert cluster["networkProfile"]["networkPolicy"], "NetworkPolicies need a policy engine"


def test_aks_worker_pool_autoscales_within_config_bounds_with_label_and_taint(dev: Run) -> None:
    pool = dev.one("azure-native:containerservice:AgentPool").inputs
    cluster = dev.one("azure-native:containerservice:ManagedCluster")
    assert pool["resourceName"] == cluster.state["name"]
    assert pool["mode"] == "User"
    assert pool["enableAutoScaling"] is True
    assert (pool["minCount"], pool["maxCount"]) == (1, 4), "Pulumi.dev.yaml: workerPool minCount 1, maxCount 4"
    assert pool["vmSize"] == "Standard_D4s_v5"
    assert pool["nodeLabels"] == {"modelops.io/pool": "dask-workers"}
    assert pool["nodeTaints"] == ["modelops.io/dask-worker=true:NoSchedule"]


def test_kubeconfig_is_decoded_from_user_credentials_and_secret(dev: Run) -> None:
    tokens = [t for t, _ in dev.calls]
    assert "azure-native:containerservice:listManagedClusterUserCredentials" in tokens
    assert dev.outputs["kubeconfig"] == KUBECONFIG, "the base64 kubeconfig is decoded"
    assert "kubeconfig" in dev.secret_outputs, "kubeconfig must be a secret output"


def test_kubernetes_resources_all_use_the_cluster_provider(dev: Run) -> None:
    provider = dev.one("pulumi:providers:kubernetes")
    k8s = [r for r in dev.registrations if r.typ.startswith("kubernetes:")]
    assert k8s, "the workspace creates Kubernetes objects"
    for r in k8s:
        assert r.provider.startswith(provider.urn), f"{r.name} must use the AKS provider, got {r.provider!r}"


# --------------------------------------------------------------------------- workspace: identity


def test_workspace_identity_is_federated_with_the_annotated_service_account(dev: Run) -> None:
    fic = dev.one("azure-native:managedidentity:FederatedIdentityCredential").inputs
    identity = dev.one("azure-native:managedidentity:UserAssignedIdentity")
    sa = dev.one("kubernetes:core/v1:ServiceAccount").inputs
    assert fic["issuer"] == OIDC_ISSUER, "federated with the cluster's OIDC issuer"
    assert fic["resourceName"] == identity.state["name"]
    assert fic["audiences"] == ["api://AzureADTokenExchange"]
    assert fic["subject"] == f"system:serviceaccount:modelops:{sa['metadata']['name']}"
    assert sa["metadata"]["annotations"] == {"azure.workload.identity/client-id": IDENTITY_CLIENT_ID}
    for name in ("dask-scheduler", "dask-workers"):
        pod = dev.named(name).inputs["spec"]["template"]
        assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
        assert pod["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_no_password_or_secret_object_is_created(dev: Run) -> None:
    assert dev.of_type("kubernetes:core/v1:Secret") == []
    for r in dev.registrations:
        if r.typ.startswith("kubernetes:"):
            assert "mock-user-token-do-not-leak" not in json.dumps(r.inputs, default=str), r.name


# --------------------------------------------------------------------------- workspace: scheduler


def test_scheduler_runs_dask_scheduler_with_health_probes_and_resources(dev: Run) -> None:
    c = _scheduler(dev)
    assert c["command"][:2] == ["dask", "scheduler"]
    assert {p["containerPort"] for p in c["ports"]} == {8786, 8787}
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": 8787}, probe
    assert c["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }


def test_scheduler_is_not_evictable_and_has_a_pdb_and_cluster_ip_service(dev: Run) -> None:
    deployment = dev.named("dask-scheduler").inputs
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    pdb = dev.one("kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"]
    assert pdb["minAvailable"] == 1
    assert pdb["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    svc = dev.one("kubernetes:core/v1:Service").inputs
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert {p["port"] for p in svc["spec"]["ports"]} == {8786, 8787}
    # Pulumi does not await the Service (10 min, whatever rolloutTimeout says); it awaits the Deployments.
    assert svc["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    for name in ("dask-scheduler", "dask-workers"):
        assert "pulumi.com/skipAwait" not in (dev.named(name).inputs["metadata"].get("annotations") or {})


def test_nothing_is_exposed_outside_the_cluster(dev: Run) -> None:
    for r in dev.registrations:
        for value in walk(r.inputs):
            assert value not in ("LoadBalancer", "NodePort"), f"{r.name} exposes a service externally"
    assert dev.of_type("kubernetes:networking.k8s.io/v1:Ingress") == []
    assert not [r for r in dev.registrations if "publicIPAddress" in r.typ]


# --------------------------------------------------------------------------- workspace: workers


def test_worker_command_preloads_the_plugin_with_threads_and_memory_from_resources(dev: Run) -> None:
    c = _worker(dev)
    cmd = c["command"]
    assert cmd[:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    assert cmd[cmd.index("--preload") + 1] == "modelops_infra.worker"
    assert cmd[cmd.index("--nthreads") + 1] == "2", "Pulumi.dev.yaml: workspace.threads 2"
    assert cmd[cmd.index("--memory-limit") + 1] == str(5 * 2**30), "memory limit = container limit 5Gi"
    assert c["resources"]["limits"] == {"cpu": "1500m", "memory": "5Gi"}
    assert dev.named("dask-workers").inputs["spec"]["replicas"] == 2


def test_nthreads_follow_cpu_when_threads_are_not_set() -> None:
    cfg = stack_config("dev", {**NO_SMOKE, "modelops:workspace": {"cpu": "3", "memory": "6Gi"}})
    cmd = _worker(run_program(cfg))["command"]
    assert cmd[cmd.index("--nthreads") + 1] == "3"
    assert cmd[cmd.index("--memory-limit") + 1] == str(6 * 2**30)


def test_workers_tolerate_the_pool_taint_and_select_the_pool(dev: Run) -> None:
    pod = dev.named("dask-workers").inputs["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"modelops.io/pool": "dask-workers"}
    assert pod["tolerations"] == [
        {"key": "modelops.io/dask-worker", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]
    scheduler_pod = dev.named("dask-scheduler").inputs["spec"]["template"]["spec"]
    assert "tolerations" not in scheduler_pod, "only workers tolerate the worker pool taint"


def test_worker_env_registry_is_the_registry_login_server_output(dev: Run) -> None:
    login_server = dev.outputs["acr_login_server"]
    assert login_server == f"{dev.one('azure-native:containerregistry:Registry').inputs['registryName']}.azurecr.io"
    for c in (_worker(dev), _scheduler(dev)):
        env = env_of(c)
        assert env["MODELOPS_BUNDLE_REGISTRY"] == login_server
        assert env["MODELOPS_BUNDLE_REPOSITORY"] == "modelops/bundles"
        assert env["AZURE_CLIENT_ID"] == IDENTITY_CLIENT_ID
        assert c["image"] == f"{login_server}/modelops/dask-worker@{WORKER_IMAGE_DIGEST}"
    assert env_of(_worker(dev))["MODELOPS_BUNDLE_CACHE_DIR"] == "/var/cache/modelops/bundles"


def test_worker_env_registry_follows_a_changed_login_server() -> None:
    run = run_program(stack_config("dev", NO_SMOKE), AzureMocks(login_server="elsewhere42.azurecr.io"))
    assert run.outputs["acr_login_server"] == "elsewhere42.azurecr.io"
    assert env_of(_worker(run))["MODELOPS_BUNDLE_REGISTRY"] == "elsewhere42.azurecr.io"
    assert env_of(_scheduler(run))["MODELOPS_BUNDLE_REGISTRY"] == "elsewhere42.azurecr.io"
    assert _worker(run)["image"] == f"elsewhere42.azurecr.io/modelops/dask-worker@{WORKER_IMAGE_DIGEST}"


def test_bundle_cache_is_an_empty_dir_with_a_size_limit(dev: Run) -> None:
    pod = dev.named("dask-workers").inputs["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["bundle-cache"]["emptyDir"] == {"sizeLimit": "10Gi"}
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["bundle-cache"] == "/var/cache/modelops/bundles"
    assert mounts["tmp"] == "/tmp", "/tmp is writable while the root filesystem is read-only"


@pytest.mark.parametrize(
    ("cache_size", "cap"),
    [("10Gi", 8 * 2**30), ("2Gi", 2**30), ("1280Mi", 256 * 2**20)],
)
def test_workers_cap_the_bundle_cache_below_its_volume_by_one_bundle_of_headroom(cache_size: str, cap: int) -> None:
    run = run_program(stack_config("dev", {**NO_SMOKE, "modelops:workspace": _dev_workspace(cacheSize=cache_size)}))
    worker = _worker(run)
    env = env_of(worker)
    assert env["MODELOPS_BUNDLE_CACHE_MAX_BYTES"] == str(cap), (
        f"cacheSize {cache_size} should cap the cache at {cap} bytes (size less max(1Gi, 20%))"
    )
    settings = BundleSettings.from_env({k: str(v) for k, v in env.items()})
    assert settings.cache_max_bytes == cap, "the worker reads back the same number of bytes"
    assert str(settings.cache_dir) == "/var/cache/modelops/bundles"
    volumes = {v["name"]: v for v in run.named("dask-workers").inputs["spec"]["template"]["spec"]["volumes"]}
    assert volumes["bundle-cache"]["emptyDir"] == {"sizeLimit": cache_size}


def test_the_dev_stack_caps_its_10gi_cache_at_8gib(dev: Run) -> None:
    assert env_of(_worker(dev))["MODELOPS_BUNDLE_CACHE_MAX_BYTES"] == str(8 * 2**30)


def test_scheduler_pod_has_no_bundle_cache(dev: Run) -> None:
    pod = dev.named("dask-scheduler").inputs["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"], "the scheduler never fetches a bundle"
    (c,) = pod["containers"]
    assert [m["name"] for m in c["volumeMounts"]] == ["tmp"]
    env = env_of(c)
    assert "MODELOPS_BUNDLE_CACHE_DIR" not in env and "MODELOPS_BUNDLE_CACHE_MAX_BYTES" not in env


def test_every_pod_is_non_root_drops_all_capabilities_and_has_a_read_only_root(dev: Run) -> None:
    for name in ("dask-scheduler", "dask-workers"):
        pod = dev.named(name).inputs["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["readOnlyRootFilesystem"] is True


def test_image_can_be_overridden_in_config() -> None:
    cfg = stack_config("dev", {**NO_SMOKE, "modelops:workspace": {"image": "ghcr.io/acme/worker:7"}})
    run = run_program(cfg)
    assert _worker(run)["image"] == f"ghcr.io/acme/worker:7@{PINNED_IMAGE_DIGEST}", "checked and pinned by digest"
    assert _scheduler(run)["image"] == f"ghcr.io/acme/worker:7@{PINNED_IMAGE_DIGEST}"
    assert run.of_type(WORKER_IMAGE_TYPE) == [], "an image override builds nothing"


def test_deployments_run_the_image_the_stack_builds_by_digest_not_by_tag(dev: Run) -> None:
    image = dev.one(WORKER_IMAGE_TYPE)
    login_server = dev.outputs["acr_login_server"]
    assert image.parent == dev.one("modelops:infra:DaskWorkspace").urn
    assert image.inputs["target"] == f"{login_server}/modelops/dask-worker", "pushed to the stack's own registry"
    assert image.inputs["base_image"] == DEFAULT_BASE_IMAGE
    assert DEFAULT_BASE_IMAGE.startswith("docker.io/library/python:3.11-slim-bookworm@sha256:"), "pinned by digest"
    assert image.inputs["extra_packages"] == ["bokeh>=3.1"]
    assert image.inputs["python_version"] == "%d.%d" % sys.version_info[:2]
    assert image.inputs["install_hash"].startswith("sha256:"), "the install hash is computed by the program"
    assert image.inputs["tag"] == "0.1.0", "imageTag still names the build, for people"
    for c in (_worker(dev), _scheduler(dev)):
        assert c["image"] == f"{login_server}/modelops/dask-worker@{WORKER_IMAGE_DIGEST}"
    deployments = [dev.named("dask-workers"), dev.named("dask-scheduler")]
    assert all(image.urn in d.dependencies for d in deployments), "the pods wait for the image"


def test_base_image_and_extra_packages_come_from_config() -> None:
    cfg = stack_config("dev", {**NO_SMOKE, "modelops:workspace": {
        "baseImage": "mcr.microsoft.com/azurelinux/base/python:3.11", "extraPackages": []}})
    image = run_program(cfg).one(WORKER_IMAGE_TYPE)
    assert image.inputs["base_image"] == "mcr.microsoft.com/azurelinux/base/python:3.11"
    assert image.inputs["extra_packages"] == []


def test_hpa_is_created_only_when_autoscale_is_enabled(dev: Run) -> None:
    assert dev.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler") == []
    cfg = stack_config(
        "dev",
        {**NO_SMOKE, "modelops:workspace": {"autoscale": {"enabled": True, "minReplicas": 2, "maxReplicas": 8}}},
    )
    run = run_program(cfg)
    hpa = run.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler").inputs["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "dask-workers"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 8)
    assert "replicas" not in run.named("dask-workers").inputs["spec"], "the HPA owns the replica count"


def test_network_policies_admit_only_the_workspace_pods(dev: Run) -> None:
    policies = {r.name: r.inputs["spec"] for r in dev.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert set(policies) == {"dask-scheduler-netpol", "dask-workers-netpol"}
    workspace_pods = {"app.kubernetes.io/name": "dask", "app.kubernetes.io/instance": "dask"}
    sched = policies["dask-scheduler-netpol"]
    assert sched["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "scheduler"
    (rule,) = sched["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": workspace_pods}}]
    assert {p["port"] for p in rule["ports"]} == {8786, 8787}
    workers = policies["dask-workers-netpol"]
    assert workers["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    assert workers["ingress"] == [{"from": [{"podSelector": {"matchLabels": workspace_pods}}]}]


# --------------------------------------------------------------------------- outputs and structure


def test_stack_outputs_are_exported_and_kubeconfig_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    exported: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", lambda key, value: exported.__setitem__(key, value))

    def entry() -> dict[str, Any]:
        program.main()
        return exported

    run = run_program(stack_config("dev", NO_SMOKE), entry=entry)
    expected = {
        "acr_login_server", "registry_name", "cluster_name", "kubeconfig",
        "namespace", "scheduler_address", "dashboard_url",
    }
    assert expected <= set(run.outputs), f"missing outputs: {expected - set(run.outputs)}"
    assert run.secret_outputs == {"kubeconfig"}, "only the kubeconfig is secret; it must be"
    assert run.outputs["acr_login_server"].endswith(".azurecr.io")
    assert run.outputs["registry_name"] == run.outputs["acr_login_server"].split(".")[0]
    assert run.outputs["namespace"] == "modelops"
    assert run.outputs["scheduler_address"] == "tcp://dask-scheduler.modelops.svc.cluster.local:8786"
    assert run.outputs["dashboard_url"] == "http://dask-scheduler.modelops.svc.cluster.local:8787"
    assert run.outputs["worker_image"].endswith(f"/modelops/dask-worker@{WORKER_IMAGE_DIGEST}")


def test_every_child_has_its_component_as_parent(dev: Run) -> None:
    components = {r.urn: r for r in dev.registrations if r.typ in COMPONENTS}
    assert sorted(r.typ for r in components.values()) == sorted(COMPONENTS)
    for r in components.values():
        assert r.name == COMPONENTS[r.typ]
        assert r.parent.endswith("pulumi:pulumi:Stack::modelops-dev"), f"{r.typ} hangs off the stack"
    for r in dev.registrations:
        if r.urn in components:
            continue
        parent = components.get(r.parent)
        assert parent is not None, f"{r.typ} {r.name} is not parented to a component (parent {r.parent!r})"
        assert r.name.startswith(f"{parent.name}-"), f"{r.name} is not named after its component {parent.name}"
    by_parent = {c.typ: {r.typ for r in dev.registrations if r.parent == urn} for urn, c in components.items()}
    assert "azure-native:containerregistry:Registry" in by_parent["modelops:infra:ContainerRegistry"]
    assert "azure-native:containerservice:ManagedCluster" in by_parent["modelops:infra:AksCluster"]
    assert "kubernetes:apps/v1:Deployment" in by_parent["modelops:infra:DaskWorkspace"]


def test_stack_reference_variant_reads_acr_login_server_from_the_infra_stack() -> None:
    infra_outputs = {
        "acr_login_server": "sharedacr77.azurecr.io",
        "registry_id": f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/shared/providers/Microsoft.ContainerRegistry/registries/sharedacr77",
        "registry_name": "sharedacr77",
        "resource_group_name": "shared",
    }
    cfg = stack_config("dev", {**NO_SMOKE, "modelops:infraStack": "acme/modelops/infra"})
    run = run_program(cfg, AzureMocks(stack_outputs=infra_outputs))
    ref = run.one("pulumi:pulumi:StackReference")
    assert ref.name == "acme/modelops/infra"
    assert run.of_type("azure-native:containerregistry:Registry") == [], "no second registry is created"
    assert env_of(_worker(run))["MODELOPS_BUNDLE_REGISTRY"] == "sharedacr77.azurecr.io"
    assert _worker(run)["image"] == f"sharedacr77.azurecr.io/modelops/dask-worker@{WORKER_IMAGE_DIGEST}"
    assert run.outputs["acr_login_server"] == "sharedacr77.azurecr.io"
    for a in run.of_type("azure-native:authorization:RoleAssignment"):
        assert a.inputs["scope"] == infra_outputs["registry_id"]


def test_stack_reference_without_acr_login_server_fails() -> None:
    cfg = stack_config("dev", {**NO_SMOKE, "modelops:infraStack": "acme/modelops/partial"})
    partial = {"registry_id": "/subscriptions/x/rg/acr", "registry_name": "acr", "resource_group_name": "shared"}
    with pytest.raises(KeyError, match="acr_login_server"):
        run_program(cfg, AzureMocks(stack_outputs=partial))


def test_two_workspaces_in_one_stack_do_not_collide() -> None:
    from modelops_infra.infra.azure import DaskWorkspace, DaskWorkspaceArgs

    def entry() -> dict[str, Any]:
        import pulumi_kubernetes as k8s

        provider = k8s.Provider("k8s", kubeconfig="{}")
        common = dict(provider=provider, login_server="x.azurecr.io", resource_group_name="rg", oidc_issuer_url=OIDC_ISSUER)
        a = DaskWorkspace("alpha", DaskWorkspaceArgs(namespace="alpha", **common))
        b = DaskWorkspace("beta", DaskWorkspaceArgs(namespace="beta", **common))
        return {"a": a.scheduler_address, "b": b.scheduler_address}

    run = run_program(stack_config("dev", NO_SMOKE), entry=entry)
    urns = [r.urn for r in run.registrations]
    assert len(urns) == len(set(urns))
    physical = [(r.typ, r.inputs["metadata"].get("namespace"), r.inputs["metadata"]["name"]) for r in run.registrations
                if r.typ.startswith("kubernetes:") and "metadata" in r.inputs]
    assert len(physical) == len(set(physical)), "Kubernetes object names collide"
    assert run.outputs == {
        "a": "tcp://alpha-scheduler.alpha.svc.cluster.local:8786",
        "b": "tcp://beta-scheduler.beta.svc.cluster.local:8786",
    }
    assert run.of_type("azure-native:authorization:RoleAssignment") == [], "no registry id, no grant"


def test_workspace_component_refuses_a_cache_too_small_for_a_cap_before_creating_anything() -> None:
    from modelops_infra.infra.azure import DaskWorkspace, DaskWorkspaceArgs

    def entry() -> dict[str, Any]:
        import pulumi_kubernetes as k8s

        provider = k8s.Provider("k8s", kubeconfig="{}")
        DaskWorkspace("tiny", DaskWorkspaceArgs(
            provider=provider, login_server="x.azurecr.io", resource_group_name="rg", oidc_issuer_url=OIDC_ISSUER,
            cache_size="1Gi",
        ))
        return {}

    with pytest.raises(ConfigurationError, match=r"^DaskWorkspace 'tiny': cache_size: '1Gi' is too small"):
        run_program(stack_config("dev", NO_SMOKE), entry=entry)


# --------------------------------------------------------------------------- configuration errors


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"modelops:registry": {"sku": "Gold"}}, "modelops:registry.sku: unknown SKU 'Gold'"),
        (
            {"modelops:aks": {"workerPool": {"minCount": 3, "maxCount": 2}}},
            "modelops:aks.workerPool.minCount (3) > modelops:aks.workerPool.maxCount (2)",
        ),
        ({"modelops:workspace": {"workers": -1}}, "modelops:workspace.workers: must be >= 0, got -1"),
        ({"modelops:workspace": {"memory": "4GB"}}, "modelops:workspace.memory: malformed memory quantity '4GB'"),
        ({"modelops:workspace": {"memory": "lots"}}, "modelops:workspace.memory: malformed memory quantity 'lots'"),
        ({"modelops:workspace": {"scheduler": {"memory": "2 Gi"}}}, "modelops:workspace.scheduler.memory"),
        (
            {"modelops:workspace": {"cacheSize": "500Mi"}},
            "modelops:workspace.cacheSize: '500Mi' is too small for the bundle cache",
        ),
        ({"modelops:aks": {"workerPool": {"maxCnt": 2}}}, "unknown configuration key modelops:aks.workerPool.maxCnt"),
        ({"modelops:cloud": "gcp"}, "modelops:cloud: unknown cloud 'gcp'"),
        ({"modelops:workspace": {"baseImage": "python:3.11"}}, "modelops:workspace.baseImage: 'python:3.11' names no"),
        ({"modelops:workspace": {"baseImage": "docker.io/Python:3.11"}}, "modelops:workspace.baseImage: malformed"),
        ({"modelops:workspace": {"image": "worker:7"}}, "modelops:workspace.image: 'worker:7' names no registry"),
        ({"modelops:workspace": {"image": "r.example/Worker:7"}}, "modelops:workspace.image: malformed"),
        ({"modelops:workspace": {"extraPackages": "bokeh"}}, "modelops:workspace.extraPackages: expected a list"),
    ],
)
def test_invalid_config_fails_before_any_resource_with_the_key_named(override: dict[str, Any], message: str) -> None:
    config = stack_config("dev", {**NO_SMOKE, **override})
    with pytest.raises(ConfigurationError) as info:
        run_program(config)
    assert message in str(info.value), f"expected {message!r} in {str(info.value)!r}"
    # Through main(), Pulumi's RunError carries the same one-line message (printed without a traceback).
    with pytest.raises(pulumi.RunError) as run_error:
        run_program(config, entry=program.main)
    assert message in str(run_error.value)
    assert isinstance(run_error.value.__cause__, ConfigurationError)


def test_invalid_config_registers_nothing() -> None:
    from tests.infra.stack_harness import RecordingMonitor

    mocks = AzureMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="modelops", stack="dev", preview=True, monitor=monitor)
    pulumi.runtime.set_all_config(stack_config("dev", {"modelops:registry": {"sku": "Gold"}}))
    with pytest.raises(ConfigurationError):
        load_stack_config()
    assert monitor.registrations == []


def test_config_that_is_not_an_object_names_the_key() -> None:
    config = stack_config("dev", NO_SMOKE)
    config["modelops:aks"] = "{not json"
    pulumi.runtime.set_all_config(config)
    with pytest.raises(ConfigurationError, match=r"modelops:aks: expected a structured object"):
        load_stack_config()


# --------------------------------------------------------------------------- hooks


def test_smoke_test_hook_creates_the_test_after_the_workspace() -> None:
    cfg = stack_config("dev", {"modelops:smokeTest": {"timeout": 30, "triggers": ["a"]}})
    run = run_program(cfg)
    smoke = run.one("pulumi-python:dynamic/modelops:BundleSmokeTest")
    inputs = smoke.inputs
    assert inputs["registry"] == run.outputs["acr_login_server"], "the smoke test pushes to the registry output"
    assert inputs["namespace"] == "modelops"
    assert inputs["scheduler_service"] == "dask-scheduler"
    assert inputs["timeout"] == 30
    assert inputs["triggers"] == ["a"]
    assert inputs["bundle_digest"].startswith("sha256:"), "the digest is computed in the program"
    assert pulumi.runtime.rpc._special_sig_key in inputs["kubeconfig"], "the kubeconfig input stays secret"
    workspace_children = {
        r.urn for r in run.registrations if r.parent == run.one("modelops:infra:DaskWorkspace").urn
    }
    assert workspace_children & set(smoke.dependencies), "the smoke test must wait for the workspace"
    assert "smoke_test_bundle_ref" in run.outputs and "smoke_test_result" in run.outputs


def test_smoke_test_hook_does_nothing_when_disabled(dev: Run) -> None:
    assert "smoke_test_bundle_ref" not in dev.outputs


def test_local_cloud_dispatches_to_the_local_stack_without_cloud_sdks(tmp_path: Any) -> None:
    # In a fresh interpreter: this process has already imported the Azure SDK.
    script = textwrap.dedent(
        """
        import json, sys, types
        calls = []
        fake = types.ModuleType("modelops_infra.infra.local.stack")
        fake.deploy_local = lambda cfg: calls.append(cfg) or {"acr_login_server": "127.0.0.1:%d" % cfg.local.registry_port}
        sys.modules["modelops_infra.infra.local.stack"] = fake
        from modelops_infra.infra import program
        from modelops_infra.infra.config import parse_stack_config
        out = program.deploy(parse_stack_config({"cloud": "local", "local": {"registryPort": 5999}}))
        heavy = sorted(m for m in ("pulumi_azure_native", "pulumi_kubernetes") if m in sys.modules)
        print(json.dumps({"out": out, "calls": len(calls), "heavy": heavy}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"out": {"acr_login_server": "127.0.0.1:5999"}, "calls": 1, "heavy": []}


def test_a_malformed_acr_login_server_from_the_infra_stack_fails_the_deploy_naming_it() -> None:
    infra_outputs = {
        "acr_login_server": "me@sharedacr77.azurecr.io",
        "registry_id": f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/shared/providers/Microsoft.ContainerRegistry/registries/sharedacr77",
        "registry_name": "sharedacr77",
        "resource_group_name": "shared",
    }
    cfg = stack_config("dev", {**NO_SMOKE, "modelops:infraStack": "acme/modelops/infra"})
    from modelops_infra.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        run_program(cfg, AzureMocks(stack_outputs=infra_outputs))
    text = str(info.value)
    assert "acme/modelops/infra" in text and "userinfo" in text, (
        f"the deploy should fail naming the stack output and the reason; got {text}")
