"""The Dask worker plugin, its preload hook and the task functions workers run."""

from __future__ import annotations

import logging
from typing import Any

from distributed import WorkerPlugin, get_worker

from modelops_infra.bundles import BundleSettings
from modelops_infra.errors import ConfigurationError, ModelOpsError
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
        self.setup_error: ModelOpsError | None = None

    def setup(self, worker: Any) -> None:
        """Build the runtime from the worker's environment; a bad setting raises (and is kept for tasks)."""
        try:
            nthreads = getattr(getattr(worker, "state", None), "nthreads", None) or getattr(worker, "nthreads", 1)
            self.runtime = BundleRuntime(self._settings or BundleSettings.from_env(), threads=int(nthreads or 1))
        except ModelOpsError as exc:
            # Dask stores the plugin in worker.plugins before it calls setup, so even after this raise
            # _runtime() finds the plugin and fails every task with this error instead of "not loaded".
            self.setup_error = exc
            raise
        log.info("modelops bundle runtime ready: registry=%s cache=%s", self.runtime.settings.registry,
                 self.runtime.settings.cache_dir)

    def teardown(self, worker: Any) -> None:
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None


async def dask_setup(worker: Any) -> None:
    """Preload hook for ``dask worker --preload modelops_infra.worker``.

    Dask logs and then ignores exceptions from preloads, so a setup error would
    otherwise leave a worker that silently cannot fetch bundles. Instead the
    error is logged here and kept on the plugin, and every task on this worker
    fails with it (a ``ConfigurationError`` at stage ``fetch``: ``... MODELOPS_BUNDLE_INSECURE='x' is not a
    boolean``),
    so the client and the deploy-time smoke test see the cause.
    """
    try:
        await worker.plugin_add(ModelOpsWorkerPlugin(), name=PLUGIN_NAME, catch_errors=False)
    except ModelOpsError as exc:
        log.error("modelops worker plugin failed to set up; tasks on this worker will fail: %s", exc)


def _runtime() -> BundleRuntime:
    plugin = get_worker().plugins.get(PLUGIN_NAME)
    error = getattr(plugin, "setup_error", None)
    if error is not None:
        raise ConfigurationError(f"this worker's modelops plugin failed to set up: {error.message}",
                                 stage="fetch", hint=error.hint or "fix the worker's MODELOPS_BUNDLE_* environment")
    runtime = getattr(plugin, "runtime", None)
    if runtime is None:
        raise ConfigurationError(
            "the modelops worker plugin is not loaded on this worker",
            stage="fetch", hint="start workers with --preload modelops_infra.worker, or client.register_plugin(ModelOpsWorkerPlugin())",
        )
    assert isinstance(runtime, BundleRuntime)
    return runtime


def run_sim_task(repository: str, digest: str, fn_ref: str | None, params: dict[str, Any], seed: int,
                 timeout: float | None = None) -> dict[str, Any]:
    """Task body: ensure the bundle (and its environment) is local and verified, then call its entry function."""
    return _runtime().run(repository, digest, fn_ref, params, seed, timeout=timeout)


def fetch_bundle_task(repository: str, digest: str) -> dict[str, Any]:
    """Task body: only fetch and verify the bundle (used to time the fetch stage)."""
    info = _runtime().fetch(repository, digest)
    info["worker"] = get_worker().address
    return info
