"""Run the modelops Pulumi program under Pulumi's mocks and record what it registers.

Pulumi's mock runtime is process-global; :func:`run_program` resets mocks and
configuration on every call, so each scenario starts from nothing. The
mocks answer like Azure would for what the program reads back: a registry's
``<name>.azurecr.io`` login server, the cluster's kubelet identity and OIDC
issuer, a base64 kubeconfig from ``listManagedClusterUserCredentials``; and
like the local services' providers for the local stack (loopback addresses).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.mocks import MockMonitor

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBSCRIPTION_ID = "00000000-1111-2222-3333-444444444444"
TENANT_ID = "99999999-8888-7777-6666-555555555555"
KUBELET_OBJECT_ID = "kubelet-object-id-0001"
IDENTITY_PRINCIPAL_ID = "workspace-principal-id-0002"
IDENTITY_CLIENT_ID = "workspace-client-id-0003"
OIDC_ISSUER = "https://westeurope.oic.prod-aks.azure.com/tenant/issuer/"
RANDOM_SUFFIX = "q7x2k9"
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: modelops
  cluster: {server: "https://modelops-dev.hcp.westeurope.azmk8s.io:443"}
users:
- name: clusterUser_modelops
  user: {token: mock-user-token-do-not-leak}
contexts:
- name: modelops
  context: {cluster: modelops, user: clusterUser_modelops}
current-context: modelops
"""

ACR_PULL_GUID = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
WORKER_IMAGE_TYPE = "pulumi-python:dynamic/modelops:WorkerImage"
WORKER_IMAGE_DIGEST = "sha256:" + "ab" * 32
PINNED_IMAGE_TYPE = "pulumi-python:dynamic/modelops:PinnedImage"
#: The digest the mocked registry gives every ``modelops:workspace.image`` (``PinnedImageProvider.check`` asks a real one).
PINNED_IMAGE_DIGEST = "sha256:" + "12" * 32
#: Images of this registry get the answer of a registry the deploying machine cannot reach.
UNREACHABLE_REGISTRY = "private.example.com"


@dataclass
class Registration:
    """One RegisterResource call as the engine would see it."""

    urn: str
    typ: str
    name: str
    parent: str
    custom: bool
    provider: str
    inputs: dict[str, Any]
    state: dict[str, Any]
    resource_id: str
    dependencies: list[str] = field(default_factory=list)


@dataclass
class Run:
    """What one program run registered, invoked and returned."""

    registrations: list[Registration]
    calls: list[tuple[str, dict[str, Any]]]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    exported: dict[str, Any] = field(default_factory=dict)

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.registrations if r.typ == typ]

    def one(self, typ: str) -> Registration:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected exactly one {typ}, got {[r.name for r in found]}"
        return found[0]

    def named(self, name: str) -> Registration:
        found = [r for r in self.registrations if r.name == name]
        assert len(found) == 1, f"expected exactly one resource named {name!r}, got {len(found)}"
        return found[0]

    def by_urn(self, urn: str) -> Registration | None:
        return next((r for r in self.registrations if r.urn == urn), None)


