"""Azure components: :class:`ContainerRegistry`, :class:`AksCluster`, :class:`DaskWorkspace`.

The components import ``pulumi_azure_native`` and ``pulumi_kubernetes``; they
are loaded on first attribute access, so importing the pure
:mod:`modelops_infra.infra.azure.workload_identity` does not pull in the cloud SDKs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelops_infra.infra.azure.aks import AksCluster, AksClusterArgs
    from modelops_infra.infra.azure.registry import ContainerRegistry, ContainerRegistryArgs
    from modelops_infra.infra.azure.workspace import DaskWorkspace, DaskWorkspaceArgs

__all__ = [
    "AksCluster",
    "AksClusterArgs",
    "ContainerRegistry",
    "ContainerRegistryArgs",
    "DaskWorkspace",
    "DaskWorkspaceArgs",
]

_HOMES = {
    "AksCluster": "aks",
    "AksClusterArgs": "aks",
    "ContainerRegistry": "registry",
    "ContainerRegistryArgs": "registry",
    "DaskWorkspace": "workspace",
    "DaskWorkspaceArgs": "workspace",
}


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
