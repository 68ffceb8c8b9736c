"""High-level bundle operations: push, pull, inspect (compose pack + registry + cache)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelops_infra.bundles._cache import BundleCache, LocalBundle
from modelops_infra.bundles._envbuild import BuildOptions, download_wheels
from modelops_infra.bundles._envspec import ENVIRONMENT_FILES, PythonTarget, environment_key, find_environment
from modelops_infra.bundles._layout import BundleLayout, CodeLayer, WheelLayer
from modelops_infra.bundles._pack import DEFAULT_FILE_THRESHOLD, PackedBundle, pack_bundle
from modelops_infra.bundles._reference import Reference
from modelops_infra.bundles._registry import ProgressCallback, RegistryClient
from modelops_infra.bundles._settings import BundleSettings
from modelops_infra.bundles._validate import require_valid_bundle, tool_dirs
from modelops_infra.errors import BundleValidationError, ConfigurationError, IntegrityError

__all__ = ["PushResult", "WheelTarget", "inspect_bundle", "packed_bundle", "pull_bundle", "push_bundle", "push_packed", "resolve_reference"]


@dataclass(frozen=True)
class PushResult:
    """What a push did. ``reference`` is pinned: ``registry/repository@sha256:...``."""

    reference: Reference
    digest: str
    bytes_uploaded: int
    blobs_uploaded: int
    blobs_skipped: int
    total_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference), "digest": self.digest, "bytes_uploaded": self.bytes_uploaded,
            "blobs_uploaded": self.blobs_uploaded, "blobs_skipped": self.blobs_skipped, "total_bytes": self.total_bytes,
        }


def _client_for(registry: str, settings: BundleSettings) -> RegistryClient:
    return RegistryClient.from_settings(settings, registry)


def push_packed(client: RegistryClient, packed: PackedBundle, repository: str, *, tag: str | None = None,
                progress: ProgressCallback | None = None) -> PushResult:
    """Upload a packed bundle's blobs (skipping ones present), then its manifest."""
    before_bytes, before_skipped = client.bytes_uploaded, client.blobs_skipped
    uploaded = sum(1 for blob in packed.blobs if client.upload_blob(repository, blob, progress))
    digest = client.put_manifest(repository, tag or packed.digest, packed.manifest_bytes)
    if digest != packed.digest:
        raise IntegrityError(f"registry {client.registry} stored {repository} as {digest}, packed as {packed.digest}")
    return PushResult(
        reference=Reference(client.registry, repository, digest=digest),
        digest=digest,
        bytes_uploaded=client.bytes_uploaded - before_bytes,
        blobs_uploaded=uploaded,
        blobs_skipped=client.blobs_skipped - before_skipped,
        total_bytes=packed.total_size,
    )


@dataclass(frozen=True)
class WheelTarget:
    """The workers' interpreter, for which ``push --wheels`` resolves wheels."""

    python_version: str = f"{sys.version_info.major}.{sys.version_info.minor}"
    platform: str = "manylinux_2_28_x86_64"
    index_url: str | None = None


@contextlib.contextmanager
def packed_bundle(path: Path | str, *, settings: BundleSettings, wheels: bool | WheelTarget = False,
                  file_threshold: int = DEFAULT_FILE_THRESHOLD) -> Iterator[PackedBundle]:
    """Pack the bundle at ``path``; with ``wheels`` (or ``"wheels": true`` in its manifest) also resolve and
    download its environment's wheels for the workers, as layers. Downloads live only inside the block.

    Raises :class:`~modelops_infra.errors.BundleValidationError` before any
    network I/O if the bundle is invalid, and
    :class:`~modelops_infra.errors.RequirementsError` naming a requirement
    that has no wheel for the workers' Python and platform.
    """
    exclude = tool_dirs(settings)
    manifest = require_valid_bundle(path, exclude=exclude)
    target = wheels if isinstance(wheels, WheelTarget) else WheelTarget() if (wheels or manifest.wheels) else None
    if target is None:
        yield pack_bundle(path, file_threshold=file_threshold, memo_dir=settings.memo_dir, exclude=exclude)
        return
    spec, _ = find_environment(Path(path))
    if spec is None:
        raise BundleValidationError(f"bundle {path} asks for its wheels to be shipped, but declares no environment"
                                    " (requirements.txt, pylock.toml or uv.lock)", path=str(path))
    with tempfile.TemporaryDirectory(prefix="modelops-wheels-") as tmp:
        files = download_wheels(spec, Path(tmp) / "wheels", Path(tmp) / "work", python_version=target.python_version,
                                platform=target.platform,
                                index_url=target.index_url or BuildOptions.from_env().index_url)
        yield pack_bundle(path, file_threshold=file_threshold, memo_dir=settings.memo_dir, wheels=files,
                          exclude=exclude)


