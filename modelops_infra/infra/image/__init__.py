"""The worker image, assembled without a container daemon.

The library (``_assemble``, ``_layer``, ``_layercache``, ``_manifests``, ``_venv``) imports no
Pulumi; the ``WorkerImage`` resource lives in :mod:`.provider` and is not
imported here.

>>> from modelops_infra.infra.image import WorkerInstall, build_worker_image      # doctest: +SKIP
>>> build_worker_image("127.0.0.1:5000/base/python:3.11",                      # doctest: +SKIP
...                    "127.0.0.1:5000/modelops/dask-worker", WorkerInstall(Path("."))).image_ref
'127.0.0.1:5000/modelops/dask-worker@sha256:...'

Names load on first use (declared once in ``__init__.pyi``): a program that only declares a
``WorkerImage`` does not import the registry client or the assembly.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
