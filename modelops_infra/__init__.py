"""modelops-infra: run simulation bundles on Dask, deployed with Pulumi.

Layers, bottom to top (nothing imports a layer above it):

* :mod:`modelops_infra.bundles` -- bundle format, packing, registry client, verified cache.
* :mod:`modelops_infra.worker`  -- the Dask worker plugin and task runner (imports ``bundles`` only).
* :mod:`modelops_infra.client`  -- ``SimTask``, ``DaskSimulationService``, registry discovery.
* :mod:`modelops_infra.cli`     -- the ``mops`` command.
* :mod:`modelops_infra.infra`   -- Pulumi components (Azure, local) and the ``BundleSmokeTest`` provider.
"""

from modelops_infra.errors import ModelOpsError

__all__ = ["ModelOpsError"]
__version__ = "0.1.0"
