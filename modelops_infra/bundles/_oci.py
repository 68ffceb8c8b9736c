"""OCI artifact layout of a bundle (pure): media types, descriptors, manifest bytes.

One bundle is one OCI image manifest (``application/vnd.oci.image.manifest.v1+json``):

* ``artifactType``: ``application/vnd.modelops.bundle.v1``
* ``config``: the bundle's manifest.json fields as canonical JSON,
  media type ``application/vnd.modelops.bundle.config.v1+json``
* ``layers[0]``: an uncompressed, normalized tar of every small file
  (``application/vnd.modelops.bundle.code.v1.tar``)
* ``layers[1:]``: each large file as a raw blob (``application/vnd.modelops.bundle.file.v1``),
  its path in ``org.opencontainers.image.title``, so ``oras pull`` writes it in place;
* then, if the bundle ships its environment's wheels (``push --wheels``), one
  blob per wheel (``application/vnd.modelops.bundle.wheel.v1+zip``), its file
  name as title. The same wheel is the same blob in every bundle.

Only standard manifest fields are used; JSON is canonical (sorted keys, no spaces),
so the same inputs always give the same manifest digest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ANNOTATION_ENTRYPOINT",
    "ANNOTATION_FILE_MODE",
    "ANNOTATION_TITLE",
    "ANNOTATION_VERSION",
    "ARTIFACT_TYPE",
    "CODE_LAYER_MEDIA_TYPE",
    "CONFIG_MEDIA_TYPE",
    "Descriptor",
    "FILE_LAYER_MEDIA_TYPE",
    "WHEEL_LAYER_MEDIA_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "ParsedManifest",
    "canonical_json",
    "is_wheel_filename",
    "manifest_bytes",
    "parse_oci_manifest",
]

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.modelops.bundle.v1"
CONFIG_MEDIA_TYPE = "application/vnd.modelops.bundle.config.v1+json"
CODE_LAYER_MEDIA_TYPE = "application/vnd.modelops.bundle.code.v1.tar"
FILE_LAYER_MEDIA_TYPE = "application/vnd.modelops.bundle.file.v1"
WHEEL_LAYER_MEDIA_TYPE = "application/vnd.modelops.bundle.wheel.v1+zip"
# name-version(-build)?-python-abi-platform.whl, as PEP 427 spells it; no path separators
_WHEEL_NAME = re.compile(r"^[A-Za-z0-9_.]+-[A-Za-z0-9_.!+]+(-[0-9][A-Za-z0-9_.]*)?-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+"
                         r"-[A-Za-z0-9_.]+\.whl$")
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_VERSION = "org.opencontainers.image.version"
ANNOTATION_ENTRYPOINT = "io.modelops.bundle.entrypoint"
ANNOTATION_FILE_MODE = "io.modelops.bundle.file.mode"
CODE_LAYER_TITLE = "bundle-code.tar"


def is_wheel_filename(name: str) -> bool:
    """Whether ``name`` is a plain wheel file name (no directories), as a wheel layer's title must be."""
    return len(name) <= 255 and bool(_WHEEL_NAME.match(name))


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @property
    def title(self) -> str | None:
        return self.annotations.get(ANNOTATION_TITLE)


def manifest_bytes(config: Descriptor, layers: list[Descriptor], annotations: dict[str, str]) -> bytes:
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": config.to_dict(),
            "layers": [layer.to_dict() for layer in layers],
            "annotations": dict(annotations),
        }
    )


@dataclass(frozen=True)
class ParsedManifest:
    config: Descriptor
    layers: list[Descriptor]
    annotations: dict[str, str]
    artifact_type: str | None


def _descriptor(data: Any, where: str) -> Descriptor:
    if not isinstance(data, dict):
        raise ValueError(f"{where} is not an object")
    media_type, digest, size = data.get("mediaType"), data.get("digest"), data.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str) or not isinstance(size, int) or size < 0:
        raise ValueError(f"{where} needs mediaType, digest and a non-negative size")
    annotations = data.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ValueError(f"{where}.annotations is not an object")
    return Descriptor(media_type, digest, size, {str(k): str(v) for k, v in annotations.items()})


#: Most layers a bundle manifest may list: the code layer plus one per large file. Far above any
#: real bundle, low enough that a hostile manifest cannot make a pull loop over millions of blobs.
MAX_LAYERS = 10_000


def parse_oci_manifest(raw: bytes) -> ParsedManifest:
    """Parse manifest bytes; raise ``ValueError`` saying which field is wrong.

    Refuses more than :data:`MAX_LAYERS` layers, and any descriptor digest that
    is not ``sha256:<64 lowercase hex>`` (sha512, uppercase, short), so callers
    report bad content as an integrity error, not as a usage error.
    """
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict) or data.get("schemaVersion") != 2:
        raise ValueError("not an OCI image manifest (schemaVersion 2)")
    if "manifests" in data and "layers" not in data:
        raise ValueError("an image index (a list of manifests), not an image manifest")
    layers = data.get("layers")
    if not isinstance(layers, list):
        raise ValueError("manifest.layers is not a list")
    if len(layers) > MAX_LAYERS:
        raise ValueError(f"manifest.layers has {len(layers)} entries, more than the limit of {MAX_LAYERS}")
    annotations = data.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ValueError("manifest.annotations is not an object")
    parsed = ParsedManifest(
        config=_descriptor(data.get("config"), "manifest.config"),
        layers=[_descriptor(layer, f"manifest.layers[{i}]") for i, layer in enumerate(layers)],
        annotations={str(k): str(v) for k, v in annotations.items()},
        artifact_type=data.get("artifactType"),
    )
    from modelops_infra.bundles._digest import DIGEST_RE

    for where, desc in [("manifest.config", parsed.config)] + [
            (f"manifest.layers[{i}]", layer) for i, layer in enumerate(parsed.layers)]:
        if not DIGEST_RE.match(desc.digest):
            raise ValueError(f"{where}.digest {desc.digest!r} is not sha256:<64 lowercase hex>")
    return parsed
