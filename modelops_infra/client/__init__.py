"""Client side: ``SimTask``, ``DaskSimulationService`` and registry discovery."""

from modelops_infra.client._discovery import (
    BundleEnv,
    bundle_env_path,
    check_scheduler_address,
    get_registry_url,
    load_bundle_env,
    write_bundle_env,
)
from modelops_infra.client._service import DaskSimulationService, ServiceConfig
from modelops_infra.client._smoketest import (
    STAGES,
    ClusterProbe,
    SmokeTestReport,
    probe_scheduler,
    run_smoke_test,
)
from modelops_infra.client._task import SimTask, task_key

__all__ = [
    "STAGES", "BundleEnv", "ClusterProbe", "DaskSimulationService", "ServiceConfig", "SimTask", "SmokeTestReport",
    "bundle_env_path", "check_scheduler_address", "get_registry_url", "load_bundle_env", "probe_scheduler", "run_smoke_test", "task_key",
    "write_bundle_env",
]
