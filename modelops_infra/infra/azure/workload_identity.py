"""Pure rules of AKS workload identity: how the workspace's pods get an Entra ID token.

The pods opt in with a label, the ServiceAccount names the user-assigned
identity's client id, and AKS issues tokens whose subject is the
ServiceAccount's; the identity is federated with exactly that subject.
Importing this module imports no cloud SDK.
"""

from __future__ import annotations

from typing import Any

from modelops_infra.infra.kubernetes.specs import (
    PodAccess,
    WorkspaceNames,
    worker_node_selector,
    worker_tolerations,
)

__all__ = [
    "WORKLOAD_IDENTITY_AUDIENCE",
    "WORKLOAD_IDENTITY_CLIENT_ID_ANNOTATION",
    "WORKLOAD_IDENTITY_LABEL",
    "aks_pod_access",
    "federated_subject",
]

WORKLOAD_IDENTITY_LABEL = "azure.workload.identity/use"
WORKLOAD_IDENTITY_CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
WORKLOAD_IDENTITY_AUDIENCE = "api://AzureADTokenExchange"


def federated_subject(names: WorkspaceNames) -> str:
    """The token subject AKS issues for the workspace's ServiceAccount."""
    return f"system:serviceaccount:{names.namespace}:{names.service_account}"


def aks_pod_access(client_id: Any) -> PodAccess:
    """Workload identity for the pods, and workers on the tainted ``dask`` pool.

    ``client_id`` is the user-assigned identity's client id (an Output); it is
    annotated on the ServiceAccount and passed as ``AZURE_CLIENT_ID``, which
    ``DefaultAzureCredential`` in the pods reads.
    """
    return PodAccess(
        pod_labels={WORKLOAD_IDENTITY_LABEL: "true"},
        service_account_annotations={WORKLOAD_IDENTITY_CLIENT_ID_ANNOTATION: client_id},
        env=({"name": "AZURE_CLIENT_ID", "value": client_id},),
        worker_node_selector=worker_node_selector(),
        worker_tolerations=tuple(worker_tolerations()),
    )
