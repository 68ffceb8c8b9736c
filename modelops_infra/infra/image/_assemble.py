"""Assemble the worker image without a container daemon: base layers + two venv layers, pushed by digest.

::

    base image (any registry)          target registry/repository
    ──────────────────────────         ─────────────────────────────────────────
    index ─► linux/amd64 manifest ─►   base layers: skipped if present, else
             config (Python found)     cross-mounted (same registry) or copied
                                       + dependencies layer: /opt/venv less modelops-infra
                                         (local cache, keyed by the resolved pins)
                                       + worker-install layer: modelops-infra's files
                                         in /opt/venv (+ the bundle cache's mount point)
                                       + config (Env, User 1000:1000, WorkingDir, Cmd)
                                       + OCI manifest  ─►  registry/repo@sha256:…

The venv is split so that a source edit is cheap: the dependencies layer
(tens of MB) changes only when the resolved dependencies, the Python, the base
interpreter or the extra packages do, and is then taken from
:class:`~._layercache.LayerCache` instead of being installed and packed again;
its blob, already in the target, is not uploaded. Only the worker-install
layer (under a MB) is rebuilt and uploaded, with the config and the manifest.

All registry I/O goes through :class:`~modelops_infra.bundles.RegistryClient`,
so a push to ACR uses the deployer's Entra ID token exchange, with no admin user.
The same base and the same install give the same digest, whether or not the
layer cache held the dependencies: both layers are packed reproducibly and no
wall-clock time goes into config or manifest. A second build of an unchanged
install uploads nothing.

Errors are :class:`~modelops_infra.errors.ImageBuildError`, with ``stage``
(base, python, install, layer, push) and ``input`` naming what to fix.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelops_infra.bundles._auth import BasicCredentials
from modelops_infra.bundles._digest import digest_bytes, digest_hex
from modelops_infra.bundles._oci import Descriptor
from modelops_infra.bundles._pack import BlobSource
from modelops_infra.bundles._reference import Reference
from modelops_infra.bundles._registry import RegistryClient
from modelops_infra.errors import ImageBuildError, IntegrityError, ModelOpsError, RegistryError
from modelops_infra.infra.image._layer import LayerEntry, PackedLayer, pack_layer
from modelops_infra.infra.image._layercache import LayerCache, default_layer_cache_dir, dependencies_key
from modelops_infra.infra.image._manifests import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    ImageManifest,
    ImageSettings,
    PythonInstall,
    is_index,
    oci_layer,
    parse_base,
    parse_image_manifest,
    platforms_of_index,
    python_from_env,
    python_from_path,
    select_platform,
    worker_config,
    worker_manifest,
)
from modelops_infra.infra.image._venv import (
    PYTHON_PLATFORM,
    WorkerInstall,
    build_dependencies,
    build_wheel,
    find_build_python,
    install_worker,
    resolve_dependencies,
    tools_identity,
)

__all__ = ["BaseImage", "BuiltImage", "build_worker_image", "resolve_base",
           "resolve_base_digest"]

log = logging.getLogger(__name__)
ClientFactory = Callable[[str, BasicCredentials | None], RegistryClient]


def _client(registry: str, credentials: BasicCredentials | None) -> RegistryClient:
    return RegistryClient(registry, credentials=credentials, timeout=120.0)  # docker.io: see RegistryHost.api_netloc


@dataclass(frozen=True)
class BaseImage:
    """The linux/amd64 image a base reference names, and the Python in it."""

    reference: Reference
    digest: str  # of the platform manifest (not of an index)
    manifest: ImageManifest
    config: dict[str, Any]
    python: PythonInstall


@dataclass(frozen=True)
class BuiltImage:
    """Result of :func:`build_worker_image`. ``image_ref`` is ``registry/repo@sha256:…``."""

    image_ref: str
    digest: str
    base_digest: str
    python_version: str
    install_hash: str
    layer_digest: str  # the worker-install layer (modelops-infra's own files), the top one
    layer_size: int
    dependencies_layer_digest: str  # the layer below it: every other distribution of the venv
    dependencies_layer_size: int
    dependencies_cached: bool  # taken from the local layer cache: the dependencies were not installed
    bytes_uploaded: int
    blobs_uploaded: int
    blobs_mounted: int
    timings: dict[str, float] = field(default_factory=dict)


def _base_error(base: str, exc: ModelOpsError, what: str) -> ImageBuildError:
    return ImageBuildError(f"base image {base}: {what}: {exc.message}", hint=exc.hint, stage="base",
                           input="base_image")


def _fetch_platform_manifest(client: RegistryClient, ref: Reference, base: str) -> tuple[str, ImageManifest]:
    raw, media_type = client.get_image_manifest(ref.repository, ref.digest or ref.tag or "latest")
    data = json.loads(raw)
    if is_index(media_type, data):
        digest = select_platform(data)
        if digest is None:
            platforms = ", ".join(platforms_of_index(data)) or "none"
            raise ImageBuildError(f"base image {base} has no linux/amd64 image (it has: {platforms})",
                                  hint="choose a base image published for linux/amd64", stage="base",
                                  input="base_image")
        raw, media_type = client.get_image_manifest(ref.repository, digest)
    try:
        return digest_bytes(raw), parse_image_manifest(raw, media_type)
    except ValueError as exc:
        raise ImageBuildError(f"base image {base}: {exc}", stage="base", input="base_image") from None


def _download(client: RegistryClient, repository: str, desc: Descriptor, blobs: Path) -> Path:
    path = blobs / digest_hex(desc.digest)
    if not path.exists():
        partial = path.with_suffix(".partial")
        with open(partial, "wb") as out:
            client.download_blob(repository, desc.digest, desc.size, out)
        partial.rename(path)
    return path


def _python_in_layers(client: RegistryClient, ref: Reference, manifest: ImageManifest, blobs: Path) -> \
        PythonInstall | None:
    """Look for an interpreter in the layers, top layer first (preferring ``/usr/local/bin``)."""
    for desc in reversed(manifest.layers):
        path = _download(client, ref.repository, desc, blobs)
        found: list[PythonInstall] = []
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                hit = python_from_path(member.name)
                if hit is not None:
                    found.append(hit)
        if found:
            found.sort(key=lambda p: (p.path.startswith("/usr/local/"), tuple(map(int, p.version.split(".")))))
            return found[-1]
    return None


def resolve_base_digest(base: str, ref: Reference, client: RegistryClient) -> str:
    """The digest of the base's linux/amd64 manifest (manifests only, no layers); errors as :func:`resolve_base`."""
    try:
        return _fetch_platform_manifest(client, ref, base)[0]
    except (RegistryError, IntegrityError) as exc:
        raise _base_error(base, exc, "cannot fetch it") from exc


