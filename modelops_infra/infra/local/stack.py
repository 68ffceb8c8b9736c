"""The ``local`` stack: the same program shape from local parts, as the embedded default.

* :class:`LocalRegistry` -- the distribution registry on ``127.0.0.1:<registryPort>``;
* :class:`LocalDaskWorkspace` -- ``dask scheduler`` + N ``dask worker --preload modelops_infra.worker``
  with ``MODELOPS_BUNDLE_REGISTRY`` from the registry's ``login_server`` output;
* the smoke test (:func:`~modelops_infra.infra.smoke.add_smoke_test`) against both, after the workers exist.

State lives under ``<project>/.modelops/local``: registry data in
``registry/<stack>``, Dask data (bundle cache) in ``dask/<stack>``, logs in
``logs/<stack>``. ``pulumi destroy`` stops the processes and removes the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from modelops_infra.infra.config import StackConfig
from modelops_infra.infra.local.registry import LocalRegistry, LocalRegistryArgs
from modelops_infra.infra.local.workspace import LocalDaskWorkspace, LocalDaskWorkspaceArgs
from modelops_infra.infra.smoke import add_smoke_test

__all__ = ["deploy_local", "local_paths"]


def local_paths(project_dir: Path, stack: str) -> dict[str, Path]:
    """Where a local stack keeps its data and logs (pure)."""
    base = project_dir / ".modelops" / "local"
    return {"registry": base / "registry" / stack, "dask": base / "dask" / stack, "logs": base / "logs" / stack}


def deploy_local(cfg: StackConfig) -> dict[str, Any]:
    paths = local_paths(Path.cwd(), pulumi.get_stack())
    registry = LocalRegistry("registry", LocalRegistryArgs(
        port=cfg.local.registry_port, data_dir=str(paths["registry"]), log_dir=str(paths["logs"])))
    workspace = LocalDaskWorkspace("dask", LocalDaskWorkspaceArgs.from_config(
        cfg.local, login_server=registry.login_server, data_dir=str(paths["dask"]), log_dir=str(paths["logs"]),
        repository=cfg.workspace.bundle_repository))
    outputs: dict[str, Any] = {
        "acr_login_server": registry.login_server,
        "scheduler_address": workspace.scheduler_address,
        "dashboard_url": workspace.dashboard_url,
        "logs_dir": str(paths["logs"]),
    }
    outputs.update(add_smoke_test(
        cfg.smoke_test, login_server=registry.login_server, repository=cfg.workspace.bundle_repository,
        scheduler_address=workspace.scheduler_address, depends_on=[workspace]))
    return outputs