def push_bundle(path: Path | str, registry: str, repository: str | None = None, *, tag: str | None = None,
                settings: BundleSettings | None = None, progress: ProgressCallback | None = None,
                file_threshold: int = DEFAULT_FILE_THRESHOLD, wheels: bool | WheelTarget = False) -> PushResult:
    """Validate, pack and push the bundle at ``path``. Idempotent: a re-push uploads no blob bytes.

    With ``wheels`` (see :func:`packed_bundle`) the environment's wheels are
    pushed too, each as its own blob, so a wheel shared by bundles is stored once.

    Raises :class:`~modelops_infra.errors.BundleValidationError` before any
    network I/O if the bundle is invalid.
    """
    settings = settings or BundleSettings.from_env()
    with packed_bundle(path, settings=settings, wheels=wheels, file_threshold=file_threshold) as packed, \
            _client_for(registry, settings) as client:
        return push_packed(client, packed, repository or settings.repository, tag=tag, progress=progress)


def resolve_reference(ref: Reference | str, *, settings: BundleSettings | None = None,
                      client: RegistryClient | None = None) -> Reference:
    """Pin a reference: resolve its tag to a digest on the client. A pinned ref is returned unchanged."""
    settings = settings or BundleSettings.from_env()
    parsed = Reference.parse(ref, default_registry=settings.registry) if isinstance(ref, str) else ref
    if parsed.pinned:
        return parsed
    if parsed.registry is None:
        raise ConfigurationError(f"bundle reference {str(parsed)!r} names no registry",
                                 hint="use registry/repository:tag or set MODELOPS_BUNDLE_REGISTRY")
    owned = client is None
    client = client or _client_for(parsed.registry, settings)
    try:
        return parsed.with_digest(client.resolve(parsed.repository, parsed.tag or "latest"))
    finally:
        if owned:
            client.close()


def pull_bundle(ref: Reference | str, dest: Path | str, *, settings: BundleSettings | None = None,
                progress: ProgressCallback | None = None, verify: bool = False) -> LocalBundle:
    """Fetch (verified, through the cache) and copy the bundle tree to ``dest``, which must be absent or empty.

    The cache entry is leased while it is copied, so another process's eviction
    cannot remove it half-way. The copy is writable (``0644``/``0755``) and holds
    no ``__pycache__``. With ``verify`` every cached file is hashed again first
    (not only checked by size and mtime); a broken entry is fetched again.
    """
    settings = settings or BundleSettings.from_env()
    pinned = resolve_reference(ref, settings=settings)
    assert pinned.registry is not None and pinned.digest is not None
    target = Path(dest)
    if target.exists() and any(target.iterdir()):
        raise ConfigurationError(f"--dest {target} exists and is not empty")
    cache = BundleCache(settings.cache_dir, max_bytes=settings.cache_max_bytes,
                        max_extract_bytes=settings.max_extract_bytes)
    with _client_for(pinned.registry, settings) as client:
        local, lease = cache.ensure_leased(pinned.repository, pinned.digest, client=client, progress=progress,
                                           rehash=verify)
    with lease:
        _copy_tree(local.path, target)
    return local


