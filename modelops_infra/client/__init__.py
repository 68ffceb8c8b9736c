"""Client side: ``SimTask``, ``DaskSimulationService``, registry and scheduler discovery, the smoke test.

Each public name is imported on first use (declared once, in ``__init__.pyi``), so the CLI can
import discovery without importing Dask.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
