"""The public names of :mod:`modelops_infra.client`, declared once (``__init__.py`` loads each on first use)."""

from ._discovery import DEFAULT_SCHEDULER as DEFAULT_SCHEDULER
from ._discovery import BundleEnv as BundleEnv
from ._discovery import bundle_env_path as bundle_env_path
from ._discovery import check_scheduler_address as check_scheduler_address
from ._discovery import get_registry_url as get_registry_url
from ._discovery import load_bundle_env as load_bundle_env
from ._discovery import resolve_scheduler as resolve_scheduler
from ._discovery import write_bundle_env as write_bundle_env
from ._service import DaskSimulationService as DaskSimulationService
from ._service import ServiceConfig as ServiceConfig
from ._smoketest import STAGES as STAGES
from ._smoketest import ClusterProbe as ClusterProbe
from ._smoketest import SmokeTestReport as SmokeTestReport
from ._smoketest import probe_scheduler as probe_scheduler
from ._smoketest import run_smoke_test as run_smoke_test
from ._task import SimTask as SimTask
from ._task import task_key as task_key
