"""The worker image, assembled without a container daemon.

The library (``_assemble``, ``_layer``, ``_layercache``, ``_manifests``, ``_venv``) imports no
Pulumi; the ``WorkerImage`` resource lives in :mod:`.provider` and is not
imported here.

>>> from modelops_infra.infra.image import WorkerInstall, build_worker_image      # doctest: +SKIP
>>> build_worker_image("127.0.0.1:5000/base/python:3.11",                      # doctest: +SKIP
...                    "127.0.0.1:5000/modelops/dask-worker", WorkerInstall(Path("."))).image_ref
'127.0.0.1:5000/modelops/dask-worker@sha256:...'
"""

from __future__ import annotations

from modelops_infra.infra.image._assemble import BaseImage, BuiltImage, build_worker_image, parse_base, resolve_base
from modelops_infra.infra.image._layer import LayerEntry, PackedLayer, pack_layer
from modelops_infra.infra.image._layercache import LayerCache, default_layer_cache_dir, dependencies_key
from modelops_infra.infra.image._manifests import ImageSettings, PythonInstall
from modelops_infra.infra.image._venv import WorkerInstall, checkout_files, default_checkout, find_build_python

__all__ = [
    "BaseImage",
    "BuiltImage",
    "ImageSettings",
    "LayerCache",
    "LayerEntry",
    "PackedLayer",
    "PythonInstall",
    "WorkerInstall",
    "build_worker_image",
    "checkout_files",
    "default_checkout",
    "default_layer_cache_dir",
    "dependencies_key",
    "find_build_python",
    "pack_layer",
    "parse_base",
    "resolve_base",
]
