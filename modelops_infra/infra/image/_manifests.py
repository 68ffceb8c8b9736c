"""Container image manifests and configs (pure): parse, select a platform, write.

Reads OCI and Docker schema-2 image manifests and indexes (manifest lists);
writes OCI only. A Docker schema-2 base is carried over by changing the media
types of its descriptors: the blobs are byte for byte the same, so they are
mounted or copied unchanged.

Everything written is canonical JSON (sorted keys, no spaces) with no wall-clock
time in it, so the same base and the same layer always give the same digest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelops_infra.bundles._oci import Descriptor, canonical_json
from modelops_infra.bundles._reference import Reference
from modelops_infra.errors import ImageBuildError, ModelOpsError

__all__ = [
    "parse_base",
    "DOCKER_CONFIG",
    "DOCKER_LAYER_GZIP",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "IMAGE_MANIFEST_ACCEPT",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER_GZIP",
    "OCI_MANIFEST",
    "EPOCH",
    "ImageManifest",
    "ImageSettings",
    "PythonInstall",
    "is_index",
    "oci_layer",
    "parse_image_manifest",
    "platforms_of_index",
    "python_from_env",
    "python_from_path",
    "select_platform",
    "worker_config",
    "worker_manifest",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

#: What a registry may answer for an image reference; schema 1 is not asked for.
IMAGE_MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])

#: The timestamp of every image we write (as reproducible builds do).
EPOCH = "1970-01-01T00:00:00Z"

# Layer media types an OCI manifest may carry, keyed by what the base used.
_LAYER_TYPES = {
    DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
    OCI_LAYER_GZIP: OCI_LAYER_GZIP,
    "application/vnd.oci.image.layer.v1.tar": "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
_PYTHON_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.\d+)?")


def is_index(media_type: str, data: Mapping[str, Any]) -> bool:
    """Whether a manifest is an index / manifest list (by media type, else by shape)."""
    if media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST) or data.get("mediaType") in (OCI_INDEX, DOCKER_MANIFEST_LIST):
        return True
    return "manifests" in data and "layers" not in data


def _platform(entry: Mapping[str, Any]) -> str:
    plat = entry.get("platform") or {}
    text = f"{plat.get('os', '?')}/{plat.get('architecture', '?')}"
    return f"{text}/{plat['variant']}" if plat.get("variant") else text


def platforms_of_index(data: Mapping[str, Any]) -> list[str]:
    """``os/arch[/variant]`` of every entry of an index, in order (attestations show as ``unknown/unknown``)."""
    return [_platform(e) for e in data.get("manifests") or [] if isinstance(e, Mapping)]


def select_platform(data: Mapping[str, Any], os: str = "linux", architecture: str = "amd64") -> str | None:
    """Digest of the index entry for ``os/architecture``, or ``None`` when the index has none."""
    for entry in data.get("manifests") or []:
        plat = entry.get("platform") or {}
        if plat.get("os") == os and plat.get("architecture") == architecture and isinstance(entry.get("digest"), str):
            return entry["digest"]
    return None


@dataclass(frozen=True)
class ImageManifest:
    """One platform's image manifest: its config and layer descriptors, as the registry has them."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def _descriptor(data: Any, where: str) -> Descriptor:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} is not an object")
    media_type, digest, size = data.get("mediaType"), data.get("digest"), data.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str) or not isinstance(size, int) or size < 0:
        raise ValueError(f"{where} needs mediaType, digest and a non-negative size")
    return Descriptor(media_type, digest, size)


def parse_image_manifest(raw: bytes, media_type: str) -> ImageManifest:
    """Parse an OCI or Docker schema-2 image manifest; raise ``ValueError`` naming the field at fault."""
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict) or data.get("schemaVersion") != 2:
        raise ValueError("not a schema-2 image manifest (Docker schema 1 is not supported)")
    kind = data.get("mediaType") or media_type
    if kind not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise ValueError(f"unsupported manifest media type {kind!r}")
    layers = data.get("layers")
    if not isinstance(layers, list):
        raise ValueError("manifest.layers is not a list")
    return ImageManifest(
        media_type=kind,
        config=_descriptor(data.get("config"), "manifest.config"),
        layers=tuple(_descriptor(layer, f"manifest.layers[{i}]") for i, layer in enumerate(layers)),
    )


def oci_layer(desc: Descriptor) -> Descriptor:
    """The descriptor an OCI manifest uses for a base layer (same blob, OCI media type)."""
    try:
        return Descriptor(_LAYER_TYPES[desc.media_type], desc.digest, desc.size)
    except KeyError:
        raise ValueError(f"layer {desc.digest} has media type {desc.media_type!r}, which cannot be carried over") \
            from None


