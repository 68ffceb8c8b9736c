"""Bundles: format, reproducible packing, registry client and verified local cache.

No Pulumi here, and no Dask: this package is what a worker needs to fetch code.

>>> from modelops_infra.bundles import pack_bundle, validate_bundle   # doctest: +SKIP
>>> pack_bundle("examples/sir").digest                                # doctest: +SKIP
'sha256:...'
"""

import lazy_loader

# The names and where they live are declared once, in __init__.pyi; each is imported on first use.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
