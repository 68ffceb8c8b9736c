"""Assembling the worker image against a real registry: reproducible, incremental, and clear about bad inputs."""

from __future__ import annotations

import io
import tarfile
import textwrap
from pathlib import Path

import pytest

from harness.images import PushedImage, image_json, push_index, push_tiny_image
from harness.services import REPO_ROOT, Registry, free_port
from modelops_infra.bundles import RegistryClient
from modelops_infra.errors import ImageBuildError
from modelops_infra.infra.image import BuiltImage, WorkerInstall, build_worker_image
from tests.infra.image.conftest import EXTRA_PACKAGES, WORKER_REPOSITORY


def _blob_puts(registry: Registry) -> int:
    return registry.requests_matching("PUT", "/blobs/uploads/")


def test_the_image_is_the_base_layers_plus_a_dependencies_and_a_worker_install_layer_with_the_pods_settings(
        registry: Registry, base_image: PushedImage, worker_image: BuiltImage) -> None:
    with RegistryClient(registry.address) as client:
        manifest, config = image_json(client, WORKER_REPOSITORY, worker_image.digest)
    assert worker_image.image_ref == f"{registry.address}/{WORKER_REPOSITORY}@{worker_image.digest}"
    assert [layer["digest"] for layer in manifest["layers"]] == \
        [*(d.digest for d in base_image.layers), worker_image.dependencies_layer_digest, worker_image.layer_digest]
    assert not worker_image.dependencies_cached and "dependencies" in worker_image.timings, \
        "a cold build with an empty layer cache installs the dependencies"
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == base_image.digest
    env = dict(e.split("=", 1) for e in config["config"]["Env"])
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["MODELOPS_BUNDLE_CACHE_DIR"] == "/var/cache/modelops/bundles"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert config["config"]["User"] == "1000:1000"
    assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"]) == len(config["history"])
    assert worker_image.python_version == "3.11"
    assert worker_image.blobs_mounted == 1, "the base layer lives in the same registry: mounted, not uploaded"


def _layer_names(registry: Registry, digest: str, size: int) -> list[str]:
    """The entry names of a layer blob of the worker repository."""
    blob = io.BytesIO()
    with RegistryClient(registry.address) as client:
        client.download_blob(WORKER_REPOSITORY, digest, size, blob)
    blob.seek(0)
    with tarfile.open(fileobj=blob) as tar:
        return tar.getnames()


def test_the_worker_install_layer_holds_only_the_projects_files_and_the_dependencies_layer_everything_else(
        registry: Registry, worker_image: BuiltImage) -> None:
    site = "opt/venv/lib/python3.11/site-packages"
    names = _layer_names(registry, worker_image.layer_digest, worker_image.layer_size)
    tops = {n[len(site) + 1:].split("/")[0] for n in names if n.startswith(f"{site}/")}
    assert {t for t in tops if not t.startswith("modelops_infra")} == set(), sorted(tops)
    assert {"modelops_infra", "modelops_infra-0.1.0.dist-info"} <= tops
    assert "opt/venv/bin/mops" in names and f"{site}/modelops_infra/__pycache__/__init__.cpython-311.pyc" in names
    assert "var/cache/modelops/bundles" in names, "the bundle cache's mount point"
    dependencies = _layer_names(registry, worker_image.dependencies_layer_digest,
                                worker_image.dependencies_layer_size)
    assert not any(n.startswith((f"{site}/modelops_infra", "opt/venv/bin/mops")) for n in dependencies)
    assert {"opt/venv/pyvenv.cfg", "opt/venv/bin/python", f"{site}/distributed", f"{site}/uv"} <= set(dependencies)


def test_a_second_build_without_change_gives_the_same_digest_and_uploads_nothing(
        registry: Registry, base_ref: str, worker_install: WorkerInstall, worker_image: BuiltImage,
        layer_cache: Path) -> None:
    puts = _blob_puts(registry)
    again = build_worker_image(base_ref, f"{registry.address}/{WORKER_REPOSITORY}", worker_install,
                               layer_cache=layer_cache)
    assert again.digest == worker_image.digest, "an unchanged install must give the same image"
    assert again.dependencies_cached, "the dependencies layer comes from the layer cache"
    assert (again.bytes_uploaded, again.blobs_uploaded, again.blobs_mounted) == (0, 0, 0)
    assert _blob_puts(registry) == puts, "the registry saw a blob upload"
    print(f"\nrebuild without change: {sum(again.timings.values()):.1f} s {again.timings}")


def test_a_source_change_reuses_the_cached_dependencies_layer_and_uploads_only_the_worker_install_layer(
        registry: Registry, base_ref: str, worker_image: BuiltImage, checkout_copy: Path, layer_cache: Path) -> None:
    init = checkout_copy / "modelops_infra" / "__init__.py"
    init.write_text(init.read_text() + "\n# a source change\n")
    puts = _blob_puts(registry)
    changed = build_worker_image(base_ref, f"{registry.address}/{WORKER_REPOSITORY}",
                                 WorkerInstall(checkout_copy, extra_packages=EXTRA_PACKAGES), layer_cache=layer_cache)
    assert changed.digest != worker_image.digest
    assert changed.layer_digest != worker_image.layer_digest
    assert changed.dependencies_layer_digest == worker_image.dependencies_layer_digest, \
        "a source change must not change the dependencies layer"
    assert changed.dependencies_cached and "dependencies" not in changed.timings, \
        f"the dependencies must come from the layer cache, not be installed again: {changed.timings}"
    assert changed.blobs_uploaded == 2, "only the worker-install layer and the config are new"
    assert changed.bytes_uploaded < 1_000_000, f"a source change uploaded {changed.bytes_uploaded} bytes"
    assert _blob_puts(registry) - puts == 2
    with RegistryClient(registry.address) as client:
        manifest, config = image_json(client, WORKER_REPOSITORY, changed.digest)
    config_size = manifest["config"]["size"]
    manifest_size = len(client_manifest := client_raw(registry, changed.digest))
    assert changed.bytes_uploaded == changed.layer_size + config_size + manifest_size, client_manifest[:80]
    print(f"\nrebuild after a source change: {sum(changed.timings.values()):.1f} s, "
          f"{changed.bytes_uploaded} bytes uploaded {changed.timings}")


