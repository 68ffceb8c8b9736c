"""The ``kubernetes`` stack (any cluster a kubeconfig names), run whole under Pulumi's mocks.

It deploys the same ``DaskWorkspace`` component as AKS, minus the Azure
identity; the kubeconfig and registry password are secret config and must
stay secret all the way: in resource inputs, never in outputs or errors.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from modelops_infra.errors import ConfigurationError
from modelops_infra.infra import program
from modelops_infra.infra.config import DEFAULT_BASE_IMAGE, SecretText, load_stack_config, parse_stack_config
from tests.infra.stack_harness import (
    PINNED_IMAGE_DIGEST,
    PINNED_IMAGE_TYPE,
    REPO_ROOT,
    UNREACHABLE_REGISTRY,
    WORKER_IMAGE_DIGEST,
    WORKER_IMAGE_TYPE,
    Run,
    containers,
    env_of,
    run_program,
    stack_config,
    walk,
)

SIG = pulumi.runtime.rpc._special_sig_key
LOGIN_SERVER = "registry.example.com:5000"
PASSWORD = "pa55-do-not-leak"
TOKEN = "kube-token-do-not-leak"
KUBECONFIG = f"""\
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {{server: "https://10.0.0.1:6443"}}
- name: other
  cluster: {{server: "https://10.0.0.2:6443"}}
users:
- name: admin
  user: {{token: {TOKEN}}}
contexts:
- name: lab
  context: {{cluster: lab, user: admin}}
- name: other
  context: {{cluster: other, user: admin}}