def resolve_base(base: str, client: RegistryClient, blobs: Path) -> BaseImage:
    """Fetch the base's linux/amd64 manifest and config, and find its Python.

    Layers are downloaded (verified, into ``blobs``) only when the config does
    not say which Python it holds. Raises :class:`ImageBuildError` (stage
    ``base``) naming ``base`` for an unreachable registry, a missing image, a
    base without linux/amd64 or without Python.
    """
    ref = parse_base(base)
    try:
        digest, manifest = _fetch_platform_manifest(client, ref, base)
        config_raw = io.BytesIO()
        client.download_blob(ref.repository, manifest.config.digest, manifest.config.size, config_raw)
        config = json.loads(config_raw.getvalue())
        if (config.get("os"), config.get("architecture")) != ("linux", "amd64"):
            raise ImageBuildError(f"base image {base} is for {config.get('os')}/{config.get('architecture')}, "
                                  "not linux/amd64", stage="base", input="base_image")
        python = python_from_env((config.get("config") or {}).get("Env") or []) or \
            _python_in_layers(client, ref, manifest, blobs)
    except (RegistryError, IntegrityError) as exc:
        raise _base_error(base, exc, "cannot fetch it") from exc
    if python is None:
        raise ImageBuildError(f"base image {base} has no Python interpreter (looked for /usr/local/bin/python3.N "
                              "and /usr/bin/python3.N)", stage="python", input="base_image")
    return BaseImage(ref.with_digest(digest), digest, manifest, config, python)