class AzureMocks(pulumi.runtime.Mocks):
    """Answers resource registrations and invokes the way Azure would."""

    def __init__(
        self,
        *,
        login_server: str | None = None,
        stack_outputs: Mapping[str, Any] | None = None,
    ) -> None:
        self.login_server = login_server
        self.stack_outputs = dict(stack_outputs or {})
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        typ, inputs = args.typ, dict(args.inputs)
        state = dict(inputs)
        rg = inputs.get("resourceGroupName", "rg")
        arm = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{rg}/providers"
        if typ == "pulumi:pulumi:StackReference":  # a read: custom is not set
            return args.name, {"name": args.name, "outputs": self.stack_outputs, "secretOutputNames": []}
        if not args.custom:  # component resources
            return None, {}
        if typ == "random:index/randomString:RandomString":
            state["result"] = RANDOM_SUFFIX[: int(inputs.get("length", 6))]
            return f"{args.name}-id", state
        if typ == "azure-native:resources:ResourceGroup":
            name = inputs.get("resourceGroupName") or f"{args.name}abc123"
            state["name"] = name
            return f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{name}", state
        if typ == "azure-native:containerregistry:Registry":
            name = inputs["registryName"]
            state.update(name=name, loginServer=self.login_server or f"{name}.azurecr.io")
            return f"{arm}/Microsoft.ContainerRegistry/registries/{name}", state
        if typ == "azure-native:containerservice:ManagedCluster":
            name = inputs.get("resourceName") or f"{args.name}a1b2c3"
            state.update(
                name=name,
                identityProfile={
                    "kubeletidentity": {
                        "objectId": KUBELET_OBJECT_ID,
                        "clientId": "kubelet-client-id",
                        "resourceId": f"{arm}/Microsoft.ManagedIdentity/userAssignedIdentities/{name}-agentpool",
                    }
                },
                oidcIssuerProfile={"enabled": True, "issuerURL": OIDC_ISSUER},
            )
            return f"{arm}/Microsoft.ContainerService/managedClusters/{name}", state
        if typ == "azure-native:containerservice:AgentPool":
            state["name"] = inputs["agentPoolName"]
            return f"{arm}/Microsoft.ContainerService/managedClusters/pool/{state['name']}", state
        if typ == "azure-native:managedidentity:UserAssignedIdentity":
            name = inputs.get("resourceName") or f"{args.name}d4e5f6"
            state.update(name=name, clientId=IDENTITY_CLIENT_ID, principalId=IDENTITY_PRINCIPAL_ID, tenantId=TENANT_ID)
            return f"{arm}/Microsoft.ManagedIdentity/userAssignedIdentities/{name}", state
        if typ == "azure-native:authorization:RoleAssignment":
            state["name"] = inputs["roleAssignmentName"]
            return f"{inputs['scope']}/providers/Microsoft.Authorization/roleAssignments/{state['name']}", state
        if typ == WORKER_IMAGE_TYPE:  # what WorkerImageProvider.create returns, without building anything
            state.update(image_ref=f"{inputs['target']}@{WORKER_IMAGE_DIGEST}", digest=WORKER_IMAGE_DIGEST,
                         layer_digest="sha256:" + "cd" * 32, base_digest="sha256:" + "ef" * 32)
            return f"worker-image-{WORKER_IMAGE_DIGEST[7:23]}", state
        if typ == PINNED_IMAGE_TYPE and inputs["image"].startswith(UNREACHABLE_REGISTRY):
            state.update(image_ref=inputs["image"], digest=None, unverified=f"registry {UNREACHABLE_REGISTRY} is "
                         "unreachable")  # what PinnedImageProvider.check computes when the registry cannot answer
            return "image-unverified", state
        if typ == PINNED_IMAGE_TYPE:  # what PinnedImageProvider.check computes when the registry answers
            digest = inputs["image"].split("@", 1)[1] if "@" in inputs["image"] else PINNED_IMAGE_DIGEST
            state.update(image_ref=inputs["image"].split("@", 1)[0] + "@" + digest, digest=digest, unverified=None)
            return f"image-{digest[7:23]}", state
        if typ == "pulumi-python:dynamic/modelops:LocalRegistryProcess":  # as its provider's create answers
            state["login_server"] = f"127.0.0.1:{int(inputs['port'])}"
        if typ == "pulumi-python:dynamic/modelops:LocalDaskScheduler":
            state.update(address=f"tcp://127.0.0.1:{int(inputs['port'])}",
                         dashboard_url=f"http://127.0.0.1:{int(inputs['dashboard_port'])}/status")
        if typ.startswith("kubernetes:"):
            meta = inputs.get("metadata") or {}
            return f"{meta.get('namespace', '')}/{meta.get('name', args.name)}", state
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        self.calls.append((args.token, dict(args.args)))
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "subscriptionId": SUBSCRIPTION_ID,
                "tenantId": TENANT_ID,
                "clientId": "deployer-client-id",
                "objectId": "deployer-object-id",
            }
        if args.token == "azure-native:containerservice:listManagedClusterUserCredentials":
            encoded = base64.b64encode(KUBECONFIG.encode()).decode()
            return {"kubeconfigs": [{"name": "clusterUser", "value": encoded}]}
        raise AssertionError(f"unexpected invoke {args.token}")


