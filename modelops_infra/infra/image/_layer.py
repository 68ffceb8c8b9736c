"""Reproducible image layers (file system only): a directory tree as one gzip tar blob.

The same tree always gives the same bytes, as bundles do (:mod:`~modelops_infra.bundles._pack`):
entries sorted by name, mtimes zero, uid/gid 0 with empty owner names, modes
normalised to 0755 (directories and executables) or 0644, and a gzip header
with mtime 0 and no file name. Hard links are stored as separate files.

While writing, both digests are computed: ``digest`` (of the gzip blob, the
manifest's descriptor) and ``diff_id`` (of the uncompressed tar, the config's
``rootfs``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["LayerEntry", "PackedLayer", "pack_layer"]


@dataclass(frozen=True)
class PackedLayer:
    """A layer blob on disk: ``digest``/``size`` of the gzip file, ``diff_id`` of the tar inside."""

    path: Path
    digest: str
    size: int
    diff_id: str


@dataclass(frozen=True)
class LayerEntry:
    """An extra entry: a directory (``link`` None) or a symlink, e.g. a mount point the pods need."""

    name: str
    mode: int = 0o755
    link: str | None = None


class _HashingWriter(io.RawIOBase):
    """Passes writes through to ``out`` and hashes them."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.sha.update(data)
        self.size += len(data)
        return self._out.write(data)


def _info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _walk(root: Path, rel: str = "") -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every entry under ``root``, depth first, sorted by name at each level."""
    with os.scandir(root / rel if rel else root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        name = f"{rel}/{entry.name}" if rel else entry.name
        yield name, entry
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(root, name)


def pack_layer(tree: Path, prefix: str, out: Path, *, extra: Sequence[LayerEntry] = (),
               symlinks: Mapping[str, str] | None = None, compresslevel: int = 6) -> PackedLayer:
    """Write ``tree`` as a layer placing it at ``prefix`` (e.g. ``opt/venv``) into the file ``out``.

    ``symlinks`` retargets symlinks inside the tree (keys relative to ``tree``),
    e.g. the venv's ``bin/python`` to the base image's interpreter. ``extra``
    adds directories or links outside the tree (their parents must exist in
    the base or be listed first). The parents of ``prefix`` are added as
    directories. Raises ``ValueError`` for a device, FIFO or socket in the tree.
    """
    prefix = prefix.strip("/")
    retarget = dict(symlinks or {})
    with open(out, "wb") as raw:
        compressed = _HashingWriter(raw)
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, compresslevel=compresslevel, mtime=0) as gz:
            uncompressed = _HashingWriter(gz)  # type: ignore[arg-type]
            with tarfile.open(fileobj=uncompressed, mode="w", format=tarfile.PAX_FORMAT) as tar:
                parts = prefix.split("/")
                for i in range(1, len(parts) + 1):
                    tar.addfile(_info("/".join(parts[:i]), tarfile.DIRTYPE, 0o755))
                for added in extra:
                    info = _info(added.name.strip("/"), tarfile.SYMTYPE if added.link else tarfile.DIRTYPE,
                                 0o777 if added.link else added.mode)
                    info.linkname = added.link or ""
                    tar.addfile(info)
                for rel, entry in _walk(tree):
                    name = f"{prefix}/{rel}"
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISLNK(st.st_mode):
                        info = _info(name, tarfile.SYMTYPE, 0o777)
                        info.linkname = retarget.pop(rel, "") or os.readlink(entry.path)
                        tar.addfile(info)
                    elif stat.S_ISDIR(st.st_mode):
                        tar.addfile(_info(name, tarfile.DIRTYPE, 0o755))
                    elif stat.S_ISREG(st.st_mode):
                        mode = 0o755 if st.st_mode & 0o111 else 0o644
                        with open(entry.path, "rb") as fh:
                            tar.addfile(_info(name, tarfile.REGTYPE, mode, st.st_size), fh)
                    else:
                        raise ValueError(f"{entry.path}: not a regular file, directory or symlink")
            gz.flush()
    if retarget:
        raise ValueError(f"symlinks to retarget not found in {tree}: {', '.join(sorted(retarget))}")
    return PackedLayer(out, "sha256:" + compressed.sha.hexdigest(), compressed.size,
                       "sha256:" + uncompressed.sha.hexdigest())