def _copy_tree(src: Path, dest: Path) -> None:
    """Copy a cached (read-only) tree to ``dest`` with writable modes, links as links, no ``__pycache__``."""
    dest.mkdir(parents=True, exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        out = dest / Path(dirpath).relative_to(src)
        for name in (*dirnames, *filenames):
            source, target = Path(dirpath, name), out / name
            if source.is_symlink():  # os.walk does not descend into a link to a directory either
                os.symlink(os.readlink(source), target)
            elif source.is_dir():
                target.mkdir(0o755)
            else:
                shutil.copyfile(source, target, follow_symlinks=False)
                os.chmod(target, 0o755 if source.lstat().st_mode & 0o111 else 0o644)


_ENV_FILE_NAMES = frozenset({*ENVIRONMENT_FILES, "pyproject.toml"})
_ENV_FILE_CAP = 16 * 1024**2


def _environment_summary(env_files: dict[str, bytes], wheel_digests: list[str],
                         target: PythonTarget | None = None) -> dict[str, Any] | None:
    """The declared environment of a pushed bundle and its key for ``target`` (default: this interpreter)."""
    if not env_files.keys() & set(ENVIRONMENT_FILES):
        return None
    with tempfile.TemporaryDirectory(prefix="modelops-inspect-") as tmp:
        for name, data in env_files.items():
            (Path(tmp) / name).write_bytes(data)
        spec, problems = find_environment(Path(tmp))
    if spec is None:
        return {"problems": [p.replace(tmp + "/", "").replace(tmp, "bundle") for p in problems]}
    target = target or PythonTarget.current()
    return {"file": spec.source, "kind": spec.kind, "pins": list(spec.pins), "python": str(target),
            "key": environment_key(spec, target, wheel_digests), "wheels": len(wheel_digests)}


#: Most bytes of a bundle config ``inspect`` reads into memory (a bundle's manifest.json fields).
INSPECT_MAX_CONFIG = 1024 * 1024
#: Most bytes of the code layer ``inspect`` keeps in memory; the rest spools to a temp file.
INSPECT_SPOOL_BYTES = 8 * 1024 * 1024


def inspect_bundle(ref: Reference | str, *, settings: BundleSettings | None = None,
                   target: PythonTarget | None = None) -> dict[str, Any]:
    """Manifest, annotations, layers and every file (with sizes) of a pushed bundle.

    Downloads (and verifies) only the config and the small code layer; large
    file layers are listed from the manifest. Memory is bounded: the config may
    be at most :data:`INSPECT_MAX_CONFIG` bytes, and the code layer (at most
    ``settings.max_extract_bytes``) spools to a temp file past
    :data:`INSPECT_SPOOL_BYTES`.

    Raises :class:`IntegrityError` naming the reference when it is not a bundle
    (an image index, another artifact type) or its config or code layer is malformed.
    The environment's key is computed for ``target`` (:meth:`PythonTarget.of`; default: this interpreter).
    """
    import io
    import json
    import tarfile
    import tempfile


    settings = settings or BundleSettings.from_env()
    pinned = resolve_reference(ref, settings=settings)
    assert pinned.registry is not None and pinned.digest is not None
    where = f"{pinned.registry}/{pinned.repository}@{pinned.digest}"
    files: list[dict[str, Any]] = []
    wheels: list[dict[str, Any]] = []
    env_files: dict[str, bytes] = {}
    with _client_for(pinned.registry, settings) as client:
        raw, media_type = client.get_manifest(pinned.repository, pinned.digest)
        layout = BundleLayout.from_manifest(raw, source=where)
        if layout.config.size > INSPECT_MAX_CONFIG:
            raise IntegrityError(f"{where}: config blob {layout.config.digest} declares {layout.config.size} bytes,"
                                 f" more than the {INSPECT_MAX_CONFIG} a bundle config may have")
        config = io.BytesIO()
        client.download_blob(pinned.repository, layout.config.digest, layout.config.size, config)
        try:
            bundle = json.loads(config.getvalue())
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"{where}: config blob {layout.config.digest} is not JSON ({exc})") from exc
        for entry in layout.layers:
            layer = entry.descriptor
            if isinstance(entry, CodeLayer):
                if layer.size > settings.max_extract_bytes:
                    raise IntegrityError(f"{where}: code layer {layer.digest} declares {layer.size} bytes, over the"
                                         f" extraction limit of {settings.max_extract_bytes}",
                                         hint="MODELOPS_BUNDLE_MAX_EXTRACT_BYTES raises the limit")
                with tempfile.SpooledTemporaryFile(max_size=INSPECT_SPOOL_BYTES) as code:
                    client.download_blob(pinned.repository, layer.digest, layer.size, code)
                    code.seek(0)
                    try:
                        with tarfile.open(fileobj=code, mode="r:") as tar:
                            for member in tar:
                                if member.isdir():
                                    continue
                                files.append({"path": member.name, "size": member.size, "layer": "code"})
                                if member.name in _ENV_FILE_NAMES and member.isfile() and member.size <= _ENV_FILE_CAP:
                                    handle = tar.extractfile(member)
                                    if handle is not None:
                                        env_files[member.name] = handle.read()
                    except tarfile.TarError as exc:
                        raise IntegrityError(f"{where}: code layer {layer.digest} is not a tar archive ({exc})") from exc
            elif isinstance(entry, WheelLayer):
                wheels.append({"file": layer.title, "digest": layer.digest, "size": layer.size})
            else:
                files.append({"path": layer.title or layer.digest, "size": layer.size, "layer": layer.digest})
    return {
        "reference": str(pinned),
        "mediaType": media_type,
        "artifactType": layout.artifact_type,
        "annotations": layout.annotations,
        "bundle": bundle,
        "layers": [{"mediaType": d.media_type, "digest": d.digest, "size": d.size, "title": d.title}
                   for d in layout.descriptors],
        "files": sorted(files, key=lambda f: f["path"]),
        "environment": _environment_summary(env_files, [w["digest"] for w in wheels], target),
        "wheels": wheels,
        "total_bytes": layout.total_size,
    }
