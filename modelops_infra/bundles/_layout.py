"""The layout of a pushed bundle, read once from its OCI manifest and typed (pure).

Every reader of a pushed bundle -- the cache that extracts it, ``inspect`` that
lists it and ``pull`` that copies it -- goes through :meth:`BundleLayout.from_manifest`,
so they all agree on what a bundle is and refuse the same things::

    layout = BundleLayout.from_manifest(raw, source="tests/sir@sha256:...")
    layout.code         # the code layer (a tar of the small files), or None
    layout.files        # large files: FileLayer(descriptor, path, mode)
    layout.wheels       # shipped wheels: WheelLayer(descriptor, filename)

Raises :class:`IntegrityError` if the bytes are not a modelops bundle manifest
(not JSON, not an OCI image manifest, another artifact or config type, a
malformed descriptor or digest, two code layers), and :class:`UnsafeArchiveError`
naming the entry if a layer must not be placed (unknown media type, a title
that escapes the bundle or is missing, a malformed file mode, a wheel title
that is not a wheel file name, two layers at one path). Never anything else,
whatever the bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from modelops_infra.bundles._digest import DIGEST_RE
from modelops_infra.bundles._extract import check_member_path
from modelops_infra.bundles._oci import (
    ANNOTATION_FILE_MODE,
    ANNOTATION_TITLE,
    ARTIFACT_TYPE,
    CODE_LAYER_MEDIA_TYPE,
    CONFIG_MEDIA_TYPE,
    FILE_LAYER_MEDIA_TYPE,
    MAX_LAYERS,
    WHEEL_LAYER_MEDIA_TYPE,
    Descriptor,
    is_wheel_filename,
)
from modelops_infra.errors import IntegrityError, UnsafeArchiveError

__all__ = ["BundleLayout", "CodeLayer", "FileLayer", "WheelLayer"]

_MODE = re.compile(r"^0?[0-7]{3}$")


@dataclass(frozen=True)
class CodeLayer:
    """The tar of the bundle's small files."""

    descriptor: Descriptor


@dataclass(frozen=True)
class FileLayer:
    """A large file stored as a blob of its own. ``path`` is normalized and root-relative."""

    descriptor: Descriptor
    path: str
    mode: int  # 0o644 or 0o755


@dataclass(frozen=True)
class WheelLayer:
    """A wheel of the bundle's environment, shipped through the registry."""

    descriptor: Descriptor
    filename: str


Layer = CodeLayer | FileLayer | WheelLayer


