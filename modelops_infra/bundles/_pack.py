"""Reproducible packing of a bundle directory into OCI blobs (no network I/O).

Packing the same directory twice gives the same manifest digest whatever the
mtimes, umask, owner or directory order: the code tar is written with sorted
entries, zero mtimes, uid/gid 0, empty owner names and modes normalized to
0644/0755. No wall-clock timestamp goes anywhere.

Files at or above ``file_threshold`` bytes become blobs of their own, so that
changing a source file does not re-upload a large data file next to it.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelops_infra.bundles._digest import digest_bytes, digest_file
from modelops_infra.bundles._manifest import BundleManifest
from modelops_infra.bundles._memo import DigestMemo
from modelops_infra.bundles._oci import (
    ANNOTATION_ENTRYPOINT,
    ANNOTATION_FILE_MODE,
    ANNOTATION_TITLE,
    ANNOTATION_VERSION,
    CODE_LAYER_MEDIA_TYPE,
    CODE_LAYER_TITLE,
    CONFIG_MEDIA_TYPE,
    FILE_LAYER_MEDIA_TYPE,
    WHEEL_LAYER_MEDIA_TYPE,
    Descriptor,
    canonical_json,
    manifest_bytes,
)
from modelops_infra.bundles._validate import checked_bundle
from modelops_infra.errors import BundleValidationError

__all__ = ["DEFAULT_FILE_THRESHOLD", "BlobSource", "PackedBundle", "pack_bundle"]

DEFAULT_FILE_THRESHOLD = 512 * 1024


@dataclass(frozen=True)
class BlobSource:
    """A blob to upload: bytes held in memory, or a file streamed from disk."""

    descriptor: Descriptor
    data: bytes | None = None
    path: Path | None = None

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return open(self.path, "rb")


@dataclass(frozen=True)
class PackedBundle:
    manifest: BundleManifest
    manifest_bytes: bytes
    digest: str
    config: BlobSource
    layers: tuple[BlobSource, ...]

    @property
    def blobs(self) -> tuple[BlobSource, ...]:
        return (self.config, *self.layers)

    @property
    def total_size(self) -> int:
        return sum(b.descriptor.size for b in self.blobs) + len(self.manifest_bytes)


def _mode(st_mode: int) -> int:
    return 0o755 if st_mode & 0o111 else 0o644


def _tar_info(name: str, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack_bundle(path: Path | str, *, file_threshold: int = DEFAULT_FILE_THRESHOLD,
                memo_dir: Path | None = None, wheels: Sequence[Path] = (),
                exclude: Sequence[Path] | None = None) -> PackedBundle:
    """Validate and pack the bundle at ``path``.

    ``wheels`` (from :func:`~modelops_infra.bundles._envbuild.download_wheels`)
    become one layer each, after the code and file layers, sorted by file name:
    workers then install the environment offline from exactly those blobs.

    With ``memo_dir``, digests of large files are remembered by stat (see
    :class:`DigestMemo`) so that re-packing an unchanged bundle does not re-hash it.

    Packs exactly the files :func:`validate_bundle` checked (one walk, one set
    of rules; ``exclude`` as there). Raises :class:`BundleValidationError`
    (listing every problem) for an invalid bundle, a symlink that points
    outside it, or a file or directory that cannot be read: nothing is left out
    silently. Pure with respect to the network; reads the directory only.
    """
    root = Path(path).resolve()
    report = checked_bundle(root, exclude=exclude)
    assert report.manifest is not None
    manifest = report.manifest
    memo = DigestMemo(memo_dir, root) if memo_dir is not None else None
    code = io.BytesIO()
    big: list[BlobSource] = []
    with tarfile.open(fileobj=code, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in report.files:
            rel, full, st = item.rel, item.path, item.st
            try:
                if item.link is not None:
                    info = _tar_info(rel, 0, 0o777)
                    info.type, info.linkname = tarfile.SYMTYPE, item.link
                    tar.addfile(info)
                elif st.st_size >= file_threshold:
                    digest, size = memo.digest(full) if memo is not None else digest_file(full)
                    annotations = {ANNOTATION_TITLE: rel, ANNOTATION_FILE_MODE: f"{_mode(st.st_mode):04o}"}
                    big.append(BlobSource(Descriptor(FILE_LAYER_MEDIA_TYPE, digest, size, annotations), path=full))
                else:
                    data = full.read_bytes()
                    tar.addfile(_tar_info(rel, len(data), _mode(st.st_mode)), io.BytesIO(data))
            except OSError as exc:  # changed since the scan: still never a silent drop
                raise BundleValidationError(f"bundle {root} cannot be packed: {full}: cannot be read ({exc.strerror})",
                                            problems=[f"{full}: cannot be read ({exc.strerror})"],
                                            path=str(root)) from exc
    if memo is not None:
        memo.save()
    code_bytes = code.getvalue()
    code_layer = BlobSource(
        Descriptor(CODE_LAYER_MEDIA_TYPE, digest_bytes(code_bytes), len(code_bytes), {ANNOTATION_TITLE: CODE_LAYER_TITLE}),
        data=code_bytes,
    )
    config_bytes = canonical_json(manifest.to_dict())
    config = BlobSource(Descriptor(CONFIG_MEDIA_TYPE, digest_bytes(config_bytes), len(config_bytes)), data=config_bytes)
    wheel_layers = []
    for wheel in sorted(wheels, key=lambda p: p.name):
        digest, size = digest_file(wheel)
        wheel_layers.append(BlobSource(Descriptor(WHEEL_LAYER_MEDIA_TYPE, digest, size, {ANNOTATION_TITLE: wheel.name}),
                                       path=wheel))
    layers = (code_layer, *sorted(big, key=lambda b: b.descriptor.title or ""), *wheel_layers)
    annotations = {
        ANNOTATION_TITLE: manifest.name,
        ANNOTATION_VERSION: manifest.version,
        ANNOTATION_ENTRYPOINT: manifest.entrypoint,
    }
    raw = manifest_bytes(config.descriptor, [layer.descriptor for layer in layers], annotations)
    return PackedBundle(manifest, raw, digest_bytes(raw), config, layers)
