"""High-level bundle operations: push, pull, inspect (compose pack + registry + cache)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelops_infra.bundles._cache import BundleCache, LocalBundle
from modelops_infra.bundles._oci import CODE_LAYER_MEDIA_TYPE, parse_oci_manifest
from modelops_infra.bundles._pack import DEFAULT_FILE_THRESHOLD, PackedBundle, pack_bundle
from modelops_infra.bundles._reference import Reference
from modelops_infra.bundles._registry import ProgressCallback, RegistryClient
from modelops_infra.bundles._settings import BundleSettings
from modelops_infra.errors import ConfigurationError, IntegrityError

__all__ = ["PushResult", "inspect_bundle", "pull_bundle", "push_bundle", "push_packed", "resolve_reference"]


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


def push_bundle(path: Path | str, registry: str, repository: str | None = None, *, tag: str | None = None,
                settings: BundleSettings | None = None, progress: ProgressCallback | None = None,
                file_threshold: int = DEFAULT_FILE_THRESHOLD) -> PushResult:
    """Validate, pack and push the bundle at ``path``. Idempotent: a re-push uploads no blob bytes.

    Raises :class:`~modelops_infra.errors.BundleValidationError` before any
    network I/O if the bundle is invalid.
    """
    settings = settings or BundleSettings.from_env()
    packed = pack_bundle(path, file_threshold=file_threshold, memo_dir=settings.memo_dir)
    with _client_for(registry, settings) as client:
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
                progress: ProgressCallback | None = None) -> LocalBundle:
    """Fetch (verified, through the cache) and copy the bundle tree to ``dest``, which must not exist."""
    settings = settings or BundleSettings.from_env()
    pinned = resolve_reference(ref, settings=settings)
    assert pinned.registry is not None and pinned.digest is not None
    target = Path(dest)
    if target.exists() and any(target.iterdir()):
        raise ConfigurationError(f"--dest {target} exists and is not empty")
    cache = BundleCache(settings.cache_dir, max_bytes=settings.cache_max_bytes,
                        max_extract_bytes=settings.max_extract_bytes)
    with _client_for(pinned.registry, settings) as client:
        local, _ = cache.ensure(pinned.repository, pinned.digest, client=client, progress=progress)
    shutil.copytree(local.path, target, symlinks=True, dirs_exist_ok=True)
    return local


#: Most bytes of a bundle config ``inspect`` reads into memory (a bundle's manifest.json fields).
INSPECT_MAX_CONFIG = 1024 * 1024
#: Most bytes of the code layer ``inspect`` keeps in memory; the rest spools to a temp file.
INSPECT_SPOOL_BYTES = 8 * 1024 * 1024


def inspect_bundle(ref: Reference | str, *, settings: BundleSettings | None = None) -> dict[str, Any]:
    """Manifest, annotations, layers and every file (with sizes) of a pushed bundle.

    Downloads (and verifies) only the config and the small code layer; large
    file layers are listed from the manifest. Memory is bounded: the config may
    be at most :data:`INSPECT_MAX_CONFIG` bytes, and the code layer (at most
    ``settings.max_extract_bytes``) spools to a temp file past
    :data:`INSPECT_SPOOL_BYTES`.

    Raises :class:`IntegrityError` naming the reference when it is not a bundle
    (an image index, another artifact type) or its config or code layer is malformed.
    """
    import io
    import json
    import tarfile
    import tempfile

    from modelops_infra.bundles._oci import ARTIFACT_TYPE, CONFIG_MEDIA_TYPE

    settings = settings or BundleSettings.from_env()
    pinned = resolve_reference(ref, settings=settings)
    assert pinned.registry is not None and pinned.digest is not None
    where = f"{pinned.registry}/{pinned.repository}@{pinned.digest}"
    files: list[dict[str, Any]] = []
    with _client_for(pinned.registry, settings) as client:
        raw, media_type = client.get_manifest(pinned.repository, pinned.digest)
        try:
            parsed = parse_oci_manifest(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"{where} is not a modelops bundle manifest ({exc})",
                                 hint="inspect takes a bundle pushed with mops bundle push") from exc
        if parsed.artifact_type not in (None, ARTIFACT_TYPE) or parsed.config.media_type != CONFIG_MEDIA_TYPE:
            raise IntegrityError(f"{where} is not a modelops bundle (artifactType {parsed.artifact_type!r},"
                                 f" config {parsed.config.media_type!r})",
                                 hint="inspect takes a bundle pushed with mops bundle push")
        if parsed.config.size > INSPECT_MAX_CONFIG:
            raise IntegrityError(f"{where}: config blob {parsed.config.digest} declares {parsed.config.size} bytes,"
                                 f" more than the {INSPECT_MAX_CONFIG} a bundle config may have")
        config = io.BytesIO()
        client.download_blob(pinned.repository, parsed.config.digest, parsed.config.size, config)
        try:
            bundle = json.loads(config.getvalue())
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"{where}: config blob {parsed.config.digest} is not JSON ({exc})") from exc
        for layer in parsed.layers:
            if layer.media_type == CODE_LAYER_MEDIA_TYPE:
                if layer.size > settings.max_extract_bytes:
                    raise IntegrityError(f"{where}: code layer {layer.digest} declares {layer.size} bytes, over the"
                                         f" extraction limit of {settings.max_extract_bytes}",
                                         hint="MODELOPS_BUNDLE_MAX_EXTRACT_BYTES raises the limit")
                with tempfile.SpooledTemporaryFile(max_size=INSPECT_SPOOL_BYTES) as code:
                    client.download_blob(pinned.repository, layer.digest, layer.size, code)
                    code.seek(0)
                    try:
                        with tarfile.open(fileobj=code, mode="r:") as tar:
                            files += [{"path": m.name, "size": m.size, "layer": "code"} for m in tar if not m.isdir()]
                    except tarfile.TarError as exc:
                        raise IntegrityError(f"{where}: code layer {layer.digest} is not a tar archive ({exc})") from exc
            else:
                files.append({"path": layer.title or layer.digest, "size": layer.size, "layer": layer.digest})
    return {
        "reference": str(pinned),
        "mediaType": media_type,
        "artifactType": parsed.artifact_type,
        "annotations": parsed.annotations,
        "bundle": bundle,
        "layers": [{"mediaType": l.media_type, "digest": l.digest, "size": l.size, "title": l.title}
                   for l in parsed.layers],
        "files": sorted(files, key=lambda f: f["path"]),
        "total_bytes": sum(l.size for l in parsed.layers) + parsed.config.size,
    }