@dataclass(frozen=True)
class BundleLayout:
    """What a bundle manifest says: its config and its layers, typed, in manifest order."""

    config: Descriptor
    layers: tuple[Layer, ...]
    annotations: dict[str, str]
    artifact_type: str | None

    @property
    def code(self) -> CodeLayer | None:
        return next((layer for layer in self.layers if isinstance(layer, CodeLayer)), None)

    @property
    def files(self) -> tuple[FileLayer, ...]:
        return tuple(layer for layer in self.layers if isinstance(layer, FileLayer))

    @property
    def wheels(self) -> tuple[WheelLayer, ...]:
        return tuple(layer for layer in self.layers if isinstance(layer, WheelLayer))

    @property
    def descriptors(self) -> tuple[Descriptor, ...]:
        return tuple(layer.descriptor for layer in self.layers)

    @property
    def total_size(self) -> int:
        """Bytes of the config and every layer (what a full fetch downloads, the manifest aside)."""
        return self.config.size + sum(layer.descriptor.size for layer in self.layers)

    @classmethod
    def from_manifest(cls, raw: bytes, *, source: str = "manifest") -> BundleLayout:
        """Read manifest bytes; ``source`` (``repository@digest``) is named in every error."""
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise IntegrityError(f"{source} is not a valid OCI manifest (not UTF-8 JSON: {exc})") from exc
        if not isinstance(data, dict) or data.get("schemaVersion") != 2:
            raise IntegrityError(f"{source} is not an OCI image manifest (schemaVersion 2)")
        if "manifests" in data:
            raise IntegrityError(f"{source} is an image index (a list of manifests), not a modelops bundle")
        config = _descriptor(data.get("config"), "config", source)
        artifact_type = data.get("artifactType")
        if artifact_type not in (None, ARTIFACT_TYPE) or config.media_type != CONFIG_MEDIA_TYPE:
            raise IntegrityError(f"{source} is not a modelops bundle (artifactType {artifact_type!r},"
                                 f" config {config.media_type!r})")
        raw_layers = data.get("layers")
        if not isinstance(raw_layers, list):
            raise IntegrityError(f"{source}: manifest.layers is not a list")
        if len(raw_layers) > MAX_LAYERS:
            raise IntegrityError(f"{source}: manifest.layers has {len(raw_layers)} entries, more than the limit of"
                                 f" {MAX_LAYERS}")
        descriptors = [_descriptor(item, f"layers[{i}]", source) for i, item in enumerate(raw_layers)]
        layers: list[Layer] = []
        paths: set[str] = set()
        wheel_names: set[str] = set()
        for layer in descriptors:
            title = layer.annotations.get(ANNOTATION_TITLE)
            if layer.media_type == CODE_LAYER_MEDIA_TYPE:
                if any(isinstance(seen, CodeLayer) for seen in layers):
                    raise IntegrityError(f"{source} has more than one code layer ({layer.digest} is another)")
                layers.append(CodeLayer(layer))
            elif layer.media_type == FILE_LAYER_MEDIA_TYPE:
                if not title:
                    raise UnsafeArchiveError(f"refused entry {layer.digest}: file layer has no title annotation",
                                             entry=layer.digest)
                path = check_member_path(title)
                mode = layer.annotations.get(ANNOTATION_FILE_MODE, "0644")
                if not _MODE.match(mode):
                    raise UnsafeArchiveError(f"refused entry {title!r}: file mode {mode!r} is not an octal mode",
                                             entry=title)
                if path in paths:
                    raise UnsafeArchiveError(f"refused entry {title!r}: duplicate path", entry=title)
                paths.add(path)
                layers.append(FileLayer(layer, path, 0o755 if int(mode, 8) & 0o111 else 0o644))
            elif layer.media_type == WHEEL_LAYER_MEDIA_TYPE:
                if not title or not is_wheel_filename(title):
                    raise UnsafeArchiveError(f"refused entry {title or layer.digest!r}: a wheel layer needs a wheel"
                                             " file name as its title", entry=title or layer.digest)
                if title in wheel_names:
                    raise UnsafeArchiveError(f"refused entry {title!r}: two wheel layers share this name", entry=title)
                wheel_names.add(title)
                layers.append(WheelLayer(layer, title))
            else:
                raise UnsafeArchiveError(f"refused entry {layer.digest}: unknown layer media type"
                                         f" {layer.media_type!r}", entry=layer.digest)
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise IntegrityError(f"{source}: manifest.annotations is not an object")
        return cls(config, tuple(layers), {str(k): str(v) for k, v in annotations.items()},
                   artifact_type if isinstance(artifact_type, str) else None)


def _descriptor(data: Any, where: str, source: str) -> Descriptor:
    if not isinstance(data, dict):
        raise IntegrityError(f"{source}: manifest.{where} is not an object")
    media_type, digest, size = data.get("mediaType"), data.get("digest"), data.get("size")
    if not isinstance(media_type, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise IntegrityError(f"{source}: manifest.{where} needs a mediaType and a non-negative size")
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise IntegrityError(f"{source}: manifest.{where} has digest {digest!r}; a bundle's blobs are named by"
                             " sha256:<64 lowercase hex digits>")
    annotations = data.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise IntegrityError(f"{source}: manifest.{where}.annotations is not an object")
    return Descriptor(media_type, digest, size, {str(k): str(v) for k, v in annotations.items()})
