"""A local cache of built dependency layers, so that a source-only change does not rebuild them.

The dependencies layer (every distribution of the venv but modelops-infra) is
keyed by what determines its bytes, :func:`dependencies_key`: the resolved
pins, the Python version and platform, the venv's path in the image, the base
interpreter its ``bin/python`` points at, the extra packages, the tools that
built it, the gzip level and :data:`LAYER_FORMAT`. Not by the checkout's
sources: editing a module keeps the key.

On disk (outside the repository), one directory per key, written to a
temporary name and renamed into place, so a reader sees a whole entry or none::

    <root>/<key>/layer.tar.gz     the gzip blob, as uploaded
    <root>/<key>/layer.json       {"digest", "size", "diff_id", "format"}

``root`` is ``$MODELOPS_IMAGE_LAYER_CACHE``, else
``${MODELOPS_TOOLS_CACHE:-~/.cache/modelops}/image-layers``. The last
:attr:`LayerCache.keep` entries used are kept; older ones are removed when an
entry is added. A cache that cannot be written only costs a rebuild next time:
it is logged, never raised.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from modelops_infra.bundles._digest import digest_file
from modelops_infra.infra.image._layer import PackedLayer

__all__ = ["LAYER_FORMAT", "LayerCache", "default_layer_cache_dir", "dependencies_key"]

log = logging.getLogger(__name__)

#: Bump when the way a dependencies layer is built or packed changes, so old entries are not reused.
LAYER_FORMAT = 1
_BLOB, _META = "layer.tar.gz", "layer.json"
_STALE_TMP_SECONDS = 3600.0


def default_layer_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where built dependency layers are kept (read at call time; see the module docstring)."""
    env = os.environ if environ is None else environ
    if env.get("MODELOPS_IMAGE_LAYER_CACHE"):
        return Path(env["MODELOPS_IMAGE_LAYER_CACHE"])
    root = env.get("MODELOPS_TOOLS_CACHE") or str(Path(env.get("HOME") or Path.home()) / ".cache" / "modelops")
    return Path(root) / "image-layers"


def dependencies_key(*, pins: Sequence[str], python_version: str, platform: str, venv: str, python_path: str,
                     extra_packages: Sequence[str], tools: str, compresslevel: int) -> str:
    """Hex sha256 naming a dependencies layer (pure): equal keys give byte-identical layers."""
    data = {
        "format": LAYER_FORMAT,
        "pins": sorted(pins),
        "python_version": python_version,
        "platform": platform,
        "venv": venv,
        "python_path": python_path,
        "extra_packages": list(extra_packages),
        "tools": tools,
        "compresslevel": compresslevel,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class LayerCache:
    """Built layers on local disk, by key. Safe between concurrent builds: entries appear by rename."""

    def __init__(self, root: Path, *, keep: int = 4) -> None:
        self.root = root
        self.keep = keep

    def get(self, key: str) -> PackedLayer | None:
        """The cached layer for ``key`` (its file inside the cache), or ``None``; marks it recently used.

        An entry whose description is unreadable or whose blob has the wrong
        size is removed and reported as a miss. The blob's digest is not
        re-hashed here: see :meth:`verify`.
        """
        entry = self.root / key
        try:
            text = (entry / _META).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None  # no entry (a missing blob beside a description is a broken entry, below)
        except OSError as exc:
            log.warning("image layer cache: cannot read %s (%s)", entry, exc)
            return None
        try:
            meta = json.loads(text)
            layer = PackedLayer(entry / _BLOB, str(meta["digest"]), int(meta["size"]), str(meta["diff_id"]))
            if meta.get("format") != LAYER_FORMAT or layer.path.stat().st_size != layer.size:
                raise ValueError("format or size mismatch")
            os.utime(entry)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("image layer cache: dropping broken entry %s (%s)", entry, exc)
            self.evict(key)
            return None
        return layer

    def verify(self, key: str, layer: PackedLayer) -> bool:
        """Whether the cached blob still hashes to its digest; a corrupt entry is removed."""
        try:
            ok = digest_file(layer.path) == (layer.digest, layer.size)
        except OSError:
            ok = False
        if not ok:
            log.warning("image layer cache: %s does not match %s; removed", layer.path, layer.digest)
            self.evict(key)
        return ok

    def put(self, key: str, layer: PackedLayer) -> None:
        """Keep a copy of ``layer`` under ``key``, then drop the least recently used entries beyond :attr:`keep`.

        Idempotent (an entry already there is kept). Never raises for I/O: a
        failure is logged and the build goes on without the cache.
        """
        if (self.root / key / _META).is_file():
            return
        tmp: Path | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
            shutil.copyfile(layer.path, tmp / _BLOB)
            meta = {"digest": layer.digest, "size": layer.size, "diff_id": layer.diff_id, "format": LAYER_FORMAT}
            (tmp / _META).write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")
            try:
                tmp.rename(self.root / key)
                tmp = None
            except OSError:
                if not (self.root / key / _META).is_file():  # not a concurrent build that won the race
                    raise
        except OSError as exc:
            log.warning("image layer cache: cannot keep layer %s in %s (%s); the next build rebuilds it",
                        layer.digest, self.root, exc)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        self.prune()

    def evict(self, key: str) -> None:
        shutil.rmtree(self.root / key, ignore_errors=True)

    def prune(self) -> None:
        """Remove all but the :attr:`keep` most recently used entries, and temporaries left by dead builds."""
        try:
            entries = [p for p in self.root.iterdir() if p.is_dir()]
        except OSError:
            return
        now = time.time()
        live: list[tuple[float, Path]] = []
        for path in entries:
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if path.name.startswith(".tmp-"):
                if now - mtime > _STALE_TMP_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            else:
                live.append((mtime, path))
        for _, path in sorted(live, reverse=True)[self.keep:]:
            shutil.rmtree(path, ignore_errors=True)