def _copy_base_layers(base: BaseImage, base_client: RegistryClient, target: RegistryClient, repository: str,
                      blobs: Path) -> tuple[int, int]:
    """Make every base layer present in the target repository; returns (mounted, copied)."""
    mounted = copied = 0
    same_registry = base_client.host.api_netloc == target.host.api_netloc
    for desc in base.manifest.layers:
        if target.blob_exists(repository, desc.digest):
            continue
        if same_registry and target.mount_blob(repository, desc.digest, base.reference.repository):
            mounted += 1
            continue
        path = _download(base_client, base.reference.repository, desc, blobs)
        target.upload_blob(repository, BlobSource(oci_layer(desc), path=path))
        copied += 1
    return mounted, copied


def _claim(cache: LayerCache, key: str, layer: PackedLayer, dest: Path) -> PackedLayer | None:
    """``layer`` from the cache, verified and hard-linked (else copied) to ``dest``; ``None`` if it is gone or corrupt."""
    if not cache.verify(key, layer):
        return None
    try:
        try:
            os.link(layer.path, dest)
        except OSError:
            shutil.copyfile(layer.path, dest)
    except OSError as exc:
        log.info("image layer cache: entry %s went away (%s); rebuilding the layer", key, exc)
        return None
    return dataclasses.replace(layer, path=dest)


def _retarget_venv(venv: Path, python: PythonInstall) -> dict[str, str]:
    """Point the venv at the image's interpreter: ``pyvenv.cfg`` home, and the ``bin/python`` link."""
    cfg = venv / "pyvenv.cfg"
    lines = [f"home = {python.home}" if ln.startswith("home =") else ln for ln in cfg.read_text().splitlines()]
    cfg.write_text("\n".join(lines) + "\n")
    return {"bin/python": python.path}


@dataclass(frozen=True)
class _VenvLayers:
    """The venv as two packed layers, and where the first came from."""

    dependencies: PackedLayer
    dependencies_created_by: str
    worker: PackedLayer
    worker_created_by: str
    cached: bool  # the dependencies layer came from the local cache: their venv was not built


def _venv_layers(install: WorkerInstall, wheel: Path, python: PythonInstall, work: Path, cache: LayerCache,
                 in_target: Callable[[str], bool], pool: Executor, *, build_python: str, python_version: str,
                 settings: ImageSettings, compresslevel: int, lap: Callable[[str], None]) -> _VenvLayers:
    """Build (or take from ``cache``) the dependencies layer, and build the worker-install layer from ``wheel``.

    The dependencies are resolved (in ``pool``) while the wheel is installed on
    its own. A cached dependencies layer whose blob the target lacks is
    re-hashed before it is used (it will be uploaded from the cache); a corrupt
    one is rebuilt. Timings: ``worker_install``, ``resolve`` (the wait for it),
    ``dependencies`` and ``dependencies_layer`` (only when built), ``layer``.
    """
    resolving = pool.submit(resolve_dependencies, install, wheel, work, python=build_python,
                            python_version=python_version)
    tree = work / "worker"
    install_worker(install, wheel, tree, work, python=build_python, python_version=python_version,
                   image_venv=settings.venv)
    lap("worker_install")
    pins = resolving.result()
    key = dependencies_key(pins=pins, python_version=python_version, platform=PYTHON_PLATFORM, venv=settings.venv,
                           python_path=python.path, extra_packages=install.extra_packages,
                           tools=tools_identity(build_python), compresslevel=compresslevel)
    lap("resolve")
    dependencies = cache.get(key)
    if dependencies is not None and not in_target(dependencies.digest):
        # to be uploaded from the cache: checked, then linked into the work directory, so another
        # build pruning the cache meanwhile cannot take the file away mid-upload
        dependencies = _claim(cache, key, dependencies, work / "dependencies.tar.gz")
    cached = dependencies is not None
    if dependencies is None:
        venv = work / "venv"
        build_dependencies(install, pins, venv, work, python=build_python, python_version=python_version,
                           image_venv=settings.venv)
        lap("dependencies")
        try:
            dependencies = pack_layer(venv, settings.venv, work / "dependencies.tar.gz",
                                      symlinks=_retarget_venv(venv, python), compresslevel=compresslevel)
        except (OSError, ValueError) as exc:
            raise ImageBuildError(f"packing the worker's dependencies layer failed: {exc}", stage="layer",
                                  input="extra_packages") from exc
        shutil.rmtree(venv)
        cache.put(key, dependencies)
        lap("dependencies_layer")
    cache_parts = settings.bundle_cache_dir.strip("/").split("/")
    mount_points = [LayerEntry("/".join(cache_parts[:i])) for i in range(1, len(cache_parts) + 1)]
    try:
        worker = pack_layer(tree, settings.venv, work / "worker.tar.gz", extra=mount_points,
                            compresslevel=compresslevel)
    except (OSError, ValueError) as exc:
        raise ImageBuildError(f"packing the worker-install layer failed: {exc}", stage="layer",
                              input="checkout") from exc
    shutil.rmtree(tree)
    lap("layer")
    extras = f"[{','.join(install.extras)}]" if install.extras else ""
    wanted = " ".join(install.requirements(Path("/src/modelops-infra.whl"))[1:])
    return _VenvLayers(
        dependencies=dependencies,
        dependencies_created_by=f"uv pip install --no-deps into {settings.venv} (relocatable): the {len(pins)} "
                                f"pinned dependencies of modelops-infra{extras} {wanted}",
        worker=worker,
        worker_created_by=f"uv pip install --no-deps modelops-infra{extras} (the checkout's wheel) into {settings.venv}",
        cached=cached,
    )


