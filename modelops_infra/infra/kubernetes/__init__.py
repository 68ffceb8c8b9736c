"""The workspace on any Kubernetes cluster: pure specs, the ``DaskWorkspace`` component, the stack.

:mod:`~modelops_infra.infra.kubernetes.specs` and
:mod:`~modelops_infra.infra.kubernetes.kubeconfig` are pure and import no
cloud SDK. The component and the stack import ``pulumi_kubernetes``; they are
loaded on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelops_infra.infra.kubernetes.workspace import (
        BoundIdentity,
        DaskWorkspace,
        DaskWorkspaceArgs,
        RegistryCredentials,
        WorkspaceIdentity,
    )

__all__ = ["BoundIdentity", "DaskWorkspace", "DaskWorkspaceArgs", "RegistryCredentials", "WorkspaceIdentity"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.workspace"), name)
