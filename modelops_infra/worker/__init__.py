"""Worker side: the Dask plugin and task runner. Imports :mod:`modelops_infra.bundles` only.

``dask worker SCHED --preload modelops_infra.worker`` calls :func:`dask_setup`.
"""

from modelops_infra.worker._namespace import load_entrypoint
from modelops_infra.worker._plugin import (
    PLUGIN_NAME,
    ModelOpsWorkerPlugin,
    dask_setup,
    fetch_bundle_task,
    run_sim_task,
)
from modelops_infra.worker._pool import ChildSpec, ProcessPool, minimal_child_env
from modelops_infra.worker._requirements import check_requirements, unmet_requirements
from modelops_infra.worker._runtime import BundleRuntime

__all__ = [
    "PLUGIN_NAME", "BundleRuntime", "ChildSpec", "ModelOpsWorkerPlugin", "ProcessPool", "check_requirements",
    "dask_setup", "fetch_bundle_task", "load_entrypoint", "minimal_child_env", "run_sim_task", "unmet_requirements",
]
