"""Fixtures for the worker image: a base image in the test registry, the image built from it, a Docker daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.images import Dockerd, PushedImage, base_rootfs_tar, push_rootfs_image, start_dockerd
from harness.services import REPO_ROOT, Registry
from modelops_infra.bundles import RegistryClient
from modelops_infra.infra.image import BuiltImage, WorkerInstall, build_worker_image

#: What a stack installs by default besides the checkout (as docker/worker.Dockerfile does).
EXTRA_PACKAGES = ("bokeh>=3.1",)
WORKER_REPOSITORY = "modelops/dask-worker"


@pytest.fixture(scope="session")
def base_image(registry: Registry) -> PushedImage:
    """The mmdebstrap bookworm + python3 root file system, as a Docker schema-2 image ``base/bookworm:python3``."""
    with RegistryClient(registry.address) as client:
        return push_rootfs_image(client, "base/bookworm", "python3", base_rootfs_tar())


@pytest.fixture(scope="session")
def base_ref(registry: Registry, base_image: PushedImage) -> str:
    return f"{registry.address}/base/bookworm:python3"


@pytest.fixture(scope="session")
def worker_install() -> WorkerInstall:
    return WorkerInstall(REPO_ROOT, extra_packages=EXTRA_PACKAGES)


@pytest.fixture(scope="session")
def layer_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tests' own cache of built dependency layers (empty at first), never the user's."""
    return tmp_path_factory.mktemp("image-layers")


@pytest.fixture(scope="session")
def worker_image(registry: Registry, base_ref: str, worker_install: WorkerInstall, layer_cache: Path) -> BuiltImage:
    """The worker image built from the base with the assembly code, as a stack builds it.

    Cold: an empty repository and an empty layer cache.
    """
    return build_worker_image(base_ref, f"{registry.address}/{WORKER_REPOSITORY}", worker_install,
                              layer_cache=layer_cache)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """A Docker daemon of the tests' own, only for the tests that ask for it; stopped after them."""
    daemon = start_dockerd()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def pulled_worker_image(dockerd: Dockerd, worker_image: BuiltImage) -> str:
    """The worker image pulled into the test daemon by digest (a loopback registry needs no TLS)."""
    dockerd.docker("pull", "-q", worker_image.image_ref, timeout=600)
    return worker_image.image_ref


@pytest.fixture
def checkout_copy(tmp_path: Path) -> Path:
    """A copy of the package files of this checkout, to change without touching the repository."""
    import shutil

    from modelops_infra.infra.image import checkout_files

    dest = tmp_path / "checkout"
    for rel in checkout_files(REPO_ROOT):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / rel, dest / rel)
    return dest
