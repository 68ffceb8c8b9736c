"""The ``modelops`` Pulumi program: read typed stack config, compose the components.

``__main__.py`` at the repository root calls :func:`main`. Everything runs at
call time; importing this module creates nothing and imports no cloud SDK.

Dispatch on ``modelops:cloud``:

* ``azure`` (default): :func:`_deploy_azure` imports the Azure components
  lazily, then builds ContainerRegistry -> AksCluster -> DaskWorkspace and the
  optional smoke test.
* ``kubernetes``: :func:`_deploy_kubernetes` deploys the same DaskWorkspace
  on the cluster ``modelops:kubeconfig`` names, with the registry of
  ``modelops:kubernetes.registry``, and never imports ``pulumi_azure_native``.
* ``local``: :func:`_deploy_local` hands the config to
  :func:`modelops_infra.infra.local.stack.deploy_local`, and never imports
  ``pulumi_azure_native`` or ``pulumi_kubernetes``.

Stack outputs (Azure): ``acr_login_server``, ``registry_name``, ``registry_id``,
``resource_group_name``, ``cluster_name``, ``kubeconfig`` (secret),
``namespace``, ``scheduler_address``, ``dashboard_url``, ``worker_image`` (what the pods
run, by digest unless overridden).
Stack outputs (kubernetes): ``acr_login_server`` (the registry's login server,
under the name the Azure stack uses), ``namespace``, ``scheduler_address``,
``dashboard_url``, ``worker_image``. The kubeconfig and the registry
password are never outputs. Every stack, local too, adds the same smoke-test
outputs when the test runs (:data:`~modelops_infra.infra.smoke.SMOKE_TEST_OUTPUTS`,
wired by :func:`~modelops_infra.infra.smoke.add_smoke_test`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pulumi

from modelops_infra.errors import ConfigurationError
from modelops_infra.infra.config import StackConfig, load_stack_config

if TYPE_CHECKING:
    from modelops_infra.infra.kubernetes.workspace import DaskWorkspace

__all__ = ["deploy", "main"]

logger = logging.getLogger(__name__)


def main() -> None:
    """Entry point for ``__main__.py``: load config, deploy, export the outputs.

    When the configuration is invalid, nothing is registered and
    :class:`pulumi.RunError` is raised with the
    :class:`~modelops_infra.errors.ConfigurationError`'s one-line message
    (naming the key) and the error as its ``__cause__``: Pulumi prints a
    RunError without a traceback, so ``pulumi preview`` shows just the message.
    """
    try:
        cfg = load_stack_config()
        outputs = deploy(cfg)
    except ConfigurationError as exc:
        raise pulumi.RunError(exc.render()) from exc
    for key, value in (outputs or {}).items():
        pulumi.export(key, value)


def deploy(cfg: StackConfig) -> Mapping[str, Any] | None:
    """Build the stack for ``cfg.cloud`` and return its outputs (not yet exported)."""
    if cfg.cloud == "local":
        return _deploy_local(cfg)
    if cfg.cloud == "kubernetes":
        return _deploy_kubernetes(cfg)
    return _deploy_azure(cfg)


def _workspace_outputs(login_server: pulumi.Input[str], workspace: Any) -> dict[str, Any]:
    return {
        "acr_login_server": login_server,
        "namespace": workspace.namespace,
        "scheduler_address": workspace.scheduler_address,
        "dashboard_url": workspace.dashboard_url,
        "worker_image": workspace.image,
    }


# --------------------------------------------------------------------------- kubernetes


def _deploy_kubernetes(cfg: StackConfig, *, image: pulumi.Input[str] | None = None) -> dict[str, Any]:
    """The workspace on the cluster a kubeconfig names, pulling from the configured registry.

    ``image`` is the worker image reference; ``None`` takes ``modelops:workspace.image``,
    else the workspace builds the image (``WorkerImage``) and pushes it to
    ``<loginServer>/modelops/dask-worker`` with the registry's credentials
    (and plain HTTP when ``registry.insecure``), and the pods run it by digest.

    The kubeconfig is read (and its context chosen) before any resource is
    registered, so a bad one fails preview naming the key. It reaches the
    provider and the smoke test only as a secret Output.
    """
    import pulumi_kubernetes as k8s

    from modelops_infra.infra.kubernetes import DaskWorkspace, DaskWorkspaceArgs, RegistryCredentials
    from modelops_infra.infra.kubernetes.kubeconfig import resolve_kubeconfig

    kube = cfg.kubernetes
    if kube.kubeconfig is None:  # parse_stack_config requires it; guard against hand-built configs
        raise ConfigurationError("modelops:kubeconfig: required when modelops:cloud is kubernetes",
                                 key="modelops:kubeconfig")
    kubeconfig = pulumi.Output.secret(resolve_kubeconfig(kube.kubeconfig.reveal(), context=kube.context))
    login_server = kube.registry.login_server
    credentials = None
    if kube.registry.username is not None and kube.registry.password is not None:
        credentials = RegistryCredentials(
            username=kube.registry.username,
            password=pulumi.Output.secret(kube.registry.password.reveal()),
        )

    provider = k8s.Provider("modelops-k8s", kubeconfig=kubeconfig)
    workspace = DaskWorkspace("dask", DaskWorkspaceArgs.from_config(
        cfg.workspace, provider=provider, login_server=login_server, registry_credentials=credentials,
        registry_insecure=kube.registry.insecure, **({"image": image} if image is not None else {}),
    ))
    return {
        **_workspace_outputs(login_server, workspace),
        **_smoke_test(cfg, login_server, workspace, kubeconfig=kubeconfig, insecure=kube.registry.insecure,
                      registry_username=credentials.username if credentials is not None else None,
                      registry_password=credentials.password if credentials is not None else None),
    }


# --------------------------------------------------------------------------- local


def _deploy_local(cfg: StackConfig) -> Mapping[str, Any] | None:
    """The one-machine stack; owned by :mod:`modelops_infra.infra.local`.

    ``deploy_local`` may return a mapping of stack outputs (exported by
    :func:`main`) or export them itself and return ``None``.
    """
    from modelops_infra.infra.local.stack import deploy_local

    return deploy_local(cfg)


# --------------------------------------------------------------------------- azure


def _deploy_azure(cfg: StackConfig) -> dict[str, Any]:
    from modelops_infra.bundles import RegistryHost
    from modelops_infra.infra.azure import (
        AksCluster,
        AksClusterArgs,
        ContainerRegistry,
        ContainerRegistryArgs,
        DaskWorkspace,
        DaskWorkspaceArgs,
    )
    from modelops_infra.infra.naming import aks_dns_prefix

    project, stack = pulumi.get_project(), pulumi.get_stack()
    tags = {"project": project, "stack": stack, "managed-by": "pulumi"}

    if cfg.infra_stack:
        # Two-stack layout: the registry (and its resource group) live in another stack.
        logger.info("reading the registry from stack %s", cfg.infra_stack)
        infra = pulumi.StackReference(cfg.infra_stack)
        source = f"stack {cfg.infra_stack} output 'acr_login_server'"
        # Another stack's output is input from outside this program: checked like any registry string.
        login_server: pulumi.Input[str] = infra.require_output("acr_login_server").apply(
            lambda value: str(RegistryHost.parse(value, source=source)))
        registry_id: pulumi.Input[str] = infra.require_output("registry_id")
        registry_name: pulumi.Input[str] = infra.require_output("registry_name")
        resource_group_name: pulumi.Input[str] = infra.require_output("resource_group_name")
    else:
        registry = ContainerRegistry(
            "modelops", ContainerRegistryArgs.from_config(cfg.registry, project=project, stack=stack, tags=tags))
        login_server = registry.login_server
        registry_id = registry.registry_id
        registry_name = registry.registry_name
        resource_group_name = registry.resource_group_name

    cluster = AksCluster("modelops", AksClusterArgs.from_config(
        cfg.aks, resource_group_name=resource_group_name, registry_id=registry_id,
        dns_prefix=aks_dns_prefix(project, stack), tags=tags,
    ))
    workspace = DaskWorkspace("dask", DaskWorkspaceArgs.from_config(
        cfg.workspace, provider=cluster.provider, login_server=login_server,
        resource_group_name=resource_group_name, oidc_issuer_url=cluster.oidc_issuer_url, registry_id=registry_id,
    ))

    outputs: dict[str, Any] = {
        **_workspace_outputs(login_server, workspace),
        "registry_name": registry_name,
        "registry_id": registry_id,
        "resource_group_name": resource_group_name,
        "cluster_name": cluster.cluster_name,
        "kubeconfig": pulumi.Output.secret(cluster.kubeconfig),
    }
    outputs.update(_smoke_test(cfg, login_server, workspace, kubeconfig=cluster.kubeconfig))
    return outputs


def _smoke_test(
    cfg: StackConfig, login_server: pulumi.Input[str], workspace: DaskWorkspace, **endpoint: Any
) -> dict[str, Any]:
    """The smoke test of a cluster: through a port-forward to the workspace's scheduler Service."""
    from modelops_infra.infra.smoke import add_smoke_test

    return add_smoke_test(cfg.smoke_test, login_server=login_server, repository=cfg.workspace.bundle_repository,
                          namespace=workspace.namespace, scheduler_service=workspace.scheduler_service,
                          depends_on=[workspace], **endpoint)
