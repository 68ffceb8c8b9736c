"""``DaskWorkspace`` on AKS: the cluster-neutral workspace plus workload identity and the worker pool.

Everything Kubernetes is :class:`modelops_infra.infra.kubernetes.DaskWorkspace`,
the same code the ``kubernetes`` stack deploys. This module adds only what is
Azure's: a user-assigned identity federated with the workspace's
ServiceAccount, its AcrPull grant, and the pods' workload-identity settings
(:class:`AksWorkloadIdentity`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import managedidentity

from modelops_infra.infra.azure.roles import acr_pull_assignment
from modelops_infra.infra.azure.workload_identity import (
    WORKLOAD_IDENTITY_AUDIENCE,
    aks_pod_access,
    federated_subject,
)
from modelops_infra.infra.kubernetes import specs
from modelops_infra.infra.kubernetes import workspace as kube

__all__ = ["AksWorkloadIdentity", "DaskWorkspace", "DaskWorkspaceArgs", "WORKER_IMAGE_REPOSITORY"]


WORKER_IMAGE_REPOSITORY = kube.WORKER_IMAGE_REPOSITORY


@dataclass(kw_only=True)
class DaskWorkspaceArgs(kube.DaskWorkspaceArgs):
    """Inputs of the AKS :class:`DaskWorkspace`.

    ``login_server`` is the registry's login server *output* (same stack) or a
    StackReference output (two-stack layout); it becomes the workers'
    ``MODELOPS_BUNDLE_REGISTRY`` and the default image's registry.
    ``registry_id`` scopes the workspace identity's AcrPull grant; ``None``
    skips the grant (the registry is managed, and granted, elsewhere). The
    other fields are inherited from :class:`modelops_infra.infra.kubernetes.DaskWorkspaceArgs`
    (``identity`` is always the AKS workload identity built from the fields here);
    ``image=None`` builds the worker image in the stack and pushes it to ACR
    (the deployer's Entra ID login authorizes the push).
    """

    resource_group_name: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    registry_id: pulumi.Input[str] | None = None
    location: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class AksWorkloadIdentity:
    """A user-assigned identity federated with the workspace's ServiceAccount, granted AcrPull.

    Pods pull bundles with an Entra ID token obtained through workload
    identity, so no password or long-lived secret exists anywhere.
    """

    resource_group_name: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    registry_id: pulumi.Input[str] | None = None
    location: pulumi.Input[str] | None = None

    def bind(self, workspace: pulumi.ComponentResource, name: str, names: specs.WorkspaceNames) -> kube.BoundIdentity:
        child = pulumi.ResourceOptions(parent=workspace)
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_group_name=self.resource_group_name,
            location=self.location,
            opts=child,
        )
        federation = managedidentity.FederatedIdentityCredential(
            f"{name}-federation",
            resource_group_name=self.resource_group_name,
            resource_name_=identity.name,
            issuer=self.oidc_issuer_url,
            subject=federated_subject(names),
            audiences=[WORKLOAD_IDENTITY_AUDIENCE],
            opts=child,
        )
        grants: list[pulumi.Resource] = [federation]
        if self.registry_id is not None:
            grants.append(
                acr_pull_assignment(
                    f"{name}-acrpull", scope=self.registry_id, principal_id=identity.principal_id, parent=workspace
                )
            )
        return kube.BoundIdentity(
            access=aks_pod_access(identity.client_id),
            depends_on=grants,
            outputs={"identity_client_id": identity.client_id},
        )


class DaskWorkspace(kube.DaskWorkspace):
    """The workspace on AKS: one scheduler, N workers on the ``dask`` pool, and their workload identity.

    The same component (type token and children) as on any cluster, plus the
    identity's children. Outputs: those of
    :class:`modelops_infra.infra.kubernetes.DaskWorkspace` (``image`` among them), and
    ``identity_client_id``. Raises :class:`ConfigurationError` as that class
    does, before creating anything.
    """

    identity_client_id: pulumi.Output[str]

    def __init__(self, name: str, args: DaskWorkspaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            name,
            dataclasses.replace(
                kube.DaskWorkspaceArgs(**{f.name: getattr(args, f.name) for f in dataclasses.fields(kube.DaskWorkspaceArgs)}),
                identity=AksWorkloadIdentity(
                    resource_group_name=args.resource_group_name,
                    oidc_issuer_url=args.oidc_issuer_url,
                    registry_id=args.registry_id,
                    location=args.location,
                ),
            ),
            opts,
        )
        self.identity_client_id = self.identity_outputs["identity_client_id"]