class RecordingMonitor(MockMonitor):
    """A MockMonitor that also keeps each registration's parent, type and provider."""

    def __init__(self, mocks: AzureMocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().ReadResource(request)
        stored = self.resources.get(response.urn)
        self.registrations.append(
            Registration(
                urn=response.urn,
                typ=request.type,
                name=request.name,
                parent=request.parent,
                custom=True,
                provider=request.provider,
                inputs=pulumi.runtime.rpc.deserialize_properties(request.properties),
                state=dict(stored.state) if stored else {},
                resource_id=request.id,
            )
        )
        return response

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            stored = self.resources.get(response.urn)
            inputs = pulumi.runtime.rpc.deserialize_properties(request.object)
            self.registrations.append(
                Registration(
                    urn=response.urn,
                    typ=request.type,
                    name=request.name,
                    parent=request.parent,
                    custom=bool(request.custom),
                    provider=request.provider,
                    inputs=inputs,
                    state=dict(stored.state) if stored else {},
                    resource_id=response.id,
                    dependencies=list(request.dependencies),
                )
            )
        return response


def stack_config(stack: str = "dev", overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``Pulumi.<stack>.yaml`` with ``Pulumi.yaml``'s defaults for missing keys, as the engine passes it.

    Objects are JSON-encoded strings, as in ``PULUMI_CONFIG``. ``overrides``
    replaces whole top-level keys (``"modelops:smokeTest": {...}``); a value
    of ``None`` removes the key.
    """
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    stack_file = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())
    values: dict[str, Any] = dict(stack_file.get("config") or {})
    namespace = project["name"]
    for key, decl in (project.get("config") or {}).items():
        full = key if ":" in key else f"{namespace}:{key}"
        if full not in values and isinstance(decl, dict) and "default" in decl:
            values[full] = decl["default"]
    for key, value in (overrides or {}).items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def run_program(
    config: Mapping[str, str],
    mocks: AzureMocks | None = None,
    *,
    stack: str = "dev",
    entry: Callable[[], Any] | None = None,
    secret_keys: Iterable[str] = (),
) -> Run:
    """Run ``program.deploy(load_stack_config())`` (or ``entry``) under fresh mocks.

    Returns every registration and the resolved stack outputs; outputs that
    are secret are listed in ``Run.secret_outputs``. ``secret_keys`` are the
    config keys the engine would mark secret (``pulumi config set --secret``).
    """
    from modelops_infra.infra import program
    from modelops_infra.infra.config import load_stack_config

    mocks = mocks or AzureMocks()
    monitor = RecordingMonitor(mocks)
    # set_mocks keeps a root Stack left by an earlier run, which would parent this stack's resources
    # under the earlier stack's URN: start from none.
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project="modelops", stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config), list(secret_keys))
    resolved: dict[str, Any] = {}
    secret: set[str] = set()

    async def _resolve(outputs: Mapping[str, Any]) -> None:
        for key, value in outputs.items():
            out = pulumi.Output.from_input(value)
            resolved[key] = await out.future()
            if await out.is_secret():
                secret.add(key)

    @pulumi.runtime.test
    def _run() -> Any:
        outputs = (entry or (lambda: program.deploy(load_stack_config())))()
        return _resolve(outputs or {})

    try:
        _run()
    finally:
        # Mocks and config are process-global: leave no stack config for the next test.
        pulumi.runtime.set_all_config({})
    return Run(registrations=monitor.registrations, calls=mocks.calls, outputs=resolved, secret_outputs=secret)


def env_of(container: Mapping[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def containers(deployment: Registration) -> list[dict[str, Any]]:
    return list(deployment.inputs["spec"]["template"]["spec"]["containers"])


def walk(value: Any) -> Iterable[Any]:
    """Every nested value of a JSON-like structure."""
    yield value
    if isinstance(value, Mapping):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)
