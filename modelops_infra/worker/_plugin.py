"""The Dask worker plugin, its preload hook and the task functions workers run."""

from __future__ import annotations

import logging
from typing import Any

from distributed import WorkerPlugin, get_worker

from modelops_infra.bundles import BundleSettings
from modelops_infra.errors import ConfigurationError
from modelops_infra.worker._runtime import BundleRuntime

__all__ = ["PLUGIN_NAME", "ModelOpsWorkerPlugin", "dask_setup", "fetch_bundle_task", "run_sim_task"]

log = logging.getLogger(__name__)
PLUGIN_NAME = "modelops-bundles"


class ModelOpsWorkerPlugin(WorkerPlugin):
    """Gives a worker a :class:`BundleRuntime` configured from *the worker's* environment.

    Load it either way:

    * ``client.register_plugin(ModelOpsWorkerPlugin())``
    * ``dask worker SCHED --preload modelops_infra.worker``

    Registering twice is harmless (``idempotent``). ``settings`` is for tests;
    by default settings are read on the worker in :meth:`setup`, so the registry
    always comes from the worker's ``MODELOPS_BUNDLE_REGISTRY``, never the task.
    """

    name = PLUGIN_NAME
    idempotent = True

    def __init__(self, settings: BundleSettings | None = None) -> None:
        self._settings = settings
        self.runtime: BundleRuntime | None = None

    def setup(self, worker: Any) -> None:
        self.runtime = BundleRuntime(self._settings or BundleSettings.from_env())
        log.info("modelops bundle runtime ready: registry=%s cache=%s", self.runtime.settings.registry,
                 self.runtime.settings.cache_dir)

    def teardown(self, worker: Any) -> None:
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None


async def dask_setup(worker: Any) -> None:
    """Preload hook for ``dask worker --preload modelops_infra.worker``; setup errors are not swallowed."""
    await worker.plugin_add(ModelOpsWorkerPlugin(), name=PLUGIN_NAME, catch_errors=False)


def _runtime() -> BundleRuntime:
    plugin = get_worker().plugins.get(PLUGIN_NAME)
    runtime = getattr(plugin, "runtime", None)
    if runtime is None:
        raise ConfigurationError(
            "fetch: the modelops worker plugin is not loaded on this worker",
            hint="start workers with --preload modelops_infra.worker, or client.register_plugin(ModelOpsWorkerPlugin())",
        )
    return runtime


def run_sim_task(repository: str, digest: str, fn_ref: str | None, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Task body: ensure the bundle is local and verified, then call its entry function."""
    return _runtime().run(repository, digest, fn_ref, params, seed)


def fetch_bundle_task(repository: str, digest: str) -> dict[str, Any]:
    """Task body: only fetch and verify the bundle (used to time the fetch stage)."""
    info = _runtime().fetch(repository, digest)
    info["worker"] = get_worker().address
    return info
