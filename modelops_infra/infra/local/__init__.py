"""Local components: the same stack shape on one machine (the ``local`` stack)."""

from modelops_infra.infra.local.registry import LocalRegistry, LocalRegistryArgs
from modelops_infra.infra.local.workspace import LocalDaskWorkspace, LocalDaskWorkspaceArgs

__all__ = ["LocalDaskWorkspace", "LocalDaskWorkspaceArgs", "LocalRegistry", "LocalRegistryArgs"]