def build_worker_image(
    base: str,
    target: str,
    install: WorkerInstall,
    *,
    python_version: str | None = None,
    tag: str | None = None,
    base_credentials: BasicCredentials | None = None,
    target_credentials: BasicCredentials | None = None,
    settings: ImageSettings | None = None,
    work_dir: Path | None = None,
    compresslevel: int = 6,
    layer_cache: Path | None = None,
    client_factory: ClientFactory = _client,
) -> BuiltImage:
    """Build the worker image from ``base`` and push it to ``target`` (``registry/repository``).

    ``python_version`` (``major.minor``) defaults to this interpreter's: the
    workers must run the clients' Python, because Dask pickles code between
    them. ``tag``, if given, also names the manifest (the result is always
    referenced by digest).

    ``layer_cache`` is the directory of built dependency layers (default:
    :func:`~._layercache.default_layer_cache_dir`, read at call time). A hit
    skips installing the dependencies; the result is the same image.

    Idempotent: an unchanged base and install give the same digest, and nothing
    is uploaded when the target already holds it. Leaves nothing on disk but
    the layer cache's entry (its work directory is removed); on failure the
    target may hold some blobs, which the next build reuses. Raises
    :class:`ImageBuildError`. ``BuiltImage.timings`` has one entry per step
    (``base``, ``base_layers``, ``wheel`` (the wait for the wheel, built
    meanwhile), ``worker_install``, ``resolve``, ``dependencies`` and
    ``dependencies_layer`` only when the dependencies were built, ``layer``, ``push``).
    """
    settings = settings or ImageSettings()
    python_version = python_version or "%d.%d" % sys.version_info[:2]
    try:
        target_ref = Reference.parse(target)
    except ModelOpsError as exc:
        raise ImageBuildError(f"target {target!r} is not registry/repository: {exc.message}", stage="push",
                              input="target") from exc
    if target_ref.registry is None or target_ref.tag or target_ref.digest:
        raise ImageBuildError(f"target {target!r} must be registry/repository (no tag or digest)", stage="push",
                              input="target")
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    work = Path(tempfile.mkdtemp(prefix="modelops-image-", dir=work_dir))
    blobs = work / "blobs"
    blobs.mkdir()
    base_registry = parse_base(base).registry
    assert base_registry is not None
    try:
        build_python = find_build_python(python_version)
        # pool.__exit__ (last) waits for a job still running, so the work directory outlives it.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelops-image") as pool, \
                client_factory(base_registry, base_credentials) as base_client, \
                client_factory(target_ref.registry, target_credentials) as target_client:
            # The wheel builds while the base is fetched and its layers copied: neither needs the other.
            building = pool.submit(build_wheel, install, work, python=build_python)
            image = resolve_base(base, base_client, blobs)
            lap("base")
            if image.python.version != python_version:
                raise ImageBuildError(
                    f"base image {base} has Python {image.python.version} ({image.python.path}), but the workers "
                    f"must run Python {python_version}, the clients' version",
                    hint=f"choose a base image with Python {python_version}", stage="python", input="base_image",
                )
            install_hash = install.content_hash(python_version)
            repo = target_ref.repository
            uploaded_before = target_client.bytes_uploaded
            try:
                mounted, copied = _copy_base_layers(image, base_client, target_client, repo, blobs)
            except (RegistryError, IntegrityError) as exc:
                raise ImageBuildError(f"copying the layers of base image {base} to {target}: {exc.message}",
                                      stage="push", input="target") from exc
            lap("base_layers")

            def in_target(digest: str) -> bool:
                try:
                    return target_client.blob_exists(repo, digest)
                except (RegistryError, IntegrityError) as exc:
                    raise ImageBuildError(f"checking {target} for blob {digest}: {exc.message}", stage="push",
                                          input="target") from exc

            wheel = building.result()
            lap("wheel")
            layers = _venv_layers(install, wheel, image.python, work,
                                  LayerCache(layer_cache or default_layer_cache_dir()), in_target, pool,
                                  build_python=build_python, python_version=python_version, settings=settings,
                                  compresslevel=compresslevel, lap=lap)
            config_raw = worker_config(image.config, settings=settings, layers=[
                (layers.dependencies.diff_id, layers.dependencies_created_by),
                (layers.worker.diff_id, layers.worker_created_by),
            ])
            config = Descriptor(OCI_CONFIG, digest_bytes(config_raw), len(config_raw))
            dependencies_desc = Descriptor(OCI_LAYER_GZIP, layers.dependencies.digest, layers.dependencies.size)
            worker_desc = Descriptor(OCI_LAYER_GZIP, layers.worker.digest, layers.worker.size)
            manifest_layers = [*(oci_layer(d) for d in image.manifest.layers), dependencies_desc, worker_desc]
            annotations = {
                "org.opencontainers.image.base.name": str(image.reference.with_tag(None).with_digest(image.digest)),
                "org.opencontainers.image.base.digest": image.digest,
            }
            manifest_raw = worker_manifest(config, manifest_layers, annotations)
            digest = digest_bytes(manifest_raw)
            blobs_uploaded = copied
            try:
                for blob in (BlobSource(dependencies_desc, path=layers.dependencies.path),
                             BlobSource(worker_desc, path=layers.worker.path), BlobSource(config, data=config_raw)):
                    blobs_uploaded += target_client.upload_blob(repo, blob)
                manifest_bytes = 0
                if not target_client.manifest_exists(repo, digest):
                    target_client.put_manifest(repo, digest, manifest_raw, OCI_MANIFEST)
                    manifest_bytes = len(manifest_raw)
                if tag:
                    target_client.put_manifest(repo, tag, manifest_raw, OCI_MANIFEST)
            except (RegistryError, IntegrityError) as exc:
                raise ImageBuildError(f"pushing the worker image to {target}: {exc.message}", stage="push",
                                      input="target") from exc
            lap("push")
            uploaded = target_client.bytes_uploaded - uploaded_before + manifest_bytes
    finally:
        shutil.rmtree(work, ignore_errors=True)
    image_ref = f"{target_ref.registry}/{target_ref.repository}@{digest}"
    log.info("worker image %s: %d bytes uploaded, %d blobs uploaded, %d mounted (%s)", image_ref, uploaded,
             blobs_uploaded, mounted, timings)
    return BuiltImage(image_ref=image_ref, digest=digest, base_digest=image.digest, python_version=python_version,
                      install_hash=install_hash, layer_digest=layers.worker.digest, layer_size=layers.worker.size,
                      dependencies_layer_digest=layers.dependencies.digest,
                      dependencies_layer_size=layers.dependencies.size, dependencies_cached=layers.cached,
                      bytes_uploaded=uploaded, blobs_uploaded=blobs_uploaded, blobs_mounted=mounted, timings=timings)