current-context: lab
"""
NO_SMOKE = {"modelops:smokeTest": {"enabled": False}}
SECRET_KEYS = ("modelops:kubeconfig", "modelops:registryPassword")


def kube_config(
    *, registry: dict[str, Any] | None = None, password: str | None = PASSWORD, **overrides: Any
) -> dict[str, str]:
    """A kubernetes stack's config: Pulumi.yaml's defaults, a private registry, smoke test off."""
    values: dict[str, Any] = {
        "modelops:cloud": "kubernetes",
        "modelops:local": None,
        "modelops:kubeconfig": KUBECONFIG,
        "modelops:kubernetes": {"registry": registry or {"loginServer": LOGIN_SERVER, "username": "robot"}},
        "modelops:registryPassword": password,
        "modelops:workspace": {"workers": 2, "cpu": "1", "memory": "2Gi", "cacheSize": "2Gi"},
        **NO_SMOKE,
    }
    values.update(overrides)
    return stack_config("local", values)


def run_kube(config: dict[str, str], **kwargs: Any) -> Run:
    """Run the program as a stack named ``kube`` whose two secrets were set with ``--secret``."""
    return run_program(config, stack="kube", secret_keys=SECRET_KEYS, **kwargs)


@pytest.fixture(scope="module")
def kube() -> Run:
    return run_kube(kube_config())


@pytest.fixture(scope="module")
def aks() -> Run:
    return run_program(stack_config("dev", NO_SMOKE))


def _secret_value(value: Any) -> Any:
    assert isinstance(value, dict) and SIG in value, f"expected a secret, got {value!r}"
    return value["value"]


def _pod(run: Run, name: str) -> dict[str, Any]:
    return dict(run.named(name).inputs["spec"]["template"])


# --------------------------------------------------------------------------- the same component


def test_the_same_workspace_component_and_objects_as_aks_plus_the_registry_secret(kube: Run, aks: Run) -> None:
    component = kube.one("modelops:infra:DaskWorkspace")
    assert component.name == "dask"
    kinds = sorted(r.typ for r in kube.registrations if r.typ.startswith("kubernetes:"))
    aks_kinds = sorted(r.typ for r in aks.registrations if r.typ.startswith("kubernetes:"))
    assert kinds == sorted([*aks_kinds, "kubernetes:core/v1:Secret"]), "the Kubernetes half is the same code"
    names = {r.name for r in kube.registrations if r.typ.startswith("kubernetes:")}
    assert names == {r.name for r in aks.registrations if r.typ.startswith("kubernetes:")} | {"dask-registry-secret"}
    for r in kube.registrations:
        if r.typ.startswith("kubernetes:"):
            assert r.parent == component.urn, f"{r.name} hangs off the workspace"
            assert "modelops-k8s" in r.provider, f"{r.name} must use the kubeconfig's provider"


def test_no_azure_resource_and_no_azure_identity_in_the_pods(kube: Run) -> None:
    assert [r.typ for r in kube.registrations if r.typ.startswith("azure-native:")] == []
    for name in ("dask-scheduler", "dask-workers"):
        pod = _pod(kube, name)
        assert "azure.workload.identity/use" not in pod["metadata"]["labels"]
        assert "AZURE_CLIENT_ID" not in env_of(pod["spec"]["containers"][0])
    assert "annotations" not in kube.named("dask-sa").inputs["metadata"]


def test_workers_run_on_any_node(kube: Run) -> None:
    pod = _pod(kube, "dask-workers")["spec"]
    assert "nodeSelector" not in pod and "tolerations" not in pod, "a generic cluster has no dedicated pool"


def test_the_provider_gets_the_kubeconfig_as_a_secret(kube: Run) -> None:
    provider = kube.one("pulumi:providers:kubernetes")
    assert provider.name == "modelops-k8s"
    assert _secret_value(provider.inputs["kubeconfig"]) == KUBECONFIG, "content with its current context is unchanged"


# --------------------------------------------------------------------------- registry credentials


def test_the_registry_secret_holds_the_credentials_for_the_login_server_only(kube: Run) -> None:
    secret = kube.named("dask-registry-secret").inputs
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"] == {"name": "dask-registry", "namespace": "modelops"}
    config = json.loads(_secret_value(secret["stringData"])[".dockerconfigjson"])
    assert list(config["auths"]) == [LOGIN_SERVER]
    entry = config["auths"][LOGIN_SERVER]
    assert (entry["username"], entry["password"]) == ("robot", PASSWORD)
    assert base64.b64decode(entry["auth"]).decode() == f"robot:{PASSWORD}"


def test_pods_pull_with_the_secret_and_workers_read_it_for_bundles(kube: Run) -> None:
    for name in ("dask-scheduler", "dask-workers"):
        assert _pod(kube, name)["spec"]["imagePullSecrets"] == [{"name": "dask-registry"}], name
    worker = containers(kube.named("dask-workers"))[0]
    env = env_of(worker)
    assert env["MODELOPS_BUNDLE_REGISTRY"] == LOGIN_SERVER
    assert env["DOCKER_CONFIG"] == "/var/run/secrets/modelops/registry"
    assert {"name": "registry-auth", "mountPath": "/var/run/secrets/modelops/registry", "readOnly": True} in (
        worker["volumeMounts"]
    )
    scheduler = containers(kube.named("dask-scheduler"))[0]
    assert "DOCKER_CONFIG" not in env_of(scheduler), "the scheduler never fetches a bundle"
    secret_dep = kube.named("dask-registry-secret").urn
    assert secret_dep in kube.named("dask-workers").dependencies, "workers wait for their credentials"


def test_an_open_registry_gets_no_secret_and_no_credentials_anywhere() -> None:
    run = run_kube(kube_config(registry={"loginServer": LOGIN_SERVER}, password=None))
    assert run.of_type("kubernetes:core/v1:Secret") == []
    for name in ("dask-scheduler", "dask-workers"):
        pod = _pod(run, name)["spec"]
        assert "imagePullSecrets" not in pod
        assert "DOCKER_CONFIG" not in env_of(pod["containers"][0])


# --------------------------------------------------------------------------- image and outputs


def test_the_worker_image_is_built_by_the_stack_and_run_by_digest_unless_workspace_image_is_set(kube: Run) -> None:
    built = f"{LOGIN_SERVER}/modelops/dask-worker@{WORKER_IMAGE_DIGEST}"
    for name in ("dask-scheduler", "dask-workers"):
        assert containers(kube.named(name))[0]["image"] == built, name
    image = kube.one(WORKER_IMAGE_TYPE)
    assert image.parent == kube.one("modelops:infra:DaskWorkspace").urn
    assert all(image.urn in kube.named(n).dependencies for n in ("dask-scheduler", "dask-workers")), (
        "the pods wait for the image")
    run = run_kube(
        kube_config(**{"modelops:workspace": {"image": "registry.example.com:5000/acme/worker:7", "cacheSize": "2Gi"}})
    )
    for name in ("dask-scheduler", "dask-workers"):
        assert containers(run.named(name))[0]["image"] == f"registry.example.com:5000/acme/worker:7@{PINNED_IMAGE_DIGEST}"
    assert run.of_type(WORKER_IMAGE_TYPE) == [], "an image override builds nothing"


def test_a_configured_image_is_checked_in_the_stack_registry_with_its_credentials_and_run_by_digest() -> None:
    run = run_kube(kube_config(**{"modelops:workspace": {"image": f"{LOGIN_SERVER}/acme/worker:7"}}))
    pinned = run.one(PINNED_IMAGE_TYPE)
    assert pinned.parent == run.one("modelops:infra:DaskWorkspace").urn
    assert pinned.inputs["image"] == f"{LOGIN_SERVER}/acme/worker:7"
    assert pinned.inputs["registry"] == LOGIN_SERVER, "the stack's registry: its credentials apply to it only"
    assert pinned.inputs["registry_username"] == "robot"
    assert _secret_value(pinned.inputs["registry_password"]) == PASSWORD, "the password is a secret input"
    assert all(pinned.urn in run.named(n).dependencies for n in ("dask-scheduler", "dask-workers")), (
        "the pods wait for the check")
    assert run.outputs["worker_image"] == f"{LOGIN_SERVER}/acme/worker:7@{PINNED_IMAGE_DIGEST}"


def test_an_image_the_deploying_machine_cannot_check_is_used_as_given_with_a_warning(
        monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: warnings.append(msg))
    image = f"{UNREACHABLE_REGISTRY}/acme/worker:7"
    run = run_kube(kube_config(**{"modelops:workspace": {"image": image}}))
    assert containers(run.named("dask-workers"))[0]["image"] == image, "the kubelet may still reach it"
    assert [w for w in warnings if "was not checked" in w] == [
        f"the workers' image was not checked, and is used as given: registry {UNREACHABLE_REGISTRY} is unreachable"]


def test_the_built_image_is_pushed_to_the_configured_registry_with_its_credentials_kept_secret(kube: Run) -> None:
    inputs = kube.one(WORKER_IMAGE_TYPE).inputs
    assert inputs["target"] == f"{LOGIN_SERVER}/modelops/dask-worker"
    assert inputs["base_image"] == DEFAULT_BASE_IMAGE
    assert DEFAULT_BASE_IMAGE.startswith("docker.io/library/python:3.11-slim-bookworm@sha256:"), "pinned by digest"
    assert inputs["registry_username"] == "robot"
    assert _secret_value(inputs["registry_password"]) == PASSWORD, "the push password is a secret input"
    assert inputs.get("insecure") is None


def test_the_built_image_of_an_open_insecure_registry_has_no_credentials_and_pushes_over_http() -> None:
    run = run_kube(kube_config(registry={"loginServer": "10.233.0.2:5000", "insecure": True}, password=None))
    inputs = run.one(WORKER_IMAGE_TYPE).inputs
    assert inputs["target"] == "10.233.0.2:5000/modelops/dask-worker"
    assert inputs.get("registry_username") is None and inputs.get("registry_password") is None
    assert inputs["insecure"] is True


def test_a_stack_built_image_reference_replaces_the_configured_one() -> None:
    def entry() -> Any:
        built = pulumi.Output.from_input("registry.example.com:5000/modelops/dask-worker@sha256:" + "a" * 64)
        return program._deploy_kubernetes(load_stack_config(), image=built)

    run = run_kube(kube_config(), entry=entry)
    assert containers(run.named("dask-workers"))[0]["image"].endswith("@sha256:" + "a" * 64)


def test_outputs_match_the_azure_stack_where_they_apply_and_hold_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    exported: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", lambda key, value: exported.__setitem__(key, value))

    def entry() -> dict[str, Any]:
        program.main()
        return exported

    run = run_kube(kube_config(), entry=entry)
    assert set(run.outputs) == {"acr_login_server", "namespace", "scheduler_address", "dashboard_url", "worker_image"}
    assert run.outputs["worker_image"] == f"{LOGIN_SERVER}/modelops/dask-worker@{WORKER_IMAGE_DIGEST}"
    assert run.outputs["acr_login_server"] == LOGIN_SERVER
    assert run.outputs["namespace"] == "modelops"
    assert run.outputs["scheduler_address"] == "tcp://dask-scheduler.modelops.svc.cluster.local:8786"
    assert run.outputs["dashboard_url"] == "http://dask-scheduler.modelops.svc.cluster.local:8787"
    assert run.secret_outputs == set()
    for value in walk(run.outputs):
        assert not (isinstance(value, str) and (TOKEN in value or PASSWORD in value)), "a secret reached an output"


def test_the_smoke_test_runs_through_the_port_forward_with_the_registry_credentials() -> None:
    run = run_kube(kube_config(**{"modelops:smokeTest": {"timeout": 30}}))
    smoke = run.one("pulumi-python:dynamic/modelops:BundleSmokeTest")
    inputs = smoke.inputs
    assert inputs["registry"] == LOGIN_SERVER
    assert inputs.get("scheduler_address") is None, "the scheduler is reached through the Kubernetes API"
    assert (inputs["namespace"], inputs["scheduler_service"]) == ("modelops", "dask-scheduler")
    assert _secret_value(inputs["kubeconfig"]) == KUBECONFIG
    assert inputs["registry_username"] == "robot"
    assert _secret_value(inputs["registry_password"]) == PASSWORD
    workspace_children = {r.urn for r in run.registrations if r.parent == run.one("modelops:infra:DaskWorkspace").urn}
    assert workspace_children & set(smoke.dependencies), "the smoke test must wait for the workspace"
    assert {"smoke_test_bundle_ref", "smoke_test_result"} <= set(run.outputs)


# --------------------------------------------------------------------------- the kubeconfig


def test_a_kubeconfig_path_is_read_and_its_relative_files_made_absolute(tmp_path: Path) -> None:
    document = yaml.safe_load(KUBECONFIG)
    document["clusters"][0]["cluster"]["certificate-authority"] = "ca.crt"
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(document))
    run = run_kube(kube_config(**{"modelops:kubeconfig": str(path)}))
    given = yaml.safe_load(_secret_value(run.one("pulumi:providers:kubernetes").inputs["kubeconfig"]))
    assert given["clusters"][0]["cluster"]["certificate-authority"] == str(tmp_path / "ca.crt")
    assert given["current-context"] == "lab"


def test_a_named_context_becomes_the_current_one_for_the_provider_and_the_smoke_test() -> None:
    config = kube_config(**{
        "modelops:kubernetes": {"context": "other", "registry": {"loginServer": LOGIN_SERVER}},
        "modelops:registryPassword": None,
        "modelops:smokeTest": {"timeout": 30},
    })
    run = run_kube(config)
    provider_kubeconfig = _secret_value(run.one("pulumi:providers:kubernetes").inputs["kubeconfig"])
    assert yaml.safe_load(provider_kubeconfig)["current-context"] == "other"
    smoke = run.one("pulumi-python:dynamic/modelops:BundleSmokeTest")
    assert _secret_value(smoke.inputs["kubeconfig"]) == provider_kubeconfig, "both reach the same cluster"


# --------------------------------------------------------------------------- errors at preview


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"modelops:kubeconfig": None}, "modelops:kubeconfig: required when modelops:cloud is kubernetes"),
        ({"modelops:kubernetes": {"registry": {"username": "robot"}}},
         "modelops:kubernetes.registry.loginServer: required"),
        ({"modelops:kubernetes": {"registry": {"loginServer": "https://registry.example.com"}}},
         "modelops:kubernetes.registry.loginServer: 'https://registry.example.com' is not a registry host"),
        ({"modelops:kubernetes": {"registry": {"loginServer": "me@registry.example.com"}}},
         "modelops:kubernetes.registry.loginServer: 'me@registry.example.com' is not a registry host"),
        ({"modelops:registryPassword": None},
         "modelops:registryPassword: required when modelops:kubernetes.registry.username is set"),
        ({"modelops:kubernetes": {"registry": {"loginServer": LOGIN_SERVER}}},
         "modelops:registryPassword: is set but modelops:kubernetes.registry.username is not"),
        ({"modelops:kubernetes": {"context": "nope", "registry": {"loginServer": LOGIN_SERVER, "username": "u"}}},
         "modelops:kubernetes.context: the kubeconfig has no context 'nope'"),
        ({"modelops:kubernetes": {"registry": {"loginServer": LOGIN_SERVER, "username": "u"}, "cluster": "x"}},
         "unknown configuration key modelops:kubernetes.cluster"),
        ({"modelops:kubeconfig": f"clusters: [\n  token: {TOKEN}\n  - oops"}, "modelops:kubeconfig: is not valid YAML"),
        ({"modelops:kubeconfig": f"/nonexistent/{TOKEN}/config"},
         "modelops:kubeconfig: is neither kubeconfig content nor the path of a readable file"),
        ({"modelops:kubeconfig": f"apiVersion: v1\nusers: [{{user: {{token: {TOKEN}}}}}]\n"},
         "modelops:kubeconfig: is not a kubeconfig (no clusters list)"),
    ],
)
def test_invalid_kubernetes_config_fails_before_any_resource_naming_the_key_and_no_secret(
    overrides: dict[str, Any], message: str
) -> None:
    config = kube_config(**overrides)
    with pytest.raises(pulumi.RunError) as info:
        run_kube(config, entry=program.main)
    text = str(info.value)
    assert message in text, f"expected {message!r} in {text!r}"
    chain: BaseException | None = info.value
    while chain is not None:
        assert TOKEN not in str(chain) and PASSWORD not in str(chain), f"a secret leaked into {chain!r}"
        chain = chain.__cause__ or chain.__context__


def test_kubernetes_keys_on_another_cloud_are_an_error_not_ignored() -> None:
    with pytest.raises(ConfigurationError, match=r"^modelops:kubeconfig: is read only when modelops:cloud is kubernetes"):
        parse_stack_config({"cloud": "azure", "kubeconfig": KUBECONFIG})
    assert parse_stack_config({"cloud": "local", "kubernetes": {}}).cloud == "local", "Pulumi.yaml's {} default is unset"


def test_secrets_never_show_in_the_parsed_config() -> None:
    cfg = parse_stack_config({
        "cloud": "kubernetes", "kubeconfig": KUBECONFIG, "registryPassword": PASSWORD,
        "kubernetes": {"registry": {"loginServer": LOGIN_SERVER, "username": "robot"}},
    })
    assert cfg.kubernetes.kubeconfig == SecretText(KUBECONFIG)
    assert cfg.kubernetes.registry.password is not None and cfg.kubernetes.registry.password.reveal() == PASSWORD
    assert TOKEN not in repr(cfg) and PASSWORD not in repr(cfg) and PASSWORD not in str(cfg)


def test_pulumi_yaml_declares_the_kubernetes_cloud_and_an_empty_default() -> None:
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]
    assert "`kubernetes`" in project["cloud"]["description"]
    assert project["kubernetes"]["default"] == {}, "a declared key without a default is required on every stack"
    for secret in ("modelops:kubeconfig", "modelops:registryPassword"):
        assert secret in project["kubernetes"]["description"]
        assert secret.split(":")[1] not in project, "declared without a default it would be required everywhere"


def test_the_kubernetes_stack_never_imports_the_azure_sdk() -> None:
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import sys
        from tests.infra.test_kubernetes_stack import kube_config, run_kube
        run_kube(kube_config())
        print("pulumi_azure_native" in sys.modules)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"




def test_an_insecure_registry_is_plain_http_for_the_workers_and_the_smoke_test_only_when_asked(kube: Run) -> None:
    assert "MODELOPS_BUNDLE_INSECURE" not in env_of(containers(kube.named("dask-workers"))[0])
    run = run_kube(kube_config(
        registry={"loginServer": "10.233.0.2:5000", "insecure": True}, password=None,
        **{"modelops:smokeTest": {"timeout": 30}},
    ))
    for name in ("dask-scheduler", "dask-workers"):
        assert env_of(containers(run.named(name))[0])["MODELOPS_BUNDLE_INSECURE"] == "true", name
    assert run.one("pulumi-python:dynamic/modelops:BundleSmokeTest").inputs["insecure"] is True


# --------------------------------------------------------------------------- the workers' package index

INDEX_URL = "https://robot:idx-token-do-not-leak@pypi.example.com/simple"


def test_a_package_index_reaches_the_workers_through_a_secret_and_nowhere_in_plain_text(
        monkeypatch: pytest.MonkeyPatch) -> None:
    exported: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", lambda key, value: exported.__setitem__(key, value))

    def entry() -> dict[str, Any]:
        program.main()
        return exported

    run = run_program(kube_config(**{"modelops:packageIndex": INDEX_URL}), stack="kube",
                      secret_keys=(*SECRET_KEYS, "modelops:packageIndex"), entry=entry)
    secret = run.named("dask-package-index").inputs
    assert secret["type"] == "Opaque"
    assert secret["metadata"] == {"name": "dask-package-index", "namespace": "modelops"}
    assert _secret_value(secret["stringData"]) == {"url": INDEX_URL}
    env = {e["name"]: e for e in containers(run.named("dask-workers"))[0]["env"]}
    assert env["MODELOPS_BUNDLE_INDEX_URL"] == {
        "name": "MODELOPS_BUNDLE_INDEX_URL", "valueFrom": {"secretKeyRef": {"name": "dask-package-index", "key": "url"}}}
    assert "MODELOPS_BUNDLE_INDEX_URL" not in env_of(containers(run.named("dask-scheduler"))[0]), \
        "the scheduler builds no environment"
    assert run.named("dask-package-index").urn in run.named("dask-workers").dependencies, \
        "workers wait for their index"
    for reg in run.registrations:
        if reg.name == "dask-package-index":
            continue
        for value in walk(reg.inputs):
            assert not (isinstance(value, str) and "idx-token-do-not-leak" in value), f"the index URL is in {reg.name}"
    for value in walk(run.outputs):
        assert not (isinstance(value, str) and "idx-token-do-not-leak" in value), "the index URL reached an output"


def test_without_a_package_index_workers_get_no_index_and_no_secret_is_made(kube: Run) -> None:
    assert [r.name for r in kube.of_type("kubernetes:core/v1:Secret")] == ["dask-registry-secret"]
    assert "MODELOPS_BUNDLE_INDEX_URL" not in env_of(containers(kube.named("dask-workers"))[0])


@pytest.mark.parametrize("value", ["pypi.example.com/simple", "ftp://idx-token-do-not-leak@pypi.example.com/",
                                   "https:///simple"])
def test_a_package_index_that_is_not_an_http_url_is_one_error_naming_the_key_not_the_value(value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_stack_config({"cloud": "kubernetes", "kubeconfig": KUBECONFIG, "registryPassword": PASSWORD,
                            "kubernetes": {"registry": {"loginServer": LOGIN_SERVER, "username": "robot"}},
                            "packageIndex": value})
    assert str(info.value).startswith("modelops:packageIndex: expected an http:// or https:// URL with a host")
    assert value not in str(info.value) and "idx-token" not in str(info.value)


def test_a_package_index_on_the_local_stack_is_an_error_not_ignored() -> None:
    with pytest.raises(ConfigurationError, match=r"^modelops:packageIndex: is read by the cluster stacks only"):
        parse_stack_config({"cloud": "local", "packageIndex": INDEX_URL})
    cfg = parse_stack_config({"cloud": "azure", "packageIndex": INDEX_URL})
    assert cfg.workspace.package_index == SecretText(INDEX_URL) and "idx-token" not in repr(cfg)
