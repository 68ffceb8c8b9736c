"""The public names of :mod:`modelops_infra.infra.image`, declared once (loaded on first use)."""

from ._assemble import BaseImage as BaseImage
from ._assemble import BuiltImage as BuiltImage
from ._assemble import build_worker_image as build_worker_image
from ._assemble import resolve_base as resolve_base
from ._layer import LayerEntry as LayerEntry
from ._layer import PackedLayer as PackedLayer
from ._layer import pack_layer as pack_layer
from ._layercache import LayerCache as LayerCache
from ._layercache import default_layer_cache_dir as default_layer_cache_dir
from ._layercache import dependencies_key as dependencies_key
from ._manifests import ImageSettings as ImageSettings
from ._manifests import PythonInstall as PythonInstall
from ._manifests import parse_base as parse_base
from ._venv import WorkerInstall as WorkerInstall
from ._venv import checkout_files as checkout_files
from ._venv import default_checkout as default_checkout
from ._venv import find_build_python as find_build_python