@dataclass(frozen=True)
class PythonInstall:
    """The interpreter of a base image: its absolute path in the image and its ``major.minor``."""

    path: str
    version: str

    @property
    def home(self) -> str:
        return self.path.rsplit("/", 1)[0]


_PYTHON_PATH = re.compile(r"^(?:\./)?((?:usr/local/bin|usr/bin|bin)/python(\d+\.\d+))$")


def python_from_path(name: str) -> PythonInstall | None:
    """A ``PythonInstall`` when a layer entry named ``name`` is an interpreter (``usr/bin/python3.11``)."""
    match = _PYTHON_PATH.match(name)
    return PythonInstall("/" + match.group(1), match.group(2)) if match else None


def python_from_env(env: Sequence[str]) -> PythonInstall | None:
    """The official Python images' ``PYTHON_VERSION`` (interpreter in ``/usr/local/bin``), if set."""
    for item in env:
        key, _, value = item.partition("=")
        if key == "PYTHON_VERSION":
            match = _PYTHON_VERSION.match(value)
            if match:
                version = f"{match.group(1)}.{match.group(2)}"
                return PythonInstall(f"/usr/local/bin/python{version}", version)
    return None


@dataclass(frozen=True)
class ImageSettings:
    """What the worker image's config sets (the pods override command and env)."""

    venv: str = "/opt/venv"
    bundle_cache_dir: str = "/var/cache/modelops/bundles"
    user: str = "1000:1000"
    workdir: str = "/tmp"  # noqa: S108 - an emptyDir in the pods, the one writable place besides the cache
    cmd: tuple[str, ...] = ("dask", "worker", "--help")


_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _merge_env(base: Sequence[str], updates: Mapping[str, str]) -> list[str]:
    out: dict[str, str] = {}
    for item in base:
        key, _, value = item.partition("=")
        out[key] = value
    out.update(updates)
    return [f"{k}={v}" for k, v in out.items()]


def worker_config(base: Mapping[str, Any], *, layers: Sequence[tuple[str, str]], settings: ImageSettings) -> bytes:
    """The worker image's config: the base's, plus our layers, Env, User, WorkingDir and Cmd.

    ``layers`` are the added layers in order, as ``(diff_id, created_by)``. The
    base's entrypoint is dropped (the pods set ``command``); its history is
    kept and one entry is added per new layer. No wall-clock time.
    """
    base_cfg = dict(base.get("config") or {})
    base_env = [str(e) for e in base_cfg.get("Env") or []]
    path = next((e.partition("=")[2] for e in base_env if e.startswith("PATH=")), _DEFAULT_PATH)
    env = _merge_env(base_env, {
        "PATH": f"{settings.venv}/bin:{path}",
        "MODELOPS_BUNDLE_CACHE_DIR": settings.bundle_cache_dir,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    cfg: dict[str, Any] = {k: v for k, v in base_cfg.items() if k not in ("Entrypoint", "Cmd", "Env", "User",
                                                                          "WorkingDir")}
    cfg.update(Env=env, User=settings.user, WorkingDir=settings.workdir, Cmd=list(settings.cmd))
    rootfs = base.get("rootfs") or {}
    diff_ids = [str(d) for d in rootfs.get("diff_ids") or []]
    history = [dict(h) for h in base.get("history") or []]
    history.extend({"created": EPOCH, "created_by": created_by, "comment": "modelops-infra worker image"}
                   for _, created_by in layers)
    out = {
        "architecture": base.get("architecture", "amd64"),
        "os": base.get("os", "linux"),
        "created": EPOCH,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [*diff_ids, *(diff_id for diff_id, _ in layers)]},
        "history": history,
    }
    if base.get("variant"):
        out["variant"] = base["variant"]
    return canonical_json(out)


def worker_manifest(config: Descriptor, layers: Sequence[Descriptor], annotations: Mapping[str, str]) -> bytes:
    """OCI image manifest bytes (canonical JSON)."""
    data: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": Descriptor(OCI_CONFIG, config.digest, config.size).to_dict(),
        "layers": [layer.to_dict() for layer in layers],
    }
    if annotations:
        data["annotations"] = dict(annotations)
    return canonical_json(data)


def parse_base(base: str) -> Reference:
    """Parse a base image reference, which must name its registry; raise :class:`ImageBuildError` if not."""
    try:
        ref = Reference.parse(base)
    except ModelOpsError as exc:
        raise ImageBuildError(f"base image {base!r} is not an image reference: {exc.message}", stage="base",
                              input="base_image") from exc
    if ref.registry is None:
        raise ImageBuildError(f"base image {base!r} names no registry", hint="write registry/repository[:tag|@digest]",
                              stage="base", input="base_image")
    return ref