def client_raw(registry: Registry, digest: str) -> bytes:
    with RegistryClient(registry.address) as client:
        return client.get_image_manifest(WORKER_REPOSITORY, digest)[0]


def test_a_change_of_extra_packages_rebuilds_the_dependencies_layer(
        registry: Registry, base_ref: str, worker_image: BuiltImage, layer_cache: Path) -> None:
    install = WorkerInstall(REPO_ROOT, extra_packages=(*EXTRA_PACKAGES, "six==1.17.0"))
    changed = build_worker_image(base_ref, f"{registry.address}/{WORKER_REPOSITORY}", install,
                                 layer_cache=layer_cache)
    assert not changed.dependencies_cached and "dependencies" in changed.timings, \
        f"new extra packages must install the dependencies again: {changed.timings}"
    assert changed.dependencies_layer_digest != worker_image.dependencies_layer_digest
    assert changed.layer_digest == worker_image.layer_digest, "the checkout is the same: so is its own layer"
    site = "opt/venv/lib/python3.11/site-packages"
    assert f"{site}/six.py" in _layer_names(registry, changed.dependencies_layer_digest,
                                        changed.dependencies_layer_size)


def test_an_unreachable_base_registry_fails_naming_the_base_image(registry: Registry, worker_install: WorkerInstall,
                                                                   tmp_path: Path) -> None:
    base = f"127.0.0.1:{free_port()}/base/python:3.11"
    with pytest.raises(ImageBuildError) as info:
        build_worker_image(base, f"{registry.address}/errors/unreachable", worker_install, work_dir=tmp_path)
    assert base in str(info.value) and "unreachable" in str(info.value)
    assert (info.value.stage, info.value.input) == ("base", "base_image")


def test_a_base_without_linux_amd64_fails_listing_the_platforms_it_has(registry: Registry,
                                                                       worker_install: WorkerInstall) -> None:
    with RegistryClient(registry.address) as client:
        arm = push_tiny_image(client, "base/arm-only", "arm64", files={"usr/bin/python3.11": b""},
                              architecture="arm64")
        push_index(client, "base/arm-only", "multi", [(arm, "linux/arm64")])
    base = f"{registry.address}/base/arm-only:multi"
    with pytest.raises(ImageBuildError, match="has no linux/amd64 image \\(it has: linux/arm64\\)") as info:
        build_worker_image(base, f"{registry.address}/errors/arm", worker_install)
    assert base in str(info.value) and info.value.input == "base_image"


def test_linux_amd64_is_taken_from_a_multi_platform_base(registry: Registry, base_image: PushedImage,
                                                        tmp_path: Path) -> None:
    from modelops_infra.infra.image import resolve_base

    with RegistryClient(registry.address) as client:
        arm = push_tiny_image(client, "base/bookworm", "arm64", files={"usr/bin/python3.11": b""},
                              architecture="arm64")
        push_index(client, "base/bookworm", "multi", [(arm, "linux/arm64"), (base_image, "linux/amd64")])
        resolved = resolve_base(f"{registry.address}/base/bookworm:multi", client, tmp_path)
    assert resolved.digest == base_image.digest
    assert (resolved.python.path, resolved.python.version) == ("/usr/bin/python3.11", "3.11")


def test_a_base_whose_python_does_not_match_fails_before_installing_anything(
        registry: Registry, worker_install: WorkerInstall) -> None:
    with RegistryClient(registry.address) as client:
        push_tiny_image(client, "base/python", "3.12", files={"usr/local/bin/python3.12": b""},
                        env=["PATH=/usr/local/bin:/usr/bin:/bin"])
    base = f"{registry.address}/base/python:3.12"
    with pytest.raises(ImageBuildError, match=r"has Python 3\.12 \(/usr/local/bin/python3\.12\), but the workers "
                                              r"must run Python 3\.11") as info:
        build_worker_image(base, f"{registry.address}/errors/py312", worker_install)
    assert base in str(info.value) and (info.value.stage, info.value.input) == ("python", "base_image")
    assert registry.requests_matching("PUT", "/v2/errors/py312/") == 0, "nothing may be pushed"


def _sdist_only(tmp_path: Path) -> Path:
    """A source distribution with no wheel: ``nowheel-1.0.tar.gz``."""
    src = tmp_path / "nowheel-1.0"
    (src / "nowheel").mkdir(parents=True)
    (src / "nowheel" / "__init__.py").write_text("")
    (src / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "nowheel"
        version = "1.0"
    """))
    sdist = tmp_path / "nowheel-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(src, arcname="nowheel-1.0")
    return sdist


def test_a_package_without_a_wheel_for_the_target_fails_naming_the_package(
        registry: Registry, base_ref: str, tmp_path: Path) -> None:
    sdist = _sdist_only(tmp_path)
    install = WorkerInstall(REPO_ROOT, extra_packages=(f"nowheel @ {sdist.as_uri()}",))
    with pytest.raises(ImageBuildError, match="package nowheel has no wheel for CPython 3.11") as info:
        build_worker_image(base_ref, f"{registry.address}/errors/nowheel", install, layer_cache=tmp_path / "layers")
    assert (info.value.stage, info.value.input) == ("install", "extra_packages")
